// Parity of the random draws: a draw made directly on the GPU must equal the CPU's draw
// from the same generator state, element for element (Philox keyed by (seed, stream,
// index) on both sides, kernels/philox.h). Forward only, tolerance 0: uniform, integer and
// permutation draws are bit-identical by construction; normal draws are too except with
// probability ~2^-29 per element (CUDA's double log/sin/cos against glibc's, across a
// float rounding boundary), which these sizes make negligible.
#include <catch2/catch.hpp>

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
    check_draw("randn float32 n=" + std::to_string(n),
               [n](Device d, Generator& g) { return randn({n}, TensorOptions(kFloat32, d), g); });
  }
  check_draw("randn float64 (17, 19)",
             [](Device d, Generator& g) { return randn({17, 19}, TensorOptions(kFloat64, d), g); });
  check_draw("normal(2, 0.5) float32",
             [](Device d, Generator& g) { return normal({2049}, 2.0, 0.5, TensorOptions(kFloat32, d), g); });
  check_draw("normal(-1, 3) float64",
             [](Device d, Generator& g) { return normal({2049}, -1.0, 3.0, TensorOptions(kFloat64, d), g); });
  check_draw("normal_ into a device tensor", [](Device d, Generator& g) {
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
