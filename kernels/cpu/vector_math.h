// Elementary functions for the fast CPU kernels' inner loops, written so that a loop calling
// them vectorises (`#pragma omp simd`: no calls into libm, no branches): glibc's expf is a
// scalar call per element, which made the exponentials of the contrastive loss (2N x 2N of
// them forward and again backward) cost more than the matrix products around them.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>

namespace visrep::kernels::cpu {

// exp(x) in float32 within 2 ulp for x in [-87, 88] (tests/unit/test_contrastive.cpp checks it
// against std::exp in double over that range); below -87 it is 0 and above 88 it is the value
// at 88, so it never overflows. NaN is not handled: the callers' arguments are finite.
// Cephes' expf: x = n ln2 + r with |r| <= ln2 / 2 (ln2 split in two so that n ln2 is exact),
// exp(r) by its degree-6 minimax polynomial, and 2^n put straight into the exponent bits.
inline float exp_float(float x) {
  const bool underflow = x < -87.0f;
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  // n = round(x / ln2): adding and subtracting 1.5 * 2^23 rounds to an integer (|x / ln2| <
  // 2^22), a vector add where std::floor would not vectorise without -ffast-math.
  constexpr float kRounder = 12582912.0f;
  const float n = (x * 1.44269504088896341f + kRounder) - kRounder;
  float r = std::fma(n, -0.693359375f, x);
  r = std::fma(n, 2.12194440e-4f, r);
  float p = 1.9875691500e-4f;
  p = std::fma(p, r, 1.3981999507e-3f);
  p = std::fma(p, r, 8.3334519073e-3f);
  p = std::fma(p, r, 4.1665795894e-2f);
  p = std::fma(p, r, 1.6666665459e-1f);
  p = std::fma(p, r, 5.0000001201e-1f);
  p = std::fma(p * r, r, r) + 1.0f;
  const float scale = std::bit_cast<float>(static_cast<uint32_t>(static_cast<int32_t>(n) + 127) << 23);
  return underflow ? 0.0f : p * scale;
}

}  // namespace visrep::kernels::cpu
