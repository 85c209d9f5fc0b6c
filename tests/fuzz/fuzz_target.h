// What every fuzz target shares. A target feeds libFuzzer's input to one reader, as a user's
// file would reach it, and sorts the outcome:
//   ok           the reader returned;
//   clean error  it threw visrep::Error with a message fit to show a user: short (a reader
//                must not echo a long untrusted value whole) and without control bytes (nor
//                echo one unescaped);
//   anything else is a crash: an uncaught exception of another type (std::bad_alloc from a
//                size field, std::out_of_range), a sanitizer report, a message that breaks
//                the rules above (abort), a timeout or libFuzzer's memory limit.
// With VISREP_FUZZ_STATS=<file> set, each process appends "<target> <ok> <clean errors>" to
// that file at exit, which tests/fuzz/run.sh adds up.
#pragma once

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>

#include "engine/error.h"

namespace visrep::fuzz {

// The longest message a clean error may have. Reader messages name a file, a field and a
// few numbers; a value echoed whole (a 100 KB name, a header) would exceed this.
inline constexpr size_t kMaxMessageBytes = 2048;

class Outcomes {
 public:
  explicit Outcomes(const char* target) : target_(target) {}
  ~Outcomes() {
    const char* path = std::getenv("VISREP_FUZZ_STATS");
    if (path == nullptr) return;
    const std::string line = fmt::format("{} {} {}\n", target_, ok_.load(), errors_.load());
    const int descriptor = ::open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (descriptor < 0) return;
    [[maybe_unused]] const ssize_t written = ::write(descriptor, line.data(), line.size());  // one write: no tearing
    ::close(descriptor);
  }
  void ok() { ++ok_; }
  void clean_error(const visrep::Error& error) {
    require_fit_to_show(error);
    ++errors_;
  }

  // Aborts (a crash for libFuzzer) unless the message is short and free of control bytes.
  static void require_fit_to_show(const visrep::Error& error) {
    const std::string_view message = error.what();
    if (message.empty() || message.size() > kMaxMessageBytes) {
      std::fprintf(stderr, "fuzz: a %zu-byte error message (at most %zu allowed): %.300s...\n", message.size(),
                   kMaxMessageBytes, error.what());
      std::abort();
    }
    for (const char character : message) {
      const auto byte = static_cast<unsigned char>(character);
      if ((byte < 0x20 && byte != '\n') || byte == 0x7f) {
        std::fprintf(stderr, "fuzz: an error message with the control byte 0x%02x: %s\n", byte, error.what());
        std::abort();
      }
    }
  }

 private:
  const char* target_;
  std::atomic<uint64_t> ok_{0}, errors_{0};
};

// Runs `read` and records how it ended; every other exception escapes to libFuzzer.
template <class Read>
void run(Outcomes& outcomes, Read read) {
  try {
    read();
    outcomes.ok();
  } catch (const visrep::Error& error) {
    outcomes.clean_error(error);
  }
}

// The scratch folder of this process (libFuzzer runs one input at a time per process),
// removed at exit: the readers take paths, so each input is written to a file in it.
class ScratchFolder {
 public:
  ScratchFolder() {
    std::error_code ignored;
    const std::filesystem::path base = std::filesystem::temp_directory_path(ignored);
    path_ = base / fmt::format("visrep-fuzz-{}", ::getpid());
    std::filesystem::remove_all(path_, ignored);
    std::filesystem::create_directories(path_, ignored);
  }
  ~ScratchFolder() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  const std::filesystem::path& path() const { return path_; }

  // Writes the input as `name` (folders created) and returns its path.
  std::string write(const std::string& name, const uint8_t* data, size_t size) const {
    const std::filesystem::path file = path_ / name;
    std::error_code ignored;
    std::filesystem::create_directories(file.parent_path(), ignored);
    std::FILE* out = std::fopen(file.c_str(), "wb");
    if (out == nullptr || (size > 0 && std::fwrite(data, 1, size, out) != size) || std::fclose(out) != 0) {
      std::fprintf(stderr, "fuzz: cannot write the input to %s\n", file.c_str());
      std::abort();
    }
    return file.string();
  }

 private:
  std::filesystem::path path_;
};

inline const ScratchFolder& scratch() {
  static const ScratchFolder folder;
  return folder;
}

// The input written as `name` in the scratch folder; its path.
inline std::string input_file(const std::string& name, const uint8_t* data, size_t size) {
  return scratch().write(name, data, size);
}

}  // namespace visrep::fuzz
