// Random tensors from the counter-based Philox4x32-10 generator (kernels/philox.h).
//
// A Generator is just (seed, next stream): every draw takes the next stream number and
// element i of that draw is philox(seed, stream, i). So a run is reproducible from its
// seed, a resumed run continues from the saved (seed, stream) pair, and the CUDA backend
// draws identical numbers without sharing any state with the CPU.
// Where to look for the rest of the family: kernels/cpu/random.h.
#pragma once

#include <cstdint>

#include "engine/tensor.h"

namespace visrep {

class Generator {
 public:
  explicit Generator(uint64_t seed = 0) : seed_(seed) {}
  uint64_t seed() const { return seed_; }
  uint64_t stream() const { return stream_; }  // the stream the next draw will use
  // Restores a saved position (for resuming) or jumps to a chosen stream.
  void set_state(uint64_t seed, uint64_t stream) {
    seed_ = seed;
    stream_ = stream;
  }
  uint64_t take_stream() { return stream_++; }

 private:
  uint64_t seed_;
  uint64_t stream_ = 0;
};

// The process-wide generator the functions below use when none is passed.
Generator& default_generator();
void manual_seed(uint64_t seed);

// Uniform in [low, high).
Tensor uniform(const Shape& shape, double low, double high, TensorOptions options = {},
               Generator& generator = default_generator());
Tensor rand(const Shape& shape, TensorOptions options = {}, Generator& generator = default_generator());
// Normal with mean and standard deviation std.
Tensor normal(const Shape& shape, double mean, double std, TensorOptions options = {},
              Generator& generator = default_generator());
Tensor randn(const Shape& shape, TensorOptions options = {}, Generator& generator = default_generator());
// Integers uniform in [low, high), int64 unless options say otherwise.
Tensor randint(int64_t low, int64_t high, const Shape& shape, TensorOptions options = kInt64,
               Generator& generator = default_generator());
// A random permutation of 0 .. n-1 (int64), on the CPU or drawn directly on `device` (the
// same permutation either way).
Tensor permutation(int64_t n, Generator& generator = default_generator());
Tensor permutation(int64_t n, Device device, Generator& generator = default_generator());

// In-place versions for initialisers (no autograd).
void uniform_(Tensor& tensor, double low, double high, Generator& generator = default_generator());
void normal_(Tensor& tensor, double mean, double std, Generator& generator = default_generator());

// ---- single numbers --------------------------------------------------------------------------
//
// One number from a Gamma or Beta distribution, for per-step random choices such as MixUp's
// mixing weight (recipes/mixup.h). Each call takes the generator's next stream and reads
// its words in order (a rejection sampler uses as many as it needs), in double precision on
// the CPU: the same generator state always gives the same number.

// Gamma(shape, scale 1), shape > 0: Marsaglia & Tsang, "A Simple Method for Generating
// Gamma Variables" (ACM TOMS 2000), with their boost Gamma(a) = Gamma(a + 1) U^(1/a) for
// shape < 1. Mean and variance are both `shape`.
double sample_gamma(double shape, Generator& generator = default_generator());
// Beta(a, b), a, b > 0, as X / (X + Y) with X ~ Gamma(a), Y ~ Gamma(b), formed in log space
// so that tiny shapes (MixUp's 0.1, whose draws crowd 0 and 1) neither underflow nor give 0/0.
double sample_beta(double a, double b, Generator& generator = default_generator());

}  // namespace visrep
