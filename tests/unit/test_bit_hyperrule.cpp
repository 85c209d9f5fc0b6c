// The BiT-HyperRule (recipes/bit.h) against the numbers of google-research/big_transfer
// bit_hyperrule.py, the Gamma and Beta samplers behind MixUp (engine/random.h), MixUp's
// blend and mixed loss (recipes/mixup.h) against a hand computation in double, and the
// settings train_bit refuses.
#include <catch2/catch.hpp>

#include <cmath>
#include <memory>
#include <set>
#include <vector>

#include "engine/data/synthetic.h"
#include "engine/nn/layers.h"
#include "engine/ops.h"
#include "recipes/bit.h"
#include "recipes/mixup.h"

using namespace visrep;
using Catch::Contains;

namespace {

const std::vector<int64_t> kSmallSchedule = {100, 200, 300, 400, 500};
const std::vector<int64_t> kMediumSchedule = {500, 3000, 6000, 9000, 10000};
const std::vector<int64_t> kLargeSchedule = {500, 6000, 12000, 18000, 20000};

double lr_at(int64_t step, const std::vector<int64_t>& schedule, double base = 0.003) {
  const std::optional<double> rate = recipes::bit_learning_rate(step, schedule, base);
  REQUIRE(rate.has_value());
  return *rate;
}

struct Moments {
  double mean = 0.0;
  double variance = 0.0;
};

template <class Draw>
Moments moments_of(int count, Draw draw) {
  double sum = 0.0, sum_of_squares = 0.0;
  for (int i = 0; i < count; ++i) {
    const double value = draw();
    sum += value;
    sum_of_squares += value * value;
  }
  const double mean = sum / count;
  return {mean, sum_of_squares / count - mean * mean};
}

}  // namespace

TEST_CASE("bit: the HyperRule's schedule follows the dataset size", "[bit]") {
  REQUIRE(recipes::bit_schedule(1) == kSmallSchedule);
  REQUIRE(recipes::bit_schedule(19999) == kSmallSchedule);
  REQUIRE(recipes::bit_schedule(20000) == kMediumSchedule);
  REQUIRE(recipes::bit_schedule(499999) == kMediumSchedule);
  REQUIRE(recipes::bit_schedule(500000) == kLargeSchedule);
  REQUIRE(recipes::bit_schedule(1281167) == kLargeSchedule);  // ImageNet
  REQUIRE_THROWS_WITH(recipes::bit_schedule(0), Contains("dataset size"));
}

TEST_CASE("bit: the HyperRule's resolution follows the image area", "[bit]") {
  auto resolution = [](int64_t height, int64_t width) {
    const recipes::BitResolution r = recipes::bit_resolution(height, width);
    return std::pair{r.resize, r.crop};
  };
  REQUIRE(resolution(28, 28) == std::pair<int64_t, int64_t>{160, 128});    // Fashion-MNIST
  REQUIRE(resolution(32, 32) == std::pair<int64_t, int64_t>{160, 128});    // CIFAR
  REQUIRE(resolution(95, 95) == std::pair<int64_t, int64_t>{160, 128});    // 9025 < 9216
  REQUIRE(resolution(64, 143) == std::pair<int64_t, int64_t>{160, 128});   // 9152 < 9216: the area counts
  REQUIRE(resolution(96, 96) == std::pair<int64_t, int64_t>{512, 480});    // 9216 is not below 96 x 96
  REQUIRE(resolution(224, 224) == std::pair<int64_t, int64_t>{512, 480});  // ImageNet, pets, flowers
}

TEST_CASE("bit: the HyperRule's MixUp starts at 20k examples", "[bit]") {
  REQUIRE(recipes::bit_mixup_alpha(500) == 0.0);
  REQUIRE(recipes::bit_mixup_alpha(19999) == 0.0);
  REQUIRE(recipes::bit_mixup_alpha(20000) == 0.1);
  REQUIRE(recipes::bit_mixup_alpha(1281167) == 0.1);
}

TEST_CASE("bit: the learning rate warms up linearly, then drops tenfold after each boundary", "[bit]") {
  const double base = 0.003;
  // Warmup from 0 over the first boundary.
  REQUIRE(lr_at(0, kSmallSchedule) == 0.0);
  REQUIRE(lr_at(50, kSmallSchedule) == Approx(0.0015));
  REQUIRE(lr_at(99, kSmallSchedule) == Approx(base * 0.99));
  // get_lr divides by 10 for each later boundary strictly below the step: a boundary's own
  // step keeps the higher rate.
  REQUIRE(lr_at(100, kSmallSchedule) == Approx(base));
  REQUIRE(lr_at(200, kSmallSchedule) == Approx(base));
  REQUIRE(lr_at(201, kSmallSchedule) == Approx(base / 10));
  REQUIRE(lr_at(300, kSmallSchedule) == Approx(base / 10));
  REQUIRE(lr_at(301, kSmallSchedule) == Approx(base / 100));
  REQUIRE(lr_at(400, kSmallSchedule) == Approx(base / 100));
  REQUIRE(lr_at(401, kSmallSchedule) == Approx(base / 1000));
  REQUIRE(lr_at(499, kSmallSchedule) == Approx(base / 1000));
  // The last boundary ends the run: get_lr returns None.
  REQUIRE_FALSE(recipes::bit_learning_rate(500, kSmallSchedule, base).has_value());
  REQUIRE_FALSE(recipes::bit_learning_rate(100000, kSmallSchedule, base).has_value());

  // The middle schedule, the same way.
  REQUIRE(lr_at(250, kMediumSchedule) == Approx(base / 2));
  REQUIRE(lr_at(500, kMediumSchedule) == Approx(base));
  REQUIRE(lr_at(3000, kMediumSchedule) == Approx(base));
  REQUIRE(lr_at(3001, kMediumSchedule) == Approx(base / 10));
  REQUIRE(lr_at(6001, kMediumSchedule) == Approx(base / 100));
  REQUIRE(lr_at(9000, kMediumSchedule) == Approx(base / 100));
  REQUIRE(lr_at(9999, kMediumSchedule) == Approx(base / 1000));
  REQUIRE_FALSE(recipes::bit_learning_rate(10000, kMediumSchedule, base).has_value());

  // 0.003 at batch 512, linear in the batch size.
  REQUIRE(recipes::bit_scaled_learning_rate(512) == Approx(0.003));
  REQUIRE(recipes::bit_scaled_learning_rate(128) == Approx(0.00075));
  REQUIRE(recipes::bit_scaled_learning_rate(1024, 0.01) == Approx(0.02));

  REQUIRE_THROWS_WITH(recipes::bit_learning_rate(0, {}, base), Contains("zero steps"));
  REQUIRE_THROWS_WITH(recipes::bit_learning_rate(-1, kSmallSchedule, base), Contains("step must be >= 0"));
}

TEST_CASE("bit: the plan applies the HyperRule unless the config overrides it", "[bit]") {
  const data::ImageDataset set = data::make_synthetic_dataset({.count = 40, .classes = 4, .height = 28, .width = 28});
  recipes::BitConfig config;
  recipes::BitPlan plan = recipes::plan_bit_run(config, set);
  REQUIRE(plan.training_examples == 40);
  REQUIRE(plan.resolution.resize == 160);
  REQUIRE(plan.resolution.crop == 128);
  REQUIRE(plan.schedule == kSmallSchedule);
  REQUIRE(plan.steps() == 500);
  REQUIRE(plan.mixup_alpha == 0.0);
  REQUIRE(plan.learning_rate == Approx(0.003));
  REQUIRE_THAT(recipes::describe(plan, set), Contains("40 examples of 28x28") && Contains("500 steps") &&
                                                 Contains("no MixUp"));

  config.batch_size = 64;
  config.resolution = recipes::BitResolution{.resize = 36, .crop = 32};
  config.schedule = {2, 4, 6};
  config.mixup_alpha = 0.2;
  plan = recipes::plan_bit_run(config, set);
  REQUIRE(plan.resolution.resize == 36);
  REQUIRE(plan.resolution.crop == 32);
  REQUIRE(plan.steps() == 6);
  REQUIRE(plan.mixup_alpha == 0.2);
  REQUIRE(plan.learning_rate == Approx(0.003 * 64 / 512));
  config.scale_learning_rate = false;
  REQUIRE(recipes::plan_bit_run(config, set).learning_rate == Approx(0.003));

  // Few-shot: the HyperRule sees the few-shot set.
  config.examples_per_class = 3;
  const data::ImageDataset few = recipes::bit_training_set(config, set);
  REQUIRE(few.size() == 12);
  REQUIRE(recipes::plan_bit_run(config, few).training_examples == 12);

  // The transforms: a random crop of the resized image with flips, and a plain resize, both to [-1, 1].
  const data::AugmentConfig train = recipes::bit_train_transform({.resize = 160, .crop = 128});
  REQUIRE(train.crop == data::CropMode::ResizeCrop);
  REQUIRE(train.height == 128);
  REQUIRE(train.crop_fraction == Approx(0.8));
  REQUIRE(train.flip_probability == 0.5);
  const data::AugmentConfig eval = recipes::bit_eval_transform({.resize = 160, .crop = 128});
  REQUIRE(eval.height == 128);
  REQUIRE(eval.crop_fraction == 1.0);
  REQUIRE(eval.flip_probability == 0.0);
  // Resizing a uniform grey image gives the same grey at every pixel: (128 / 255 - 0.5) / 0.5.
  const Tensor grey = full({2, 28, 28, 1}, 128.0, kUInt8);
  const Tensor resized = data::augment_batch(grey, {0, 1}, eval, 0, 0, 1);
  REQUIRE(resized.shape() == Shape{2, 1, 128, 128});
  REQUIRE(min(resized).item() == Approx(128.0 / 127.5 - 1.0).margin(1e-5));
  REQUIRE(max(resized).item() == Approx(128.0 / 127.5 - 1.0).margin(1e-5));
}

TEST_CASE("bit: Gamma and Beta draws have the right mean and variance", "[bit][random]") {
  // 20000 draws each: the sample mean's standard error is below 0.01 x its bound here.
  Generator generator(17);
  for (double shape : {0.1, 0.5, 1.0, 3.0}) {
    const Moments m = moments_of(20000, [&] { return sample_gamma(shape, generator); });
    INFO("Gamma(" << shape << "): mean " << m.mean << ", variance " << m.variance);
    REQUIRE(m.mean == Approx(shape).margin(0.05 * std::sqrt(shape) + 0.01));
    REQUIRE(m.variance == Approx(shape).epsilon(0.15));
  }
  for (auto [a, b] : {std::pair{0.1, 0.1}, std::pair{0.4, 0.4}, std::pair{2.0, 5.0}, std::pair{1.0, 1.0}}) {
    double smallest = 1.0, largest = 0.0;
    const Moments m = moments_of(20000, [&] {
      const double x = sample_beta(a, b, generator);
      smallest = std::min(smallest, x);
      largest = std::max(largest, x);
      return x;
    });
    const double mean = a / (a + b), variance = a * b / ((a + b) * (a + b) * (a + b + 1));
    INFO("Beta(" << a << ", " << b << "): mean " << m.mean << " (expected " << mean << "), variance " << m.variance
                 << " (expected " << variance << ")");
    REQUIRE(m.mean == Approx(mean).margin(0.02));
    REQUIRE(m.variance == Approx(variance).epsilon(0.1));
    REQUIRE(smallest >= 0.0);
    REQUIRE(largest <= 1.0);
  }
  // Beta(0.1, 0.1) piles up at both ends: P(x < 0.01) = P(x > 0.99) ~ 0.32 each.
  int near_zero = 0;
  for (int i = 0; i < 2000; ++i) near_zero += sample_beta(0.1, 0.1, generator) < 0.01;
  REQUIRE(near_zero > 2000 * 0.25);
  REQUIRE(near_zero < 2000 * 0.40);

  REQUIRE_THROWS_WITH(sample_gamma(0.0, generator), Contains("shape must be positive"));
  REQUIRE_THROWS_WITH(sample_beta(0.5, -1.0, generator), Contains("b = -1"));
}

TEST_CASE("bit: Beta draws are reproducible from the generator's state", "[bit][random]") {
  Generator first(3), second(3), other_seed(4);
  std::vector<double> a, b, c;
  for (int i = 0; i < 50; ++i) {
    a.push_back(sample_beta(0.1, 0.1, first));
    b.push_back(sample_beta(0.1, 0.1, second));
    c.push_back(sample_beta(0.1, 0.1, other_seed));
  }
  REQUIRE(a == b);
  REQUIRE(a != c);
  REQUIRE(std::set<double>(a.begin(), a.end()).size() == a.size());  // every draw its own stream
  // Restoring a saved state redraws the same number.
  Generator restored(0);
  restored.set_state(3, 10);
  REQUIRE(sample_beta(0.1, 0.1, restored) == a[10]);

  // MixUp's weight is keyed by (seed, step); alpha 0 means no mixing.
  REQUIRE(recipes::mixup_lambda(0.1, 5, 7) == recipes::mixup_lambda(0.1, 5, 7));
  REQUIRE(recipes::mixup_lambda(0.1, 5, 7) != recipes::mixup_lambda(0.1, 5, 8));
  REQUIRE(recipes::mixup_lambda(0.0, 5, 7) == 1.0);
  const std::vector<int64_t> partners = recipes::mixup_partners(16, 5, 7, Device::cpu()).to_vector<int64_t>();
  REQUIRE(std::set<int64_t>(partners.begin(), partners.end()).size() == 16);
  REQUIRE(partners == recipes::mixup_partners(16, 5, 7, Device::cpu()).to_vector<int64_t>());
}

TEST_CASE("bit: MixUp blends images and losses as train.py does", "[bit]") {
  Generator generator(23);
  const int64_t rows = 5, classes = 4;
  const Tensor images = randn({rows, 1, 2, 3}, {}, generator);
  const Tensor labels = from_vector(std::vector<int64_t>{0, 3, 1, 1, 2}, {rows});
  const Tensor partners = from_vector(std::vector<int64_t>{2, 0, 4, 1, 3}, {rows});
  const double lambda = 0.3;

  const recipes::MixedBatch mixed = recipes::mix_batch(images, labels, partners, lambda);
  const std::vector<float> x = images.to_vector<float>(), blended = mixed.images.to_vector<float>();
  const std::vector<int64_t> partner_of = partners.to_vector<int64_t>(), y = labels.to_vector<int64_t>();
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t k = 0; k < 6; ++k) {
      const double expected = lambda * x[static_cast<size_t>(i * 6 + k)] +
                              (1 - lambda) * x[static_cast<size_t>(partner_of[static_cast<size_t>(i)] * 6 + k)];
      REQUIRE(blended[static_cast<size_t>(i * 6 + k)] == Approx(expected).margin(1e-6));
    }
  }
  const std::vector<int64_t> partner_labels = mixed.partner_labels.to_vector<int64_t>();
  REQUIRE(partner_labels == std::vector<int64_t>{1, 0, 2, 3, 1});

  // The mixed loss by hand, in double: lambda CE(p, y) + (1 - lambda) CE(p, y[partner]), and
  // its gradient (softmax - (lambda onehot(y) + (1 - lambda) onehot(y[partner]))) / N.
  Tensor logits = mul(randn({rows, classes}, {}, generator), 3.0).detach();
  logits.set_requires_grad(true);
  const std::vector<float> z = logits.to_vector<float>();
  double expected_loss = 0.0;
  std::vector<double> expected_gradient(static_cast<size_t>(rows * classes));
  for (int64_t i = 0; i < rows; ++i) {
    double largest = -1e300;
    for (int64_t c = 0; c < classes; ++c) largest = std::max(largest, static_cast<double>(z[static_cast<size_t>(i * classes + c)]));
    double total = 0.0;
    for (int64_t c = 0; c < classes; ++c) total += std::exp(z[static_cast<size_t>(i * classes + c)] - largest);
    auto log_probability = [&](int64_t c) { return z[static_cast<size_t>(i * classes + c)] - largest - std::log(total); };
    const int64_t first = y[static_cast<size_t>(i)], second = partner_labels[static_cast<size_t>(i)];
    expected_loss -= (lambda * log_probability(first) + (1 - lambda) * log_probability(second)) / rows;
    for (int64_t c = 0; c < classes; ++c) {
      const double target = lambda * (c == first) + (1 - lambda) * (c == second);
      expected_gradient[static_cast<size_t>(i * classes + c)] = (std::exp(log_probability(c)) - target) / rows;
    }
  }
  const Tensor loss = recipes::mixup_cross_entropy(logits, mixed.labels, mixed.partner_labels, lambda);
  REQUIRE(loss.item() == Approx(expected_loss).epsilon(1e-5));
  loss.backward();
  const std::vector<float> gradient = logits.grad().to_vector<float>();
  for (size_t k = 0; k < gradient.size(); ++k) REQUIRE(gradient[k] == Approx(expected_gradient[k]).margin(1e-6));

  // lambda = 1 is the plain cross-entropy.
  REQUIRE(recipes::mixup_cross_entropy(logits, labels, mixed.partner_labels, 1.0).item() ==
          cross_entropy(logits, labels).item());
  REQUIRE_THROWS_WITH(recipes::mix_batch(images, labels, partners, 1.5), Contains("lambda"));
}

TEST_CASE("bit: bad settings are refused with a message naming them", "[bit]") {
  auto refused = [](const recipes::BitConfig& config, const std::string& message) {
    REQUIRE_THROWS_AS(recipes::check_bit_config(config), Error);
    REQUIRE_THROWS_WITH(recipes::check_bit_config(config), Contains(message));
  };
  recipes::BitConfig config;
  config.batch_split = 3;
  refused(config, "batch_size 512 is not divisible by batch_split 3");
  config = {};
  config.batch_split = 0;
  refused(config, "batch_split must be >= 1, got 0");
  config = {};
  config.schedule = {0};
  refused(config, "first boundary");
  config = {};
  config.schedule = {10, 10, 20};
  refused(config, "must increase, got 10 after 10");
  config = {};
  config.base_learning_rate = -0.1;
  refused(config, "base_learning_rate must be positive, got -0.1");
  config = {};
  config.resolution = recipes::BitResolution{.resize = 100, .crop = 128};
  refused(config, "resize 100 and crop 128");
  config = {};
  config.mixup_alpha = -1.0;
  refused(config, "mixup_alpha");
  config = {};
  config.resume = "/nonexistent/checkpoint.safetensors";
  refused(config, "/nonexistent/checkpoint.safetensors");

  // The data: an empty training set, and a model whose outputs do not match the classes.
  config = {};
  config.show_progress = false;
  REQUIRE_THROWS_WITH(recipes::plan_bit_run(config, data::ImageDataset{}), Contains("training set is empty"));
  const data::ImageDataset set = data::make_synthetic_dataset({.count = 16, .classes = 4, .height = 8, .width = 8});
  REQUIRE_THROWS_WITH(recipes::train_bit(*std::make_shared<nn::Linear>(1, 4), data::ImageDataset{}, {}, config),
                      Contains("training set is empty"));
  config.resolution = recipes::BitResolution{.resize = 10, .crop = 8};
  config.batch_size = 8;
  nn::Sequential three_outputs{std::make_shared<nn::Flatten>(), std::make_shared<nn::Linear>(64, 3)};
  REQUIRE_THROWS_WITH(recipes::train_bit(three_outputs, set, {}, config),
                      Contains("3 outputs") && Contains("4 classes"));
  config.examples_per_class = 5;  // the synthetic set has 4 of each class
  REQUIRE_THROWS_WITH(recipes::train_bit(three_outputs, set, {}, config), Contains("fewer than the 5 asked for"));
}
