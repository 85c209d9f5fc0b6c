// Running the app binaries from end-to-end tests as a user would (through a shell, output
// captured) and reading what they leave in a run folder.
#pragma once

#include <catch2/catch.hpp>

#include <sys/types.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace visrep::testing {

struct AppResult {
  int exit_code = -1;  // the process's exit status; -1 when it was killed by a signal
  std::string output;  // stdout and stderr, interleaved as they were written
};

// A shell word for `text`: single quotes, with any single quote spelled '\''.
std::string quoted(const std::string& text);

// Runs `binary arguments` through a shell and waits for it, in `working_directory` when one
// is given. exec makes the app the shell's own process, so a crash shows as a signal
// (exit_code -1), not as the shell's 128 + n.
AppResult run_app(const std::string& binary, const std::string& arguments, const std::string& working_directory = "");

// Starts `binary arguments` in the background through a shell (exec: the pid is the app's),
// its output going to the file `log`, and returns the pid (for kill and waitpid).
pid_t spawn_app(const std::string& binary, const std::string& arguments, const std::string& log);

// Ctrl-C mid-run: starts `binary arguments` (output to the file `log`), waits (up to 30 s)
// until `ready()` holds, sends SIGINT and waits for the app to end. The result holds the
// exit status (-1 when a signal ended it) and the log.
AppResult interrupt_app(const std::string& binary, const std::string& arguments, const std::string& log,
                        const std::function<bool()>& ready);

// A failure the app reported itself: a non-zero exit status, not a crash, and a message.
void require_clean_failure(const AppResult& result);

// Every line of a JSON-lines file, each required to be a JSON object.
std::vector<nlohmann::json> read_json_lines(const std::string& path);

// Every file under `root`, relative and sorted ("cross_entropy/model.safetensors"); empty
// when `root` does not exist.
std::vector<std::string> files_under(const std::string& root);

// No temporaries of util::write_file_atomically ("<name>.tmp-<pid>-<n>") left under `root`.
void require_no_partial_files(const std::string& root);

}  // namespace visrep::testing
