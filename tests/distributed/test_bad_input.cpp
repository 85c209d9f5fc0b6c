// Bad input: arguments a rank refuses, and ranks that do not make the same call. Either way
// every rank throws a visrep::Error at the same call, naming it, and the ranks stay in step:
// each case ends with a collective that must still come out right.
#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <string>
#include <vector>

#include "engine/distributed/communicator.h"
#include "engine/error.h"
#include "engine/tensor.h"
#include "tests/distributed/distributed_test.h"

namespace visrep::distributed::test {
namespace {

using Catch::Contains;

// The ranks still agree after an error: a sum of rank numbers comes out right on all of them.
void check_still_in_step(Communicator& comm) {
  int64_t value = comm.rank();
  comm.all_reduce(&value, 1, kInt64, Device::cpu(), ReduceOp::Sum);
  CHECK(value == int64_t{comm.size()} * (comm.size() - 1) / 2);
}

// What `call` threw on this rank ("" when it did not throw a visrep::Error).
template <class Call>
std::string error_of(Call&& call) {
  try {
    call();
  } catch (const Error& error) {
    return error.what();
  }
  return {};
}

}  // namespace

TEST_CASE("a rank that refuses its arguments: it says why, every other rank names it, nobody hangs", "[bad-input]") {
  Communicator& comm = world();
  const int refuser = comm.size() - 1;
  std::vector<float> data(4, 1.0f);
  const std::string error = error_of(
      [&] { comm.all_reduce(data.data(), comm.rank() == refuser ? -1 : 4, kFloat32, Device::cpu(), ReduceOp::Sum); });
  if (comm.rank() == refuser) {
    CHECK_THAT(error, Contains(fmt::format("all_reduce (rank {} of {}): count -1 is negative", refuser, comm.size())));
  } else {
    CHECK_THAT(error, Contains(fmt::format("rank {} refused its arguments", refuser)));
    CHECK_THAT(error, Contains("no rank ran this all_reduce"));
  }
  check_still_in_step(comm);
}

TEST_CASE("the arguments every rank refuses alike, with the op and the values in the message", "[bad-input]") {
  Communicator& comm = world();
  std::vector<float> floats(8, 0.0f);
  std::vector<int64_t> integers(8, 0);
  std::vector<bfloat16> halves(8);
  const Device cpu = Device::cpu();
  CHECK_THAT(error_of([&] { comm.all_reduce(nullptr, 3, kFloat32, cpu, ReduceOp::Sum); }),
             Contains("all_reduce") && Contains("data is null for 3 elements"));
  CHECK_THAT(error_of([&] { comm.all_reduce(halves.data(), 8, kBFloat16, cpu, ReduceOp::Sum); }),
             Contains("cannot reduce bfloat16"));
  CHECK_THAT(error_of([&] { comm.reduce_scatter(halves.data(), halves.data(), 0, kBFloat16, cpu); }),
             Contains("reduce_scatter") && Contains("cannot reduce bfloat16"));
  CHECK_THAT(error_of([&] { comm.all_reduce(integers.data(), 8, kInt64, cpu, ReduceOp::Average); }),
             Contains("the average of int64 is not defined"));
  CHECK_THAT(
      error_of([&] { comm.broadcast(floats.data(), 8, kFloat32, cpu, comm.size()); }),
      Contains(fmt::format("broadcast (rank {} of {}): root {} is not a rank", comm.rank(), comm.size(), comm.size())));
  CHECK_THAT(error_of([&] { comm.broadcast(floats.data(), 8, kFloat32, cpu, -1); }), Contains("root -1 is not a rank"));
  // all_gather: send may be this rank's block of receive (in place), nothing else that overlaps.
  std::vector<float> big(static_cast<size_t>(2 * comm.size() + 1), 0.0f);
  CHECK_THAT(error_of([&] { comm.all_gather(big.data() + 1, big.data(), 2, kFloat32, cpu); }),
             Contains("all_gather") && Contains("send overlaps receive but is not this rank's block of it"));
  CHECK_THAT(error_of([&] { comm.reduce_scatter(big.data(), big.data() + 1, 2, kFloat32, cpu); }),
             Contains("receive overlaps send but is not this rank's block of it"));
  // Tensors.
  CHECK_THAT(error_of([&] { comm.all_reduce(Tensor(), ReduceOp::Sum); }),
             Contains("all_reduce") && Contains("undefined"));
  CHECK_THAT(error_of([&] { comm.reduce_scatter(scalar_tensor(1.0)); }), Contains("a 0-d tensor cannot be scattered"));
  CHECK_THAT(error_of([&] {
               comm.all_reduce(zeros({2, 3}, kUInt8), ReduceOp::Max);
             }),
             Contains("cannot reduce uint8") && Contains("uint8 [2, 3] on cpu"));
  if (comm.size() > 1) {
    CHECK_THAT(error_of([&] {
                 comm.reduce_scatter(zeros({2 * comm.size() + 1, 3}));
               }),
               Contains(fmt::format("the first dimension, {}, of tensor float32 [{}, 3] on cpu is not a multiple of "
                                    "the {} ranks",
                                    2 * comm.size() + 1, 2 * comm.size() + 1, comm.size())));
  }
  check_still_in_step(comm);
}

TEST_CASE("ranks that make different calls: every rank throws, naming each rank's call", "[bad-input]") {
  Communicator& comm = world();
  if (comm.size() == 1) {
    SUCCEED("a job of one always agrees with itself; run on 2 or more ranks (mpirun)");
    return;
  }
  const int rank = comm.rank();
  const Device cpu = Device::cpu();
  std::vector<float> data(16, 1.0f);
  const auto expect_disagreement = [&](const std::string& error, const std::string& what) {
    CHECK_THAT(error, Contains("the ranks are not making the same call"));
    CHECK_THAT(error, Contains(what));
  };
  SECTION("counts") {
    const std::string error =
        error_of([&] { comm.all_reduce(data.data(), 10 + (rank % 2), kFloat32, cpu, ReduceOp::Sum); });
    expect_disagreement(error, "all_reduce (sum) of 10 float32 elements");
    CHECK_THAT(error, Contains("all_reduce (sum) of 11 float32 elements"));
    CHECK_THAT(error, Contains(comm.size() == 2 ? "rank 0: " : "ranks 0, 2: "));
  }
  SECTION("ops") {
    const std::string error =
        error_of([&] { comm.all_reduce(data.data(), 16, kFloat32, cpu, rank == 0 ? ReduceOp::Max : ReduceOp::Sum); });
    expect_disagreement(error, "rank 0: all_reduce (max) of 16 float32 elements");
  }
  SECTION("collectives") {
    const std::string error = error_of([&] {
      if (rank == 0)
        comm.broadcast(data.data(), 16, kFloat32, cpu, 0);
      else
        comm.all_reduce(data.data(), 16, kFloat32, cpu, ReduceOp::Sum);
    });
    expect_disagreement(error, "rank 0: broadcast from rank 0 of 16 float32 elements");
  }
  SECTION("dtypes") {
    std::vector<double> doubles(16, 1.0);
    const std::string error = error_of([&] {
      if (rank == 0)
        comm.all_gather(doubles.data(), doubles.data(), 1, kFloat64, cpu);
      else
        comm.all_gather(data.data(), data.data() + rank, 1, kFloat32, cpu);
    });
    expect_disagreement(error, "all_gather of 1 float64 element");
  }
  SECTION("roots") {
    const std::string error = error_of([&] { comm.broadcast(data.data(), 16, kFloat32, cpu, rank == 1 ? 1 : 0); });
    expect_disagreement(error, "rank 1: broadcast from rank 1");
  }
  SECTION("the rows of tensors of the same size") {
    const Tensor local = rank % 2 == 0 ? zeros({2, 6}) : zeros({3, 4});
    const std::string error = error_of([&] { comm.all_gather(local); });
    expect_disagreement(error, "(rows of 6)");
    CHECK_THAT(error, Contains("(rows of 4)"));
  }
  check_still_in_step(comm);
}

TEST_CASE("options and the environment: bad values are refused with their names", "[bad-input]") {
  CommunicatorOptions options;
  options.timeout_seconds = 0;
  CHECK_THROWS_WITH(Communicator(options), Contains("timeout_seconds must be in (0, 1e9], got 0"));
  options = CommunicatorOptions();
  options.device_transport = DeviceTransport::NCCL;
  CHECK_THROWS_WITH(Communicator(options),
                    Contains("the NCCL transport needs a CUDA device (options.device is not set)"));
  options.device = Device::cpu();
  CHECK_THROWS_WITH(Communicator(options), Contains("options.device is cpu"));

  ::setenv("VISREP_DISTRIBUTED_TIMEOUT", "soon", 1);
  CHECK_THROWS_WITH(CommunicatorOptions::from_environment(),
                    Contains("VISREP_DISTRIBUTED_TIMEOUT='soon' is not a number of seconds"));
  ::setenv("VISREP_DISTRIBUTED_TIMEOUT", "2.5", 1);
  ::setenv("VISREP_DISTRIBUTED_CHECKS", "yes", 1);
  CHECK_THROWS_WITH(CommunicatorOptions::from_environment(),
                    Contains("VISREP_DISTRIBUTED_CHECKS='yes' must be 0 or 1"));
  ::setenv("VISREP_DISTRIBUTED_CHECKS", "0", 1);
  const CommunicatorOptions from_environment = CommunicatorOptions::from_environment();
  CHECK(from_environment.timeout_seconds == 2.5);
  CHECK_FALSE(from_environment.check_calls);
  ::unsetenv("VISREP_DISTRIBUTED_TIMEOUT");
  ::unsetenv("VISREP_DISTRIBUTED_CHECKS");
  CHECK(CommunicatorOptions::from_environment().timeout_seconds == 600);
  CHECK(CommunicatorOptions::from_environment().check_calls);
}

TEST_CASE("without call checks, a refused argument throws on its own rank at once", "[bad-input]") {
  // Only in a job of one: with more ranks the others would wait for the call (the watchdog's
  // case, scenarios.cpp).
  if (LaunchEnvironment::detect().launched()) {
    SUCCEED("run without a launcher");
    return;
  }
  CommunicatorOptions options;
  options.check_calls = false;
  Communicator alone(options);
  std::vector<float> data(4);
  CHECK_THROWS_WITH(alone.all_reduce(data.data(), -2, kFloat32, Device::cpu(), ReduceOp::Sum),
                    Contains("all_reduce (rank 0 of 1): count -2 is negative"));
  alone.all_reduce(data.data(), 4, kFloat32, Device::cpu(), ReduceOp::Sum);
}

TEST_CASE("a communicator moved from says so", "[bad-input]") {
  Communicator first;  // every rank makes it (under mpirun a collective), so every rank moves it
  Communicator second = std::move(first);
  CHECK(second.size() == world().size());
  CHECK_THROWS_WITH(first.rank(), Contains("communicator: used after being moved from"));
  std::vector<float> data(2);
  CHECK_THROWS_WITH(first.all_reduce(data.data(), 2, kFloat32, Device::cpu(), ReduceOp::Sum),
                    Contains("used after being moved from"));
}

}  // namespace visrep::distributed::test
