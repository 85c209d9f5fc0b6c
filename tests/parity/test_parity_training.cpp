// The whole training path on both devices: SmallConvNet, cross-entropy and SGD with
// momentum from the same initial weights and batches must give the same losses and the
// same weights after a few steps (the sum of every op's parity, compounded).
#include <catch2/catch.hpp>

#include "engine/cuda.h"
#include "engine/data/synthetic.h"
#include "engine/ops.h"
#include "engine/optim/sgd.h"
#include "models/small_convnet.h"
#include "tests/parity/parity.h"

using namespace visrep;

namespace {

std::vector<double> train_steps(models::SmallConvNet& model, const data::ImageDataset& dataset, Device device,
                                int steps) {
  model.to(device);
  model.train();
  optim::Sgd optimizer(model.parameters(), {.learning_rate = 0.05, .momentum = 0.9, .weight_decay = 5e-4});
  std::vector<double> losses;
  for (int step = 0; step < steps; ++step) {
    const Tensor indices = arange(static_cast<double>(step * 16), static_cast<double>(step * 16 + 16), 1.0, kInt64);
    Tensor images = data::to_float_nchw(index_select(dataset.images, 0, indices)).to(device);
    Tensor labels = index_select(dataset.labels, 0, indices).to(device);
    Tensor loss = cross_entropy(model(images), labels);
    optimizer.zero_grad();
    loss.backward();
    optimizer.step();
    losses.push_back(loss.item());
  }
  return losses;
}

}  // namespace

TEST_CASE("small convnet training steps", "[gpu]") {
  REQUIRE(cuda_available());
  const data::ImageDataset dataset = data::make_synthetic_dataset({.count = 64, .classes = 4, .seed = 5});
  manual_seed(21);
  models::SmallConvNet on_cpu({.in_channels = 1, .classes = 4, .width = 8});
  models::SmallConvNet on_cuda({.in_channels = 1, .classes = 4, .width = 8});
  on_cuda.load_state_dict(on_cpu.state_dict());

  const std::vector<double> cpu_losses = train_steps(on_cpu, dataset, Device::cpu(), 4);
  const std::vector<double> cuda_losses = train_steps(on_cuda, dataset, Device::cuda(), 4);
  for (size_t i = 0; i < cpu_losses.size(); ++i) {
    INFO("step " << i << ": cpu loss " << cpu_losses[i] << ", cuda loss " << cuda_losses[i]);
    // float32 with different summation orders, compounded over a few SGD steps.
    CHECK(cuda_losses[i] == Approx(cpu_losses[i]).epsilon(1e-3));
  }
  REQUIRE(cpu_losses.back() < cpu_losses.front());
  const auto cpu_state = on_cpu.state_dict();
  for (const auto& [name, tensor] : on_cuda.state_dict()) {
    if (!is_floating(tensor.dtype())) continue;
    const Tensor difference = sub(tensor.cpu(), cpu_state.at(name));
    const double relative = std::sqrt(sum(mul(difference, difference)).item() /
                                      std::max(sum(mul(cpu_state.at(name), cpu_state.at(name))).item(), 1e-30));
    INFO(name << " relative difference " << relative);
    CHECK(relative < 1e-3);
  }
  const auto memory = cuda::memory_stats();
  INFO("cuda memory: current " << memory.current_bytes << ", peak " << memory.peak_bytes << ", reserved "
                               << memory.reserved_bytes);
  CHECK(memory.peak_bytes > 0);
  CHECK(memory.reserved_bytes >= memory.current_bytes);
}
