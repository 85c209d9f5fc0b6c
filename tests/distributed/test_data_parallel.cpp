// Data-parallel training against one process, on the ranks of a real job (under mpirun on 1 to
// 4 ranks; tests/CMakeLists.txt): the acceptance of recipes/data_parallel.h.
//
// Every rank computes, by itself, what one process computes on the whole global batch (the
// reference), and takes part in the job's step on its slice of that batch; the two must agree
// to rounding (float64 throughout, so that the differences are the summation order's, ~1e-15):
//   - the cross-rank gather's backward against finite differences of the sum of every rank's
//     loss (the gradient of rows another rank used comes back to their owner);
//   - NT-Xent and SupCon (positives on other ranks) through a model with SyncBatchNorm: the
//     global loss, every gradient after the bucketed average, the parameters and the running
//     statistics after 3 LARS steps;
//   - SyncBatchNorm with unequal local counts, an empty rank among them: the output, grad_x,
//     the parameter gradients and the running mean and (unbiased) variance;
//   - BiT's step: cross-entropy over each rank's slice, SGD with momentum, 3 steps;
//   - the evaluation shared out over the ranks (encode_dataset, knn_accuracy): every rank takes
//     part and gets the one-process numbers (an evaluation only rank 0 ran would leave the
//     others waiting at their next collective).
// Rank 0 prints one line per quantity, "equivalence: <quantity>, P = <ranks>: max relative
// difference <d>", the table the README quotes.
#include <fmt/format.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "engine/autograd.h"
#include "engine/data/augment.h"
#include "engine/data/dataset.h"
#include "engine/nn/layers.h"
#include "engine/ops.h"
#include "engine/optim/lars.h"
#include "engine/optim/sgd.h"
#include "engine/random.h"
#include "recipes/data_parallel.h"
#include "recipes/evaluation.h"
#include "tests/distributed/distributed_test.h"

namespace visrep::distributed::test {
namespace {

using recipes::DataParallel;

// max |actual - expected| / max(max |expected|, 1e-3), as a number to print and to bound. (The
// floor: the gradient of the bias before a batch norm is 0 but for rounding, 1e-16 either way;
// every other quantity here is larger than 1e-2.)
double relative_difference(const Tensor& actual, const Tensor& expected) {
  if (!actual.defined() || !expected.defined()) return actual.defined() == expected.defined() ? 0.0 : INFINITY;
  const Tensor a = actual.detach().to(kFloat64).contiguous(), b = expected.detach().to(kFloat64).contiguous();
  if (a.shape() != b.shape()) return INFINITY;
  if (b.numel() == 0) return 0.0;
  const double scale = std::max(max(abs(b)).item(), 1e-3);
  return max(abs(sub(a, b))).item() / scale;
}

// The largest difference of one quantity over the checks of a test case; rank 0 prints it.
struct Agreement {
  std::string quantity;
  double largest = 0.0;

  void add(const Tensor& actual, const Tensor& expected, const std::string& what) {
    const double difference = relative_difference(actual, expected);
    INFO(fmt::format("{}: {} against the one-process {}", what, actual.description(), expected.description()));
    CHECK(difference < 1e-10);
    largest = std::max(largest, difference);
  }
  ~Agreement() {
    if (world().rank() == 0) {
      std::printf("equivalence: %s, P = %d: max relative difference %.1e\n", quantity.c_str(), world().size(), largest);
    }
  }
};

// Rank r's images of a global batch of `images` (view-major: rows i and i + images are image
// i's two views): rows [b, e) of each view, view-major again, as the loader builds a slice.
Tensor slice_of_views(const Tensor& rows, int64_t images, const DataParallel& parallel) {
  const auto [begin, end] = parallel.local_range(images);
  return concat({rows.narrow(0, begin, end - begin), rows.narrow(0, images + begin, end - begin)}).contiguous();
}

// The same seeded model twice: one for the reference, one for the job. Linear -> BatchNorm1d
// -> ReLU -> Linear, float64.
std::shared_ptr<nn::Sequential> small_model(bool batch_norm) {
  manual_seed(41);
  auto model = std::make_shared<nn::Sequential>();
  model->push_back(std::make_shared<nn::Linear>(5, 8));
  if (batch_norm) model->push_back(std::make_shared<nn::BatchNorm1d>(8));
  model->push_back(std::make_shared<nn::ReLU>());
  model->push_back(std::make_shared<nn::Linear>(8, 4));
  model->to(kFloat64);
  return model;
}

// Gradients and parameters and buffers of `ranked` against `reference`'s.
void compare_models(const nn::Module& ranked, const nn::Module& reference, Agreement& gradients, Agreement& state,
                    const std::string& when) {
  const nn::NamedTensors ours = ranked.named_parameters(), theirs = reference.named_parameters();
  for (size_t k = 0; k < ours.size(); ++k) {
    gradients.add(ours[k].second.grad(), theirs[k].second.grad(), when + ": gradient of " + ours[k].first);
  }
  const auto our_state = ranked.state_dict(), their_state = reference.state_dict();
  for (const auto& [name, tensor] : our_state) {
    if (tensor.dtype() == kFloat64) state.add(tensor, their_state.at(name), when + ": " + name);
  }
}

// Three optimizer steps of `reference` on the global batch (expected_loss()) and of `ranked`
// as this rank of the job on its slice (rank_share(), its share of the global loss), the
// gradients averaged over the ranks in buckets of bucket_bytes; the loss, every gradient and
// the parameters and buffers compared at each step, as `name`.
template <class Optimizer, class ExpectedLoss, class RankShare>
void check_three_steps(const std::string& name, const std::string& optimizer_name, nn::Module& reference,
                       nn::Module& ranked, Optimizer& reference_optimizer, Optimizer& ranked_optimizer,
                       ExpectedLoss&& expected_loss, RankShare&& rank_share, int64_t bucket_bytes) {
  const DataParallel parallel(&world());
  Agreement loss{name + " loss"}, gradients{name + " gradients"},
      state{name + " parameters after 3 " + optimizer_name + " steps"};
  for (int step = 0; step < 3; ++step) {
    const std::string when = fmt::format("step {}", step);
    reference_optimizer.zero_grad();
    const Tensor expected = expected_loss();
    expected.backward();
    ranked_optimizer.zero_grad();
    const Tensor share = rank_share();
    share.backward();
    parallel.average_gradients(ranked.parameters(), bucket_bytes);
    // The global loss: the mean of the ranks' shares.
    loss.add(from_vector(std::vector<double>{parallel.sum(share.item()) / parallel.size()}),
             from_vector(std::vector<double>{expected.item()}), when + ": loss");
    compare_models(ranked, reference, gradients, state, when);
    reference_optimizer.step();
    ranked_optimizer.step();
  }
  compare_models(ranked, reference, gradients, state, "after 3 steps");
}

// Three LARS steps of a contrastive loss on the global batch `x` (2B rows, view-major) and
// its labels (B): once here as one process, once as this rank of the job on its slice.
template <class GlobalLoss, class RankLoss>
void check_contrastive_steps(const std::string& name, const Tensor& x, const Tensor& labels, GlobalLoss&& global_loss,
                             RankLoss&& rank_loss) {
  Communicator& comm = world();
  const DataParallel parallel(&comm);
  const int64_t images = x.size(0) / 2;
  const auto reference = small_model(true), ranked = small_model(true);
  nn::synchronize_batch_norm(*ranked, parallel.ranks());
  const optim::LarsOptions options{.learning_rate = 0.5, .weight_decay = 1e-4};
  optim::Lars reference_optimizer(reference->parameters(), options), ranked_optimizer(ranked->parameters(), options);
  const Tensor local_x = slice_of_views(x, images, parallel);
  const auto [begin, end] = parallel.local_range(images);
  const Tensor local_labels = labels.defined() ? labels.narrow(0, begin, end - begin).contiguous() : Tensor();

  check_three_steps(
      name, "LARS", *reference, *ranked, reference_optimizer, ranked_optimizer,
      [&] { return global_loss((*reference)(x), labels); },
      [&] { return rank_loss((*ranked)(local_x), local_labels, comm); }, int64_t{25} << 20);
}

// The global batch of 6 images per rank (every rank draws the same one).
Tensor global_views(int64_t images) {
  Generator generator(1234);
  return randn({2 * images, 5}, TensorOptions(kFloat64), generator);
}

}  // namespace

TEST_CASE("all_gather_rows: the backward pass against finite differences of the sum of every rank's loss",
          "[data-parallel]") {
  // Rank r holds x_r (2 x 3) and its loss L_r = sum(w_r * exp(all_gather_rows(x_r))): every
  // rank's loss uses every rank's rows. Rank q's gradient of L = sum_r L_r with respect to x_q
  // is sum_r dL_r/dy[q's block], which the backward's reduce-scatter computes; the finite
  // differences move one element of x_q on rank q alone and add up every rank's loss.
  Communicator& comm = world();
  const DataParallel parallel(&comm);
  Generator generator(100 + static_cast<uint64_t>(comm.rank()));
  const Tensor x = randn({2, 3}, TensorOptions(kFloat64), generator);
  const Tensor w = randn({2 * comm.size(), 3}, TensorOptions(kFloat64), generator);
  const auto rank_loss = [&](const Tensor& input) { return sum(mul(w, exp(all_gather_rows(input, comm)))); };

  const Tensor leaf = x.clone().set_requires_grad();
  rank_loss(leaf).backward();
  const std::vector<double> analytic = leaf.grad().to_vector<double>();

  const double eps = 1e-6;
  double largest = 0.0;
  NoGradGuard no_grad;
  for (int q = 0; q < comm.size(); ++q) {
    for (int64_t j = 0; j < x.numel(); ++j) {
      const auto global_loss = [&](double shift) {
        Tensor moved = x.clone();
        if (comm.rank() == q) moved.view({-1}).narrow(0, j, 1).add_(full({1}, shift, TensorOptions(kFloat64)));
        return parallel.sum(rank_loss(moved).item());
      };
      const double numeric = (global_loss(eps) - global_loss(-eps)) / (2 * eps);
      if (comm.rank() != q) continue;
      const double difference = std::abs(numeric - analytic[static_cast<size_t>(j)]);
      INFO(fmt::format("rank {} element {}: analytic {}, finite differences {}", q, j, analytic[j], numeric));
      CHECK(difference < 1e-7 * std::max(1.0, std::abs(numeric)));
      largest = std::max(largest, difference);
    }
  }
  const Tensor most = from_vector(std::vector<double>{largest});
  comm.all_reduce(most, ReduceOp::Max);
  if (comm.rank() == 0) {
    std::printf("equivalence: all_gather_rows backward vs finite differences, P = %d: max absolute difference %.1e\n",
                comm.size(), most.item());
  }
}

TEST_CASE("data parallel: NT-Xent through SyncBatchNorm, 3 LARS steps, as one process on the global batch",
          "[data-parallel]") {
  const int64_t images = 2 * world().size() * 3;  // divisible by 1 to 4 ranks
  const Tensor x = global_views(images);
  check_contrastive_steps(
      "NT-Xent", x, Tensor(), [](const Tensor& h, const Tensor&) { return nt_xent_loss(h, 0.5); },
      [](const Tensor& h, const Tensor&, Communicator& comm) { return nt_xent_loss(h, 0.5, comm); });
}

TEST_CASE("data parallel: SupCon with positives on other ranks, 3 LARS steps, as one process", "[data-parallel]") {
  // 12 images of 3 classes per rank, in an order that puts every class on every rank.
  const int64_t images = 12 * world().size();
  std::vector<int64_t> classes(static_cast<size_t>(images));
  for (int64_t i = 0; i < images; ++i) classes[static_cast<size_t>(i)] = (i * 7 + i / 5) % 3;
  const Tensor labels = from_vector(classes);
  for (const ContrastMode mode : {ContrastMode::All, ContrastMode::One}) {
    const std::string name = mode == ContrastMode::All ? "SupCon (all)" : "SupCon (one)";
    check_contrastive_steps(
        name, global_views(images), labels,
        [mode](const Tensor& h, const Tensor& l) { return supcon_loss(h, l, 0.1, 0.07, mode); },
        [mode](const Tensor& h, const Tensor& l, Communicator& comm) {
          return supcon_loss(h, l, 0.1, 0.07, mode, comm);
        });
  }
}

TEST_CASE("data parallel: SyncBatchNorm with unequal local counts and an empty rank is batch norm of the whole batch",
          "[data-parallel]") {
  // Rank r holds counts[r] rows of the global (N, 3) batch, in rank order (rank 1's are empty).
  Communicator& comm = world();
  const std::vector<int64_t> counts = {5, 0, 2, 7};
  int64_t total = 0, begin = 0;
  for (int k = 0; k < comm.size(); ++k) {
    if (k == comm.rank()) begin = total;
    total += counts[static_cast<size_t>(k)];
  }
  const int64_t count = counts[static_cast<size_t>(comm.rank())];
  Generator generator(77);
  const TensorOptions f64(kFloat64);
  const Tensor x = add(mul(randn({total, 3}, f64, generator), 2.0), 0.5);
  const Tensor dy = randn({total, 3}, f64, generator);
  const Tensor weight0 = randn({3}, f64, generator), bias0 = randn({3}, f64, generator);
  const Tensor start_mean = randn({3}, f64, generator), start_var = add(rand({3}, f64, generator), 0.5);

  Agreement agreement{"SyncBatchNorm (counts 5, 0, 2, 7 over the ranks)"};
  for (const int rows_per_item : {1, 4}) {  // (N, C) and (N, C, 2, 2)
    const Tensor global_x = rows_per_item == 1 ? x : x.view({total, 3, 1, 1}).expand({total, 3, 2, 2}).contiguous();
    const Tensor global_dy = rows_per_item == 1 ? dy : dy.view({total, 3, 1, 1}).expand({total, 3, 2, 2}).contiguous();
    const std::string shape = rows_per_item == 1 ? "(N, C)" : "(N, C, H, W)";

    const Tensor reference_x = global_x.clone().set_requires_grad();
    const Tensor reference_weight = weight0.clone().set_requires_grad(),
                 reference_bias = bias0.clone().set_requires_grad();
    const Tensor reference_mean = start_mean.clone(), reference_var = start_var.clone();
    const Tensor expected = batch_norm(reference_x, reference_mean, reference_var, reference_weight, reference_bias);
    sum(mul(expected, global_dy)).backward();

    const Tensor local_x = global_x.narrow(0, begin, count).contiguous().set_requires_grad();
    const Tensor weight = weight0.clone().set_requires_grad(), bias = bias0.clone().set_requires_grad();
    const Tensor mean = start_mean.clone(), var = start_var.clone();
    const Tensor y = sync_batch_norm(local_x, mean, var, weight, bias, {}, comm);
    sum(mul(y, global_dy.narrow(0, begin, count))).backward();

    agreement.add(y, expected.narrow(0, begin, count), shape + " output");
    if (count > 0) agreement.add(local_x.grad(), reference_x.grad().narrow(0, begin, count), shape + " grad_x");
    // The parameters' gradients are each rank's own sums: their sum over the ranks is the
    // whole batch's (data-parallel training's average, times P).
    for (const auto& [ours, theirs, what] :
         {std::tuple<Tensor, Tensor, std::string>{weight, reference_weight, "grad_weight"},
          std::tuple<Tensor, Tensor, std::string>{bias, reference_bias, "grad_bias"}}) {
      const Tensor total_gradient = ours.grad().defined() ? ours.grad().clone() : zeros({3}, f64);
      comm.all_reduce(total_gradient, ReduceOp::Sum);
      agreement.add(total_gradient, theirs.grad(), shape + " " + what + " summed over the ranks");
    }
    agreement.add(mean, reference_mean, shape + " running mean");
    agreement.add(var, reference_var, shape + " running variance (unbiased, global count)");
  }
}

TEST_CASE("data parallel: BiT's step (cross-entropy over each rank's slice, SGD with momentum), 3 steps",
          "[data-parallel]") {
  Communicator& comm = world();
  const DataParallel parallel(&comm);
  const int64_t images = 4 * comm.size() * 3;
  Generator generator(5);
  const Tensor x = randn({images, 5}, TensorOptions(kFloat64), generator);
  const Tensor labels = randint(0, 4, {images}, kInt64, generator);
  const auto [begin, end] = parallel.local_range(images);
  const Tensor local_x = x.narrow(0, begin, end - begin).contiguous();
  const Tensor local_labels = labels.narrow(0, begin, end - begin).contiguous();
  const auto reference = small_model(false), ranked = small_model(false);
  const optim::SgdOptions options{.learning_rate = 0.3, .momentum = 0.9};
  optim::Sgd reference_optimizer(reference->parameters(), options), ranked_optimizer(ranked->parameters(), options);

  // (The slice's mean cross-entropy is the rank's share; buckets of 256 bytes: several of them.)
  check_three_steps(
      "BiT step", "SGD", *reference, *ranked, reference_optimizer, ranked_optimizer,
      [&] { return cross_entropy((*reference)(x), labels); },
      [&] { return cross_entropy((*ranked)(local_x), local_labels); }, 256);
}

TEST_CASE("data parallel: the evaluation takes every rank and gives every rank the one-process numbers",
          "[data-parallel]") {
  Communicator& comm = world();
  // 23 images (not divisible by 2, 3 or 4: the shares differ) of 3 classes, 4x4 grey.
  Generator generator(9);
  data::ImageDataset dataset;
  dataset.images = randint(0, 256, {23, 4, 4, 1}, kInt64, generator).to(kUInt8);
  dataset.labels = randint(0, 3, {23}, kInt64, generator);
  dataset.class_names = {"a", "b", "c"};
  manual_seed(3);
  nn::Sequential encoder{std::make_shared<nn::Flatten>(), std::make_shared<nn::Linear>(16, 6)};
  const data::AugmentConfig transform = recipes::evaluation_transform(data::augment_preset("eval", 4));

  Agreement agreement{"evaluation (encode_dataset, knn_accuracy)"};
  const Tensor expected = recipes::encode_dataset(encoder, dataset, transform, Device::cpu(), 5);
  const Tensor shared = recipes::encode_dataset(encoder, dataset, transform, Device::cpu(), 5, &comm);
  agreement.add(shared, expected, "features");
  const recipes::KnnOptions knn{.k = 3};
  const double one = recipes::knn_accuracy(expected, dataset.labels, expected, dataset.labels, 3, knn);
  const double every = recipes::knn_accuracy(shared, dataset.labels, shared, dataset.labels, 3, knn, &comm);
  agreement.add(from_vector(std::vector<double>{every}), from_vector(std::vector<double>{one}), "kNN accuracy");
}

}  // namespace visrep::distributed::test
