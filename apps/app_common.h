// What the binaries share: flag validators with short messages, the --device flag, what
// --arch auto means (the networks themselves are models/factory.h's), reading an encoder back
// from a run folder, a SIGINT / SIGTERM handler that asks the training loop to stop cleanly,
// and the data-parallel job a training binary is a rank of (Job).
// Header-only, so that each binary stays one main() in one file plus this.
#pragma once

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <atomic>
#include <csignal>
#include <cmath>
#include <cstdlib>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "engine/cuda.h"
#include "engine/device.h"
#include "engine/distributed/communicator.h"
#include "engine/error.h"
#include "engine/io/safetensors.h"
#include "engine/nn/module.h"
#include "engine/util/atomic_file.h"
#include "models/factory.h"
#include "recipes/data_parallel.h"
#include "recipes/run_files.h"
#include "recipes/stop_request.h"

namespace visrep::apps {

// CLI11 2.1's PositiveNumber and NonNegativeNumber print their upper bound, DBL_MAX, with
// all of its 309 digits; these say it in a few words: "--epochs: must be > 0, got 0".
inline CLI::Validator number_check(bool zero_allowed) {
  return CLI::Validator(
      [zero_allowed](std::string& text) -> std::string {
        char* end = nullptr;
        const double value = std::strtod(text.c_str(), &end);
        if (text.empty() || end != text.c_str() + text.size() || std::isnan(value)) {
          return "'" + text + "' is not a number";
        }
        if (zero_allowed ? value < 0 : value <= 0) {
          return fmt::format("must be {} 0, got {}", zero_allowed ? ">=" : ">", text);
        }
        return std::string();
      },
      zero_allowed ? "NONNEGATIVE" : "POSITIVE");
}
inline CLI::Validator positive_number() { return number_check(false); }
inline CLI::Validator non_negative_number() { return number_check(true); }

// --device: auto (cuda when a GPU is usable, else cpu), cpu, cuda or cuda:N; refused at
// parse time with the flag's name.
inline CLI::Option* add_device_option(CLI::App& app, std::string& device) {
  return app.add_option("--device", device, "auto (cuda when a GPU is usable, else cpu), cpu, cuda or cuda:N")
      ->capture_default_str()
      ->check([](const std::string& text) {
        try {
          if (text != "auto") Device::parse(text);
          return std::string();
        } catch (const Error& error) {
          return std::string(error.what());
        }
      });
}

inline Device resolve_device(const std::string& device) {
  Device chosen = device == "auto" ? (cuda_available() ? Device::cuda() : Device::cpu()) : Device::parse(device);
  check_device_usable(chosen, "--device");
  return chosen;
}

// --arch's check at parse time: auto, small, resnet18|34|50 or a ResNetV2 name (models/factory.h).
inline CLI::Validator architecture_check() {
  return CLI::Validator(
      [](std::string& name) -> std::string {
        if (name == "auto" || name == "small" || name == "resnet18" || name == "resnet34" || name == "resnet50") {
          return std::string();
        }
        try {
          if (models::is_resnet_v2_architecture(name)) {
            models::resnet_v2_architecture(name, 3, 0);
            return std::string();
          }
        } catch (const Error& error) {
          return error.what();
        }
        return "unknown architecture '" + name + "'; use auto, " + models::architecture_names();
      },
      "ARCH");
}

// The binaries that take --arch and --width.
enum class Binary { Simclr, Supcon, Eval, Bit };

struct Architecture {
  std::string name;   // a models/factory.h name, never "auto"
  int64_t width = 0;  // SmallConvNet's first channels, ResNet's multiplier or bit-tiny's base width; 0 for bit-r*
};

// What "--arch auto" and "--width 0" mean, for every binary, decided here only (the README's
// defaults, sized for the CPU's budget there):
//   binary          auto on the CPU   auto on a GPU   width 0: small's / bit-tiny's / resnet's
//   visrep-simclr   bit-tiny          resnet18        16 / 32 / 1
//   visrep-supcon   small             resnet18        32 / 16 / 1
//   visrep-eval     small             resnet18        32 / 16 / 1
//   visrep-bit      bit-tiny          bit-r50x1       32 / 16 / 1
// (The main job's encoder is bit-tiny of base width 32: 10 epochs of it fit the main job's 15
// minutes on the CPU; 8 of them beat 20 epochs of width 16 by two points of kNN, README.)
// The bit-r* names carry their width in the name and take none.
inline Architecture resolve_architecture(Binary binary, const std::string& name, int64_t width, const Device& device) {
  Architecture architecture{name, width};
  if (name == "auto") {
    const bool gpu = device.is_cuda();
    switch (binary) {
      case Binary::Simclr: architecture.name = gpu ? "resnet18" : "bit-tiny"; break;
      case Binary::Supcon:
      case Binary::Eval: architecture.name = gpu ? "resnet18" : "small"; break;
      case Binary::Bit: architecture.name = gpu ? "bit-r50x1" : "bit-tiny"; break;
    }
  }
  if (width == 0) {
    const bool simclr = binary == Binary::Simclr;
    if (architecture.name == "small") {
      architecture.width = simclr ? 16 : 32;
    } else if (architecture.name == "bit-tiny") {
      architecture.width = simclr ? 32 : 16;
    } else {
      architecture.width = models::is_resnet_v2_architecture(architecture.name) ? 0 : 1;
    }
  }
  return architecture;
}

// A run folder stands for its encoder.safetensors (written at the end of a run) or, for a
// run that was stopped, its checkpoint.safetensors.
inline std::string resolve_checkpoint(const std::string& path) {
  if (!std::filesystem::is_directory(path)) {
    VISREP_CHECK(std::filesystem::is_regular_file(path), "--checkpoint: '{}' does not exist", path);
    return path;
  }
  for (const char* name : {"encoder.safetensors", "checkpoint.safetensors"}) {
    const std::filesystem::path candidate = std::filesystem::path(path) / name;
    if (std::filesystem::is_regular_file(candidate)) return candidate.string();
  }
  VISREP_FAIL("--checkpoint: the folder '{}' holds neither encoder.safetensors nor checkpoint.safetensors", path);
}

// The encoder's state dict in a file: encoder.safetensors holds it as is (PyTorch names);
// a training checkpoint (encoder.*, head.*, optimizer.*) and a baseline's EncoderClassifier
// (encoder.*, classifier.*) hold it under "encoder.". No encoder key starts with "encoder.",
// so the prefix tells the two apart.
inline io::TensorMap encoder_state(const io::TensorMap& tensors) {
  io::TensorMap prefixed;
  for (const auto& [name, tensor] : tensors) {
    if (name.rfind("encoder.", 0) == 0) prefixed[name.substr(8)] = tensor;
  }
  return prefixed.empty() ? tensors : prefixed;
}

// What the file says it holds, for messages: the "model" or "encoder" metadata entry.
inline std::string described_model(const io::SafetensorsContents& contents) {
  for (const char* key : {"model", "encoder"}) {
    const auto found = contents.metadata.find(key);
    if (found != contents.metadata.end()) return found->second;
  }
  return "not recorded";
}

// --resume accepts a run folder for the checkpoint.safetensors it holds.
inline std::string resolve_resume(const std::string& path) {
  if (path.empty() || !std::filesystem::is_directory(path)) return path;
  return (std::filesystem::path(path) / recipes::kCheckpointFileName).string();
}

// The run's results as <run_directory>/summary.json, written atomically.
inline void write_summary(const std::string& run_directory, const nlohmann::json& summary) {
  util::write_file_atomically((std::filesystem::path(run_directory) / "summary.json").string(), summary.dump(2) + "\n");
}

// Ctrl-C: the first asks the training loop to write a checkpoint and stop after the current
// step (request_stop only stores to an atomic); a second one ends the process at once. SIGTERM
// does the same: Open MPI's mpirun, given Ctrl-C, sends its ranks SIGTERM (then SIGKILL about
// a second later), and the ranks agree on the stop at the step's end (recipes/training_run.h).
inline void install_stop_handler() {
  // A lock-free atomic is async-signal-safe to touch from the handler.
  static std::atomic<int> interrupts{0};
  static_assert(std::atomic<int>::is_always_lock_free);
  for (const int signal : {SIGINT, SIGTERM}) {
    std::signal(signal, [](int) {
      if (interrupts.fetch_add(1) > 0) std::_Exit(130);
      recipes::request_stop();
    });
  }
}

// The help text's note on --batch-size, from the launcher's environment (MPI is not started
// to print --help): the global batch, and how a job of this many ranks splits it.
inline std::string batch_size_note() {
  const int ranks = distributed::LaunchEnvironment::detect().size;
  if (ranks <= 1) return "; with mpirun -np P, the global batch: each rank trains on 1/P of it";
  return fmt::format("; the global batch: each of this job's {} ranks trains on 1/{} of it", ranks, ranks);
}

// The data-parallel job this training binary is a rank of (recipes/data_parallel.h): mpirun
// starts one process per rank; a process started alone is a job of one, on which nothing
// below makes a call. Made after the flags are parsed, before anything else.
class Job {
 public:
  // `device_flag`: --device. On a job of several ranks "cuda" (and "auto" on a host with a
  // GPU) is the local rank's GPU, cuda:<local rank> (one rank per GPU; NCCL carries its
  // buffers); "cuda:N" is taken as given.
  explicit Job(const std::string& device_flag) {
    const distributed::LaunchEnvironment environment = distributed::LaunchEnvironment::detect();
    const bool wants_cuda = device_flag == "cuda" || (device_flag == "auto" && cuda_available());
    device_ = environment.size > 1 && wants_cuda ? distributed::local_cuda_device(environment)
                                                 : resolve_device(device_flag);
    if (environment.size > 1) check_device_usable(device_, "--device");
    distributed::CommunicatorOptions options = distributed::CommunicatorOptions::from_environment();
    if (device_.is_cuda()) options.device = device_;
    communicator_ = std::make_unique<distributed::Communicator>(options);
    // Only rank 0 prints results (stdout); every rank keeps stderr, for its errors.
    if (communicator_->rank() != 0) std::freopen("/dev/null", "w", stdout);
  }

  Device device() const { return device_; }
  int rank() const { return communicator_->rank(); }
  int size() const { return communicator_->size(); }
  bool is_root() const { return rank() == 0; }
  // What the recipes take: the communicator on several ranks, null on one.
  distributed::Collectives* ranks() const { return size() > 1 ? communicator_.get() : nullptr; }
  // "" on one rank, else " on 2 ranks (batch 128 each)" for the description lines.
  std::string describe(int64_t global_batch) const {
    if (size() <= 1) return "";
    return fmt::format(" on {} ranks ({} images of each batch per rank)", size(), global_batch / size());
  }

  // Every flag's value (those from --config included, the defaults too) must be the same on
  // every rank: a job whose ranks were started with different ones is refused, on every rank,
  // naming the first flag that differs.
  void require_same_flags(const CLI::App& app) const {
    recipes::DataParallel(ranks()).require_same_on_every_rank(app.config_to_str(true, false), "the flags");
  }

  // The process's exit status once every rank has reached its end: MPI is finalised (every
  // rank waits for the others), so that a status of 130 (stopped) ends no other rank.
  int finish(int status) const {
    std::fflush(stdout);
    distributed::finalize();
    return status;
  }

  // An error's line: "error: ..." (on several ranks, "rank 1 of 2: error: ..."). The caller
  // returns EXIT_FAILURE, which ends every rank of the job (communicator.h).
  void report(const std::exception& error) const {
    if (size() > 1) {
      fmt::print(stderr, "rank {} of {}: error: {}\n", rank(), size(), error.what());
    } else {
      fmt::print(stderr, "error: {}\n", error.what());
    }
  }

 private:
  Device device_;
  std::unique_ptr<distributed::Communicator> communicator_;
};

}  // namespace visrep::apps
