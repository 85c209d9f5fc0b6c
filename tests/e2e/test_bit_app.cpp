// End-to-end: visrep-bit as a user runs it, on a tiny MNIST-format dataset written here
// (16x16 grey images, 128 train / 64 test, 4 classes): from scratch; from an official-layout
// .npz (the tiny fixture of make_bit_fixture.py, RGB, so the grey images are expanded); from
// the timm-named model.safetensors of the previous run; from SimCLR runs' encoders; --resume
// of a finished run; Ctrl-C and --resume with the same losses; and bad flags, a missing or corrupt checkpoint and a checkpoint without
// the architecture it needs fail with a message naming the culprit and no files written.
#include <catch2/catch.hpp>

#include <filesystem>
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

#if !defined(VISREP_BIT_BINARY) || !defined(VISREP_SIMCLR_BINARY)
#error "tests/CMakeLists.txt passes the paths of visrep-bit and visrep-simclr"
#endif

using namespace visrep;
using namespace visrep::testing;
using Catch::Contains;

namespace {

void write_tiny_dataset(const std::string& root) {
  std::filesystem::create_directories(root);
  const data::ImageDataset all =
      data::make_synthetic_dataset({.count = 192, .classes = 4, .height = 16, .width = 16, .seed = 21});
  write_mnist_split(root, true, data::subset(all, arange(0.0, 128.0, 1.0, kInt64)));
  write_mnist_split(root, false, data::subset(all, arange(128.0, 192.0, 1.0, kInt64)));
}

// The dataset, run folder and device of every run here.
std::string base_flags(const std::string& data_root, const std::string& run_dir) {
  return "--data " + quoted(data_root) + " --run-dir " + quoted(run_dir) + " --device cpu --examples-per-class 0 ";
}

// Two boundaries of 3 steps, batch 16, 16 px kept as they are, on all 128 images.
std::string tiny_flags(const std::string& data_root, const std::string& run_dir) {
  return base_flags(data_root, run_dir) + "--batch-size 16 --schedule 3,6 --resolution 16,16 ";
}

nlohmann::json read_summary(const std::string& run_dir) {
  return nlohmann::json::parse(read_bytes(run_dir + "/summary.json"));
}

std::vector<double> step_losses(const std::string& run_dir) {
  std::vector<double> losses;
  for (const nlohmann::json& record : read_json_lines(run_dir + "/metrics.jsonl")) {
    if (record["kind"] == "step") losses.push_back(record["loss"].get<double>());
  }
  return losses;
}

// A one-epoch SimCLR run of `arch_flags` on the tiny dataset, into run_dir.
void pretrain_simclr(const std::string& data_root, const std::string& arch_flags, const std::string& run_dir) {
  const AppResult pretrain =
      run_app(VISREP_SIMCLR_BINARY, "--data " + quoted(data_root) + " " + arch_flags + " --batch-size 32 --device cpu "
                                    "--workers 1 --epochs 1 --linear-epochs 0 --no-raw-baseline --run-dir " +
                                        quoted(run_dir));
  INFO(pretrain.output);
  REQUIRE(pretrain.exit_code == 0);
}

void require_finished_run(const AppResult& result, const std::string& run_dir) {
  INFO(result.output);
  REQUIRE(result.exit_code == 0);
  CHECK_THAT(result.output, Contains("test top-1"));
  CHECK(files_under(run_dir) == std::vector<std::string>{"checkpoint.safetensors", "loss.png", "metrics.jsonl",
                                                         "model.safetensors", "summary.json"});
  const nlohmann::json summary = read_summary(run_dir);
  CHECK(summary["steps"] == 6);
  CHECK(summary["test_top1"].get<double>() >= 0.0);
  CHECK(summary["test_top1"].get<double>() <= 1.0);
  CHECK(step_losses(run_dir).size() == 6);
  require_no_partial_files(run_dir);
}

}  // namespace

TEST_CASE("visrep-bit: help lists the flags", "[e2e][bit]") {
  const AppResult result = run_app(VISREP_BIT_BINARY, "--help");
  INFO(result.output);
  REQUIRE(result.exit_code == 0);
  for (const char* flag : {"--checkpoint", "--data", "--arch", "--examples-per-class", "--batch-size", "--batch-split",
                           "--lr", "--resolution", "--schedule", "--mixup-alpha", "--device", "--run-dir", "--resume",
                           "--checkpoint-every", "--config", "--seed"}) {
    CHECK_THAT(result.output, Contains(flag));
  }
}

TEST_CASE("visrep-bit: from scratch, from an official .npz, from its own model and resumed", "[e2e][bit]") {
  TemporaryDirectory directory;
  const std::string data_root = directory.file("data");
  write_tiny_dataset(data_root);

  // From scratch: the app says so; the network takes the grey images as they are.
  const std::string scratch_dir = directory.file("scratch");
  const AppResult scratch = run_app(VISREP_BIT_BINARY, tiny_flags(data_root, scratch_dir) + "--arch bit-tiny");
  require_finished_run(scratch, scratch_dir);
  CHECK_THAT(scratch.output, Contains("from scratch") && Contains("1 input channels"));

  // --resume of the finished run: nothing left to do, the same losses, the summary again.
  const std::vector<double> losses = step_losses(scratch_dir);
  const AppResult resumed = run_app(VISREP_BIT_BINARY, tiny_flags(data_root, scratch_dir) + "--arch bit-tiny --resume " +
                                                           quoted(scratch_dir));
  INFO(resumed.output);
  REQUIRE(resumed.exit_code == 0);
  CHECK(step_losses(scratch_dir) == losses);

  // From the official-layout fixture (3 channels, a 4-channel stem and so, by the apps' rule
  // for narrow networks, 2 GroupNorm groups): grey -> RGB, new zero head.
  const std::string npz_dir = directory.file("from-npz");
  const AppResult from_npz = run_app(VISREP_BIT_BINARY, tiny_flags(data_root, npz_dir) + "--checkpoint " +
                                                            quoted(fixture("bit_tiny.npz")));
  require_finished_run(from_npz, npz_dir);
  CHECK_THAT(from_npz.output, Contains("weights from") && Contains("bit_tiny.npz") && Contains("10 classes"));
  // The saved model has timm's names and the new head for Fashion-MNIST's 10 class names.
  const io::SafetensorsContents saved = io::load_safetensors(npz_dir + "/model.safetensors");
  REQUIRE(saved.tensors.count("stem.conv.weight") == 1);
  REQUIRE(saved.tensors.at("head.fc.weight").shape() == Shape{10, 32 * 4, 1, 1});

  // From that run's model.safetensors (timm names): the architecture is read from the shapes.
  const std::string again_dir = directory.file("from-safetensors");
  const AppResult again = run_app(VISREP_BIT_BINARY, tiny_flags(data_root, again_dir) + "--gn-groups 2 --checkpoint " +
                                                         quoted(npz_dir));  // the same groups, given explicitly
  require_finished_run(again, again_dir);
  CHECK_THAT(again.output, Contains("model.safetensors"));
  // The file records its 2 groups: other --gn-groups are refused, naming both.
  const std::string wrong_dir = directory.file("wrong-groups");
  const AppResult wrong = run_app(VISREP_BIT_BINARY, tiny_flags(data_root, wrong_dir) + "--gn-groups 4 --checkpoint " +
                                                         quoted(npz_dir));
  require_clean_failure(wrong);
  CHECK_THAT(wrong.output, Contains("--gn-groups 4") && Contains("records 2 GroupNorm groups"));
}

TEST_CASE("visrep-bit: fine-tunes SimCLR runs' encoders (SmallConvNet, ResNetV2)", "[e2e][bit]") {
  TemporaryDirectory directory;
  const std::string data_root = directory.file("data"), simclr_dir = directory.file("simclr");
  write_tiny_dataset(data_root);
  pretrain_simclr(data_root, "--arch small --width 4", simclr_dir);

  const std::string run_dir = directory.file("bit");
  const AppResult tuned = run_app(VISREP_BIT_BINARY, tiny_flags(data_root, run_dir) + "--arch small --width 4 "
                                                     "--checkpoint " + quoted(simclr_dir));
  require_finished_run(tuned, run_dir);
  CHECK_THAT(tuned.output, Contains("SmallConvNet width 4") && Contains("encoder.safetensors"));

  // The encoder's file records its architecture ("visrep.model"): without --arch it is built
  // as the file says; an --arch or --width that says otherwise is refused, naming both.
  const std::string described_dir = directory.file("described");
  const AppResult described = run_app(VISREP_BIT_BINARY, tiny_flags(data_root, described_dir) + "--checkpoint " +
                                                             quoted(simclr_dir));
  require_finished_run(described, described_dir);
  CHECK_THAT(described.output, Contains("SmallConvNet width 4"));
  const std::string refused_dir = directory.file("refused");
  const AppResult refused = run_app(VISREP_BIT_BINARY, tiny_flags(data_root, refused_dir) + "--arch small --width 8 "
                                                           "--checkpoint " + quoted(simclr_dir));
  require_clean_failure(refused);
  CHECK_THAT(refused.output, Contains("--width 8") && Contains("width 4") && Contains("visrep.model"));
  CHECK_FALSE(std::filesystem::exists(refused_dir));

  // SimCLR pretrains a ResNetV2 too; its encoder.safetensors has timm's names, so visrep-bit
  // reads the architecture from it (visrep-simclr's bit-tiny has base width 32, and its 16
  // GroupNorm groups follow from that width).
  const std::string simclr_v2_dir = directory.file("simclr-v2");
  pretrain_simclr(data_root, "--arch bit-tiny", simclr_v2_dir);
  const std::string v2_run_dir = directory.file("bit-v2");
  const AppResult tuned_v2 =
      run_app(VISREP_BIT_BINARY, tiny_flags(data_root, v2_run_dir) + "--checkpoint " + quoted(simclr_v2_dir));
  require_finished_run(tuned_v2, v2_run_dir);
  CHECK_THAT(tuned_v2.output, Contains("ResNetV2") && Contains("base width 32") && Contains("16 GN groups") &&
                                    Contains("encoder.safetensors"));
}

TEST_CASE("visrep-bit: Ctrl-C writes a checkpoint and --resume continues with the same losses", "[e2e][bit]") {
  TemporaryDirectory directory;
  const std::string data_root = directory.file("data");
  write_tiny_dataset(data_root);
  const std::string flags = "--device cpu --examples-per-class 0 --batch-size 8 --schedule 20,40 --resolution 16,16 "
                            "--arch bit-tiny --seed 5 --data " + quoted(data_root) + " ";

  const std::string reference_dir = directory.file("reference");
  const AppResult reference = run_app(VISREP_BIT_BINARY, flags + "--run-dir " + quoted(reference_dir));
  INFO(reference.output);
  REQUIRE(reference.exit_code == 0);
  const std::vector<double> expected = step_losses(reference_dir);
  REQUIRE(expected.size() == 40);

  // Ctrl-C once two steps are logged: the app finishes the step, writes a checkpoint, exits 130.
  const std::string run_dir = directory.file("interrupted"), log = directory.file("interrupted.log");
  const AppResult stopped = interrupt_app(VISREP_BIT_BINARY, flags + "--run-dir " + quoted(run_dir), log, [&] {
    return std::filesystem::exists(run_dir + "/metrics.jsonl") && step_losses(run_dir).size() >= 2;
  });
  INFO(stopped.output);
  REQUIRE(stopped.exit_code == 130);  // exited (not killed by the signal), after writing its checkpoint
  REQUIRE(std::filesystem::exists(run_dir + "/checkpoint.safetensors"));
  require_no_partial_files(run_dir);
  const size_t done = step_losses(run_dir).size();
  REQUIRE(done < expected.size());

  // --resume: the remaining steps, bit-identical to the uninterrupted run's.
  const AppResult resumed = run_app(VISREP_BIT_BINARY, flags + "--run-dir " + quoted(run_dir) + " --resume " +
                                                           quoted(run_dir));
  INFO(resumed.output);
  REQUIRE(resumed.exit_code == 0);
  CHECK(step_losses(run_dir) == expected);
  CHECK(read_summary(run_dir)["test_top1"] == read_summary(reference_dir)["test_top1"]);
}

TEST_CASE("visrep-bit: bad flags and bad checkpoints are named, nothing is written", "[e2e][bit]") {
  TemporaryDirectory directory;
  const std::string data_root = directory.file("data"), run_dir = directory.file("run");
  write_tiny_dataset(data_root);
  const std::string corrupt = directory.file("corrupt.npz"), missing = directory.file("missing.npz");
  write_bytes(corrupt, "PK\x03\x04 this is not a zip archive");
  const std::string wrong_layout = directory.file("wrong.safetensors");
  {
    io::save_safetensors(wrong_layout, {{"stem.conv.weight", zeros({16, 1, 7, 7})}});  // no stages at all
  }
  struct Case {
    std::string arguments;
    std::vector<std::string> named;
  };
  const std::string base = base_flags(data_root, run_dir);
  const std::string flags = tiny_flags(data_root, run_dir);
  const std::vector<Case> cases = {
      {base + "--resolution 28", {"--resolution", "28"}},
      {base + "--resolution 16,32", {"--resolution", "16,32"}},
      {base + "--schedule 3,x", {"--schedule", "3,x"}},
      {flags + "--arch bit-r49x1", {"49"}},
      {flags + "--arch nonsense", {"--arch", "nonsense"}},
      {base + "--batch-size 16 --batch-split 3", {"batch_split", "3"}},
      {flags + "--checkpoint " + quoted(missing), {"--checkpoint", missing}},
      {flags + "--checkpoint " + quoted(corrupt), {corrupt}},
      {flags + "--checkpoint " + quoted(wrong_layout), {wrong_layout, "unknown architecture"}},
      {flags + "--gn-groups 3 --checkpoint " + quoted(fixture("bit_tiny.npz")), {"3 GroupNorm groups", "--gn-groups"}},
      {"--data " + quoted(directory.file("no-data")) + " --run-dir " + quoted(run_dir), {"--data", "no-data"}},
  };
  for (const Case& c : cases) {
    INFO(c.arguments);
    const AppResult result = run_app(VISREP_BIT_BINARY, c.arguments);
    require_clean_failure(result);
    INFO(result.output);
    for (const std::string& name : c.named) CHECK_THAT(result.output, Contains(name));
    CHECK_FALSE(std::filesystem::exists(run_dir));
  }
}
