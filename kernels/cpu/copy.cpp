// Strided copy and fill on the CPU, the reference of the CUDA twins (kernels/cpu/copy.h
// specifies them and lists the family's files).
#include "kernels/cpu/copy.h"

#include <cstring>
#include <type_traits>

#include "kernels/convert.h"
#include "kernels/cpu/strided_loop.h"

namespace visrep::kernels::cpu {

template <class Source, class Destination>
void copy(const Copy<Source, Destination>& arguments) {
  const Source* src = arguments.src;
  const StridedLayout& src_layout = arguments.src_layout;
  Destination* dst = arguments.dst;
  const StridedLayout& dst_layout = arguments.dst_layout;
  if constexpr (std::is_same_v<Source, Destination>) {
    if (src_layout.is_contiguous() && dst_layout.is_contiguous()) {
      std::memcpy(dst, src, static_cast<size_t>(dst_layout.numel()) * sizeof(Destination));
      return;
    }
  }
  for_each_strided<2>({&dst_layout, &src_layout}, [&](const std::array<int64_t, 2>& at) {
    dst[at[0]] = convert<Destination>(src[at[1]]);
  });
}

template <class T>
void fill(const Fill<T>& arguments) {
  T* dst = arguments.dst;
  const StridedLayout& dst_layout = arguments.dst_layout;
  const T value = arguments.value;
  for_each_strided<1>({&dst_layout}, [&](const std::array<int64_t, 1>& at) { dst[at[0]] = value; });
}

#define VISREP_INSTANTIATE_COPY_FROM(S)                      \
  template void copy<S, float>(const Copy<S, float>&);       \
  template void copy<S, double>(const Copy<S, double>&);     \
  template void copy<S, bfloat16>(const Copy<S, bfloat16>&); \
  template void copy<S, int32_t>(const Copy<S, int32_t>&);   \
  template void copy<S, int64_t>(const Copy<S, int64_t>&);   \
  template void copy<S, uint8_t>(const Copy<S, uint8_t>&);   \
  template void fill<S>(const Fill<S>&);

VISREP_INSTANTIATE_COPY_FROM(float)
VISREP_INSTANTIATE_COPY_FROM(double)
VISREP_INSTANTIATE_COPY_FROM(bfloat16)
VISREP_INSTANTIATE_COPY_FROM(int32_t)
VISREP_INSTANTIATE_COPY_FROM(int64_t)
VISREP_INSTANTIATE_COPY_FROM(uint8_t)
#undef VISREP_INSTANTIATE_COPY_FROM

}  // namespace visrep::kernels::cpu
