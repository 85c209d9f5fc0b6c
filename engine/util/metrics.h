// Metrics as JSON lines: one JSON object per line, appended and flushed as it happens, so
// a run that stops halfway still leaves every finished record readable
// (e.g. `jq -s` or pandas.read_json(lines=True)).
#pragma once

#include <nlohmann/json.hpp>

#include <fstream>
#include <string>

namespace visrep::util {

class MetricsWriter {
 public:
  MetricsWriter() = default;
  // Opens `path` for appending (resume) or truncates it (a fresh run).
  MetricsWriter(const std::string& path, bool append);
  bool is_open() const { return out_.is_open(); }
  void write(const nlohmann::json& record);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::ofstream out_;
};

}  // namespace visrep::util
