// Unit tests of the counter-based RNG: Philox4x32-10 against Random123's known answers, the
// (seed, stream, index) keying contract, reproducibility, and the statistics of each draw.
//
// The statistical bounds are 5 to 6 standard errors of the quantity tested, so a correct
// generator fails with probability below ~1e-6 per check, while a broken one (a wrong
// range, a missing scale, a biased transform) misses them by far.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>

#include "engine/ops.h"
#include "kernels/philox.h"
#include "kernels/cpu/random.h"

using namespace visrep;

namespace {

constexpr int64_t kSamples = 100000;

struct Moments {
  double mean = 0, variance = 0, minimum = INFINITY, maximum = -INFINITY;
};

template <class T>
Moments moments_of(const std::vector<T>& values) {
  Moments m;
  double total = 0;
  for (T v : values) {
    total += static_cast<double>(v);
    m.minimum = std::min(m.minimum, static_cast<double>(v));
    m.maximum = std::max(m.maximum, static_cast<double>(v));
  }
  m.mean = total / static_cast<double>(values.size());
  double squares = 0;
  for (T v : values) squares += (static_cast<double>(v) - m.mean) * (static_cast<double>(v) - m.mean);
  m.variance = squares / static_cast<double>(values.size() - 1);
  return m;
}

kernels::PhiloxBlock block(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3) { return {{c0, c1, c2, c3}}; }

}  // namespace

TEST_CASE("philox4x32-10 known answers", "[unit]") {
  // Random123's kat_vectors: counter words c0..c3, key words k0 k1, expected output words.
  struct Vector {
    kernels::PhiloxBlock counter;
    uint32_t key0, key1;
    kernels::PhiloxBlock expected;
  };
  const std::vector<Vector> vectors = {
      {block(0, 0, 0, 0), 0, 0, block(0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u)},
      {block(0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu), 0xffffffffu, 0xffffffffu,
       block(0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu)},
      {block(0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u), 0xa4093822u, 0x299f31d0u,
       block(0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u)},
  };
  for (size_t v = 0; v < vectors.size(); ++v) {
    const kernels::PhiloxBlock out = kernels::philox4x32_10(vectors[v].counter, vectors[v].key0, vectors[v].key1);
    for (int w = 0; w < 4; ++w) {
      INFO("vector " << v << " word " << w);
      CHECK(out.words[w] == vectors[v].expected.words[w]);
    }
  }
}

TEST_CASE("random draws follow the (seed, stream, index) keying", "[unit]") {
  // Element i of draw number s from Generator(seed) is word i % 4 of
  // philox(counter = (i / 4 low, i / 4 high, s low, s high), key = (seed low, seed high)).
  const uint64_t seed = 0x123456789abcdef0ull;
  Generator generator(seed);
  generator.set_state(seed, (uint64_t{1} << 32) + 5);  // a stream with both halves set
  std::vector<float> drawn = rand({10}, kFloat32, generator).to_vector<float>();
  REQUIRE(generator.stream() == (uint64_t{1} << 32) + 6);
  for (uint64_t i = 0; i < 10; ++i) {
    const kernels::PhiloxBlock out =
        kernels::philox4x32_10(block(static_cast<uint32_t>(i / 4), 0, 5, 1), 0x9abcdef0u, 0x12345678u);
    const double expected = static_cast<double>(out.words[i % 4] >> 8) / 16777216.0;  // top 24 bits
    CHECK(drawn[i] == expected);
  }
}

TEST_CASE("same seed gives the same tensors", "[unit]") {
  Generator a(2024), b(2024);
  CHECK(rand({3, 5}, kFloat32, a).to_vector<float>() == rand({3, 5}, kFloat32, b).to_vector<float>());
  CHECK(randn({17}, kFloat64, a).to_vector<double>() == randn({17}, kFloat64, b).to_vector<double>());
  CHECK(randint(-3, 9, {40}, kInt64, a).to_vector<int64_t>() == randint(-3, 9, {40}, kInt64, b).to_vector<int64_t>());
  CHECK(permutation(50, a).to_vector<int64_t>() == permutation(50, b).to_vector<int64_t>());
  // The default generator, reseeded.
  manual_seed(7);
  std::vector<float> first = randn({8}).to_vector<float>();
  manual_seed(7);
  CHECK(randn({8}).to_vector<float>() == first);
  // A saved (seed, stream) pair resumes the sequence.
  Generator c(99);
  rand({4}, kFloat32, c);
  const uint64_t stream = c.stream();
  std::vector<float> next = rand({6}, kFloat32, c).to_vector<float>();
  Generator resumed(0);
  resumed.set_state(99, stream);
  CHECK(rand({6}, kFloat32, resumed).to_vector<float>() == next);
}

TEST_CASE("different streams and seeds differ", "[unit]") {
  Generator g(5);
  std::vector<float> first = rand({64}, kFloat32, g).to_vector<float>();
  std::vector<float> second = rand({64}, kFloat32, g).to_vector<float>();
  int equal = 0;
  for (size_t i = 0; i < first.size(); ++i) equal += first[i] == second[i];
  CHECK(equal <= 1);  // two independent 24-bit uniforms collide with probability 2^-24
  Generator h(6);
  std::vector<float> other_seed = rand({64}, kFloat32, h).to_vector<float>();
  equal = 0;
  for (size_t i = 0; i < first.size(); ++i) equal += first[i] == other_seed[i];
  CHECK(equal <= 1);
  // Seeds differing only in the high 32 bits differ too (both key words are used).
  Generator low(1), high((uint64_t{1} << 32) + 1);
  CHECK(rand({8}, kFloat32, low).to_vector<float>() != rand({8}, kFloat32, high).to_vector<float>());
}

TEST_CASE("element i does not depend on the tensor size", "[unit]") {
  for (int64_t size : {1, 3, 7, 1000}) {
    INFO("size " << size);
    Generator small(11), large(11);
    std::vector<float> a = rand({size}, kFloat32, small).to_vector<float>();
    std::vector<float> b = rand({1000}, kFloat32, large).to_vector<float>();
    CHECK(std::equal(a.begin(), a.end(), b.begin()));
    std::vector<float> c = randn({size}, kFloat32, small).to_vector<float>();
    std::vector<float> d = randn({1000}, kFloat32, large).to_vector<float>();
    CHECK(std::equal(c.begin(), c.end(), d.begin()));
    std::vector<int64_t> e = randint(0, 1000, {size}, kInt64, small).to_vector<int64_t>();
    std::vector<int64_t> f = randint(0, 1000, {1000}, kInt64, large).to_vector<int64_t>();
    CHECK(std::equal(e.begin(), e.end(), f.begin()));
  }
  // The shape does not matter either, only the element's row-major index.
  Generator flat(3), shaped(3);
  CHECK(rand({12}, kFloat32, flat).to_vector<float>() == rand({3, 4}, kFloat32, shaped).to_vector<float>());
}

TEST_CASE("rand statistics", "[unit]") {
  Generator gen(101);
  std::vector<float> u = rand({kSamples}, kFloat32, gen).to_vector<float>();
  const Moments m = moments_of(u);
  // Uniform(0, 1): mean 1/2 (standard error sqrt(1/12 / n) = 9.1e-4), variance 1/12 (standard
  // error sqrt((1/80 - 1/144) / n) = 2.4e-4).
  CHECK(m.mean == Approx(0.5).margin(0.005));
  CHECK(m.variance == Approx(1.0 / 12.0).margin(0.0013));
  CHECK(m.minimum >= 0.0);
  CHECK(m.maximum < 1.0);
  CHECK(m.minimum < 1e-3);  // the range is covered: P(min > 1e-3) = (1 - 1e-3)^n ~ e^-100
  CHECK(m.maximum > 1 - 1e-3);
  // Each tenth of the range holds n/10 values (standard error sqrt(n 0.1 0.9) = 95).
  std::vector<int64_t> deciles(10, 0);
  for (float v : u) ++deciles[std::min<int64_t>(9, static_cast<int64_t>(v * 10))];
  for (int64_t count : deciles) CHECK(std::abs(count - kSamples / 10) < 500);

  Tensor scaled = uniform({kSamples}, -3.0, 5.0, kFloat64, gen);
  REQUIRE(scaled.dtype() == kFloat64);
  const Moments s = moments_of(scaled.to_vector<double>());
  CHECK(s.mean == Approx(1.0).margin(5 * 8 * 9.1e-4));
  CHECK(s.variance == Approx(64.0 / 12.0).margin(5 * 64 * 2.4e-4));
  CHECK(s.minimum >= -3.0);
  CHECK(s.maximum < 5.0);
}

TEST_CASE("randn statistics", "[unit]") {
  Generator gen(202);
  std::vector<float> z = randn({kSamples}, kFloat32, gen).to_vector<float>();
  const Moments m = moments_of(z);
  // N(0, 1): mean standard error 1/sqrt(n) = 3.2e-3; variance standard error sqrt(2/n) = 4.5e-3.
  CHECK(m.mean == Approx(0.0).margin(0.016));
  CHECK(m.variance == Approx(1.0).margin(0.025));
  // P(|z| < 1) = 0.6827 (standard error 1.5e-3); P(|z| < 2) = 0.9545 (standard error 6.6e-4).
  double within_one = 0, within_two = 0, fourth = 0;
  for (float v : z) {
    within_one += std::abs(v) < 1;
    within_two += std::abs(v) < 2;
    fourth += std::pow(static_cast<double>(v), 4);
  }
  CHECK(within_one / kSamples == Approx(0.6827).margin(0.008));
  CHECK(within_two / kSamples == Approx(0.9545).margin(0.0035));
  // Kurtosis E[z^4] = 3 (standard error sqrt(96 / n) = 0.031).
  CHECK(fourth / kSamples == Approx(3.0).margin(0.16));
  // Box-Muller pairs (elements 2k, 2k + 1) share their uniforms but must be uncorrelated
  // (standard error of the correlation 1/sqrt(n/2) = 4.5e-3).
  double cross = 0;
  for (int64_t k = 0; k + 1 < kSamples; k += 2) cross += static_cast<double>(z[k]) * z[k + 1];
  CHECK(cross / (kSamples / 2) == Approx(0.0).margin(0.025));

  Tensor shifted = normal({kSamples}, 3.0, 0.5, kFloat64, gen);
  const Moments s = moments_of(shifted.to_vector<double>());
  CHECK(s.mean == Approx(3.0).margin(0.5 * 0.016));
  CHECK(s.variance == Approx(0.25).margin(0.25 * 0.025));
}

TEST_CASE("randint statistics", "[unit]") {
  Generator gen(303);
  std::vector<int64_t> k = randint(-4, 6, {kSamples}, kInt64, gen).to_vector<int64_t>();
  REQUIRE(*std::min_element(k.begin(), k.end()) == -4);  // in range, and the range is covered
  REQUIRE(*std::max_element(k.begin(), k.end()) == 5);
  std::vector<int64_t> counts(10, 0);
  for (int64_t v : k) ++counts[v + 4];
  // Chi-square with 9 degrees of freedom: mean 9, P(> 40) ~ 5e-6.
  double chi_square = 0;
  for (int64_t c : counts) chi_square += std::pow(c - kSamples / 10.0, 2) / (kSamples / 10.0);
  CHECK(chi_square < 40.0);
  // A range of 2^32 (the widest allowed) reaches its top half too.
  std::vector<int64_t> wide = randint(0, int64_t{1} << 32, {1000}, kInt64, gen).to_vector<int64_t>();
  CHECK(*std::max_element(wide.begin(), wide.end()) > (int64_t{1} << 31));
  CHECK(*std::min_element(wide.begin(), wide.end()) >= 0);
  CHECK(randint(0, 5, {3}, kInt32, gen).dtype() == kInt32);
}

TEST_CASE("permutation is a uniform permutation", "[unit]") {
  Generator gen(404);
  std::vector<int64_t> p = permutation(kSamples, gen).to_vector<int64_t>();
  std::vector<int64_t> sorted = p;
  std::sort(sorted.begin(), sorted.end());
  std::vector<int64_t> identity(kSamples);
  std::iota(identity.begin(), identity.end(), 0);
  CHECK(sorted == identity);
  CHECK(p != identity);
  // Fixed points of a uniform permutation: Poisson(1); more than 12 has probability ~1e-10.
  int64_t fixed = 0;
  for (int64_t i = 0; i < kSamples; ++i) fixed += p[i] == i;
  CHECK(fixed < 12);
  // The first element of permutations of 4 is each value 1/4 of the time (standard error
  // sqrt(8000 * 3/16) = 39 out of 2000).
  std::vector<int64_t> first(4, 0);
  for (int trial = 0; trial < 8000; ++trial) ++first[permutation(4, gen).to_vector<int64_t>()[0]];
  for (int64_t c : first) CHECK(std::abs(c - 2000) < 240);
  CHECK(permutation(0, gen).numel() == 0);
  CHECK(permutation(1, gen).to_vector<int64_t>() == std::vector<int64_t>{0});
}

TEST_CASE("random factories honour the options", "[unit]") {
  Generator gen(505);
  Tensor x = randn({2, 3}, TensorOptions(kFloat64, Device::cpu(), true), gen);
  CHECK(x.dtype() == kFloat64);
  CHECK(x.requires_grad());
  CHECK(x.is_leaf());
  Tensor b = rand({5}, kBFloat16, gen);
  CHECK(b.dtype() == kBFloat16);
  for (float v : b.to_vector<float>()) {
    CHECK(v >= 0.0f);
    CHECK(v <= 1.0f);  // rounding to bfloat16 may reach 1
  }
  Tensor filled = zeros({1000});
  uniform_(filled, 2.0, 3.0, gen);
  const Moments m = moments_of(filled.to_vector<float>());
  CHECK(m.minimum >= 2.0);
  CHECK(m.maximum < 3.0);
  normal_(filled, -1.0, 0.1, gen);
  CHECK(moments_of(filled.to_vector<float>()).mean == Approx(-1.0).margin(0.02));
}

TEST_CASE("random_normal draws normal_at's values block by block, for any count", "[random]") {
  // The CPU kernel computes four normals per Philox block; the CUDA twin and normal_at one
  // per element. They must be the same numbers, including a count that ends mid-block.
  for (int64_t count : {1, 3, 4, 5, 4099}) {
    std::vector<float> drawn(static_cast<size_t>(count));
    kernels::cpu::random_normal<float>({.seed = 42,
                                        .stream = 7,
                                        .count = count,
                                        .mean = 0.0,
                                        .std = 1.0,
                                        .out = drawn.data()});
    for (int64_t i = 0; i < count; ++i) {
      INFO("count " << count << ", index " << i);
      REQUIRE(drawn[static_cast<size_t>(i)] == kernels::normal_at(42, 7, static_cast<uint64_t>(i)));
    }
  }
}
