// libFuzzer target: a --config file of the apps. There is no JSON configuration: the apps
// read TOML/INI flag files with CLI11's config parser (app.set_config("--config")); this
// target gives that parser the kinds of options the apps declare (paths, counts with range
// checks, positive numbers, choices, flags, a list). CLI11's errors (CLI::Error, which the
// apps report through CLI11_PARSE with a non-zero exit) count as clean whatever their
// message: they are CLI11's words about the user's own file.
#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "tests/fuzz/fuzz_target.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static visrep::fuzz::Outcomes outcomes("app_config");
  const std::string path = visrep::fuzz::input_file("flags.toml", data, size);
  visrep::fuzz::run(outcomes, [&] {
    CLI::App app{"fuzzed configuration"};
    app.set_config("--config", "", "A TOML/INI file of these flags");
    std::string data_root, choice = "linear", device = "auto";
    int64_t epochs = 1, limit = 0;
    double rate = 0.1;
    bool digits = false;
    std::vector<int64_t> schedule;
    app.add_option("--data", data_root);
    app.add_option("--epochs", epochs)->check(CLI::Range(1, 100000));
    app.add_option("--train-limit", limit)->check(CLI::NonNegativeNumber);
    app.add_option("--lr", rate)->check(CLI::PositiveNumber);
    app.add_option("--lr-scaling", choice)->check(CLI::IsMember({"linear", "sqrt", "none"}));
    app.add_option("--device", device);
    app.add_option("--schedule", schedule);
    app.add_flag("--digits", digits);
    try {
      app.parse(std::vector<std::string>{path, "--config"});  // argv in reverse, as CLI11 takes it
    } catch (const CLI::Error& error) {
      // Its message quotes the file's values, so only its kind is kept.
      throw visrep::Error(fmt::format("CLI11 {} (exit code {})", error.get_name(), error.get_exit_code()));
    }
  });
  return 0;
}
