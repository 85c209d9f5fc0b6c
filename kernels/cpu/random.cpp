// The Philox draws on the CPU, the reference of the CUDA twins (kernels/cpu/random.h
// specifies them and lists the family's files).
#include "kernels/cpu/random.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/philox.h"

namespace visrep::kernels::cpu {

template <class T>
void random_uniform(const RandomUniform<T>& arguments) {
  const uint64_t seed = arguments.seed;
  const uint64_t stream = arguments.stream;
  const int64_t count = arguments.count;
  const double low = arguments.low;
  const double high = arguments.high;
  T* out = arguments.out;
  const double span = high - low;
#pragma omp parallel for schedule(static) if (count >= 65536)
  for (int64_t i = 0; i < count; ++i) {
    // An explicit fma (one rounding), so that no compiler contracts it differently here and
    // in the CUDA twin: their values must be bit-identical.
    out[i] = static_cast<T>(std::fma(span, static_cast<double>(uniform_from_bits(philox_bits(seed, stream, i))), low));
  }
}

template <class T>
void random_normal(const RandomNormal<T>& arguments) {
  const uint64_t seed = arguments.seed;
  const uint64_t stream = arguments.stream;
  const int64_t count = arguments.count;
  const double mean = arguments.mean;
  const double std = arguments.std;
  T* out = arguments.out;
  // Whole Philox blocks at a time (four normals from one block and two logarithms); the
  // values are normal_at's, element by element.
  const int64_t blocks = (count + 3) / 4;
#pragma omp parallel for schedule(static) if (count >= 65536)
  for (int64_t block = 0; block < blocks; ++block) {
    float normals[4];
    normals_of_block(seed, stream, static_cast<uint64_t>(block), normals);
    const int64_t first = 4 * block;
    const int64_t last = std::min<int64_t>(first + 4, count);
    for (int64_t i = first; i < last; ++i) {
      out[i] = static_cast<T>(std::fma(std, static_cast<double>(normals[i - first]), mean));
    }
  }
}

void random_integers(const RandomIntegers& arguments) {
  const uint64_t seed = arguments.seed;
  const uint64_t stream = arguments.stream;
  const int64_t count = arguments.count;
  const int64_t low = arguments.low;
  const int64_t high = arguments.high;
  int64_t* out = arguments.out;
  const uint64_t range = static_cast<uint64_t>(high - low);
#pragma omp parallel for schedule(static) if (count >= 65536)
  for (int64_t i = 0; i < count; ++i) {
    out[i] = low + static_cast<int64_t>(bounded_from_bits(philox_bits(seed, stream, i), range));
  }
}

void random_permutation(const RandomPermutation& arguments) {
  const uint64_t seed = arguments.seed;
  const uint64_t stream = arguments.stream;
  const int64_t count = arguments.count;
  int64_t* out = arguments.out;
  std::vector<uint64_t> keyed(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) {
    keyed[i] = (static_cast<uint64_t>(philox_bits(seed, stream, i)) << 32) | static_cast<uint64_t>(i);
  }
  std::sort(keyed.begin(), keyed.end());
  for (int64_t i = 0; i < count; ++i) out[i] = static_cast<int64_t>(keyed[i] & 0xffffffffu);
}

template void random_uniform<float>(const RandomUniform<float>&);
template void random_uniform<double>(const RandomUniform<double>&);
template void random_normal<float>(const RandomNormal<float>&);
template void random_normal<double>(const RandomNormal<double>&);

}  // namespace visrep::kernels::cpu
