// Unit tests of the Tensor itself: views and strides, broadcasting, dtype conversions
// (bfloat16 rounding included), autograd behaviour and printing.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <sstream>

#include "engine/ops.h"
#include "tests/support/test_data.h"

using namespace visrep;
using namespace visrep::testing;

namespace {

// Element `index` of a float32 tensor, read straight from its storage through its own
// offset and strides (independently of the engine's copy kernels).
float read_through_strides(const Tensor& t, const std::vector<int64_t>& index) {
  REQUIRE(t.dtype() == kFloat32);
  REQUIRE(static_cast<int64_t>(index.size()) == t.dim());
  int64_t offset = t.storage_offset();
  for (size_t d = 0; d < index.size(); ++d) offset += index[d] * t.stride(static_cast<int64_t>(d));
  return static_cast<const float*>(t.storage()->data())[offset];
}

// A (rows, cols) float32 tensor holding 100 * i + j at (i, j): every element tells where it is.
Tensor labelled(int64_t rows, int64_t cols) {
  std::vector<float> values;
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) values.push_back(static_cast<float>(100 * i + j));
  return from_vector(values, {rows, cols});
}

uint32_t float_bits(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  return bits;
}

float float_from_bits(uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, sizeof(value));
  return value;
}

// Round-to-nearest-even float32 -> bfloat16, written independently of kernels/bfloat16.h:
// compare the distances to the two bfloat16 neighbours exactly in double.
uint16_t reference_bfloat16_bits(float value) {
  const uint32_t bits = float_bits(value);
  if (std::isnan(value)) return 0;  // not used for NaN
  const uint32_t below = bits & 0xffff0000u;  // truncation: same sign, toward zero
  const uint32_t above = below + 0x10000u;    // next one away from zero (may be inf)
  const double x = std::abs(static_cast<double>(value));
  const double low = std::abs(static_cast<double>(float_from_bits(below)));
  // The neighbour away from zero; past the largest finite value it is infinity, which for
  // rounding purposes sits where the next exponent would start (2^128).
  const double high = (above & 0x7fffffffu) == 0x7f800000u ? std::ldexp(1.0, 128)
                                                           : std::abs(static_cast<double>(float_from_bits(above)));
  const double to_low = x - low, to_high = high - x;
  if (to_low < to_high) return static_cast<uint16_t>(below >> 16);
  if (to_high < to_low) return static_cast<uint16_t>(above >> 16);
  return static_cast<uint16_t>(((below >> 16) & 1u) == 0 ? below >> 16 : above >> 16);  // tie: even
}

std::vector<uint16_t> bfloat16_bits_of(const std::vector<float>& values) {
  std::vector<bfloat16> converted = from_vector(values).to(kBFloat16).to_vector<bfloat16>();
  std::vector<uint16_t> bits;
  for (bfloat16 b : converted) bits.push_back(b.bits);
  return bits;
}

}  // namespace

// ---- views and strides ---------------------------------------------------------------------------

TEST_CASE("a view shares storage with its base", "[unit]") {
  Tensor base = labelled(4, 5);
  SECTION("slice") {
    Tensor view = base.slice(1, 1, 4, 2);  // columns 1 and 3
    REQUIRE(view.storage() == base.storage());
    view.fill_(-7.0);
    for (int64_t i = 0; i < 4; ++i)
      for (int64_t j = 0; j < 5; ++j)
        CHECK(read_through_strides(base, {i, j}) == (j == 1 || j == 3 ? -7.0f : 100.0f * i + j));
  }
  SECTION("transpose") {
    Tensor view = base.t();
    REQUIRE(view.storage() == base.storage());
    view.select(0, 2).copy_(from_vector<float>({-1, -2, -3, -4}));  // column 2 of base
    for (int64_t i = 0; i < 4; ++i) CHECK(read_through_strides(base, {i, 2}) == -1.0f - i);
    CHECK(read_through_strides(base, {0, 1}) == 1.0f);
  }
  SECTION("reshape of a contiguous tensor") {
    Tensor view = base.reshape({2, 10});
    REQUIRE(view.storage() == base.storage());
    view.select(1, 7).fill_(0.5);  // flat elements 7 and 17: (1, 2) and (3, 2)
    CHECK(read_through_strides(base, {1, 2}) == 0.5f);
    CHECK(read_through_strides(base, {3, 2}) == 0.5f);
    CHECK(read_through_strides(base, {2, 2}) == 202.0f);
  }
  SECTION("narrow, unsqueeze, squeeze, permute") {
    Tensor view = base.narrow(0, 1, 2).unsqueeze(0).permute({2, 1, 0}).squeeze(2);  // (5, 2) = rows 1..2 transposed
    REQUIRE(view.shape() == Shape{5, 2});
    REQUIRE(view.storage() == base.storage());
    view.select(1, 1).fill_(9.0);  // row 2 of base
    for (int64_t j = 0; j < 5; ++j) CHECK(read_through_strides(base, {2, j}) == 9.0f);
    CHECK(read_through_strides(base, {1, 0}) == 100.0f);
  }
  SECTION("writes to the base show through the view") {
    Tensor view = base.select(0, 3);
    base.fill_(2.5);
    CHECK(view.to_vector<float>() == std::vector<float>(5, 2.5f));
  }
}

TEST_CASE("view strides and offsets", "[unit]") {
  Tensor x = zeros({2, 3, 4});
  REQUIRE(x.strides() == Shape{12, 4, 1});
  REQUIRE(x.is_contiguous());

  Tensor permuted = x.permute({2, 0, 1});
  CHECK(permuted.shape() == Shape{4, 2, 3});
  CHECK(permuted.strides() == Shape{1, 12, 4});
  CHECK_FALSE(permuted.is_contiguous());

  Tensor transposed = x.transpose(0, 2);
  CHECK(transposed.shape() == Shape{4, 3, 2});
  CHECK(transposed.strides() == Shape{1, 4, 12});

  Tensor sliced = x.slice(2, 1, 4, 2);  // indices 1, 3
  CHECK(sliced.shape() == Shape{2, 3, 2});
  CHECK(sliced.strides() == Shape{12, 4, 2});
  CHECK(sliced.storage_offset() == 1);

  Tensor selected = x.select(1, 2);
  CHECK(selected.shape() == Shape{2, 4});
  CHECK(selected.strides() == Shape{12, 1});
  CHECK(selected.storage_offset() == 8);

  Tensor column = zeros({3, 1});
  Tensor expanded = column.expand({2, 3, 5});
  CHECK(expanded.shape() == Shape{2, 3, 5});
  CHECK(expanded.strides() == Shape{0, 1, 0});

  Tensor unsqueezed = x.unsqueeze(1);
  CHECK(unsqueezed.shape() == Shape{2, 1, 3, 4});
  CHECK(unsqueezed.is_contiguous());
  CHECK(x.unsqueeze(-1).shape() == Shape{2, 3, 4, 1});

  // A size-1 dimension may carry any stride and still be contiguous.
  CHECK_FALSE(x.narrow(1, 1, 1).is_contiguous());  // (2, 1, 4) with row stride 12: rows not adjacent
  CHECK(x.narrow(0, 1, 1).is_contiguous());        // one block, at offset 12
  CHECK(zeros({1, 5}).t().t().is_contiguous());
  CHECK(zeros({5, 1}).t().is_contiguous());
}

TEST_CASE("slice follows Python semantics", "[unit]") {
  Tensor x = arange(0.0, 10.0, 1.0, kFloat32);
  CHECK(x.slice(0, -3, 10).to_vector<float>() == std::vector<float>{7, 8, 9});
  CHECK(x.slice(0, -4, -1, 2).to_vector<float>() == std::vector<float>{6, 8});
  CHECK(x.slice(0, 8, 100).to_vector<float>() == std::vector<float>{8, 9});
  CHECK(x.slice(0, -100, 2).to_vector<float>() == std::vector<float>{0, 1});
  CHECK(x.slice(0, 6, 2).numel() == 0);
  CHECK(x.slice(0, 1, 10, 4).to_vector<float>() == std::vector<float>{1, 5, 9});
  CHECK(x.select(0, -1).item() == 9.0);
  CHECK(x.narrow(0, -3, 2).to_vector<float>() == std::vector<float>{7, 8});  // like torch.narrow
}

TEST_CASE("contiguous copies only when needed", "[unit]") {
  Tensor x = labelled(3, 4);
  Tensor same = x.contiguous();
  CHECK(same.storage() == x.storage());
  CHECK(same.raw_data() == x.raw_data());

  Tensor transposed = x.t();
  Tensor copy = transposed.contiguous();
  CHECK(copy.storage() != x.storage());
  CHECK(copy.is_contiguous());
  CHECK(copy.strides() == Shape{3, 1});
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t j = 0; j < 3; ++j) CHECK(read_through_strides(copy, {i, j}) == 100.0f * j + i);

  // A contiguous slice (a block of rows) is contiguous with an offset: no copy.
  Tensor rows = x.slice(0, 1, 3);
  CHECK(rows.is_contiguous());
  CHECK(rows.contiguous().storage() == x.storage());
  // The copy is independent of the original.
  copy.fill_(0.0);
  CHECK(read_through_strides(x, {2, 3}) == 203.0f);
}

TEST_CASE("reshape of a non-contiguous tensor copies", "[unit]") {
  Tensor x = labelled(3, 4);
  Tensor reshaped = x.t().reshape({2, 6});
  CHECK(reshaped.storage() != x.storage());
  // Row-major order of the transpose: x[0][0], x[1][0], x[2][0], x[0][1], ...
  std::vector<float> expected;
  for (int64_t j = 0; j < 4; ++j)
    for (int64_t i = 0; i < 3; ++i) expected.push_back(100.0f * i + j);
  CHECK(reshaped.to_vector<float>() == expected);
  CHECK(x.reshape({-1}).storage() == x.storage());
  CHECK(x.reshape({2, -1, 3}).shape() == Shape{2, 2, 3});
  CHECK(x.flatten().shape() == Shape{12});
  CHECK(zeros({2, 3, 4, 5}).flatten(1, 2).shape() == Shape{2, 12, 5});
  CHECK_THROWS_AS(x.t().view({12}), Error);
}

TEST_CASE("expand broadcasts without copying", "[unit]") {
  Tensor column = from_vector<float>({1, 2, 3}, {3, 1});
  Tensor wide = column.expand({2, 3, 4});
  CHECK(wide.storage() == column.storage());
  std::vector<float> values = wide.to_vector<float>();
  REQUIRE(values.size() == 24);
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t i = 0; i < 3; ++i)
      for (int64_t j = 0; j < 4; ++j) CHECK(values[(n * 3 + i) * 4 + j] == static_cast<float>(i + 1));
  CHECK(column.expand({-1, 2}).shape() == Shape{3, 2});
  CHECK(scalar_tensor(4.0).expand({2, 2}).to_vector<float>() == std::vector<float>(4, 4.0f));
}

TEST_CASE("squeeze of a dimension that is not 1 keeps the tensor", "[unit]") {
  Tensor x = zeros({2, 1, 3});
  CHECK(x.squeeze(0).shape() == Shape{2, 1, 3});
  CHECK(x.squeeze(1).shape() == Shape{2, 3});
  CHECK(x.squeeze(-2).shape() == Shape{2, 3});
}

// ---- broadcasting ------------------------------------------------------------------------------------

TEST_CASE("broadcast shapes", "[unit]") {
  CHECK(broadcast_shapes({3, 1, 4}, {2, 4}, "t") == Shape{3, 2, 4});
  CHECK(broadcast_shapes({}, {2, 3}, "t") == Shape{2, 3});
  CHECK(broadcast_shapes({5, 1}, {1, 7}, "t") == Shape{5, 7});
  CHECK(broadcast_shapes({1}, {0}, "t") == Shape{0});
  CHECK(broadcast_shapes({2, 3}, {2, 3}, "t") == Shape{2, 3});
  CHECK_THROWS_WITH(broadcast_shapes({2, 3}, {4, 3}, "myop"),
                    Catch::Contains("myop") && Catch::Contains("[2, 3]") && Catch::Contains("[4, 3]"));
  CHECK_THROWS_AS(broadcast_shapes({3}, {4}, "t"), Error);
}

TEST_CASE("broadcast values", "[unit]") {
  Generator gen = generator_for("broadcast values");
  Tensor a = random_normal({3, 1, 4}, gen, kFloat32);
  Tensor b = random_normal({2, 4}, gen, kFloat32);
  Tensor sum_ab = add(a, b), product = mul(b, a), quotient = div(a, add(abs(b), 1.0));
  REQUIRE(sum_ab.shape() == Shape{3, 2, 4});
  REQUIRE(product.shape() == Shape{3, 2, 4});
  const std::vector<float> av = a.to_vector<float>(), bv = b.to_vector<float>();
  const std::vector<float> s = sum_ab.to_vector<float>(), p = product.to_vector<float>(),
                           q = quotient.to_vector<float>();
  for (int64_t i = 0; i < 3; ++i) {
    for (int64_t j = 0; j < 2; ++j) {
      for (int64_t k = 0; k < 4; ++k) {
        const float x = av[i * 4 + k], y = bv[j * 4 + k];
        const size_t o = static_cast<size_t>((i * 2 + j) * 4 + k);
        CHECK(s[o] == x + y);
        CHECK(p[o] == x * y);
        CHECK(q[o] == x / (std::abs(y) + 1.0f));
      }
    }
  }
  // copy_ broadcasts its source over the destination.
  Tensor destination = zeros({2, 3});
  destination.copy_(from_vector<float>({1, 2, 3}));
  CHECK(destination.to_vector<float>() == std::vector<float>{1, 2, 3, 1, 2, 3});
  // A 0-dim operand takes the other operand's dtype.
  Tensor d = from_vector<double>({1.5, 2.5});
  Tensor e = add(d, scalar_tensor(1.0, kFloat32));
  CHECK(e.dtype() == kFloat64);
  CHECK(e.to_vector<double>() == std::vector<double>{2.5, 3.5});
}

// ---- dtype conversions -------------------------------------------------------------------------------

TEST_CASE("bfloat16 rounds to nearest even", "[unit]") {
  const float one = 1.0f;
  const uint32_t one_bits = float_bits(one);  // 0x3f800000
  REQUIRE(one_bits == 0x3f800000u);
  SECTION("exact halfway cases go to the even neighbour, both ways") {
    // 1 + 2^-8 is halfway between 1 (0x3f80, even) and 1 + 2^-7 (0x3f81): down to 0x3f80.
    // 1 + 3 * 2^-8 is halfway between 0x3f81 and 0x3f82 (even): up to 0x3f82.
    const std::vector<float> values = {1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f, -(1.0f + 0x1p-8f), -(1.0f + 3 * 0x1p-8f),
                                       float_from_bits(0x00008000u), float_from_bits(0x00018000u)};
    const std::vector<uint16_t> expected = {0x3f80, 0x3f82, 0xbf80, 0xbf82, 0x0000, 0x0002};
    CHECK(bfloat16_bits_of(values) == expected);
  }
  SECTION("just off halfway rounds to the nearer neighbour") {
    const std::vector<float> values = {float_from_bits(0x3f808001u), float_from_bits(0x3f807fffu),
                                       float_from_bits(0x3f818001u), float_from_bits(0x3f817fffu)};
    const std::vector<uint16_t> expected = {0x3f81, 0x3f80, 0x3f82, 0x3f81};
    CHECK(bfloat16_bits_of(values) == expected);
  }
  SECTION("NaN stays NaN, infinities stay infinite") {
    const float inf = std::numeric_limits<float>::infinity();
    // Includes NaNs whose payload sits only in the low 16 bits (naive rounding turns them into inf).
    const std::vector<float> values = {std::numeric_limits<float>::quiet_NaN(), float_from_bits(0x7f800001u),
                                       float_from_bits(0xff800001u), float_from_bits(0x7fffffffu), inf, -inf};
    const std::vector<uint16_t> bits = bfloat16_bits_of(values);
    for (size_t i = 0; i < 4; ++i) {
      INFO("NaN case " << i);
      CHECK(std::isnan(bfloat16::to_float(bits[i])));
    }
    CHECK((bits[2] & 0x8000u) != 0);  // the sign of a NaN is kept
    CHECK(bits[4] == 0x7f80);
    CHECK(bits[5] == 0xff80);
  }
  SECTION("values beyond the largest bfloat16 overflow to infinity") {
    // The largest bfloat16 is 0x7f7f; halfway to the next (inf) is 0x7f7f8000, which ties to
    // even (0x7f80 = inf). Just below halfway stays finite.
    const std::vector<float> values = {std::numeric_limits<float>::max(), float_from_bits(0x7f7f8000u),
                                       float_from_bits(0x7f7f7fffu), -std::numeric_limits<float>::max()};
    const std::vector<uint16_t> expected = {0x7f80, 0x7f80, 0x7f7f, 0xff80};
    CHECK(bfloat16_bits_of(values) == expected);
  }
  SECTION("random values agree with an independent rounding") {
    Generator gen = generator_for("bfloat16 random");
    std::vector<float> values = mul(randn({4096}, kFloat32, gen), 1000.0).to_vector<float>();
    // Values of every scale, subnormals included.
    for (int e = -140; e <= 120; e += 20) values.push_back(std::ldexp(1.2345678f, e));
    const std::vector<uint16_t> bits = bfloat16_bits_of(values);
    int64_t mismatches = 0;
    for (size_t i = 0; i < values.size(); ++i) {
      if (bits[i] == reference_bfloat16_bits(values[i])) continue;
      if (mismatches++ == 0) UNSCOPED_INFO("first mismatch: value " << values[i] << " gave bits " << bits[i]);
    }
    CHECK(mismatches == 0);
  }
  SECTION("bfloat16 to float is exact, and every bfloat16 survives a round trip") {
    std::vector<bfloat16> all;
    for (uint32_t bits = 0; bits < 0x10000u; bits += 7) all.push_back(bfloat16::from_bits(static_cast<uint16_t>(bits)));
    Tensor original = from_vector(all);
    std::vector<float> as_float = original.to(kFloat32).to_vector<float>();
    std::vector<bfloat16> back = original.to(kFloat32).to(kBFloat16).to_vector<bfloat16>();
    int64_t inexact = 0, changed = 0;
    for (size_t i = 0; i < all.size(); ++i) {
      inexact += float_bits(as_float[i]) != static_cast<uint32_t>(all[i].bits) << 16;
      changed += !std::isnan(as_float[i]) && back[i].bits != all[i].bits;
    }
    CHECK(inexact == 0);
    CHECK(changed == 0);
  }
}

TEST_CASE("bfloat16 arithmetic computes in float32 and rounds once", "[unit]") {
  // Operands 1, 2^-7 and 2^-8 are exact bfloat16 values. In float32, 1 + 2^-7 is exact and
  // a bfloat16; 1 + 2^-8 is exact in float32 but a tie in bfloat16, which rounds to even (1).
  Tensor a = from_vector<float>({1.0f, 1.0f}).to(kBFloat16);
  Tensor b = from_vector<float>({0.0078125f, 0.00390625f}).to(kBFloat16);
  Tensor c = add(a, b);
  REQUIRE(c.dtype() == kBFloat16);
  std::vector<float> result = c.to_vector<float>();
  CHECK(result[0] == 1.0078125f);
  CHECK(result[1] == 1.0f);  // the exact sum 1 + 2^-8 is a tie, and rounds to even
}

TEST_CASE("integer conversions truncate toward zero", "[unit]") {
  Tensor x = from_vector<double>({-2.7, -0.5, 0.5, 2.7, 3.0, -3.0, 1e9 + 0.9});
  CHECK(x.to(kInt64).to_vector<int64_t>() == std::vector<int64_t>{-2, 0, 0, 2, 3, -3, 1000000000});
  CHECK(x.to(kInt32).to_vector<int32_t>() == std::vector<int32_t>{-2, 0, 0, 2, 3, -3, 1000000000});
  CHECK(from_vector<float>({0.9f, 254.99f, 7.5f}).to(kUInt8).to_vector<uint8_t>() == std::vector<uint8_t>{0, 254, 7});
  // Integers convert exactly to floats (within float64's 53 bits).
  CHECK(from_vector<int64_t>({-5, 0, 9007199254740992}).to(kFloat64).to_vector<double>() ==
        std::vector<double>{-5.0, 0.0, 9007199254740992.0});
  // Integer results of comparisons convert to 0/1 floats.
  CHECK(gt(from_vector<float>({-1, 2}), 0.0).to(kFloat32).to_vector<float>() == std::vector<float>{0, 1});
  CHECK(x.to(kInt64).dtype() == kInt64);
}

TEST_CASE("float to integer: NaN gives 0, values beyond the range saturate", "[unit]") {
  // kernels/convert.h: one rule for both devices (a plain cast gives INT_MIN on x86-64 for all
  // of these and the saturated value on CUDA); the parity case "float -> integer special
  // values" checks the CUDA side against this.
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  const Tensor x = from_vector<float>({nan, -nan, inf, -inf, 3e9f, -3e9f, 2147483520.0f, -2147483648.0f, 1e20f,
                                       -1e20f, 255.9f, 256.0f, -0.9f, -1.0f, -7.9f});
  CHECK(x.to(kInt32).to_vector<int32_t>() ==
        std::vector<int32_t>{0, 0, INT32_MAX, INT32_MIN, INT32_MAX, INT32_MIN, 2147483520, INT32_MIN, INT32_MAX,
                             INT32_MIN, 255, 256, 0, -1, -7});
  CHECK(x.to(kInt64).to_vector<int64_t>() ==
        std::vector<int64_t>{0, 0, INT64_MAX, INT64_MIN, 3000000000, -3000000000, 2147483520, -2147483648, INT64_MAX,
                             INT64_MIN, 255, 256, 0, -1, -7});
  CHECK(x.to(kUInt8).to_vector<uint8_t>() ==
        std::vector<uint8_t>{0, 0, 255, 0, 255, 0, 255, 0, 255, 0, 255, 255, 0, 0, 0});
  // float64 at the edges of int32 and int64, and bfloat16 (converted through float32).
  CHECK(from_vector<double>({2147483647.9, 2147483648.0, -2147483648.9, -2147483649.0})
            .to(kInt32)
            .to_vector<int32_t>() == std::vector<int32_t>{INT32_MAX, INT32_MAX, INT32_MIN, INT32_MIN});
  CHECK(from_vector<double>({9223372036854774784.0, 9223372036854775808.0, -9223372036854775808.0})
            .to(kInt64)
            .to_vector<int64_t>() == std::vector<int64_t>{9223372036854774784, INT64_MAX, INT64_MIN});
  CHECK(from_vector<float>({nan, -inf, 1e10f, -3.9f}).to(kBFloat16).to(kInt32).to_vector<int32_t>() ==
        std::vector<int32_t>{0, INT32_MIN, INT32_MAX, -3});
}

TEST_CASE("float32 and float64 conversions", "[unit]") {
  Generator gen = generator_for("float32 and float64 conversions");
  Tensor x = randn({100}, kFloat32, gen);
  Tensor round_trip = x.to(kFloat64).to(kFloat32);
  CHECK(round_trip.to_vector<float>() == x.to_vector<float>());
  // float64 -> float32 rounds to nearest: 1 + 2^-30 is closer to 1 than to 1 + 2^-23.
  CHECK(from_vector<double>({1.0 + std::ldexp(1.0, -30), 1.0 + 3 * std::ldexp(1.0, -25)}).to(kFloat32).to_vector<float>() ==
        std::vector<float>{1.0f, 1.0f + 0x1p-23f});
  CHECK(x.to(kFloat32).storage() == x.storage());  // to the same dtype: no copy
}

// ---- autograd ----------------------------------------------------------------------------------------

TEST_CASE("gradients accumulate across backward calls", "[unit]") {
  Tensor x = from_vector<double>({1.0, -2.0, 3.0}).set_requires_grad();
  sum(mul(x, x)).backward();
  CHECK(x.grad().to_vector<double>() == std::vector<double>{2.0, -4.0, 6.0});
  sum(mul(x, 3.0)).backward();
  CHECK(x.grad().to_vector<double>() == std::vector<double>{5.0, -1.0, 9.0});
  x.set_grad(Tensor());
  CHECK_FALSE(x.grad().defined());
  sum(x).backward();
  CHECK(x.grad().to_vector<double>() == std::vector<double>{1.0, 1.0, 1.0});
}

TEST_CASE("NoGradGuard records nothing", "[unit]") {
  Tensor x = from_vector<float>({1, 2}).set_requires_grad();
  REQUIRE(grad_enabled());
  {
    NoGradGuard no_grad;
    CHECK_FALSE(grad_enabled());
    Tensor y = mul(x, 2.0);
    CHECK_FALSE(y.requires_grad());
    CHECK(y.grad_fn() == nullptr);
    {
      NoGradGuard nested;
      CHECK_FALSE(grad_enabled());
    }
    CHECK_FALSE(grad_enabled());  // the inner guard restores the outer state
    CHECK_THROWS_AS(sum(y).backward(), Error);
  }
  CHECK(grad_enabled());
  Tensor z = mul(x, 2.0);
  CHECK(z.requires_grad());
  CHECK(z.grad_fn() != nullptr);
  CHECK(z.grad_fn()->name() == "mul");
}

TEST_CASE("detach cuts the graph", "[unit]") {
  Tensor x = from_vector<double>({1.5, -0.5}).set_requires_grad();
  Tensor detached = x.detach();
  CHECK_FALSE(detached.requires_grad());
  CHECK(detached.is_leaf());
  CHECK(detached.storage() == x.storage());  // same data
  // y = 2 x + 3 detach(x) * x: only the attached paths give gradient: 2 + 3 detach(x).
  Tensor y = sum(add(mul(x, 2.0), mul(mul(detached, 3.0), x)));
  y.backward();
  CHECK(x.grad().to_vector<double>() == std::vector<double>{2.0 + 4.5, 2.0 - 1.5});
  // An expression built only from the detached tensor does not require a gradient.
  CHECK_FALSE(exp(detached).requires_grad());
}

TEST_CASE("only leaves keep their gradient", "[unit]") {
  Tensor x = from_vector<double>({1.0, 2.0}).set_requires_grad();
  Tensor hidden = mul(x, 3.0);
  Tensor y = sum(mul(hidden, hidden));
  y.backward();
  CHECK(x.grad().defined());
  CHECK_FALSE(hidden.grad().defined());
  CHECK_FALSE(hidden.is_leaf());
  CHECK(x.is_leaf());
  CHECK(x.grad().to_vector<double>() == std::vector<double>{18.0, 36.0});  // d/dx (3x)^2 = 18 x
  // A tensor that never asked for a gradient gets none.
  Tensor constant = from_vector<double>({1.0, 1.0});
  sum(mul(x, constant)).backward();
  CHECK_FALSE(constant.grad().defined());
  CHECK_THROWS_AS(hidden.set_requires_grad(), Error);
  CHECK_THROWS_AS(from_vector<int64_t>({1}).set_requires_grad(), Error);
}

TEST_CASE("backward on a non-scalar needs a seed", "[unit]") {
  Tensor x = from_vector<double>({1, 2, 3, 4}, {2, 2}).set_requires_grad();
  Tensor y = mul(x, 3.0);
  CHECK_THROWS_WITH(y.backward(), Catch::Contains("seed") && Catch::Contains("[2, 2]"));
  Tensor seed = from_vector<double>({1, -1, 0.5, 2}, {2, 2});
  y.backward(seed);
  CHECK(x.grad().to_vector<double>() == std::vector<double>{3, -3, 1.5, 6});
  CHECK_THROWS_AS(y.backward(from_vector<double>({1, 2})), Error);            // wrong shape
  CHECK_THROWS_AS(y.backward(ones({2, 2}, kFloat32)), Error);                 // wrong dtype
  CHECK_THROWS_AS(from_vector<double>({1.0}).backward(), Error);              // needs no gradient
}

TEST_CASE("a saved tensor modified in place makes backward throw", "[unit]") {
  Tensor w = from_vector<double>({1, 2, 3}).set_requires_grad();
  Tensor x = from_vector<double>({4, 5, 6});  // saved by mul for w's gradient
  Tensor y = sum(mul(w, x));
  x.add_(from_vector<double>({1, 1, 1}));  // allowed: x needs no gradient
  CHECK_THROWS_WITH(y.backward(), Catch::Contains("modified in place"));

  // The same through a saved output: exp saves its result.
  Tensor v = from_vector<double>({0.1, 0.2}).set_requires_grad();
  Tensor e = exp(v);
  Tensor loss = sum(e);
  {
    NoGradGuard no_grad;
    e.mul_(2.0);
  }
  CHECK_THROWS_WITH(loss.backward(), Catch::Contains("modified in place"));

  // Without the in-place write the same graph works.
  Tensor fresh = sum(mul(w, from_vector<double>({4, 5, 6})));
  fresh.backward();
  CHECK(w.grad().to_vector<double>() == std::vector<double>{4, 5, 6});
}

TEST_CASE("in-place writes on a leaf that requires grad", "[unit]") {
  Tensor x = from_vector<float>({1, 2}).set_requires_grad();
  CHECK_THROWS_WITH(x.fill_(0.0), Catch::Contains("fill_") && Catch::Contains("requires grad"));
  CHECK_THROWS_AS(x.add_(ones({2})), Error);
  CHECK_THROWS_AS(x.mul_(2.0), Error);
  CHECK_THROWS_AS(x.copy_(ones({2})), Error);
  CHECK(x.to_vector<float>() == std::vector<float>{1, 2});  // nothing was written
  const uint64_t version = x.storage()->version();
  {
    NoGradGuard no_grad;
    x.add_(ones({2}), 2.0);
  }
  CHECK(x.to_vector<float>() == std::vector<float>{3, 4});
  CHECK(x.storage()->version() > version);
}

TEST_CASE("a diamond graph sums the gradients of both paths", "[unit]") {
  Tensor x = from_vector<double>({0.5, -1.0, 2.0}).set_requires_grad();
  Tensor a = exp(x);
  Tensor b = mul(a, 2.0);  // path 1
  Tensor c = mul(a, a);    // path 2 (a used twice)
  Tensor y = sum(add(b, c));
  y.backward();
  // dy/dx = (2 + 2 a) a
  std::vector<double> grad = x.grad().to_vector<double>();
  std::vector<double> xs = {0.5, -1.0, 2.0};
  for (size_t i = 0; i < xs.size(); ++i) {
    const double e = std::exp(xs[i]);
    CHECK(grad[i] == Approx((2.0 + 2.0 * e) * e).epsilon(1e-14));
  }
}

TEST_CASE("gradients flow through views into the leaf", "[unit]") {
  Tensor x = from_vector<double>({1, 2, 3, 4, 5, 6}, {2, 3}).set_requires_grad();
  // Only x[1][0] and x[1][2] (through a transpose and a strided slice) are used.
  Tensor picked = x.t().slice(0, 0, 3, 2).select(1, 1);
  sum(mul(picked, picked)).backward();
  CHECK(x.grad().to_vector<double>() == std::vector<double>{0, 0, 0, 8, 0, 12});
}

// ---- printing -------------------------------------------------------------------------------------------

TEST_CASE("printing small tensors", "[unit]") {
  CHECK(from_vector<float>({1.5f, -2.0f, 3.25f, 0.0f}, {2, 2}).to_string() ==
        "tensor([[1.5000, -2.0000],\n        [3.2500, 0.0000]], dtype=float32)");
  CHECK(from_vector<int64_t>({1, -2, 3}).to_string() == "tensor([1, -2, 3], dtype=int64)");
  CHECK(scalar_tensor(2.5, kFloat64).to_string() == "tensor(2.5000, dtype=float64)");
  CHECK(zeros({0}).to_string() == "tensor([], dtype=float32)");
  CHECK(ones({2}).set_requires_grad().to_string() == "tensor([1.0000, 1.0000], dtype=float32, requires_grad=true)");
  // Large or tiny magnitudes switch to scientific notation.
  CHECK_THAT(from_vector<float>({1e6f, 2.0f}).to_string(), Catch::Contains("1.0000e+06"));
  CHECK_THAT(from_vector<double>({1e-6, 1.0}).to_string(), Catch::Contains("1.0000e-06"));
  // NaN prints as nan whatever its sign bit; infinities keep their sign.
  CHECK(from_vector<float>({-std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::quiet_NaN(),
                            -INFINITY, 1.0f})
            .to_string() == "tensor([nan, nan, -inf, 1.0000], dtype=float32)");
  // Non-contiguous views print in their own row-major order.
  CHECK(from_vector<int64_t>({1, 2, 3, 4}, {2, 2}).t().to_string() == "tensor([[1, 3],\n        [2, 4]], dtype=int64)");
  CHECK_THAT(from_vector<float>({0.5f}).to(kBFloat16).to_string(), Catch::Contains("0.5000") && Catch::Contains("bfloat16"));
  std::ostringstream stream;
  stream << from_vector<int64_t>({7});
  CHECK(stream.str() == "tensor([7], dtype=int64)");
}

TEST_CASE("printing large tensors summarizes", "[unit]") {
  Tensor long_vector = arange(2000);
  const std::string text = long_vector.to_string();
  CHECK_THAT(text, Catch::StartsWith("tensor([0, 1, 2, ..., 1997, 1998, 1999]"));
  CHECK(text.size() < 80);

  Tensor matrix = arange(0.0, 2500.0, 1.0, kFloat32).reshape({50, 50});
  const std::string matrix_text = matrix.to_string();
  CHECK_THAT(matrix_text, Catch::Contains("[0.0000, 1.0000, 2.0000, ..., 47.0000, 48.0000, 49.0000]"));
  CHECK_THAT(matrix_text, Catch::Contains("[2450.0000, 2451.0000, 2452.0000, ..., 2497.0000, 2498.0000, 2499.0000]"));
  CHECK_THAT(matrix_text, Catch::Contains("..."));
  CHECK_THAT(matrix_text, !Catch::Contains("1225.0000"));  // a middle row is left out
  // 7 printed rows (3, the ellipsis, 3), not 50.
  CHECK(std::count(matrix_text.begin(), matrix_text.end(), '\n') == 6);
  // Exactly at the threshold (1000 elements) nothing is summarized.
  CHECK_THAT(arange(1000).to_string(), !Catch::Contains("..."));
}
