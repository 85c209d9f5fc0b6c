#include "engine/io/safetensors.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <ostream>
#include <unordered_set>
#include <vector>

#include "engine/io/binary_reader.h"
#include "engine/util/atomic_file.h"
#include "kernels/strided_layout.h"

namespace visrep::io {
namespace {

using json = nlohmann::json;

constexpr uint64_t kLengthFieldBytes = 8;
// The Rust implementation refuses headers over 100 MB (MAX_HEADER_SIZE); so do we, before
// allocating anything for one.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
// The Python library pads the header with spaces to a multiple of 8 bytes, so the buffer
// starts 8-aligned (relative to the file start) and memory-mapped tensors are aligned.
constexpr size_t kHeaderAlignment = 8;
constexpr std::string_view kMetadataKey = "__metadata__";

// A dtype as the file names it, and what visrep loads it as.
struct FileDType {
  enum class Conversion { None, Float16ToFloat32, BoolToUInt8 };
  std::string_view name;
  DType dtype;
  size_t file_bytes;
  Conversion conversion;
};

// The first entry for each visrep dtype is also the name it is written under.
constexpr std::array<FileDType, 8> kFileDTypes{{
    {"F32", kFloat32, 4, FileDType::Conversion::None},
    {"F64", kFloat64, 8, FileDType::Conversion::None},
    {"BF16", kBFloat16, 2, FileDType::Conversion::None},
    {"I32", kInt32, 4, FileDType::Conversion::None},
    {"I64", kInt64, 8, FileDType::Conversion::None},
    {"U8", kUInt8, 1, FileDType::Conversion::None},
    {"F16", kFloat32, 2, FileDType::Conversion::Float16ToFloat32},
    {"BOOL", kUInt8, 1, FileDType::Conversion::BoolToUInt8},
}};

const FileDType* find_file_dtype(std::string_view name) {
  for (const FileDType& candidate : kFileDTypes) {
    if (candidate.name == name) return &candidate;
  }
  return nullptr;
}

std::string_view file_dtype_name(DType dtype) {
  for (const FileDType& candidate : kFileDTypes) {
    if (candidate.dtype == dtype && candidate.conversion == FileDType::Conversion::None) return candidate.name;
  }
  VISREP_FAIL("save_safetensors: no safetensors name for dtype {}", dtype_name(dtype));
}

// ---- reading ----------------------------------------------------------------------------------

// One tensor's header entry, validated.
struct TensorEntry {
  std::string name;
  const FileDType* dtype = nullptr;
  Shape shape;
  uint64_t begin = 0;  // byte range in the buffer
  uint64_t end = 0;
};

// How deep the header may nest: {"name": {"shape": [2, 3]}} is depth 3, the metadata object
// depth 2. Anything deeper is refused before a DOM is built, so nothing later (a message
// quoting a value, a comparison, a copy) recurses through thousands of levels.
constexpr int kMaxHeaderDepth = 8;

// A first, linear pass over the header with nlohmann-json's SAX interface: the nesting depth,
// and keys that appear twice in one object (the DOM would keep the last without a word, and
// two entries under one name mean the file is not what its writer meant). This replaces a
// parse callback, which makes json::parse quadratic in the entry count in nlohmann-json 3.11
// (100,000 entries took minutes); the DOM is then parsed without one.
class HeaderScan : public nlohmann::json_sax<json> {
 public:
  std::string problem;  // empty while the header looks fine

  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(size_t) override { return open(); }
  bool end_object() override { return close(); }
  bool start_array(size_t) override { return open(); }
  bool end_array() override { return close(); }
  bool key(string_t& key) override {
    if (open_containers_.back().insert(key).second) return true;
    problem = fmt::format("the header names '{}' twice", printable(key));
    return false;
  }
  bool parse_error(size_t position, const std::string&, const nlohmann::detail::exception& error) override {
    // The library's message quotes the token it stopped at, which can be the whole rest of
    // the header (an unterminated string): only its start is kept.
    problem = fmt::format("the header is not valid JSON (at byte {}): {}", position, printable(error.what(), 160));
    return false;
  }

 private:
  bool open() {
    if (open_containers_.size() >= static_cast<size_t>(kMaxHeaderDepth)) {
      problem = fmt::format("the header nests deeper than {} levels (a safetensors header needs 3)", kMaxHeaderDepth);
      return false;
    }
    open_containers_.emplace_back();
    return true;
  }
  bool close() {
    open_containers_.pop_back();
    return true;
  }
  std::vector<std::unordered_set<std::string>> open_containers_;  // the keys seen in each (none in arrays)
};

json parse_header_json(const std::string& text, const InputFile& file) {
  HeaderScan scan;
  if (!json::sax_parse(text, &scan) || !scan.problem.empty()) {
    file.fail(scan.problem.empty() ? std::string("the header is not valid JSON") : scan.problem);
  }
  json header;
  try {
    header = json::parse(text);
  } catch (const json::exception& error) {
    file.fail(fmt::format("the header is not valid JSON: {}", printable(error.what(), 160)));
  }
  if (!header.is_object()) file.fail(fmt::format("the header is a JSON {}, not an object", header.type_name()));
  return header;
}

// A header value as an error message may show it: at most a few levels and about 80
// characters, so neither a deep nor a long value is echoed whole.
void append_excerpt(const json& value, std::string& out, int depth) {
  constexpr size_t kBudget = 80;
  if (value.is_array()) {
    if (depth >= 2) {
      out += "[...]";
      return;
    }
    out += '[';
    size_t index = 0;
    for (const json& item : value) {
      if (out.size() >= kBudget) {
        out += fmt::format(", ... ({} items)", value.size());
        break;
      }
      if (index++ > 0) out += ", ";
      append_excerpt(item, out, depth + 1);
    }
    out += ']';
  } else if (value.is_object()) {
    out += fmt::format("{{...{} keys}}", value.size());
  } else if (value.is_string()) {
    out += '"' + printable(value.get_ref<const std::string&>(), 40) + '"';
  } else {
    out += value.dump();  // a number, a boolean or null: short
  }
}

std::string excerpt(const json& value) {
  std::string out;
  append_excerpt(value, out, 0);
  return out;
}

TensorEntry parse_tensor_entry(const std::string& name, const json& info, const InputFile& file) {
  const std::string what = fmt::format("tensor '{}'", printable(name));
  if (!info.is_object()) file.fail(fmt::format("the header entry of {} is not a JSON object", what));
  for (const char* field : {"dtype", "shape", "data_offsets"}) {
    if (!info.contains(field)) file.fail(fmt::format("the header entry of {} has no \"{}\" field", what, field));
  }
  TensorEntry entry;
  entry.name = name;

  const json& dtype = info["dtype"];
  if (!dtype.is_string()) file.fail(fmt::format("{} has a \"dtype\" that is not a string", what));
  entry.dtype = find_file_dtype(dtype.get_ref<const std::string&>());
  if (entry.dtype == nullptr) {
    file.fail(fmt::format("{} has dtype '{}', which visrep does not read (it reads F32, F64, BF16, F16, I32, I64, "
                          "U8 and BOOL)",
                          what, printable(dtype.get_ref<const std::string&>())));
  }

  const json& shape = info["shape"];
  if (!shape.is_array()) file.fail(fmt::format("{} has a \"shape\" that is not an array", what));
  if (shape.size() > static_cast<size_t>(kernels::kMaxDims)) {
    file.fail(fmt::format("{} has {} dimensions; visrep supports at most {}", what, shape.size(), kernels::kMaxDims));
  }
  for (const json& size : shape) {
    if (size.is_number_integer() && !size.is_number_unsigned()) {
      file.fail(fmt::format("{} has a negative size {} in its shape {}", what, size.get<int64_t>(), excerpt(shape)));
    }
    if (!size.is_number_unsigned() || size.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      file.fail(fmt::format("{} has a shape {} that is not a list of non-negative integers", what, excerpt(shape)));
    }
    entry.shape.push_back(size.get<int64_t>());
  }

  const json& offsets = info["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
      !offsets[1].is_number_unsigned()) {
    file.fail(fmt::format("{} has data_offsets {}, not a pair of non-negative integers [begin, end]", what,
                          excerpt(offsets)));
  }
  entry.begin = offsets[0].get<uint64_t>();
  entry.end = offsets[1].get<uint64_t>();
  if (entry.end < entry.begin) {
    file.fail(fmt::format("{} has data_offsets [{}, {}] whose end comes before its begin", what, entry.begin,
                          entry.end));
  }
  const uint64_t bytes = checked_byte_count(entry.shape, entry.dtype->file_bytes, file, what);
  if (entry.end - entry.begin != bytes) {
    file.fail(fmt::format("{} is {} {} ({} bytes) but its data_offsets [{}, {}] span {} bytes", what,
                          entry.dtype->name, shape_string(entry.shape), bytes, entry.begin, entry.end,
                          entry.end - entry.begin));
  }
  return entry;
}

// The byte ranges must lie inside the buffer and tile it exactly: no overlap (two tensors
// sharing bytes) and no gap (bytes nobody accounts for). The Python library insists on the
// same ("MetadataIncompleteBuffer"), so that a file cannot hide extra contents.
void check_buffer_coverage(std::vector<TensorEntry>& entries, uint64_t buffer_bytes, const InputFile& file) {
  std::sort(entries.begin(), entries.end(), [](const TensorEntry& a, const TensorEntry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  for (const TensorEntry& entry : entries) {
    if (entry.end > buffer_bytes) {
      file.fail(fmt::format("tensor '{}' has data_offsets [{}, {}] beyond the end of the {}-byte data buffer "
                            "(the file is truncated or the offsets are wrong)",
                            printable(entry.name), entry.begin, entry.end, buffer_bytes));
    }
  }
  uint64_t covered = 0;
  const TensorEntry* previous = nullptr;
  for (const TensorEntry& entry : entries) {
    if (entry.begin < covered) {
      file.fail(fmt::format("tensor '{}' (bytes [{}, {})) overlaps tensor '{}' (bytes [{}, {}))",
                            printable(entry.name), entry.begin, entry.end, printable(previous->name), previous->begin,
                            previous->end));
    }
    if (entry.begin > covered) {
      file.fail(fmt::format("bytes [{}, {}) of the data buffer belong to no tensor (the next tensor, '{}', starts "
                            "at {})",
                            covered, entry.begin, printable(entry.name), entry.begin));
    }
    if (entry.end > covered) {
      covered = entry.end;
      previous = &entry;
    }
  }
  if (covered != buffer_bytes) {
    file.fail(fmt::format("the data buffer holds {} bytes but its tensors account for only {}", buffer_bytes, covered));
  }
}

Tensor read_tensor(const InputFile& file, uint64_t buffer_offset, const TensorEntry& entry) {
  Tensor result = empty(entry.shape, entry.dtype->dtype);
  const auto count = static_cast<size_t>(result.numel());
  const auto bytes = static_cast<size_t>(entry.end - entry.begin);
  const uint64_t offset = buffer_offset + entry.begin;
  const std::string what = fmt::format("tensor '{}'", printable(entry.name));
  switch (entry.dtype->conversion) {
    case FileDType::Conversion::None:
      file.read_at(offset, result.raw_data(), bytes, what);
      break;
    case FileDType::Conversion::BoolToUInt8: {
      file.read_at(offset, result.raw_data(), bytes, what);
      uint8_t* values = result.data<uint8_t>();
      for (size_t i = 0; i < count; ++i) values[i] = values[i] != 0 ? 1 : 0;
      break;
    }
    case FileDType::Conversion::Float16ToFloat32: {
      std::vector<uint16_t> halves(count);
      file.read_at(offset, halves.data(), bytes, what);
      float* values = result.data<float>();
      for (size_t i = 0; i < count; ++i) values[i] = float16_to_float32(halves[i]);
      break;
    }
  }
  return result;
}

}  // namespace

SafetensorsContents load_safetensors(const std::string& path) {
  InputFile file(path, "load_safetensors");
  if (file.size() < kLengthFieldBytes) {
    file.fail(fmt::format("too short to be a safetensors file ({} bytes; the header length alone takes 8)",
                          file.size()));
  }
  uint64_t header_length = 0;
  file.read_at(0, &header_length, sizeof(header_length), "the header length");  // little-endian, as the host
  if (header_length > file.size() - kLengthFieldBytes) {
    file.fail(fmt::format("the header length {} runs past the end of the {}-byte file", header_length, file.size()));
  }
  if (header_length > kMaxHeaderBytes) {
    file.fail(fmt::format("the header length {} exceeds the {}-byte limit", header_length, kMaxHeaderBytes));
  }
  std::string text(header_length, '\0');
  file.read_at(kLengthFieldBytes, text.data(), text.size(), "the header");
  const json header = parse_header_json(text, file);

  SafetensorsContents contents;
  std::vector<TensorEntry> entries;
  for (const auto& [name, info] : header.items()) {
    if (name != kMetadataKey) {
      entries.push_back(parse_tensor_entry(name, info, file));
      continue;
    }
    if (info.is_null()) continue;
    if (!info.is_object()) file.fail("the \"__metadata__\" entry is not a JSON object");
    for (const auto& [key, value] : info.items()) {
      if (!value.is_string()) file.fail(fmt::format("the metadata value of '{}' is not a string", printable(key)));
      contents.metadata.emplace(key, value.get<std::string>());
    }
  }

  const uint64_t buffer_offset = kLengthFieldBytes + header_length;
  check_buffer_coverage(entries, file.size() - buffer_offset, file);
  for (const TensorEntry& entry : entries) contents.tensors.emplace(entry.name, read_tensor(file, buffer_offset, entry));
  return contents;
}

void save_safetensors(const std::string& path, const TensorMap& tensors,
                      const std::map<std::string, std::string>& metadata) {
  struct PlannedTensor {
    const std::string* name;
    Tensor host;  // contiguous, on the CPU
    uint64_t begin = 0;
    uint64_t end = 0;
  };
  std::vector<PlannedTensor> planned;
  for (const auto& [name, tensor] : tensors) {
    VISREP_CHECK(name != kMetadataKey, "save_safetensors: '{}': \"{}\" is reserved for the metadata, not a tensor name",
                 path, kMetadataKey);
    VISREP_CHECK(tensor.defined(), "save_safetensors: '{}': tensor '{}' is undefined", path, name);
    planned.push_back({&name, tensor.detach().cpu().contiguous()});
  }
  // Largest elements first (then by name, the map's order): with the buffer 8-aligned,
  // every tensor then starts at a multiple of its own element size, as in the Rust writer.
  std::stable_sort(planned.begin(), planned.end(), [](const PlannedTensor& a, const PlannedTensor& b) {
    return element_size(a.host.dtype()) > element_size(b.host.dtype());
  });

  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header[std::string(kMetadataKey)] = metadata;
  uint64_t offset = 0;
  for (PlannedTensor& tensor : planned) {
    tensor.begin = offset;
    tensor.end = offset + static_cast<uint64_t>(tensor.host.numel()) * element_size(tensor.host.dtype());
    offset = tensor.end;
    nlohmann::ordered_json entry = nlohmann::ordered_json::object();
    entry["dtype"] = file_dtype_name(tensor.host.dtype());
    entry["shape"] = tensor.host.shape();
    entry["data_offsets"] = nlohmann::ordered_json::array({tensor.begin, tensor.end});
    header[*tensor.name] = std::move(entry);
  }
  std::string header_text;
  try {
    header_text = header.dump();
  } catch (const nlohmann::ordered_json::exception& error) {
    VISREP_FAIL("save_safetensors: '{}': a tensor name or metadata string is not valid UTF-8 ({})", path,
                error.what());
  }
  header_text.append((kHeaderAlignment - header_text.size() % kHeaderAlignment) % kHeaderAlignment, ' ');

  util::write_file_atomically(path, [&](std::ostream& out) {
    const uint64_t header_length = header_text.size();  // written little-endian, as the host
    out.write(reinterpret_cast<const char*>(&header_length), sizeof(header_length));
    out.write(header_text.data(), static_cast<std::streamsize>(header_text.size()));
    for (const PlannedTensor& tensor : planned) {
      const auto bytes = static_cast<std::streamsize>(tensor.end - tensor.begin);
      if (bytes > 0) out.write(static_cast<const char*>(tensor.host.raw_data()), bytes);
    }
  });
}

}  // namespace visrep::io
