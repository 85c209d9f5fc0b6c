// The collectives on host buffers and tensors, against the values every rank can compute
// for itself (distributed_test.h): each op and dtype, in place and out of place, counts from
// 0 to 70001, on 1, 2, 3 and 4 ranks (3 catches offset bugs a power of two hides).
#include <fmt/format.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "engine/distributed/communicator.h"
#include "engine/tensor.h"
#include "kernels/bfloat16.h"
#include "tests/distributed/distributed_test.h"

namespace visrep::distributed::test {
namespace {

template <class T>
bool same(T a, T b) {
  return a == b;
}
template <>
bool same<bfloat16>(bfloat16 a, bfloat16 b) {
  return a.bits == b.bits;
}
template <class T>
double shown(T value) {
  if constexpr (std::is_same_v<T, bfloat16>)
    return static_cast<double>(static_cast<float>(value));
  else
    return static_cast<double>(value);
}

// "" when every element of `actual` equals expected(i), else how many differ and the first
// one; CHECK(mismatch(...) == "") prints it when it fails.
template <class T, class Expected>
std::string mismatch(const std::vector<T>& actual, Expected&& expected) {
  int64_t count = 0;
  std::string first;
  for (int64_t i = 0; i < static_cast<int64_t>(actual.size()); ++i) {
    const T want = expected(i);
    if (same(actual[i], want)) continue;
    if (count++ == 0) first = fmt::format("element {}: got {}, expected {}", i, shown(actual[i]), shown(want));
  }
  return count == 0 ? std::string() : fmt::format("{} of {} elements differ; {}", count, actual.size(), first);
}

template <class T>
std::vector<T> rank_data(int rank, int64_t count, int64_t offset = 0) {
  std::vector<T> data(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) data[i] = element<T>(rank, offset + i);
  return data;
}

std::vector<ReduceOp> ops_for(DType dtype) {
  if (is_floating(dtype)) return {ReduceOp::Sum, ReduceOp::Average, ReduceOp::Max};
  return {ReduceOp::Sum, ReduceOp::Max};
}

}  // namespace

TEMPLATE_TEST_CASE("all_reduce: sum, average and max of rank-asymmetric data, counts 0 to 70001", "[collectives]",
                   float, double, int32_t, int64_t) {
  Communicator& comm = world();
  const DType dtype = dtype_of<TestType>();
  for (const ReduceOp op : ops_for(dtype)) {
    for (const int64_t count : kCounts) {
      std::vector<TestType> data = rank_data<TestType>(comm.rank(), count);
      comm.all_reduce(data.data(), count, dtype, Device::cpu(), op);
      INFO(fmt::format("{} of {} {} on {} ranks", reduce_op_name(op), count, dtype_name(dtype), comm.size()));
      CHECK(mismatch(data, [&](int64_t i) { return reduced<TestType>(op, comm.size(), i); }) == "");
    }
  }
}

TEMPLATE_TEST_CASE("all_gather: rank-major output, out of place and in place", "[collectives]", float, double, int32_t,
                   int64_t, bfloat16, uint8_t) {
  Communicator& comm = world();
  const DType dtype = dtype_of<TestType>();
  const int ranks = comm.size();
  for (const int64_t count : {int64_t{0}, int64_t{1}, int64_t{7}, int64_t{1031}}) {
    const auto expected = [&](int64_t j) { return element<TestType>(static_cast<int>(j / count), j % count); };
    {
      const std::vector<TestType> send = rank_data<TestType>(comm.rank(), count);
      std::vector<TestType> receive(static_cast<size_t>(count * ranks), TestType(0));
      comm.all_gather(send.data(), receive.data(), count, dtype, Device::cpu());
      INFO(fmt::format("out of place, {} {} per rank on {} ranks", count, dtype_name(dtype), ranks));
      CHECK(mismatch(receive, expected) == "");
      CHECK(mismatch(send, [&](int64_t i) { return element<TestType>(comm.rank(), i); }) == "");
    }
    {
      // In place: this rank's block of the output holds its input; the others hold garbage.
      std::vector<TestType> buffer(static_cast<size_t>(count * ranks), TestType(99));
      for (int64_t i = 0; i < count; ++i) buffer[comm.rank() * count + i] = element<TestType>(comm.rank(), i);
      comm.all_gather(buffer.data() + comm.rank() * count, buffer.data(), count, dtype, Device::cpu());
      INFO(fmt::format("in place, {} {} per rank on {} ranks", count, dtype_name(dtype), ranks));
      CHECK(mismatch(buffer, expected) == "");
    }
  }
}

TEMPLATE_TEST_CASE("reduce_scatter: this rank's block reduced over the ranks, out of place and in place",
                   "[collectives]", float, double, int32_t, int64_t) {
  Communicator& comm = world();
  const DType dtype = dtype_of<TestType>();
  const int ranks = comm.size();
  const int rank = comm.rank();
  for (const ReduceOp op : ops_for(dtype)) {
    for (const int64_t count : {int64_t{0}, int64_t{1}, int64_t{7}, int64_t{1031}}) {
      // Rank k sends element(k, j) for j in [0, P*count); rank r receives block r reduced.
      const auto expected = [&](int64_t i) { return reduced<TestType>(op, ranks, rank * count + i); };
      {
        const std::vector<TestType> send = rank_data<TestType>(rank, count * ranks);
        std::vector<TestType> receive(static_cast<size_t>(count), TestType(0));
        comm.reduce_scatter(send.data(), receive.data(), count, dtype, Device::cpu(), op);
        INFO(fmt::format("out of place, {} of {} {} per rank on {} ranks", reduce_op_name(op), count, dtype_name(dtype),
                         ranks));
        CHECK(mismatch(receive, expected) == "");
      }
      {
        std::vector<TestType> buffer = rank_data<TestType>(rank, count * ranks);
        comm.reduce_scatter(buffer.data(), buffer.data() + rank * count, count, dtype, Device::cpu(), op);
        const std::vector<TestType> block(buffer.begin() + rank * count, buffer.begin() + (rank + 1) * count);
        INFO(fmt::format("in place, {} of {} {} per rank on {} ranks", reduce_op_name(op), count, dtype_name(dtype),
                         ranks));
        CHECK(mismatch(block, expected) == "");
      }
    }
  }
}

TEMPLATE_TEST_CASE("broadcast: every rank gets the root's data, from every root", "[collectives]", float, double,
                   int32_t, int64_t, bfloat16, uint8_t) {
  Communicator& comm = world();
  const DType dtype = dtype_of<TestType>();
  for (int root = 0; root < comm.size(); ++root) {
    for (const int64_t count : {int64_t{0}, int64_t{1}, int64_t{1031}}) {
      std::vector<TestType> data = rank_data<TestType>(comm.rank(), count);
      comm.broadcast(data.data(), count, dtype, Device::cpu(), root);
      INFO(fmt::format("{} {} from rank {} of {}", count, dtype_name(dtype), root, comm.size()));
      CHECK(mismatch(data, [&](int64_t i) { return element<TestType>(root, i); }) == "");
    }
  }
}

TEST_CASE("barrier: no rank passes it before every rank has reached it", "[collectives]") {
  Communicator& comm = world();
  // Rank 0 writes a file only after a pause, then enters the barrier; every rank must see
  // the file once its barrier returns. The file's name comes from rank 0 (its process id).
  int64_t token = comm.rank() == 0 ? static_cast<int64_t>(getpid()) : 0;
  comm.broadcast(&token, 1, kInt64, Device::cpu(), 0);
  const std::filesystem::path marker = std::filesystem::temp_directory_path() / fmt::format("visrep-barrier-{}", token);
  if (comm.rank() == 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    std::ofstream(marker) << "written before the barrier\n";
  }
  comm.barrier();
  CHECK(std::filesystem::exists(marker));
  comm.barrier();  // nobody removes it before everyone has looked
  if (comm.rank() == 0) std::filesystem::remove(marker);
}

// ---- tensors -------------------------------------------------------------------------------------

namespace {

// Rank-asymmetric float32 values in a tensor of `shape`, element i = element<float>(rank, i).
Tensor rank_tensor(int rank, const Shape& shape, int64_t offset = 0) {
  std::vector<float> values = rank_data<float>(rank, shape_numel(shape), offset);
  return from_vector(values, shape);
}

}  // namespace

TEST_CASE("tensor all_reduce: in place, through a non-contiguous view, counted as an in-place write",
          "[collectives][tensor]") {
  Communicator& comm = world();
  SECTION("a contiguous tensor is reduced where it is") {
    const Tensor t = rank_tensor(comm.rank(), {3, 5});
    const uint64_t version = t.storage()->version();
    const void* data = t.raw_data();
    comm.all_reduce(t, ReduceOp::Sum);
    CHECK(t.raw_data() == data);
    CHECK(t.storage()->version() > version);
    const std::vector<float> values = t.to_vector<float>();
    CHECK(mismatch(values, [&](int64_t i) { return reduced<float>(ReduceOp::Sum, comm.size(), i); }) == "");
  }
  SECTION("a transposed view: the reduced values land in the view, and so in its base") {
    const Tensor base = rank_tensor(comm.rank(), {4, 6});
    const Tensor view = base.t();  // [6, 4], not contiguous
    REQUIRE_FALSE(view.is_contiguous());
    comm.all_reduce(view, ReduceOp::Max);
    const std::vector<float> values = base.to_vector<float>();
    CHECK(mismatch(values, [&](int64_t i) { return reduced<float>(ReduceOp::Max, comm.size(), i); }) == "");
  }
  SECTION("a tensor that requires a gradient: its data is reduced, no graph is recorded") {
    Tensor weights = rank_tensor(comm.rank(), {8});
    weights.set_requires_grad(true);
    comm.all_reduce(weights, ReduceOp::Average);
    CHECK(weights.is_leaf());
    const std::vector<float> values = weights.to_vector<float>();
    CHECK(mismatch(values, [&](int64_t i) { return reduced<float>(ReduceOp::Average, comm.size(), i); }) == "");
  }
}

TEST_CASE("tensor all_gather: n rows on each of P ranks give P*n rows, rank k's from row k*n on",
          "[collectives][tensor]") {
  Communicator& comm = world();
  const int ranks = comm.size();
  SECTION("embeddings, n x d") {
    const Tensor local = rank_tensor(comm.rank(), {3, 4});
    const Tensor gathered = comm.all_gather(local);
    CHECK(gathered.shape() == Shape{3 * ranks, 4});
    const std::vector<float> values = gathered.to_vector<float>();
    CHECK(mismatch(values, [&](int64_t j) { return element<float>(static_cast<int>(j / 12), j % 12); }) == "");
  }
  SECTION("int64 labels, from a non-contiguous view") {
    std::vector<int64_t> labels;
    for (int64_t i = 0; i < 10; ++i) labels.push_back(element<int64_t>(comm.rank(), i));
    const Tensor every_other = from_vector(labels).slice(0, 0, 10, 2);  // 5 labels, stride 2
    const Tensor gathered = comm.all_gather(every_other);
    CHECK(gathered.dtype() == kInt64);
    CHECK(gathered.shape() == Shape{5 * ranks});
    const std::vector<int64_t> values = gathered.to_vector<int64_t>();
    CHECK(mismatch(values, [&](int64_t j) { return element<int64_t>(static_cast<int>(j / 5), 2 * (j % 5)); }) == "");
  }
  SECTION("a 0-d tensor gives P values; an empty one stays empty") {
    const Tensor loss = scalar_tensor(element<float>(comm.rank(), 0));
    const Tensor losses = comm.all_gather(loss);
    CHECK(losses.shape() == Shape{ranks});
    const std::vector<float> values = losses.to_vector<float>();
    CHECK(mismatch(values, [&](int64_t k) { return element<float>(static_cast<int>(k), 0); }) == "");
    const Tensor none = comm.all_gather(zeros({0, 5}));
    CHECK(none.shape() == Shape{0, 5});
  }
}

TEST_CASE("tensor reduce_scatter: P*n rows give this rank's n rows, reduced over the ranks", "[collectives][tensor]") {
  Communicator& comm = world();
  const int ranks = comm.size();
  for (const ReduceOp op : {ReduceOp::Sum, ReduceOp::Average}) {
    const Tensor full = rank_tensor(comm.rank(), {2 * ranks, 3});
    const Tensor mine = comm.reduce_scatter(full, op);
    CHECK(mine.shape() == Shape{2, 3});
    const std::vector<float> values = mine.to_vector<float>();
    CHECK(mismatch(values, [&](int64_t i) { return reduced<float>(op, ranks, comm.rank() * 6 + i); }) == "");
  }
}

TEST_CASE("tensor broadcast: in place from the root, through a view", "[collectives][tensor]") {
  Communicator& comm = world();
  const int root = comm.size() - 1;
  const Tensor base = rank_tensor(comm.rank(), {4, 6});
  comm.broadcast(base.t(), root);
  const std::vector<float> values = base.to_vector<float>();
  CHECK(mismatch(values, [&](int64_t i) { return element<float>(root, i); }) == "");
}

TEST_CASE("the communicator says what it is", "[collectives]") {
  Communicator& comm = world();
  CHECK(comm.rank() >= 0);
  CHECK(comm.rank() < comm.size());
  CHECK(comm.local_rank() >= 0);
  CHECK(comm.local_rank() < comm.local_size());
  CHECK(comm.local_size() <= comm.size());
  const std::string description = comm.description();
  CHECK_THAT(description, Catch::Contains(fmt::format("rank {} of {}", comm.rank(), comm.size())));
  const LaunchEnvironment environment = LaunchEnvironment::detect();
  if (environment.launched()) {
    CHECK_THAT(comm.host_transport_name(), Catch::StartsWith("MPI ("));
    CHECK(comm.size() == environment.size);
    CHECK(comm.rank() == environment.rank);
    CHECK(comm.local_rank() == environment.local_rank);
  } else {
    CHECK(comm.host_transport_name() == "single-process");
    CHECK(comm.size() == 1);
  }
  // Every rank counts the ranks: a sum of ones.
  int64_t one = 1;
  comm.all_reduce(&one, 1, kInt64, Device::cpu(), ReduceOp::Sum);
  CHECK(one == comm.size());
}

}  // namespace visrep::distributed::test
