// The indexing kernels on the CPU, the reference of kernels/cuda/indexing.cu
// (kernels/cpu/indexing.h specifies them and lists the family's files).
#include "kernels/cpu/indexing.h"

#include <algorithm>
#include <cstring>

#include "kernels/bfloat16.h"

namespace visrep::kernels::cpu {

int64_t first_out_of_range(const int64_t* indices, int64_t count, int64_t size) {
  for (int64_t k = 0; k < count; ++k) {
    if (indices[k] < 0 || indices[k] >= size) return k;
  }
  return -1;
}

template <class T>
void index_select(const T* x, int64_t outer, int64_t size, int64_t inner, const int64_t* indices, int64_t count,
                  T* out) {
#pragma omp parallel for collapse(2) schedule(static) if (outer * count * inner >= 32768)
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t k = 0; k < count; ++k) {
      std::memcpy(out + (o * count + k) * inner, x + (o * size + indices[k]) * inner, sizeof(T) * inner);
    }
  }
}

template <class T>
void index_add(const T* src, int64_t outer, int64_t count, int64_t inner, const int64_t* indices, int64_t size,
               T* dst) {
  // Threads split (outer, inner) so that repeated indices never race.
#pragma omp parallel for schedule(static) if (outer * count * inner >= 32768 && outer > 1)
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t k = 0; k < count; ++k) {
      const T* from = src + (o * count + k) * inner;
      T* to = dst + (o * size + indices[k]) * inner;
      for (int64_t i = 0; i < inner; ++i) to[i] += from[i];
    }
  }
}

template <class T>
void gather(const T* x, int64_t outer, int64_t size, int64_t inner, const int64_t* indices, int64_t count, T* out) {
#pragma omp parallel for schedule(static) if (outer * count * inner >= 32768)
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t k = 0; k < count; ++k) {
      for (int64_t i = 0; i < inner; ++i) {
        const int64_t at = (o * count + k) * inner + i;
        out[at] = x[(o * size + indices[at]) * inner + i];
      }
    }
  }
}

template <class T>
void scatter_add(const T* src, int64_t outer, int64_t count, int64_t inner, const int64_t* indices, int64_t size,
                 T* dst) {
#pragma omp parallel for schedule(static) if (outer * count * inner >= 32768 && outer > 1)
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t k = 0; k < count; ++k) {
      for (int64_t i = 0; i < inner; ++i) {
        const int64_t at = (o * count + k) * inner + i;
        dst[(o * size + indices[at]) * inner + i] += src[at];
      }
    }
  }
}

template <class T>
void one_hot(const int64_t* labels, int64_t count, int64_t classes, T* out) {
  std::fill(out, out + count * classes, T(0));
  for (int64_t k = 0; k < count; ++k) out[k * classes + labels[k]] = T(1);
}

#define VISREP_INSTANTIATE_INDEXING(T)                                                                  \
  template void index_select<T>(const T*, int64_t, int64_t, int64_t, const int64_t*, int64_t, T*);      \
  template void gather<T>(const T*, int64_t, int64_t, int64_t, const int64_t*, int64_t, T*);

#define VISREP_INSTANTIATE_INDEX_ADD(T)                                                                 \
  template void index_add<T>(const T*, int64_t, int64_t, int64_t, const int64_t*, int64_t, T*);         \
  template void scatter_add<T>(const T*, int64_t, int64_t, int64_t, const int64_t*, int64_t, T*);       \
  template void one_hot<T>(const int64_t*, int64_t, int64_t, T*);

VISREP_INSTANTIATE_INDEXING(float)
VISREP_INSTANTIATE_INDEXING(double)
VISREP_INSTANTIATE_INDEXING(bfloat16)
VISREP_INSTANTIATE_INDEXING(int32_t)
VISREP_INSTANTIATE_INDEXING(int64_t)
VISREP_INSTANTIATE_INDEXING(uint8_t)
VISREP_INSTANTIATE_INDEX_ADD(float)
VISREP_INSTANTIATE_INDEX_ADD(double)
VISREP_INSTANTIATE_INDEX_ADD(int32_t)
VISREP_INSTANTIATE_INDEX_ADD(int64_t)
VISREP_INSTANTIATE_INDEX_ADD(uint8_t)
#undef VISREP_INSTANTIATE_INDEXING
#undef VISREP_INSTANTIATE_INDEX_ADD

}  // namespace visrep::kernels::cpu
