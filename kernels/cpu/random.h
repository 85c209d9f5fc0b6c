// Random tensors from Philox4x32-10 (kernels/philox.h). Element i of a draw keyed by
// (seed, stream) is a pure function of (seed, stream, i): the CUDA twins produce the same
// values, and so does any other split of the work across threads.
#pragma once

#include <cstdint>

namespace visrep::kernels::cpu {

// out[i] = low + (high - low) * u_i, u_i uniform in [0, 1). float, double.
template <class T>
void random_uniform(uint64_t seed, uint64_t stream, int64_t count, double low, double high, T* out);

// out[i] = mean + std * n_i, n_i standard normal (Box-Muller). float, double.
template <class T>
void random_normal(uint64_t seed, uint64_t stream, int64_t count, double mean, double std, T* out);

// out[i] uniform in [low, high); high - low must be in [1, 2^32].
void random_integers(uint64_t seed, uint64_t stream, int64_t count, int64_t low, int64_t high, int64_t* out);

// A uniformly random permutation of 0 .. count-1: indices sorted by their random 32-bit
// keys, ties broken by index. Sorting (not Fisher-Yates) is what a GPU can reproduce.
void random_permutation(uint64_t seed, uint64_t stream, int64_t count, int64_t* out);

}  // namespace visrep::kernels::cpu
