#include "recipes/run_files.h"

#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <system_error>
#include <type_traits>

#include <nlohmann/json.hpp>

#include "engine/error.h"
#include "engine/util/atomic_file.h"

namespace visrep::recipes {

// ---- the run folder ---------------------------------------------------------------------------

util::MetricsWriter open_run_directory(const std::string& directory, bool resuming, const std::string& recipe) {
  std::error_code error;
  std::filesystem::create_directories(directory, error);
  VISREP_CHECK(!error, "{}: cannot create the run folder '{}': {}", recipe, directory, error.message());
  return util::MetricsWriter(directory + "/metrics.jsonl", resuming);
}

namespace {

// The steps done when `record` was written (see drop_metrics_after); none for other lines.
std::optional<int64_t> steps_done_at(const nlohmann::json& record, int64_t steps_per_epoch) {
  if (!record.is_object() || !record.contains("kind")) return std::nullopt;
  const nlohmann::json& kind = record["kind"];
  const auto integer = [&](const char* key) -> std::optional<int64_t> {
    const auto found = record.find(key);
    if (found == record.end() || !found->is_number_integer()) return std::nullopt;
    return found->get<int64_t>();
  };
  if (kind == "step") {
    const std::optional<int64_t> step = integer("step");
    return step ? std::optional<int64_t>(*step + 1) : std::nullopt;
  }
  if (kind == "epoch" && steps_per_epoch > 0) {
    const std::optional<int64_t> epoch = integer("epoch");
    return epoch ? std::optional<int64_t>(*epoch * steps_per_epoch) : std::nullopt;
  }
  if (kind == "eval" || kind == "stopped") return integer("step");
  return std::nullopt;
}

}  // namespace

void drop_metrics_after(const std::string& path, int64_t steps_done, int64_t steps_per_epoch) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return;
  std::ostringstream whole;
  whole << in.rdbuf();
  const std::string text = whole.str();
  std::string kept;
  bool changed = false;
  size_t start = 0;
  while (start < text.size()) {
    const size_t newline = text.find('\n', start);
    const bool complete = newline != std::string::npos;
    const std::string line = text.substr(start, complete ? newline - start : std::string::npos);
    start = complete ? newline + 1 : text.size();
    const nlohmann::json record = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    const std::optional<int64_t> at = steps_done_at(record, steps_per_epoch);
    if ((at && *at > steps_done) || (!complete && record.is_discarded())) {
      changed = true;  // a later step's record, or the torn end of an interrupted write
      continue;
    }
    kept += line + '\n';
    changed = changed || !complete;
  }
  if (changed) util::write_file_atomically(path, kept);
}

// ---- checkpoints ------------------------------------------------------------------------------

void add_with_prefix(io::TensorMap& into, const std::map<std::string, Tensor>& tensors, const std::string& prefix) {
  for (const auto& [name, tensor] : tensors) into[prefix + name] = tensor;
}

io::TensorMap tensors_with_prefix(const io::TensorMap& tensors, const std::string& prefix) {
  io::TensorMap out;
  for (const auto& [name, tensor] : tensors) {
    if (name.rfind(prefix, 0) == 0) out[name.substr(prefix.size())] = tensor;
  }
  return out;
}

std::string exact_text(double value) { return fmt::format("{:.17g}", value); }

void require_checkpoint_recipe(const io::SafetensorsContents& contents, const std::string& recipe,
                               const std::string& path) {
  const auto entry = contents.metadata.find("recipe");
  VISREP_CHECK(entry != contents.metadata.end() && entry->second == recipe,
               "resume: '{}' is not a {} checkpoint (its recipe: '{}')", path, recipe,
               entry == contents.metadata.end() ? "none" : entry->second);
}

namespace {

template <class Number>
Number metadata_number(const io::SafetensorsContents& contents, const std::string& key, const std::string& path) {
  const auto found = contents.metadata.find(key);
  VISREP_CHECK(found != contents.metadata.end(), "resume: the checkpoint '{}' has no '{}' entry in its metadata",
               path, key);
  try {
    size_t used = 0;
    const Number value = std::is_integral_v<Number> ? static_cast<Number>(std::stoll(found->second, &used))
                                                    : static_cast<Number>(std::stod(found->second, &used));
    if (used == found->second.size()) return value;
  } catch (const std::exception&) {
  }
  VISREP_FAIL("resume: the checkpoint '{}' has a malformed '{}' entry: '{}'", path, key, found->second);
}

}  // namespace

int64_t checkpoint_integer(const io::SafetensorsContents& contents, const std::string& key, const std::string& path) {
  return metadata_number<int64_t>(contents, key, path);
}

double checkpoint_double(const io::SafetensorsContents& contents, const std::string& key, const std::string& path) {
  return metadata_number<double>(contents, key, path);
}

void require_checkpoint_setting(const io::SafetensorsContents& contents, const std::string& key, int64_t expected,
                                const std::string& path) {
  const int64_t stored = checkpoint_integer(contents, key, path);
  VISREP_CHECK(stored == expected, "resume: the checkpoint '{}' was trained with {} {}, the config asks for {}", path,
               key, stored, expected);
}

}  // namespace visrep::recipes
