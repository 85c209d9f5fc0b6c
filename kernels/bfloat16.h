// bfloat16: the upper 16 bits of an IEEE float32 (1 sign, 8 exponent, 7 mantissa bits), the
// one bfloat16 type of the host and of device code. Conversion from float rounds to
// nearest, ties to even, as the hardware does (cvt.rn.bf16.f32 on sm_80+, which the device
// side uses); NaN stays a quiet NaN of the same sign.
#pragma once

#include <cstdint>
#include <cstring>

#include "kernels/host_device.h"

#if defined(__CUDACC__)
#include <cuda_bf16.h>
#endif

namespace visrep {

struct bfloat16 {
  uint16_t bits = 0;

  bfloat16() = default;
  VISREP_HOST_DEVICE explicit bfloat16(float value) : bits(round_from_float(value)) {}
  VISREP_HOST_DEVICE explicit operator float() const { return to_float(bits); }

  VISREP_HOST_DEVICE static bfloat16 from_bits(uint16_t raw) {
    bfloat16 result;
    result.bits = raw;
    return result;
  }

  VISREP_HOST_DEVICE static uint16_t round_from_float(float value) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    // The hardware's conversion rounds the same way (to nearest even, subnormals kept) in one
    // instruction; only its NaN differs (the canonical one), so NaN takes the rule below and
    // both devices give the same bits for every input.
    if (value == value) return __bfloat16_as_ushort(__float2bfloat16_rn(value));
#endif
    uint32_t word = float_bits(value);
    if ((word & 0x7fffffffu) > 0x7f800000u) {  // NaN: keep the sign, force a quiet NaN
      return static_cast<uint16_t>((word >> 16) | 0x0040u);
    }
    // Add 0x7fff plus the lowest kept bit: exact halfway cases round to the even neighbour.
    uint32_t lowest_kept_bit = (word >> 16) & 1u;
    word += 0x7fffu + lowest_kept_bit;
    return static_cast<uint16_t>(word >> 16);
  }

  VISREP_HOST_DEVICE static float to_float(uint16_t raw) {
    uint32_t word = static_cast<uint32_t>(raw) << 16;
    float value;
    memcpy(&value, &word, sizeof(value));
    return value;
  }

 private:
  VISREP_HOST_DEVICE static uint32_t float_bits(float value) {
    uint32_t word;
    memcpy(&word, &value, sizeof(word));
    return word;
  }
};

}  // namespace visrep
