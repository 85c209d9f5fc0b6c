// Parity cases of the copy kernels (kernels/cuda/copy.cu; kernels/cpu/copy.h lists the
// family's files): dtype conversions (bfloat16 rounding, the float -> integer rule of
// kernels/convert.h), contiguous() of views and broadcasting copies, fill, zeros, ones and full.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "tests/parity/parity.h"
#include "tests/support/test_data.h"

using namespace visrep;
using namespace visrep::testing;

namespace {

using Inputs = ParityInputs;

// float32 values whose low 16 bits are exactly half a bfloat16 ulp (ties, which round to
// even), just below and just above it, plus ordinary values, infinities and NaN.
Tensor bfloat16_rounding_probes(Generator& g) {
  const std::vector<int64_t> high = randint(0x3f00, 0x4100, {600}, kInt64, g).to_vector<int64_t>();
  const std::vector<int64_t> low = randint(0, 65536, {600}, kInt64, g).to_vector<int64_t>();
  std::vector<float> values;
  for (size_t i = 0; i < high.size(); ++i) {
    const uint32_t sign = (i % 2) ? 0x80000000u : 0u;
    for (uint32_t bits : {0x8000u, 0x7fffu, 0x8001u, static_cast<uint32_t>(low[i])}) {
      const uint32_t word = sign | (static_cast<uint32_t>(high[i]) << 16) | bits;
      float value;
      std::memcpy(&value, &word, sizeof(value));
      values.push_back(value);
    }
  }
  // Infinities, a NaN with a payload, signed zeros, the largest floats (a tie and a value
  // that round up to infinity) and a subnormal tie.
  for (uint32_t word : {0x7f800000u, 0xff800000u, 0x7fc00001u, 0x00000000u, 0x80000000u, 0x7f7f8000u, 0x7f7fffffu,
                        0x00018000u}) {
    float value;
    std::memcpy(&value, &word, sizeof(value));
    values.push_back(value);
  }
  return from_vector(values);
}

// NaN, infinities, values beyond int32, int64 and uint8 and ordinary ones (333 in all), for
// the float -> integer rule both devices share (kernels/convert.h: NaN -> 0, saturation).
Tensor float_to_integer_probes(Generator& g, DType dtype) {
  const std::vector<double> special = {NAN, -NAN, INFINITY, -INFINITY, 3e9, -3e9, 1e20, -1e20, 255.9, 256.0,
                                       -0.9, -1.0, 2147483520.0, -2147483648.0, 9.3e18, -9.3e18};
  const Tensor ordinary = mul(random_normal({333 - static_cast<int64_t>(special.size())}, g), 3e9);
  return concat({from_vector<double>(special), ordinary}).to(dtype);
}

}  // namespace

TEST_CASE("dtype conversions (forward only)", "[gpu]") {
  struct Conversion {
    std::string name;
    std::function<Tensor(Generator&)> input;
    DType target;
  };
  const std::vector<Conversion> conversions = {
      {"float32 -> bfloat16 (ties to even)", bfloat16_rounding_probes, kBFloat16},
      {"float64 -> bfloat16", [](Generator& g) { return random_normal({333}, g, kFloat64); }, kBFloat16},
      {"bfloat16 -> float32", [](Generator& g) { return random_normal({333}, g, kFloat32).to(kBFloat16); }, kFloat32},
      {"bfloat16 -> int32", [](Generator& g) { return mul(random_normal({333}, g, kFloat32), 50.0).to(kBFloat16); },
       kInt32},
      {"float32 -> int32 (toward zero)", [](Generator& g) { return mul(random_normal({333}, g, kFloat32), 100.0); },
       kInt32},
      {"float64 -> int64", [](Generator& g) { return mul(random_normal({333}, g, kFloat64), 1e6); }, kInt64},
      {"float32 -> uint8", [](Generator& g) { return random_uniform({333}, 0.0, 255.9, g, kFloat32); }, kUInt8},
      {"float64 -> float32", [](Generator& g) { return random_normal({333}, g, kFloat64); }, kFloat32},
      {"float32 -> float64", [](Generator& g) { return random_normal({333}, g, kFloat32); }, kFloat64},
      {"int64 -> float32 (rounding)",
       [](Generator& g) { return randint(-(int64_t{1} << 31), int64_t{1} << 31, {333}, kInt64, g); }, kFloat32},
      {"int32 -> float64", [](Generator& g) { return randint(-100000, 100000, {333}, kInt32, g); }, kFloat64},
      {"int64 -> int32", [](Generator& g) { return randint(-100000, 100000, {333}, kInt64, g); }, kInt32},
      {"int32 -> uint8 (wraps)", [](Generator& g) { return randint(-1000, 1000, {333}, kInt32, g); }, kUInt8},
      {"uint8 -> int64", [](Generator& g) { return randint(0, 256, {333}, kUInt8, g); }, kInt64},
      {"uint8 -> bfloat16", [](Generator& g) { return randint(0, 256, {333}, kUInt8, g); }, kBFloat16},
      {"float32 -> int32 (NaN, Inf, out of range)", [](Generator& g) { return float_to_integer_probes(g, kFloat32); },
       kInt32},
      {"float32 -> int64 (NaN, Inf, out of range)", [](Generator& g) { return float_to_integer_probes(g, kFloat32); },
       kInt64},
      {"float32 -> uint8 (NaN, Inf, out of range)", [](Generator& g) { return float_to_integer_probes(g, kFloat32); },
       kUInt8},
      {"float64 -> int32 (NaN, Inf, out of range)", [](Generator& g) { return float_to_integer_probes(g, kFloat64); },
       kInt32},
      {"bfloat16 -> int64 (NaN, Inf, out of range)",
       [](Generator& g) { return float_to_integer_probes(g, kBFloat16); }, kInt64},
  };
  for (const Conversion& c : conversions) {
    check_parity({.name = c.name,
                  .make_inputs = [&](Generator& g) -> Inputs { return {c.input(g)}; },
                  .function = [&](const Inputs& in) { return in[0].to(c.target); },
                  .tolerance = 0,
                  .compare_backward = false});  // conversions are exact functions of the bits
    check_parity({.name = c.name + ", transposed",
                  .make_inputs = [&](Generator& g) -> Inputs {
                    Tensor x = c.input(g);
                    return {x.slice(0, 0, 330).reshape({11, 30})};
                  },
                  .function = [&](const Inputs& in) { return in[0].t().to(c.target); },
                  .tolerance = 0,
                  .compare_backward = false});
  }
}

TEST_CASE("contiguous() of views and broadcasting copies", "[gpu]") {
  check_parity({.name = "contiguous of a permuted 3-d view",
                .make_inputs = [](Generator& g) -> Inputs { return {parity_leaf(random_normal({6, 35, 17}, g))}; },
                .function = [](const Inputs& in) { return in[0].permute({2, 0, 1}).contiguous(); },
                .tolerance = 0});
  check_parity({.name = "contiguous of a stepped slice",
                .make_inputs = [](Generator& g) -> Inputs { return {parity_leaf(random_normal({21, 64}, g))}; },
                .function = [](const Inputs& in) { return in[0].slice(1, 3, 61, 5).slice(0, 1, 20).contiguous(); },
                .tolerance = 0});
  check_parity({.name = "contiguous of an expanded row",
                .make_inputs = [](Generator& g) -> Inputs { return {parity_leaf(random_normal({1, 45}, g))}; },
                .function = [](const Inputs& in) { return in[0].expand({33, 45}).contiguous(); },
                .tolerance = 1e-13});  // the gradient sums over the 33 copies
  check_parity({.name = "contiguous of a 7-d permutation (float64)",
                .make_inputs = [](Generator& g) -> Inputs {
                  return {random_normal({2, 3, 2, 5, 2, 3, 4}, g).set_requires_grad()};
                },
                .function = [](const Inputs& in) { return in[0].permute({6, 4, 2, 0, 1, 3, 5}).contiguous(); },
                .tolerance = 0});
  check_parity({.name = "copy_ broadcasting and converting float32 into float64",
                .make_inputs = [](Generator& g) -> Inputs { return {random_normal({1, 7}, g, kFloat32)}; },
                .function = [](const Inputs& in) {
                  Tensor destination = zeros({5, 4, 7}, TensorOptions(kFloat64, in[0].device()));
                  destination.slice(1, 1, 3).copy_(in[0]);
                  return destination;
                },
                .tolerance = 0,
                .compare_backward = false});
  check_parity({.name = "copy_ of a transposed host tensor into a device tensor",
                .make_inputs = [](Generator& g) -> Inputs { return {random_normal({9, 14}, g, kFloat32)}; },
                .function = [](const Inputs& in) {
                  Tensor host_view = in[0].cpu().t();  // non-contiguous, on the CPU either way
                  Tensor destination = empty(host_view.shape(), TensorOptions(kFloat32, in[0].device()));
                  destination.copy_(host_view);
                  return destination;
                },
                .tolerance = 0,
                .compare_backward = false});
  check_parity({.name = "clone of a contiguous tensor",
                .make_inputs = [](Generator& g) -> Inputs { return {parity_leaf(random_normal({3, 1025}, g))}; },
                .function = [](const Inputs& in) { return in[0].clone(); },
                .tolerance = 0});
}

TEST_CASE("fill, zeros, ones and full on the device", "[gpu]") {
  // The inputs only say which device to fill on.
  for (DType dtype : {kFloat32, kFloat64, kBFloat16, kInt32, kInt64, kUInt8}) {
    check_parity({.name = "full 1.3 (4097)" + dtype_suffix(dtype),
                  .make_inputs = [](Generator&) -> Inputs { return {zeros({1})}; },
                  .function = [dtype](const Inputs& in) {
                    return full({4097}, 1.3, TensorOptions(dtype, in[0].device()));
                  },
                  .tolerance = 0,
                  .compare_backward = false});
    check_parity({.name = "zeros (3 x 5 x 7)" + dtype_suffix(dtype),
                  .make_inputs = [](Generator&) -> Inputs { return {zeros({1})}; },
                  .function = [dtype](const Inputs& in) {
                    return zeros({3, 5, 7}, TensorOptions(dtype, in[0].device()));
                  },
                  .tolerance = 0,
                  .compare_backward = false});
    check_parity({.name = "ones (3 x 5 x 7)" + dtype_suffix(dtype),
                  .make_inputs = [](Generator&) -> Inputs { return {zeros({1})}; },
                  .function = [dtype](const Inputs& in) {
                    return ones({3, 5, 7}, TensorOptions(dtype, in[0].device()));
                  },
                  .tolerance = 0,
                  .compare_backward = false});
  }
  check_parity({.name = "fill_ of a strided slice",
                .make_inputs = [](Generator& g) -> Inputs { return {random_normal({8, 13}, g, kFloat32)}; },
                .function = [](const Inputs& in) {
                  Tensor x = in[0].clone();
                  x.slice(1, 2, 11, 3).fill_(-2.5);
                  return x;
                },
                .tolerance = 0,
                .compare_backward = false});
  check_parity({.name = "scalar_tensor and full_like",
                .make_inputs = [](Generator& g) -> Inputs { return {random_normal({6, 2}, g, kFloat64)}; },
                .function = [](const Inputs& in) {
                  return add(full_like(in[0], 0.25), scalar_tensor(3.0, TensorOptions(kFloat64, in[0].device())));
                },
                .tolerance = 0,
                .compare_backward = false});
}
