// Random draws: the generator state and the kernel calls (kernels/cpu/random.h lists the
// family's files).
#include "engine/random.h"

#include <cmath>

#include "engine/autograd.h"
#include "engine/dispatch.h"
#include "kernels/cpu/random.h"
#include "kernels/cuda/random.h"
#include "kernels/philox.h"

namespace visrep {
namespace {

// Draws happen on the device that will hold the result, in float32 or float64 (int64 for
// integers); other dtypes are converted there afterwards. Element i is philox(seed, stream,
// i) on either device, so a CUDA draw equals the CPU draw with the same generator state.
Tensor finish(Tensor drawn, const TensorOptions& options) {
  Tensor result = drawn.to(options.dtype);
  if (options.requires_grad) result.set_requires_grad(true);
  return result;
}

DType draw_dtype(DType wanted) { return wanted == kFloat64 ? kFloat64 : kFloat32; }

// The words of one Philox stream, read in order, as 53-bit uniforms and normals.
class SequentialDraws {
 public:
  SequentialDraws(uint64_t seed, uint64_t stream) : seed_(seed), stream_(stream) {}

  // Uniform in (0, 1], safe to take the logarithm of: 53 random bits from two words.
  double uniform_open() {
    const uint64_t high = next_word(), low = next_word();
    const uint64_t bits = ((high << 32) | low) >> 11;
    return (static_cast<double>(bits) + 1.0) * 0x1.0p-53;
  }
  // Standard normal: the cosine half of Box-Muller.
  double normal() {
    const double radius = std::sqrt(-2.0 * std::log(uniform_open()));
    return radius * std::cos(6.283185307179586476925286766559 * uniform_open());
  }

 private:
  uint64_t next_word() {
    if (word_ % 4 == 0) block_ = kernels::philox_block(seed_, stream_, word_ / 4);
    return block_.words[word_++ % 4];
  }

  uint64_t seed_, stream_;
  uint64_t word_ = 0;
  kernels::PhiloxBlock block_{};
};

// log of a Gamma(shape) draw (Marsaglia & Tsang 2000, section 6 for shape < 1).
double log_gamma_draw(double shape, SequentialDraws& draws) {
  const double boosted = shape < 1.0 ? shape + 1.0 : shape;
  const double d = boosted - 1.0 / 3.0, c = 1.0 / std::sqrt(9.0 * d);
  double log_value = 0.0;
  for (;;) {
    const double x = draws.normal();
    double v = 1.0 + c * x;
    if (v <= 0.0) continue;
    v = v * v * v;
    const double u = draws.uniform_open();
    // The squeeze accepts most draws without a logarithm; the exact test takes the rest.
    if (u < 1.0 - 0.0331 * (x * x) * (x * x) || std::log(u) < 0.5 * x * x + d * (1.0 - v + std::log(v))) {
      log_value = std::log(d * v);
      break;
    }
  }
  if (shape < 1.0) log_value += std::log(draws.uniform_open()) / shape;
  return log_value;
}

}  // namespace

Generator& default_generator() {
  static Generator generator(0);
  return generator;
}

void manual_seed(uint64_t seed) { default_generator().set_state(seed, 0); }

Tensor uniform(const Shape& shape, double low, double high, TensorOptions options, Generator& generator) {
  VISREP_CHECK(is_floating(options.dtype), "uniform: dtype must be floating, got {}", dtype_name(options.dtype));
  VISREP_CHECK(low <= high, "uniform: low {} is greater than high {}", low, high);
  Tensor drawn = empty(shape, TensorOptions(draw_dtype(options.dtype), options.device));
  const uint64_t stream = generator.take_stream();
  visit_floating(drawn.dtype(), "uniform", [&](auto tag) {
    using T = typename decltype(tag)::type;
    VISREP_RUN_KERNEL("uniform", drawn.device(), random_uniform,
                      kernels::RandomUniform<T>{.seed = generator.seed(),
                                                .stream = stream,
                                                .count = drawn.numel(),
                                                .low = low,
                                                .high = high,
                                                .out = data_or_null<T>(drawn)});
  });
  return finish(drawn, options);
}

Tensor rand(const Shape& shape, TensorOptions options, Generator& generator) {
  return uniform(shape, 0.0, 1.0, options, generator);
}

Tensor normal(const Shape& shape, double mean, double std, TensorOptions options, Generator& generator) {
  VISREP_CHECK(is_floating(options.dtype), "normal: dtype must be floating, got {}", dtype_name(options.dtype));
  VISREP_CHECK(std >= 0, "normal: std must be non-negative, got {}", std);
  Tensor drawn = empty(shape, TensorOptions(draw_dtype(options.dtype), options.device));
  const uint64_t stream = generator.take_stream();
  visit_floating(drawn.dtype(), "normal", [&](auto tag) {
    using T = typename decltype(tag)::type;
    VISREP_RUN_KERNEL("normal", drawn.device(), random_normal,
                      kernels::RandomNormal<T>{.seed = generator.seed(),
                                               .stream = stream,
                                               .count = drawn.numel(),
                                               .mean = mean,
                                               .std = std,
                                               .out = data_or_null<T>(drawn)});
  });
  return finish(drawn, options);
}

Tensor randn(const Shape& shape, TensorOptions options, Generator& generator) {
  return normal(shape, 0.0, 1.0, options, generator);
}

Tensor randint(int64_t low, int64_t high, const Shape& shape, TensorOptions options, Generator& generator) {
  VISREP_CHECK(high > low, "randint: empty range [{}, {})", low, high);
  VISREP_CHECK(static_cast<uint64_t>(high - low) <= (uint64_t{1} << 32), "randint: range [{}, {}) is wider than 2^32",
               low, high);
  Tensor drawn = empty(shape, TensorOptions(kInt64, options.device));
  const uint64_t stream = generator.take_stream();
  VISREP_RUN_KERNEL("randint", drawn.device(), random_integers,
                    kernels::RandomIntegers{.seed = generator.seed(),
                                            .stream = stream,
                                            .count = drawn.numel(),
                                            .low = low,
                                            .high = high,
                                            .out = data_or_null<int64_t>(drawn)});
  return finish(drawn, options.with_requires_grad(false));
}

Tensor permutation(int64_t n, Generator& generator) { return permutation(n, Device::cpu(), generator); }

Tensor permutation(int64_t n, Device device, Generator& generator) {
  VISREP_CHECK(n >= 0 && n < (int64_t{1} << 32), "permutation: n = {} must be in [0, 2^32)", n);
  Tensor result = empty({n}, TensorOptions(kInt64, device));
  const uint64_t stream = generator.take_stream();
  VISREP_RUN_KERNEL("permutation", result.device(), random_permutation,
                    kernels::RandomPermutation{
                        .seed = generator.seed(), .stream = stream, .count = n, .out = data_or_null<int64_t>(result)});
  return result;
}

void uniform_(Tensor& tensor, double low, double high, Generator& generator) {
  NoGradGuard no_grad;
  tensor.copy_(uniform(tensor.shape(), low, high, TensorOptions(tensor.dtype(), tensor.device()), generator));
}

void normal_(Tensor& tensor, double mean, double std, Generator& generator) {
  NoGradGuard no_grad;
  tensor.copy_(normal(tensor.shape(), mean, std, TensorOptions(tensor.dtype(), tensor.device()), generator));
}

double sample_gamma(double shape, Generator& generator) {
  VISREP_CHECK(std::isfinite(shape) && shape > 0, "sample_gamma: shape must be positive, got {}", shape);
  SequentialDraws draws(generator.seed(), generator.take_stream());
  return std::exp(log_gamma_draw(shape, draws));
}

double sample_beta(double a, double b, Generator& generator) {
  VISREP_CHECK(std::isfinite(a) && a > 0 && std::isfinite(b) && b > 0,
               "sample_beta: both shapes must be positive, got a = {}, b = {}", a, b);
  SequentialDraws draws(generator.seed(), generator.take_stream());
  const double log_x = log_gamma_draw(a, draws);
  const double log_y = log_gamma_draw(b, draws);
  // X / (X + Y) = 1 / (1 + Y / X); exp overflowing to infinity gives the right limit, 0.
  return 1.0 / (1.0 + std::exp(log_y - log_x));
}

}  // namespace visrep
