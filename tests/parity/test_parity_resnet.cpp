// ResNet-18 (CIFAR stem) training on both devices: the same initial weights and batches
// must give the same losses, the same weights after a few SGD steps, and the same
// evaluation-mode features (running statistics included). The ResNet counterpart of the
// SmallConvNet case in test_parity_training.cpp: residual adds, projection shortcuts and
// 20 batch norms, compounded.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>

#include "engine/cuda.h"
#include "engine/data/synthetic.h"
#include "engine/ops.h"
#include "engine/optim/sgd.h"
#include "models/heads.h"
#include "models/resnet.h"
#include "tests/parity/parity.h"

using namespace visrep;

namespace {

// Encoder + linear classifier, so one state dict carries both across devices.
class ResNetClassifier : public nn::Module {
 public:
  explicit ResNetClassifier(int64_t classes) {
    encoder = register_module("encoder", std::make_shared<models::ResNet>(models::ResNetConfig{
                                             .depth = 18, .stem = models::ResNetStem::Cifar, .in_channels = 1}));
    classifier =
        register_module("classifier", std::make_shared<models::LinearClassifier>(encoder->feature_dim(), classes));
  }
  Tensor forward(const Tensor& images) override { return classifier->forward(encoder->forward(images)); }
  std::string type_name() const override { return "ResNetClassifier"; }

  std::shared_ptr<models::ResNet> encoder;
  std::shared_ptr<models::LinearClassifier> classifier;
};

Tensor batch_indices(int step, int batch) {
  return arange(static_cast<double>(step * batch), static_cast<double>((step + 1) * batch), 1.0, kInt64);
}

Tensor batch_images(const data::ImageDataset& dataset, int step, int batch) {
  return data::to_float_nchw(index_select(dataset.images, 0, batch_indices(step, batch)));
}

std::vector<double> train_steps(ResNetClassifier& model, const data::ImageDataset& dataset, Device device, int steps,
                                int batch) {
  model.to(device);
  model.train();
  optim::Sgd optimizer(model.parameters(), {.learning_rate = 0.05, .momentum = 0.9, .weight_decay = 5e-4});
  std::vector<double> losses;
  for (int step = 0; step < steps; ++step) {
    Tensor images = batch_images(dataset, step, batch).to(device);
    Tensor labels = index_select(dataset.labels, 0, batch_indices(step, batch)).to(device);
    Tensor loss = cross_entropy(model(images), labels);
    optimizer.zero_grad();
    loss.backward();
    optimizer.step();
    losses.push_back(loss.item());
  }
  return losses;
}

double relative_difference(const Tensor& a, const Tensor& b) {
  const Tensor difference = sub(a.cpu(), b.cpu());
  return std::sqrt(sum(mul(difference, difference)).item() / std::max(sum(mul(b.cpu(), b.cpu())).item(), 1e-30));
}

}  // namespace

TEST_CASE("resnet-18 cifar-stem training steps", "[gpu]") {
  REQUIRE(cuda_available());
  constexpr int kSteps = 3, kBatch = 16;
  const data::ImageDataset dataset =
      data::make_synthetic_dataset({.count = kSteps * kBatch + kBatch, .classes = 4, .seed = 7});
  manual_seed(23);
  ResNetClassifier on_cpu(4);
  ResNetClassifier on_cuda(4);
  on_cuda.load_state_dict(on_cpu.state_dict());

  const std::vector<double> cpu_losses = train_steps(on_cpu, dataset, Device::cpu(), kSteps, kBatch);
  const std::vector<double> cuda_losses = train_steps(on_cuda, dataset, Device::cuda(), kSteps, kBatch);
  for (size_t i = 0; i < cpu_losses.size(); ++i) {
    INFO("step " << i << ": cpu loss " << cpu_losses[i] << ", cuda loss " << cuda_losses[i]);
    // float32 with different summation orders (cuDNN vs im2col + OpenBLAS), over 3 steps.
    CHECK(cuda_losses[i] == Approx(cpu_losses[i]).epsilon(2e-3));
  }
  const auto cpu_state = on_cpu.state_dict();
  for (const auto& [name, tensor] : on_cuda.state_dict()) {
    if (!is_floating(tensor.dtype())) {
      CHECK(sum(tensor.cpu()).item() == sum(cpu_state.at(name)).item());  // num_batches_tracked
      continue;
    }
    const double relative = relative_difference(tensor, cpu_state.at(name));
    INFO(name << " relative difference " << relative);
    CHECK(relative < 2e-3);
  }

  // Evaluation mode: running statistics instead of batch statistics.
  on_cpu.eval();
  on_cuda.eval();
  const Tensor images = batch_images(dataset, kSteps, kBatch);
  const Tensor cpu_features = on_cpu.encoder->forward(images);
  const Tensor cuda_features = on_cuda.encoder->forward(images.to(Device::cuda()));
  REQUIRE(cuda_features.shape() == Shape{kBatch, 512});
  INFO("eval features relative difference " << relative_difference(cuda_features, cpu_features));
  CHECK(relative_difference(cuda_features, cpu_features) < 2e-3);
}
