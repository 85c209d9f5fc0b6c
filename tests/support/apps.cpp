#include "tests/support/apps.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>

namespace visrep::testing {

std::string quoted(const std::string& text) {
  std::string word = "'";
  for (char c : text) word += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return word + "'";
}

AppResult run_app(const std::string& binary, const std::string& arguments, const std::string& working_directory) {
  const std::string change = working_directory.empty() ? "" : "cd " + quoted(working_directory) + " && ";
  const std::string command = change + "exec " + quoted(binary) + " " + arguments + " 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  AppResult result;
  char buffer[4096];
  for (size_t got; (got = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0;) result.output.append(buffer, got);
  const int status = ::pclose(pipe);
  REQUIRE(status != -1);
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  return result;
}

pid_t spawn_app(const std::string& binary, const std::string& arguments, const std::string& log) {
  const std::string command = "exec " + quoted(binary) + " " + arguments + " >" + quoted(log) + " 2>&1";
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  return pid;
}

AppResult interrupt_app(const std::string& binary, const std::string& arguments, const std::string& log,
                        const std::function<bool()>& ready) {
  const pid_t pid = spawn_app(binary, arguments, log);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline && !ready()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  REQUIRE(::kill(pid, SIGINT) == 0);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  AppResult result;
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  std::ifstream in(log, std::ios::binary);
  result.output.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return result;
}

void require_clean_failure(const AppResult& result) {
  INFO(result.output);
  REQUIRE(result.exit_code > 0);
  REQUIRE(result.exit_code < 128);
  REQUIRE_FALSE(result.output.empty());
}

std::vector<nlohmann::json> read_json_lines(const std::string& path) {
  std::ifstream in(path);
  INFO(path);
  REQUIRE(in.good());
  std::vector<nlohmann::json> records;
  for (std::string line; std::getline(in, line);) {
    INFO("line " << records.size() + 1 << ": " << line);
    REQUIRE_NOTHROW(records.push_back(nlohmann::json::parse(line)));
    REQUIRE(records.back().is_object());
  }
  return records;
}

std::vector<std::string> files_under(const std::string& root) {
  std::vector<std::string> files;
  if (!std::filesystem::exists(root)) return files;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(root)) {
    if (entry.is_regular_file()) files.push_back(std::filesystem::relative(entry.path(), root).string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

void require_no_partial_files(const std::string& root) {
  for (const std::string& file : files_under(root)) {
    INFO(file);
    CHECK(file.find(".tmp") == std::string::npos);
  }
}

}  // namespace visrep::testing
