// End-to-end: the visrep-classifier binary as a user runs it, through a shell, with its
// exit status and its output (stdout and stderr together): help, bad flags, bad data
// folders, and a tiny real run on an MNIST-format dataset written here, whose run folder
// must hold readable metrics, a loadable checkpoint and a PNG plot.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/data/synthetic.h"
#include "engine/io/safetensors.h"
#include "engine/ops.h"
#include "tests/support/apps.h"
#include "tests/support/files.h"
#include "tests/support/mnist_files.h"
#include "tests/support/test_data.h"

#ifndef VISREP_CLASSIFIER_BINARY
#error "tests/CMakeLists.txt passes the path of visrep-classifier as VISREP_CLASSIFIER_BINARY"
#endif

using namespace visrep;
using namespace visrep::testing;
using Catch::Contains;

namespace {

AppResult run_classifier(const std::string& arguments) { return run_app(VISREP_CLASSIFIER_BINARY, arguments); }

// 256 training and 64 test images of 28x28 from one synthetic draw (the same ten class
// prototypes in both splits), as the four MNIST files under `root`.
void write_tiny_dataset(const std::string& root, Generator& generator) {
  const auto seed = static_cast<uint64_t>(randint(0, int64_t{1} << 31, {1}, kInt64, generator).item<int64_t>());
  const data::ImageDataset all =
      data::make_synthetic_dataset({.count = 320, .classes = 10, .height = 28, .width = 28, .seed = seed});
  write_mnist_split(root, true, data::subset(all, arange(0.0, 256.0, 1.0, kInt64)));
  write_mnist_split(root, false, data::subset(all, arange(256.0, 320.0, 1.0, kInt64)));
}

}  // namespace

TEST_CASE("classifier help", "[e2e]") {
  const AppResult result = run_classifier("--help");
  INFO(result.output);
  REQUIRE(result.exit_code == 0);
  for (const char* flag : {"--data", "--digits", "--epochs", "--batch-size", "--lr", "--momentum", "--weight-decay",
                           "--width", "--train-limit", "--test-limit", "--seed", "--device", "--run-dir"}) {
    CHECK_THAT(result.output, Contains(flag));
  }
}

TEST_CASE("classifier bad flags", "[e2e]") {
  // Each is refused before any data is read (the data folder does not exist), with a
  // message that names the flag or the value.
  const std::string no_data = "--data /nonexistent-visrep-data ";
  struct Case {
    std::string arguments;
    std::vector<std::string> named;
  };
  const std::vector<Case> cases = {
      {"--no-such-flag", {"--no-such-flag"}},
      {"--epochs 0", {"--epochs", "0"}},
      {"--epochs many", {"--epochs", "many"}},
      {"--batch-size 1", {"--batch-size", "1"}},
      {"--lr -0.5", {"--lr", "-0.5"}},
      {"--weight-decay -1", {"--weight-decay", "-1"}},
      {"--device tpu", {"--device", "tpu"}},
      {"--width", {"--width"}},  // the value is missing
  };
  for (const Case& c : cases) {
    INFO(c.arguments);
    const AppResult result = run_classifier(no_data + c.arguments);
    require_clean_failure(result);
    INFO(result.output);
    for (const std::string& name : c.named) CHECK_THAT(result.output, Contains(name));
    CHECK(result.output.size() < 300);  // a sentence or two, not a screenful
    CHECK_THAT(result.output, !Contains("nonexistent-visrep-data"));  // stopped before the data
  }
}

TEST_CASE("classifier missing data", "[e2e]") {
  TemporaryDirectory directory;
  const AppResult result = run_classifier("--data " + quoted(directory.path().string()) + " --epochs 1");
  INFO(result.output);
  REQUIRE(result.exit_code == 1);
  CHECK_THAT(result.output, Contains("error:") && Contains("train-images-idx3-ubyte") &&
                                Contains(directory.path().string()));
  CHECK(directory.entries().empty());
}

TEST_CASE("classifier trains a tiny dataset", "[e2e]") {
  Generator generator = generator_for("classifier trains a tiny dataset");
  TemporaryDirectory directory;
  const std::string data_root = directory.file("data"), run_dir = directory.file("run");
  std::filesystem::create_directory(data_root);
  write_tiny_dataset(data_root, generator);

  const AppResult result = run_classifier("--data " + quoted(data_root) + " --epochs 1 --batch-size 32 --width 4 " +
                                          "--run-dir " + quoted(run_dir));
  INFO(result.output);
  REQUIRE(result.exit_code == 0);
  CHECK_THAT(result.output, Contains("256 train / 64 test images of 28x28"));
  const size_t accuracy_at = result.output.rfind("test accuracy ");  // the final report, on stdout
  REQUIRE(accuracy_at != std::string::npos);
  const double printed_accuracy = std::stod(result.output.substr(accuracy_at + 14));

  // Exactly the three files, no temporaries left behind.
  std::vector<std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(run_dir)) files.push_back(entry.path().filename());
  std::sort(files.begin(), files.end());
  REQUIRE(files == std::vector<std::string>{"loss.png", "metrics.jsonl", "model.safetensors"});

  // One record per step (256 / 32 = 8 full batches), then one for the epoch.
  const std::vector<nlohmann::json> records = read_json_lines(run_dir + "/metrics.jsonl");
  REQUIRE(records.size() == 9);
  for (int step = 0; step < 8; ++step) {
    INFO("step " << step << ": " << records[step].dump());
    CHECK(records[step]["kind"] == "step");
    CHECK(records[step]["step"] == step);
    CHECK(records[step]["epoch"] == 1);
    CHECK(std::isfinite(records[step]["loss"].get<double>()));
    CHECK(records[step]["loss"].get<double>() > 0);
  }
  const nlohmann::json& epoch = records.back();
  INFO(epoch.dump());
  CHECK(epoch["kind"] == "epoch");
  CHECK(epoch["epoch"] == 1);
  const double test_accuracy = epoch["test_accuracy"].get<double>();
  CHECK(test_accuracy >= 0.0);
  CHECK(test_accuracy <= 1.0);
  CHECK(printed_accuracy == Approx(100 * test_accuracy).margin(0.006));  // printed with two decimals

  const io::SafetensorsContents model = io::load_safetensors(run_dir + "/model.safetensors");
  REQUIRE(model.tensors.count("classifier.weight") == 1);
  const Tensor& classifier = model.tensors.at("classifier.weight");
  CHECK(classifier.dim() == 2);
  CHECK(classifier.size(0) == 10);  // one row per class
  for (const auto& [name, tensor] : model.tensors) {
    INFO(name);
    if (is_floating(tensor.dtype())) CHECK(std::isfinite(sum(tensor.to(kFloat64)).item()));
  }

  const std::string png = read_bytes(run_dir + "/loss.png");
  CHECK(png.substr(0, 8) == std::string("\x89PNG\r\n\x1a\n", 8));
}

TEST_CASE("classifier run folder that cannot be created", "[e2e]") {
  // The run folder would live under a regular file: a clean error naming it, not a crash.
  Generator generator = generator_for("classifier run folder that cannot be created");
  TemporaryDirectory directory;
  const std::string data_root = directory.file("data");
  std::filesystem::create_directory(data_root);
  write_tiny_dataset(data_root, generator);
  const std::string blocker = directory.file("blocker");
  write_bytes(blocker, "a file, not a folder\n");

  const AppResult result = run_classifier("--data " + quoted(data_root) + " --epochs 1 --batch-size 32 --width 4 " +
                                          "--run-dir " + quoted(blocker + "/run"));
  require_clean_failure(result);
  INFO(result.output);
  CHECK_THAT(result.output, Contains("error:") && Contains("run folder") && Contains(blocker + "/run"));
  CHECK(read_bytes(blocker) == "a file, not a folder\n");
}
