#include "tests/support/apps.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>

namespace visrep::testing {

std::string quoted(const std::string& text) {
  std::string word = "'";
  for (char c : text) word += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return word + "'";
}

AppResult run_app(const std::string& binary, const std::string& arguments) {
  const std::string command = "exec " + quoted(binary) + " " + arguments + " 2>&1";
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
