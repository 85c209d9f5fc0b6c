// Philox4x32-10, the counter-based generator of Salmon et al., "Parallel Random Numbers:
// As Easy as 1, 2, 3" (SC'11), as specified by Random123's philox.h.
//
// A counter-based generator is a pure function: 128 counter bits and 64 key bits in,
// 128 random bits out. visrep keys every draw by (seed, stream, index):
//   key     = seed                      (two 32-bit words, low word first)
//   counter = (block, stream)           (block = index / 4, each 64 bits, low word first)
//   word    = output[index % 4]
// so element i of a random tensor needs no state and no order: the CPU loop and a CUDA
// thread computing element i draw the same bits, and a resumed run redraws the same
// numbers. Both backends include this header.
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/host_device.h"

namespace visrep::kernels {

struct PhiloxBlock {
  uint32_t words[4];
};

namespace philox_detail {
inline constexpr uint32_t kMultiplier0 = 0xD2511F53u;
inline constexpr uint32_t kMultiplier1 = 0xCD9E8D57u;
inline constexpr uint32_t kWeyl0 = 0x9E3779B9u;  // golden ratio
inline constexpr uint32_t kWeyl1 = 0xBB67AE85u;  // sqrt(3) - 1

VISREP_HOST_DEVICE VISREP_FORCE_INLINE void multiply_high_low(uint32_t a, uint32_t b, uint32_t& high,
                                                              uint32_t& low) {
  uint64_t product = static_cast<uint64_t>(a) * b;
  high = static_cast<uint32_t>(product >> 32);
  low = static_cast<uint32_t>(product);
}
}  // namespace philox_detail

// Ten rounds of the Philox S-box; the key is bumped by the Weyl constants between rounds.
VISREP_HOST_DEVICE inline PhiloxBlock philox4x32_10(PhiloxBlock counter, uint32_t key0, uint32_t key1) {
  using namespace philox_detail;
  uint32_t* c = counter.words;
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      key0 += kWeyl0;
      key1 += kWeyl1;
    }
    uint32_t high0, low0, high1, low1;
    multiply_high_low(kMultiplier0, c[0], high0, low0);
    multiply_high_low(kMultiplier1, c[2], high1, low1);
    PhiloxBlock next = {{high1 ^ c[1] ^ key0, low1, high0 ^ c[3] ^ key1, low0}};
    c[0] = next.words[0];
    c[1] = next.words[1];
    c[2] = next.words[2];
    c[3] = next.words[3];
  }
  return counter;
}

// The 4 words of block `block` of stream `stream` under `seed`.
VISREP_HOST_DEVICE inline PhiloxBlock philox_block(uint64_t seed, uint64_t stream, uint64_t block) {
  PhiloxBlock counter = {{static_cast<uint32_t>(block), static_cast<uint32_t>(block >> 32),
                          static_cast<uint32_t>(stream), static_cast<uint32_t>(stream >> 32)}};
  return philox4x32_10(counter, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
}

// The 32 random bits of element `index`.
VISREP_HOST_DEVICE inline uint32_t philox_bits(uint64_t seed, uint64_t stream, uint64_t index) {
  return philox_block(seed, stream, index / 4).words[index % 4];
}

// Uniform in [0, 1): the top 24 bits, so every value is an exact float32.
VISREP_HOST_DEVICE inline float uniform_from_bits(uint32_t bits) {
  return static_cast<float>(bits >> 8) * (1.0f / 16777216.0f);
}

// Uniform in (0, 1]: safe to take the logarithm of.
VISREP_HOST_DEVICE inline double uniform_open_from_bits(uint32_t bits) {
  return (static_cast<double>(bits >> 8) + 1.0) * (1.0 / 16777216.0);
}

// Integer uniform in [0, range) for range <= 2^32 by multiply-shift (Lemire); the bias is
// below range / 2^32, negligible for the index ranges drawn here.
VISREP_HOST_DEVICE inline uint64_t bounded_from_bits(uint32_t bits, uint64_t range) {
  return (static_cast<uint64_t>(bits) * range) >> 32;
}

// Box-Muller over one pair of words: the cosine and the sine normal (either pointer may be
// null). Computed in double and rounded once, so the CPU and the GPU agree to the last
// float bit except when their double-precision log/sin/cos differ across a float rounding
// boundary (probability ~2^-29 per draw).
VISREP_HOST_DEVICE inline void normal_pair(uint32_t bits_u1, uint32_t bits_u2, float* cosine, float* sine) {
  double u1 = uniform_open_from_bits(bits_u1);
  double u2 = uniform_from_bits(bits_u2);
  // Qualified with :: so that an including file's own log/sqrt (visrep::log on Tensors, say)
  // cannot hide the C math functions from this namespace.
  double radius = ::sqrt(-2.0 * ::log(u1));
  double angle = 6.283185307179586476925286766559 * u2;
  if (cosine) *cosine = static_cast<float>(radius * ::cos(angle));
  if (sine) *sine = static_cast<float>(radius * ::sin(angle));
}

// Standard normal for element `index`, from the pair of words it shares with its
// neighbour: words (0,1) give elements 4b and 4b+1 (cosine, sine), words (2,3) give 4b+2
// and 4b+3.
VISREP_HOST_DEVICE inline float normal_at(uint64_t seed, uint64_t stream, uint64_t index) {
  PhiloxBlock block = philox_block(seed, stream, index / 4);
  int pair = static_cast<int>(index % 4) / 2;
  float value = 0.0f;
  if (index % 2 == 0) {
    normal_pair(block.words[2 * pair], block.words[2 * pair + 1], &value, nullptr);
  } else {
    normal_pair(block.words[2 * pair], block.words[2 * pair + 1], nullptr, &value);
  }
  return value;
}

// The four normals of block `block` (elements 4 block .. 4 block + 3), the same values as
// normal_at gives one by one, for one Philox block and two logarithms instead of four.
VISREP_HOST_DEVICE inline void normals_of_block(uint64_t seed, uint64_t stream, uint64_t block, float out[4]) {
  PhiloxBlock words = philox_block(seed, stream, block);
  normal_pair(words.words[0], words.words[1], &out[0], &out[1]);
  normal_pair(words.words[2], words.words[3], &out[2], &out[3]);
}

}  // namespace visrep::kernels
