// The indexing kernels on the CPU, the reference of kernels/cuda/indexing.cu
// (kernels/cpu/indexing.h specifies them and lists the family's files).
#include "kernels/cpu/indexing.h"

#include <algorithm>
#include <cstring>

#include "kernels/bfloat16.h"

namespace visrep::kernels::cpu {

void mark_first_out_of_range(const MarkFirstOutOfRange& a) {
  for (int64_t k = 0; k < a.count; ++k) {
    const int64_t value = a.indices[k];
    if ((value < 0 || value >= a.size) && !(a.has_ignored && value == a.ignored)) {
      a.slot[0] = static_cast<long long>(k);
      a.slot[1] = static_cast<long long>(value);
      return;
    }
  }
}

template <class T>
void index_select(const IndexSelect<T>& arguments) {
  const T* x = arguments.x;
  const int64_t outer = arguments.outer;
  const int64_t size = arguments.size;
  const int64_t inner = arguments.inner;
  const int64_t* indices = arguments.indices;
  const int64_t count = arguments.count;
  T* out = arguments.out;
#pragma omp parallel for collapse(2) schedule(static) if (outer * count * inner >= 32768)
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t k = 0; k < count; ++k) {
      std::memcpy(out + (o * count + k) * inner, x + (o * size + indices[k]) * inner, sizeof(T) * inner);
    }
  }
}

template <class T>
void index_add(const IndexAdd<T>& arguments) {
  const T* src = arguments.src;
  const int64_t outer = arguments.outer;
  const int64_t count = arguments.count;
  const int64_t inner = arguments.inner;
  const int64_t* indices = arguments.indices;
  const int64_t size = arguments.size;
  T* dst = arguments.dst;
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
void gather(const Gather<T>& arguments) {
  const T* x = arguments.x;
  const int64_t outer = arguments.outer;
  const int64_t size = arguments.size;
  const int64_t inner = arguments.inner;
  const int64_t* indices = arguments.indices;
  const int64_t count = arguments.count;
  T* out = arguments.out;
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
void scatter_add(const ScatterAdd<T>& arguments) {
  const T* src = arguments.src;
  const int64_t outer = arguments.outer;
  const int64_t count = arguments.count;
  const int64_t inner = arguments.inner;
  const int64_t* indices = arguments.indices;
  const int64_t size = arguments.size;
  T* dst = arguments.dst;
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
void one_hot(const OneHot<T>& arguments) {
  const int64_t* labels = arguments.labels;
  const int64_t count = arguments.count;
  const int64_t classes = arguments.classes;
  T* out = arguments.out;
  std::fill(out, out + count * classes, T(0));
  for (int64_t k = 0; k < count; ++k) out[k * classes + labels[k]] = T(1);
}

#define VISREP_INSTANTIATE_INDEXING(T)                                   \
  template void index_select<T>(const IndexSelect<T>&);                  \
  template void gather<T>(const Gather<T>&);

#define VISREP_INSTANTIATE_INDEX_ADD(T)                                  \
  template void index_add<T>(const IndexAdd<T>&);                        \
  template void scatter_add<T>(const ScatterAdd<T>&);                    \
  template void one_hot<T>(const OneHot<T>&);

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
