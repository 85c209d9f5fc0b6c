// Random tensors from Philox4x32-10 (kernels/philox.h). Element i of a draw keyed by
// (seed, stream) is a pure function of (seed, stream, i): the CUDA twins produce the same
// values, and so does any other split of the work across threads. This header is the
// specification; kernels/cpu/random.cpp computes it.
//
// Where to look, random draws:
//   op               engine/random.{h,cpp}   Generator, rand, randn, uniform, normal, randint, permutation
//   CPU reference    kernels/cpu/random.{h,cpp}  this header (the generator: kernels/philox.h)
//   CUDA twin        kernels/cuda/random.{h,cu}
//   unit tests       tests/unit/test_random.cpp (Random123's known answers, keying, statistics)
//   gradient check   none (draws are not differentiable)
//   parity cases     tests/parity/test_parity_random.cpp (the GPU draws equal the CPU's)
//   benchmark        none of its own; the augmentation draws are part of benchmarks/bench_augment.cpp
#pragma once

#include <cstdint>

namespace visrep::kernels {

// out[i] = low + (high - low) * u_i, u_i uniform in [0, 1). float, double.
template <class T>
struct RandomUniform {
  uint64_t seed = 0;
  uint64_t stream = 0;
  int64_t count = 0;
  double low = 0.0;
  double high = 1.0;
  T* out = nullptr;
};

// out[i] = mean + std * n_i, n_i standard normal (Box-Muller). float, double.
template <class T>
struct RandomNormal {
  uint64_t seed = 0;
  uint64_t stream = 0;
  int64_t count = 0;
  double mean = 0.0;
  double std = 1.0;
  T* out = nullptr;
};

// out[i] uniform in [low, high); high - low must be in [1, 2^32].
struct RandomIntegers {
  uint64_t seed = 0;
  uint64_t stream = 0;
  int64_t count = 0;
  int64_t low = 0;
  int64_t high = 1;
  int64_t* out = nullptr;
};

// A uniformly random permutation of 0 .. count-1: indices sorted by their random 32-bit
// keys, ties broken by index. Sorting (not Fisher-Yates) is what a GPU can reproduce.
struct RandomPermutation {
  uint64_t seed = 0;
  uint64_t stream = 0;
  int64_t count = 0;
  int64_t* out = nullptr;
};

}  // namespace visrep::kernels

namespace visrep::kernels::cpu {

template <class T>
void random_uniform(const RandomUniform<T>& arguments);
template <class T>
void random_normal(const RandomNormal<T>& arguments);
void random_integers(const RandomIntegers& arguments);
void random_permutation(const RandomPermutation& arguments);

}  // namespace visrep::kernels::cpu
