// Parity of the random draws: a draw made directly on the GPU must equal the CPU's draw
// from the same generator state (Philox keyed by (seed, stream, index) on both sides,
// kernels/philox.h). Uniform, integer and permutation draws are bit-identical by
// construction: tolerance 0. Normal draws go through Box-Muller in double precision and are
// rounded to a float32 standard normal, and CUDA's double log/sin/cos may differ from
// glibc's by an ulp or two; where that difference straddles a float32 rounding boundary
// (probability ~2^-29 per element) the two standard normals differ by one float32 ulp. So
// normal draws are compared within 2 float32 ulps of the draw (plus one rounding of the
// output dtype), and the bit-identical ones are counted separately: at least 99.9% must be,
// or the devices compute the normals differently, however close the values.
// Where to look for the rest of the family: kernels/cpu/random.h.
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "tests/parity/parity.h"

using namespace visrep;
using namespace visrep::testing;

namespace {

using Inputs = ParityInputs;

// The single input only says which device to draw on; the generator is rebuilt at the
// same state for each device.
Inputs device_marker(Generator&) { return {zeros({1})}; }

Generator generator_at(uint64_t stream) {
  Generator generator(20240531);
  generator.set_state(20240531, stream);
  return generator;
}

void check_draw(const std::string& name, std::function<Tensor(Device, Generator&)> draw) {
  check_parity({.name = name,
                .make_inputs = device_marker,
                .function = [draw](const Inputs& in) {
                  Generator generator = generator_at(17);
                  return draw(in[0].device(), generator);
                },
                .tolerance = 0,
                .compare_backward = false});
}

// The spacing of float32 (mantissa_bits 23) or float64 (52) numbers at |value|.
double ulp_at(double value, int mantissa_bits) {
  if (value == 0.0 || !std::isfinite(value)) return std::ldexp(1.0, mantissa_bits == 23 ? -149 : -1074);
  return std::ldexp(1.0, std::ilogb(value) - mantissa_bits);
}

// A normal draw (mean `mean`) on both devices from the same state, compared element by
// element: |cuda - cpu| in units of one float32 ulp of the random part |x - mean| plus one
// rounding of the output, worst over the elements; exact matches counted apart.
void check_normal_draw(const std::string& name, double mean, std::function<Tensor(Device, Generator&)> draw) {
  REQUIRE(cuda_available());
  Generator cpu_generator = generator_at(17), cuda_generator = generator_at(17);
  const Tensor cpu_draw = draw(Device::cpu(), cpu_generator);
  const Tensor cuda_draw = draw(Device::cuda(), cuda_generator);
  REQUIRE(cuda_draw.device().is_cuda());
  REQUIRE(cuda_draw.dtype() == cpu_draw.dtype());
  REQUIRE(cuda_draw.shape() == cpu_draw.shape());
  const std::vector<double> expected = cpu_draw.to(kFloat64).to_vector<double>();
  const std::vector<double> actual = cuda_draw.cpu().to(kFloat64).to_vector<double>();
  const int output_bits = cpu_draw.dtype() == kFloat64 ? 52 : 23;
  double worst = 0.0;
  int64_t exact = 0;
  for (size_t i = 0; i < expected.size(); ++i) {
    if (actual[i] == expected[i]) {
      ++exact;
      continue;
    }
    const double allowance = ulp_at(expected[i] - mean, 23) + ulp_at(expected[i], output_bits);
    worst = std::max(worst, std::isfinite(actual[i]) ? std::abs(actual[i] - expected[i]) / allowance : INFINITY);
  }
  constexpr double kUlps = 2.0;
  const int64_t count = static_cast<int64_t>(expected.size());
  const bool mostly_exact = exact >= count - count / 1000;
  report_parity_check({.name = name,
                       .metric = "float32 ulps of the draw",
                       .forward_error = worst,
                       .tolerance = kUlps,
                       .passed = worst <= kUlps && mostly_exact,
                       .problem = mostly_exact ? "" : "fewer than 99.9% of the values are bit-identical",
                       .note = std::to_string(exact) + " of " + std::to_string(count) + " bit-identical"});
  INFO(name << ": " << exact << " of " << count << " bit-identical, worst " << worst << " ulps");
  CHECK(worst <= kUlps);
  CHECK(mostly_exact);
}

}  // namespace

TEST_CASE("rand and uniform on the device equal the cpu draw", "[gpu]") {
  for (int64_t n : {int64_t{1}, int64_t{7}, int64_t{1001}, int64_t{1 << 20}}) {
    check_draw("rand float32 n=" + std::to_string(n),
               [n](Device d, Generator& g) { return rand({n}, TensorOptions(kFloat32, d), g); });
  }
  check_draw("rand float64 (3, 333)",
             [](Device d, Generator& g) { return rand({3, 333}, TensorOptions(kFloat64, d), g); });
  check_draw("rand bfloat16 (drawn as float32, rounded)",
             [](Device d, Generator& g) { return rand({515}, TensorOptions(kBFloat16, d), g); });
  check_draw("uniform(-3, 5) float32",
             [](Device d, Generator& g) { return uniform({4099}, -3.0, 5.0, TensorOptions(kFloat32, d), g); });
  check_draw("uniform(-0.1, 0.1) float64",
             [](Device d, Generator& g) { return uniform({4099}, -0.1, 0.1, TensorOptions(kFloat64, d), g); });
  check_draw("second draw of the same generator", [](Device d, Generator& g) {
    rand({10}, TensorOptions(kFloat32, d), g);  // takes a stream: the next draw uses the following one
    return rand({100}, TensorOptions(kFloat32, d), g);
  });
}

TEST_CASE("randn and normal on the device equal the cpu draw", "[gpu]") {
  for (int64_t n : {int64_t{1}, int64_t{3}, int64_t{1001}, int64_t{1 << 20}}) {
    check_normal_draw("randn float32 n=" + std::to_string(n), 0.0,
                      [n](Device d, Generator& g) { return randn({n}, TensorOptions(kFloat32, d), g); });
  }
  check_normal_draw("randn float64 (17, 19)", 0.0,
                    [](Device d, Generator& g) { return randn({17, 19}, TensorOptions(kFloat64, d), g); });
  check_normal_draw("normal(2, 0.5) float32", 2.0,
                    [](Device d, Generator& g) { return normal({2049}, 2.0, 0.5, TensorOptions(kFloat32, d), g); });
  check_normal_draw("normal(-1, 3) float64", -1.0,
                    [](Device d, Generator& g) { return normal({2049}, -1.0, 3.0, TensorOptions(kFloat64, d), g); });
  check_normal_draw("normal_ into a device tensor", 0.0, [](Device d, Generator& g) {
    Tensor x = empty({64, 3}, TensorOptions(kFloat32, d));
    normal_(x, 0.0, 0.02, g);
    return x;
  });
}

TEST_CASE("randint on the device equals the cpu draw", "[gpu]") {
  check_draw("randint [0, 10)",
             [](Device d, Generator& g) { return randint(0, 10, {1001}, TensorOptions(kInt64, d), g); });
  check_draw("randint [-5, 5) as int32",
             [](Device d, Generator& g) { return randint(-5, 5, {3, 77}, TensorOptions(kInt32, d), g); });
  check_draw("randint over the full 2^32 range", [](Device d, Generator& g) {
    return randint(-(int64_t{1} << 31), int64_t{1} << 31, {4097}, TensorOptions(kInt64, d), g);
  });
  check_draw("randint as float32",
             [](Device d, Generator& g) { return randint(0, 255, {500}, TensorOptions(kFloat32, d), g); });
}

TEST_CASE("permutation on the device equals the cpu permutation", "[gpu]") {
  for (int64_t n : {int64_t{0}, int64_t{1}, int64_t{2}, int64_t{1000}, int64_t{100003}, int64_t{3000017}}) {
    check_draw("permutation n=" + std::to_string(n), [n](Device d, Generator& g) { return permutation(n, d, g); });
  }
}
