#include "tests/distributed/distributed_test.h"

#include <memory>

#include "kernels/bfloat16.h"

namespace visrep::distributed::test {
namespace {

std::unique_ptr<Communicator>& made() {
  static std::unique_ptr<Communicator> communicator;
  return communicator;
}

double floating_element(int rank, int64_t i) {
  return static_cast<double>((i * 7 + rank * 13) % 23 - 11) * (rank + 1) + 0.25 * rank;
}

}  // namespace

Communicator& world() {
  if (!made()) {
    CommunicatorOptions options;
    options.timeout_seconds = 60;
    made() = std::make_unique<Communicator>(options);
  }
  return *made();
}

Communicator* world_if_made() { return made().get(); }

template <>
float element<float>(int rank, int64_t i) {
  return static_cast<float>(floating_element(rank, i));
}
template <>
double element<double>(int rank, int64_t i) {
  return floating_element(rank, i);
}
template <>
bfloat16 element<bfloat16>(int rank, int64_t i) {
  return bfloat16(static_cast<float>(floating_element(rank, i)));
}
template <>
int32_t element<int32_t>(int rank, int64_t i) {
  return static_cast<int32_t>((i * 7 + rank * 13) % 23 - 11) * (rank + 1) * 1000 + rank;
}
template <>
int64_t element<int64_t>(int rank, int64_t i) {
  return static_cast<int64_t>((i * 7 + rank * 13) % 23 - 11) * (rank + 1) * (int64_t{1} << 33) + rank;
}
template <>
uint8_t element<uint8_t>(int rank, int64_t i) {
  return static_cast<uint8_t>((i * 7 + rank * 13) % 251);
}

template <class T>
T reduced(ReduceOp op, int size, int64_t i) {
  T result = element<T>(0, i);
  for (int k = 1; k < size; ++k) {
    const T value = element<T>(k, i);
    result = op == ReduceOp::Max ? (value > result ? value : result) : static_cast<T>(result + value);
  }
  if (op == ReduceOp::Average) result = static_cast<T>(result / static_cast<T>(size));
  return result;
}

template float reduced<float>(ReduceOp, int, int64_t);
template double reduced<double>(ReduceOp, int, int64_t);
template int32_t reduced<int32_t>(ReduceOp, int, int64_t);
template int64_t reduced<int64_t>(ReduceOp, int, int64_t);

}  // namespace visrep::distributed::test
