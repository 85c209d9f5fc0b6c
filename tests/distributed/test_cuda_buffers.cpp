// CUDA buffers, [cuda]: through the host transport (a copy in a job of one; MPI through
// pinned host memory under mpirun) and through NCCL where it is built and the ranks have a
// GPU each. The same rank-asymmetric data as the host cases, compared with what every rank
// computes for itself. Without a usable GPU main() skips these (exit code 4).
#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <string>
#include <vector>

#include "engine/cuda.h"
#include "engine/distributed/communicator.h"
#include "engine/tensor.h"
#include "tests/distributed/distributed_test.h"

namespace visrep::distributed::test {
namespace {

// Rank-asymmetric float32 values on `device`, element i = element<float>(rank, i).
Tensor device_tensor(int rank, const Shape& shape, Device device) {
  std::vector<float> values(static_cast<size_t>(shape_numel(shape)));
  for (size_t i = 0; i < values.size(); ++i) values[i] = element<float>(rank, static_cast<int64_t>(i));
  return from_vector(values, shape).to(device);
}

// The largest |actual - expected(i)| relative to max(1, |expected|).
template <class Expected>
double worst_error(const Tensor& actual, Expected&& expected) {
  const std::vector<float> values = actual.to_vector<float>();
  double worst = 0;
  for (size_t i = 0; i < values.size(); ++i) {
    const double want = expected(static_cast<int64_t>(i));
    worst = std::max(worst, std::abs(values[i] - want) / std::max(1.0, std::abs(want)));
  }
  return worst;
}

// Every collective on CUDA tensors through `comm`. Sums and maxima of these values are exact
// in any order; NCCL's average may round differently from sum-then-divide, hence 1e-6.
void check_device_collectives(Communicator& comm, Device device) {
  const int ranks = comm.size();
  const int rank = comm.rank();
  INFO(fmt::format("{} buffers through {}", device.str(), comm.transport_name_for(device)));
  for (const ReduceOp op : {ReduceOp::Sum, ReduceOp::Average, ReduceOp::Max}) {
    const Tensor t = device_tensor(rank, {1031}, device);
    comm.all_reduce(t, op);
    CHECK(worst_error(t, [&](int64_t i) { return reduced<float>(op, ranks, i); }) <= 1e-6);
  }
  const Tensor gathered = comm.all_gather(device_tensor(rank, {3, 5}, device));
  CHECK(gathered.device() == device);
  CHECK(gathered.shape() == Shape{3 * ranks, 5});
  CHECK(worst_error(gathered, [&](int64_t j) { return element<float>(static_cast<int>(j / 15), j % 15); }) == 0);
  const Tensor mine = comm.reduce_scatter(device_tensor(rank, {2 * ranks, 4}, device));
  CHECK(mine.shape() == Shape{2, 4});
  CHECK(worst_error(mine, [&](int64_t i) { return reduced<float>(ReduceOp::Sum, ranks, rank * 8 + i); }) == 0);
  const Tensor shared = device_tensor(rank, {7, 3}, device);
  comm.broadcast(shared, ranks - 1);
  CHECK(worst_error(shared, [&](int64_t i) { return element<float>(ranks - 1, i); }) == 0);
  // Raw buffers, in place, and a count of 0.
  const Tensor buffer = device_tensor(rank, {ranks * 6}, device);
  comm.all_gather(static_cast<float*>(buffer.raw_data()) + rank * 6, buffer.raw_data(), 6, kFloat32, device);
  CHECK(worst_error(buffer, [&](int64_t j) { return element<float>(static_cast<int>(j / 6), j % 6); }) == 0);
  comm.all_reduce(buffer.raw_data(), 0, kFloat32, device, ReduceOp::Sum);
  cuda::synchronize(device);
}

}  // namespace

TEST_CASE("CUDA buffers through the host transport", "[cuda]") { check_device_collectives(world(), Device::cuda(0)); }

TEST_CASE("CUDA buffers through NCCL, one GPU per rank", "[cuda]") {
  Communicator& comm = world();
  // Decided together: a rank that made the NCCL communicator alone would wait for the others.
  int64_t unable = !nccl_built() || cuda_device_count() < comm.local_size() ? 1 : 0;
  comm.all_reduce(&unable, 1, kInt64, Device::cpu(), ReduceOp::Max);
  if (unable != 0) {
    SUCCEED(fmt::format("needs NCCL (built: {}) and a GPU per rank on every host (here {} for {} ranks)", nccl_built(),
                        cuda_device_count(), comm.local_size()));
    return;
  }
  CommunicatorOptions options;
  options.device = Device::cuda(comm.local_rank());
  options.device_transport = DeviceTransport::NCCL;
  options.timeout_seconds = 60;
  Communicator nccl(options);
  CHECK_THAT(nccl.transport_name_for(*options.device), Catch::StartsWith("NCCL "));
  check_device_collectives(nccl, *options.device);
}

}  // namespace visrep::distributed::test
