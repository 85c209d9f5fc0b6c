// CUDA twins of kernels/cpu/copy.h: strided copy with dtype conversion, and fill. They
// make contiguous(), clone(), to(dtype), broadcasting copy_() and full()/zeros() on the GPU.
//
// A copy reads each source element once and writes each destination element once;
// fill only writes. Same-dtype copies between contiguous buffers go to cudaMemcpyAsync
// (the copy engine's own path); everything else runs through elementwise_launch.cuh:
// 16-byte packs of the wider type when both sides are contiguous and aligned, offsets
// from the linear index otherwise (a permuted contiguous() reads with strides and writes
// contiguously, so the writes stay coalesced).
//
// Conversions are the CPU's, the same function on both sides (kernels/convert.h): float to
// integer truncates toward zero with NaN -> 0 and saturation beyond the range, to bfloat16
// rounds to nearest even, from bfloat16 widens exactly to float first.
// Where to look for the rest of the family: kernels/cpu/copy.h.
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "kernels/bfloat16.h"
#include "kernels/convert.h"
#include "kernels/cuda/copy.h"
#include "kernels/cuda/elementwise_launch.cuh"

namespace visrep::kernels::cuda {
namespace {

using elementwise_detail::launch;
using elementwise_detail::make_plan;

template <class Destination, class Source>
struct ConvertFunction {
  __device__ __forceinline__ Destination operator()(Source value) const { return convert<Destination>(value); }
};

template <class T>
struct ConstantFunction {
  T value;
  __device__ __forceinline__ T operator()() const { return value; }
};

}  // namespace

template <class Source, class Destination>
void copy(const Copy<Source, Destination>& a, cudaStream_t stream) {
  const auto plan = make_plan<2>({&a.dst_layout, &a.src_layout});
  if constexpr (std::is_same_v<Source, Destination>) {
    if (plan.count > 0 && plan.contiguous && !plan.broadcast[1]) {
      VISREP_CUDA_CHECK(cudaMemcpyAsync(a.dst, a.src, static_cast<size_t>(plan.count) * sizeof(Destination),
                                        cudaMemcpyDeviceToDevice, stream));
      return;
    }
  }
  using Function = ConvertFunction<Destination, Source>;
  launch(elementwise_detail::Map1<Destination, Source, Function>{Function{}, a.dst, a.src, plan.broadcast[1]}, plan,
         stream);
}

template <class T>
void fill(const Fill<T>& a, cudaStream_t stream) {
  const auto plan = make_plan<1>({&a.dst_layout});
  launch(elementwise_detail::Map0<T, ConstantFunction<T>>{ConstantFunction<T>{a.value}, a.dst}, plan, stream);
}

#define VISREP_INSTANTIATE_COPY_FROM(S)                                    \
  template void copy<S, float>(const Copy<S, float>&, cudaStream_t);       \
  template void copy<S, double>(const Copy<S, double>&, cudaStream_t);     \
  template void copy<S, bfloat16>(const Copy<S, bfloat16>&, cudaStream_t); \
  template void copy<S, int32_t>(const Copy<S, int32_t>&, cudaStream_t);   \
  template void copy<S, int64_t>(const Copy<S, int64_t>&, cudaStream_t);   \
  template void copy<S, uint8_t>(const Copy<S, uint8_t>&, cudaStream_t);   \
  template void fill<S>(const Fill<S>&, cudaStream_t);

VISREP_INSTANTIATE_COPY_FROM(float)
VISREP_INSTANTIATE_COPY_FROM(double)
VISREP_INSTANTIATE_COPY_FROM(bfloat16)
VISREP_INSTANTIATE_COPY_FROM(int32_t)
VISREP_INSTANTIATE_COPY_FROM(int64_t)
VISREP_INSTANTIATE_COPY_FROM(uint8_t)
#undef VISREP_INSTANTIATE_COPY_FROM

}  // namespace visrep::kernels::cuda
