#include "recipes/run_files.h"

#include <fmt/format.h>

#include <filesystem>
#include <system_error>
#include <type_traits>

#include "engine/error.h"

namespace visrep::recipes {

// ---- the run folder ---------------------------------------------------------------------------

util::MetricsWriter open_run_directory(const std::string& directory, bool resuming, const std::string& recipe) {
  std::error_code error;
  std::filesystem::create_directories(directory, error);
  VISREP_CHECK(!error, "{}: cannot create the run folder '{}': {}", recipe, directory, error.message());
  return util::MetricsWriter(directory + "/metrics.jsonl", resuming);
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
