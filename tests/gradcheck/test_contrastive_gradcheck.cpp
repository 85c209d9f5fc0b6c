// Gradient checks of the fused contrastive losses (engine/ops/contrastive.h) on the CPU: the
// analytic backward pass (rows, then columns, then through the L2 normalisation) against
// float64 central differences, for both losses, every option and small odd sizes.
// Where to look for the rest of the family: kernels/cpu/contrastive.h.
#include <catch2/catch.hpp>

#include <vector>

#include "engine/ops.h"
#include "tests/support/gradcheck.h"
#include "tests/support/mirrored_ranks.h"
#include "tests/support/test_data.h"

using namespace visrep;
using namespace visrep::testing;

namespace {

// A smooth composition of normalisation, dot products, exp and log of O(1) inputs. At
// tau = 1 truncation is ~ f''' eps^2 ~ 1e-12 and rounding ~ 1e-16 |L| / eps ~ 1e-10; the
// logits scale with 1 / tau, so the third derivative grows like 1 / tau^3: at tau = 0.05 it
// is ~1e4 larger, and a step of 1e-7 keeps truncation ~1e-10 while rounding grows to ~1e-9.
constexpr GradcheckTolerance kModerate{.eps = 1e-6, .atol = 1e-7, .rtol = 1e-5};
constexpr GradcheckTolerance kSharp{.eps = 1e-7, .atol = 1e-6, .rtol = 1e-5};

}  // namespace

TEST_CASE("nt_xent_loss", "[gradcheck]") {
  Generator gen = generator_for("nt_xent_loss");
  SECTION("2N = 6, D = 3, tau = 0.5") {
    VISREP_CHECK_GRADIENTS(kModerate, [](const TensorList& in) { return nt_xent_loss(in[0], 0.5); },
                           leaf(random_normal({6, 3}, gen)));
  }
  SECTION("2N = 8, D = 5, tau = 0.05") {
    VISREP_CHECK_GRADIENTS(kSharp, [](const TensorList& in) { return nt_xent_loss(in[0], 0.05); },
                           leaf(random_normal({8, 5}, gen)));
  }
  SECTION("2N = 2, D = 1, tau = 10") {
    VISREP_CHECK_GRADIENTS(kModerate, [](const TensorList& in) { return nt_xent_loss(in[0], 10.0); },
                           leaf(random_normal({4, 1}, gen)));
  }
  SECTION("rows of very different lengths") {
    const Tensor scales = from_vector(std::vector<double>{0.01, 1.0, 30.0, 0.2, 5.0, 1.5}, {6, 1});
    VISREP_CHECK_GRADIENTS(kModerate, [](const TensorList& in) { return nt_xent_loss(in[0], 0.3); },
                           leaf(mul(random_normal({6, 4}, gen), scales)));
  }
}

TEST_CASE("nt_xent_loss with extra negatives", "[gradcheck]") {
  Generator gen = generator_for("nt_xent_loss with extra negatives");
  SECTION("tau = 0.4") {
    VISREP_CHECK_GRADIENTS(kModerate, [](const TensorList& in) { return nt_xent_loss(in[0], 0.4, in[1]); },
                           leaf(random_normal({6, 4}, gen)), leaf(random_normal({5, 4}, gen)));
  }
  SECTION("tau = 0.05, one extra row") {
    VISREP_CHECK_GRADIENTS(kSharp, [](const TensorList& in) { return nt_xent_loss(in[0], 0.05, in[1]); },
                           leaf(random_normal({4, 3}, gen)), leaf(random_normal({1, 3}, gen)));
  }
}

TEST_CASE("supcon_loss", "[gradcheck]") {
  Generator gen = generator_for("supcon_loss");
  const Tensor image_labels = from_vector(std::vector<int64_t>{2, 0, 2, 1});
  SECTION("per-image labels, mode all, tau / base_tau = 2") {
    VISREP_CHECK_GRADIENTS(kModerate,
                           [&](const TensorList& in) { return supcon_loss(in[0], image_labels, 0.2, 0.1); },
                           leaf(random_normal({8, 3}, gen)));
  }
  SECTION("per-image labels, mode one") {
    VISREP_CHECK_GRADIENTS(
        kModerate, [&](const TensorList& in) { return supcon_loss(in[0], image_labels, 0.3, 0.3, ContrastMode::One); },
        leaf(random_normal({8, 3}, gen)));
  }
  SECTION("per-row labels with singleton classes (anchors without positives)") {
    const Tensor row_labels = from_vector(std::vector<int64_t>{0, 1, 0, 2, 0, 3});
    VISREP_CHECK_GRADIENTS(kModerate, [&](const TensorList& in) { return supcon_loss(in[0], row_labels, 0.5, 0.07); },
                           leaf(random_normal({6, 4}, gen)));
  }
  SECTION("per-row labels with singleton classes, mode one") {
    // Anchor 1 (class 5) has no positive; rows 3..5 are columns only.
    const Tensor row_labels = from_vector(std::vector<int64_t>{0, 5, 1, 0, 1, 2});
    VISREP_CHECK_GRADIENTS(
        kModerate,
        [&](const TensorList& in) { return supcon_loss(in[0], row_labels, 0.2, 0.07, ContrastMode::One); },
        leaf(random_normal({6, 4}, gen)));
  }
  SECTION("one class only, tau = 0.05") {
    const Tensor one_class = from_vector(std::vector<int64_t>{7, 7, 7});
    VISREP_CHECK_GRADIENTS(kSharp, [&](const TensorList& in) { return supcon_loss(in[0], one_class, 0.05, 0.07); },
                           leaf(random_normal({6, 5}, gen)));
  }
  SECTION("no labels") {
    VISREP_CHECK_GRADIENTS(kModerate, [](const TensorList& in) { return supcon_loss(in[0], Tensor(), 0.7, 0.7); },
                           leaf(random_normal({6, 2}, gen)));
  }
}

TEST_CASE("supcon_loss with labelled extra rows", "[gradcheck]") {
  // The extra rows carry labels: some are positives of h's anchors (the cross-rank form).
  Generator gen = generator_for("supcon_loss with labelled extra rows");
  const Tensor image_labels = from_vector(std::vector<int64_t>{2, 0, 1});
  const Tensor extra_labels = from_vector(std::vector<int64_t>{0, 2, 3, 0, 2});
  for (const ContrastMode mode : {ContrastMode::All, ContrastMode::One}) {
    VISREP_CHECK_GRADIENTS(
        kModerate,
        [&](const TensorList& in) { return supcon_loss(in[0], image_labels, 0.3, 0.1, mode, in[1], extra_labels); },
        leaf(random_normal({6, 4}, gen)), leaf(random_normal({5, 4}, gen)));
  }
}

TEST_CASE("cross-rank contrastive losses", "[gradcheck]") {
  // Rank r of P mirrored ranks (tests/support/mirrored_ranks.h): the loss of the global batch
  // of P copies, through all_gather_rows and its reduce-scatter, as a function of h.
  Generator gen = generator_for("cross-rank contrastive losses");
  const Tensor labels = from_vector(std::vector<int64_t>{1, 0, 1});
  for (const auto [rank, ranks] : {std::pair{0, 1}, std::pair{1, 3}, std::pair{2, 3}}) {
    INFO("rank " << rank << " of " << ranks);
    MirroredRanks job(rank, ranks);
    VISREP_CHECK_GRADIENTS(kModerate, [&](const TensorList& in) { return nt_xent_loss(in[0], 0.5, job); },
                           leaf(random_normal({6, 3}, gen)));
    VISREP_CHECK_GRADIENTS(
        kModerate,
        [&](const TensorList& in) { return supcon_loss(in[0], labels, 0.4, 0.2, ContrastMode::All, job); },
        leaf(random_normal({6, 3}, gen)));
  }
}

TEST_CASE("all_gather_rows", "[gradcheck]") {
  Generator gen = generator_for("all_gather_rows");
  MirroredRanks job(1, 3);
  const Tensor weights = random_normal({6, 2}, gen);  // a different weight for every copy's rows
  VISREP_CHECK_GRADIENTS(kModerate, [&](const TensorList& in) { return sum(mul(all_gather_rows(in[0], job), weights)); },
                         leaf(random_normal({2, 2}, gen)));
}
