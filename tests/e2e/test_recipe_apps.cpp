// End-to-end: the recipe binaries visrep-simclr, visrep-supcon and visrep-eval as a user
// runs them, on a tiny MNIST-format dataset written here (16x16 images, 128 train / 64 test,
// a 4-channel SmallConvNet): a run of a few steps leaves the expected files and prints its
// summary; Ctrl-C leaves a loadable checkpoint from which --resume continues with the same
// losses as an uninterrupted run; --resume after a finished run works; bad flags, a missing
// dataset and a checkpoint of another architecture fail with a non-zero exit, a message
// naming the culprit and no partial files.
#include <catch2/catch.hpp>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
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

#if !defined(VISREP_SIMCLR_BINARY) || !defined(VISREP_SUPCON_BINARY) || !defined(VISREP_EVAL_BINARY)
#error "tests/CMakeLists.txt passes the paths of visrep-simclr, visrep-supcon and visrep-eval"
#endif

using namespace visrep;
using namespace visrep::testing;
using Catch::Contains;

namespace {

// 128 training and 64 test images of 16x16 from one synthetic draw of 4 classes.
void write_tiny_dataset(const std::string& root, Generator& generator) {
  std::filesystem::create_directories(root);
  const auto seed = static_cast<uint64_t>(randint(0, int64_t{1} << 31, {1}, kInt64, generator).item<int64_t>());
  const data::ImageDataset all =
      data::make_synthetic_dataset({.count = 192, .classes = 4, .height = 16, .width = 16, .seed = seed});
  write_mnist_split(root, true, data::subset(all, arange(0.0, 128.0, 1.0, kInt64)));
  write_mnist_split(root, false, data::subset(all, arange(128.0, 192.0, 1.0, kInt64)));
}

nlohmann::json read_json(const std::string& path) { return nlohmann::json::parse(read_bytes(path)); }

// Global step -> loss, from a run folder's metrics.jsonl.
std::map<int64_t, double> step_losses(const std::string& run_dir) {
  std::map<int64_t, double> losses;
  for (const nlohmann::json& record : read_json_lines(run_dir + "/metrics.jsonl")) {
    if (record["kind"] == "step") losses[record["step"].get<int64_t>()] = record["loss"].get<double>();
  }
  return losses;
}

// The settings every tiny run shares: the tiny encoder on the CPU, one loader thread.
std::string tiny_flags(const std::string& data_root, const std::string& arch = "small",
                       const std::string& device = "cpu") {
  return "--data " + quoted(data_root) + " --arch " + arch + " --width 4 --batch-size 32 --device " + device +
         " --workers 1 ";
}

}  // namespace

TEST_CASE("recipe apps: help lists the flags", "[e2e]") {
  const std::vector<std::string> training = {"--data", "--epochs", "--batch-size", "--lr", "--temperature", "--arch",
                                             "--width", "--device", "--run-dir", "--resume", "--checkpoint-every",
                                             "--config", "--seed", "--train-limit", "--test-limit", "--linear-epochs"};
  for (const char* binary : {VISREP_SIMCLR_BINARY, VISREP_SUPCON_BINARY}) {
    const AppResult result = run_app(binary, "--help");
    INFO(binary << "\n" << result.output);
    REQUIRE(result.exit_code == 0);
    for (const std::string& flag : training) CHECK_THAT(result.output, Contains(flag));
  }
  CHECK_THAT(run_app(VISREP_SUPCON_BINARY, "--help").output, Contains("--no-baseline"));
  const AppResult eval = run_app(VISREP_EVAL_BINARY, "--help");
  INFO(eval.output);
  REQUIRE(eval.exit_code == 0);
  for (const char* flag : {"--checkpoint", "--raw-pixels", "--knn", "--linear", "--knn-k", "--knn-temperature",
                           "--linear-epochs", "--arch", "--width", "--device", "--data"}) {
    CHECK_THAT(eval.output, Contains(flag));
  }
}

TEST_CASE("recipe apps: bad flags and a missing dataset", "[e2e]") {
  Generator generator = generator_for("recipe apps: bad flags and a missing dataset");
  TemporaryDirectory directory;
  const std::string data_root = directory.file("data"), run_dir = directory.file("run");
  write_tiny_dataset(data_root, generator);
  struct Case {
    std::string binary;
    std::string arguments;
    std::vector<std::string> named;  // what the message must name
  };
  const std::string run = "--run-dir " + quoted(run_dir) + " ";
  const std::string train = tiny_flags(data_root) + run;
  const std::string eval = "--data " + quoted(data_root) + " --raw-pixels ";
  const std::string missing = directory.file("no-such-data");
  const std::vector<Case> cases = {
      {VISREP_SIMCLR_BINARY, train + "--epochs 0", {"--epochs", "0"}},
      {VISREP_SUPCON_BINARY, train + "--epochs 0", {"--epochs", "0"}},
      {VISREP_SUPCON_BINARY, train + "--temperature -1", {"--temperature", "-1"}},
      {VISREP_EVAL_BINARY, eval + "--linear-epochs 0", {"--linear-epochs", "0"}},
      {VISREP_EVAL_BINARY, eval + "--knn-k 0", {"--knn-k", "0"}},
      // --arch: refused when the encoder is built (visrep-simclr) or at parsing (the others).
      {VISREP_SIMCLR_BINARY, tiny_flags(data_root, "nonsense") + run, {"--arch", "nonsense"}},
      {VISREP_SUPCON_BINARY, tiny_flags(data_root, "nonsense") + run, {"--arch", "nonsense"}},
      {VISREP_EVAL_BINARY, "--data " + quoted(data_root) + " --checkpoint " + quoted(run_dir) + " --arch nonsense",
       {"--arch", "nonsense"}},
      {VISREP_SIMCLR_BINARY, tiny_flags(data_root, "small", "cuda:7") + run, {"--device", "cuda:7"}},
      {VISREP_SUPCON_BINARY, tiny_flags(data_root, "small", "cuda:7") + run, {"--device", "cuda:7"}},
      {VISREP_EVAL_BINARY, eval + "--device cuda:7", {"--device", "cuda:7"}},
      {VISREP_SIMCLR_BINARY, tiny_flags(missing) + "--run-dir " + quoted(run_dir), {"--data", missing}},
      {VISREP_SUPCON_BINARY, tiny_flags(missing) + "--run-dir " + quoted(run_dir), {"--data", missing}},
      {VISREP_EVAL_BINARY, "--raw-pixels --data " + quoted(missing), {"--data", missing}},
      // visrep-eval needs something to evaluate, and the checkpoint must exist.
      {VISREP_EVAL_BINARY, "--data " + quoted(data_root), {"--checkpoint", "--raw-pixels"}},
      {VISREP_EVAL_BINARY, "--data " + quoted(data_root) + " --checkpoint " + quoted(missing), {"--checkpoint", missing}},
  };
  for (const Case& c : cases) {
    INFO(c.binary << " " << c.arguments);
    const AppResult result = run_app(c.binary, c.arguments);
    require_clean_failure(result);
    INFO(result.output);
    for (const std::string& name : c.named) CHECK_THAT(result.output, Contains(name));
    CHECK(result.output.size() < 600);  // a sentence or two, not a screenful
    CHECK_FALSE(std::filesystem::exists(run_dir));  // nothing written
  }
}

TEST_CASE("visrep-simclr: a tiny run, Ctrl-C, and --resume", "[e2e]") {
  Generator generator = generator_for("visrep-simclr: a tiny run, Ctrl-C, and --resume");
  TemporaryDirectory directory;
  const std::string data_root = directory.file("data");
  write_tiny_dataset(data_root, generator);
  // 12 epochs of 4 steps; one linear epoch. Long enough to be interrupted after its first steps.
  const std::string flags = tiny_flags(data_root) + "--epochs 12 --linear-epochs 1 --seed 3 ";

  // An uninterrupted run: the files, the summary, 48 steps.
  const std::string reference_dir = directory.file("reference");
  const AppResult reference = run_app(VISREP_SIMCLR_BINARY, flags + "--run-dir " + quoted(reference_dir));
  INFO(reference.output);
  REQUIRE(reference.exit_code == 0);
  CHECK_THAT(reference.output, Contains("128 train / 64 test images of 16x16"));
  CHECK_THAT(reference.output, Contains("kNN top-1") && Contains("linear top-1"));
  CHECK(files_under(reference_dir) == std::vector<std::string>{"checkpoint.safetensors", "encoder.safetensors",
                                                               "knn.png", "loss.png", "metrics.jsonl", "summary.json"});
  const nlohmann::json summary = read_json(reference_dir + "/summary.json");
  for (const char* key : {"knn_accuracy", "linear_accuracy", "raw_pixel_knn_accuracy"}) {
    INFO(key);
    REQUIRE(summary.contains(key));
    CHECK(summary[key].get<double>() >= 0.0);
    CHECK(summary[key].get<double>() <= 1.0);
  }
  const std::map<int64_t, double> expected = step_losses(reference_dir);
  REQUIRE(expected.size() == 48);

  // --resume of the finished run: it is at its end at once, no new steps, the summary again.
  const AppResult again = run_app(VISREP_SIMCLR_BINARY, flags + "--run-dir " + quoted(reference_dir) + " --resume " +
                                                            quoted(reference_dir));
  INFO(again.output);
  REQUIRE(again.exit_code == 0);
  CHECK_THAT(again.output, Contains("kNN top-1"));
  CHECK(step_losses(reference_dir) == expected);
  require_no_partial_files(reference_dir);

  // Ctrl-C after two steps: the app stops after the current step with a checkpoint.
  const std::string run_dir = directory.file("interrupted"), log = directory.file("interrupted.log");
  const AppResult stopped = interrupt_app(VISREP_SIMCLR_BINARY, flags + "--run-dir " + quoted(run_dir), log, [&] {
    return std::filesystem::exists(run_dir + "/metrics.jsonl") && step_losses(run_dir).size() >= 2;
  });
  const std::string& output = stopped.output;
  INFO(output);
  // Exited (not killed), stopped, not finished: the run takes far longer than the signal.
  REQUIRE(stopped.exit_code == 130);
  CHECK_THAT(output, Contains("stopped") && Contains("--resume"));
  CHECK_FALSE(std::filesystem::exists(run_dir + "/encoder.safetensors"));  // written at the end only
  CHECK_FALSE(std::filesystem::exists(run_dir + "/summary.json"));
  require_no_partial_files(run_dir);
  const io::SafetensorsContents checkpoint = io::load_safetensors(run_dir + "/checkpoint.safetensors");
  CHECK(checkpoint.metadata.at("recipe") == "simclr");
  const int64_t stopped_at = std::stoll(checkpoint.metadata.at("step"));
  CHECK(stopped_at >= 2);
  CHECK(stopped_at < 48);

  // --resume continues: every step, before and after the stop, has the uninterrupted run's
  // loss bit for bit (the JSON numbers round-trip doubles exactly), and so has the kNN.
  const AppResult resumed = run_app(VISREP_SIMCLR_BINARY, flags + "--run-dir " + quoted(run_dir) + " --resume " +
                                                              quoted(run_dir));
  INFO(resumed.output);
  REQUIRE(resumed.exit_code == 0);
  CHECK(step_losses(run_dir) == expected);
  CHECK(std::filesystem::exists(run_dir + "/encoder.safetensors"));
  CHECK(read_json(run_dir + "/summary.json")["knn_accuracy"] == summary["knn_accuracy"]);
  require_no_partial_files(run_dir);
}

TEST_CASE("visrep-supcon: a tiny run with the cross-entropy baseline, and --resume", "[e2e]") {
  Generator generator = generator_for("visrep-supcon: a tiny run with the cross-entropy baseline, and --resume");
  TemporaryDirectory directory;
  const std::string data_root = directory.file("data"), run_dir = directory.file("run");
  write_tiny_dataset(data_root, generator);
  const std::string flags = tiny_flags(data_root) + "--epochs 2 --linear-epochs 1 --run-dir " + quoted(run_dir) + " ";

  const AppResult result = run_app(VISREP_SUPCON_BINARY, flags + "--train-limit 96");
  INFO(result.output);
  REQUIRE(result.exit_code == 0);
  CHECK_THAT(result.output, Contains("96 train / 64 test images of 16x16"));
  CHECK_THAT(result.output, Contains("method") && Contains("linear/test top-1"));
  CHECK_THAT(result.output, Contains("SupCon ") && Contains("cross-entropy "));
  CHECK(files_under(run_dir) ==
        std::vector<std::string>{"checkpoint.safetensors", "cross_entropy/loss.png", "cross_entropy/metrics.jsonl",
                                 "cross_entropy/model.safetensors", "encoder.safetensors", "loss.png", "metrics.jsonl",
                                 "summary.json"});
  const nlohmann::json summary = read_json(run_dir + "/summary.json");
  INFO(summary.dump());
  for (const double accuracy : {summary["supcon"]["linear_accuracy"].get<double>(),
                                summary["supcon"]["knn_accuracy"].get<double>(),
                                summary["cross_entropy"]["test_accuracy"].get<double>()}) {
    CHECK(accuracy >= 0.0);
    CHECK(accuracy <= 1.0);
  }
  CHECK(summary["epochs"] == 2);
  const std::map<int64_t, double> losses = step_losses(run_dir);
  CHECK(losses.size() == 6);  // 96 / 32 = 3 steps per epoch
  const io::SafetensorsContents checkpoint = io::load_safetensors(run_dir + "/checkpoint.safetensors");
  CHECK(checkpoint.metadata.at("recipe") == "supcon");

  // --resume of the finished run: no new SupCon steps; stage 2 and the baseline run again.
  const AppResult again = run_app(VISREP_SUPCON_BINARY, flags + "--train-limit 96 --no-baseline --resume " +
                                                            quoted(run_dir));
  INFO(again.output);
  REQUIRE(again.exit_code == 0);
  CHECK_THAT(again.output, Contains("SupCon ") && !Contains("cross-entropy "));
  CHECK(step_losses(run_dir) == losses);
  CHECK_FALSE(read_json(run_dir + "/summary.json").contains("cross_entropy"));

  // A SimCLR checkpoint is not a SupCon one: refused by name, nothing changed.
  const std::string before = read_bytes(run_dir + "/checkpoint.safetensors");
  const std::string simclr_dir = directory.file("simclr");
  REQUIRE(run_app(VISREP_SIMCLR_BINARY, tiny_flags(data_root) + "--epochs 1 --linear-epochs 1 --train-limit 96 "
                                        "--run-dir " + quoted(simclr_dir)).exit_code == 0);
  const AppResult wrong = run_app(VISREP_SUPCON_BINARY, flags + "--train-limit 96 --resume " + quoted(simclr_dir));
  require_clean_failure(wrong);
  CHECK_THAT(wrong.output, Contains("not a supcon checkpoint") && Contains(simclr_dir));
  CHECK(read_bytes(run_dir + "/checkpoint.safetensors") == before);
  require_no_partial_files(directory.path().string());
}

TEST_CASE("visrep-eval: an encoder checkpoint, raw pixels, and a checkpoint of another architecture", "[e2e]") {
  Generator generator = generator_for("visrep-eval: an encoder checkpoint, raw pixels, and another architecture");
  TemporaryDirectory directory;
  const std::string data_root = directory.file("data"), run_dir = directory.file("run");
  write_tiny_dataset(data_root, generator);
  const AppResult trained = run_app(VISREP_SUPCON_BINARY, tiny_flags(data_root) + "--epochs 1 --linear-epochs 1 "
                                                          "--run-dir " + quoted(run_dir));
  INFO(trained.output);
  REQUIRE(trained.exit_code == 0);
  const double supcon_knn = read_json(run_dir + "/summary.json")["supcon"]["knn_accuracy"].get<double>();
  const std::string data = "--data " + quoted(data_root) + " --device cpu ";

  // The run folder (its encoder.safetensors), the training checkpoint and the baseline's
  // EncoderClassifier all load; the kNN protocol (k = 200, T = 0.1) is the one visrep-supcon
  // reported, so the encoder gives the same accuracy.
  const std::string json = directory.file("eval.json");
  for (const std::string& checkpoint : {run_dir, run_dir + "/checkpoint.safetensors",
                                        run_dir + "/cross_entropy/model.safetensors"}) {
    INFO(checkpoint);
    const AppResult result = run_app(VISREP_EVAL_BINARY, data + "--arch small --width 4 --linear-epochs 1 --json " +
                                                             quoted(json) + " " + quoted(checkpoint));
    INFO(result.output);
    REQUIRE(result.exit_code == 0);
    CHECK_THAT(result.output, Contains("kNN top-1 (k = 200, T = 0.1, cosine)") && Contains("linear top-1"));
    const nlohmann::json summary = read_json(json);
    CHECK(summary["linear_accuracy"].get<double>() >= 0.0);
    CHECK(summary["linear_accuracy"].get<double>() <= 1.0);
    CHECK(summary["feature_dim"] == 16);  // SmallConvNet: 4 x width
    if (checkpoint == run_dir) CHECK(summary["knn_accuracy"].get<double>() == supcon_knn);
  }

  // Without --arch and --width: the architecture the file records, the same accuracy.
  {
    const AppResult described = run_app(VISREP_EVAL_BINARY, data + "--knn --json " + quoted(json) + " " +
                                                                quoted(run_dir));
    INFO(described.output);
    REQUIRE(described.exit_code == 0);
    CHECK(read_json(json)["knn_accuracy"].get<double>() == supcon_knn);
  }

  // --knn alone, with other settings; then raw pixels, linear alone.
  AppResult result = run_app(VISREP_EVAL_BINARY, data + "--arch small --width 4 --knn --knn-k 5 --knn-temperature 0.5 " +
                                                     quoted(run_dir));
  INFO(result.output);
  REQUIRE(result.exit_code == 0);
  CHECK_THAT(result.output, Contains("kNN top-1 (k = 5, T = 0.5") && !Contains("linear top-1"));
  result = run_app(VISREP_EVAL_BINARY, data + "--raw-pixels --linear --linear-epochs 2");
  INFO(result.output);
  REQUIRE(result.exit_code == 0);
  CHECK_THAT(result.output, Contains("raw pixels") && Contains("256 features") && Contains("linear top-1") &&
                                !Contains("kNN top-1"));

  // Another architecture than the file records ("visrep.model"): refused naming both.
  std::filesystem::remove(json);
  result = run_app(VISREP_EVAL_BINARY, data + "--arch small --width 8 --json " + quoted(json) + " " + quoted(run_dir));
  require_clean_failure(result);
  INFO(result.output);
  CHECK_THAT(result.output, Contains("--width 8") && Contains("records small of width 4") && Contains(run_dir));
  result = run_app(VISREP_EVAL_BINARY, data + "--arch resnet18 --json " + quoted(json) + " " + quoted(run_dir));
  require_clean_failure(result);
  CHECK_THAT(result.output, Contains("--arch resnet18") && Contains("records the architecture small"));

  // A file written before the descriptions (no "visrep.model"): --arch and --width build the
  // encoder; another architecture gets a clear message naming the key and both shapes (width
  // 8 doubles every channel count), or the first missing key (a ResNet).
  const std::string old_file = directory.file("old-encoder.safetensors");
  {
    io::SafetensorsContents contents = io::load_safetensors(run_dir + "/encoder.safetensors");
    contents.metadata.erase("visrep.model");
    io::save_safetensors(old_file, contents.tensors, contents.metadata);
  }
  result = run_app(VISREP_EVAL_BINARY, data + "--knn --arch small --width 4 " + quoted(old_file));
  INFO(result.output);
  REQUIRE(result.exit_code == 0);
  result = run_app(VISREP_EVAL_BINARY, data + "--arch small --width 8 --json " + quoted(json) + " " + quoted(old_file));
  require_clean_failure(result);
  CHECK_THAT(result.output, Contains("does not fit --arch small --width 8") && Contains(old_file));
  CHECK_THAT(result.output, Contains("has shape [4, 1, 3, 3] in the state dict but [8, 1, 3, 3]"));
  result = run_app(VISREP_EVAL_BINARY, data + "--arch resnet18 --json " + quoted(json) + " " + quoted(old_file));
  require_clean_failure(result);
  CHECK_THAT(result.output, Contains("does not fit --arch resnet18") && Contains("missing") &&
                                Contains("SmallConvNet"));
  CHECK_FALSE(std::filesystem::exists(json));
  require_no_partial_files(directory.path().string());

  // A file that is not a safetensors file at all.
  const std::string garbage = directory.file("garbage.safetensors");
  write_bytes(garbage, "not a checkpoint");
  result = run_app(VISREP_EVAL_BINARY, data + "--arch small --width 4 " + quoted(garbage));
  require_clean_failure(result);
  CHECK_THAT(result.output, Contains(garbage));
}
