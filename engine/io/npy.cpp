#include "engine/io/npy.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstring>
#include <limits>
#include <map>
#include <ostream>
#include <sstream>
#include <vector>

#include "engine/io/binary_reader.h"
#include "engine/util/atomic_file.h"

namespace visrep::io {
namespace {

constexpr std::string_view kMagic{"\x93NUMPY", 6};
// NumPy aligns the data to 64 bytes since 1.16 (format.py, ARRAY_ALIGN) so that memory-mapped
// arrays can be read with any vector width.
constexpr size_t kDataAlignment = 64;
// np.load refuses headers over 10000 bytes unless told otherwise; a larger limit still keeps
// a corrupt length from turning into a giant allocation.
constexpr uint64_t kMaxHeaderBytes = uint64_t{1} << 20;
constexpr int kMaxNesting = 16;

// ---- the header: a Python dict literal ----------------------------------------------------------

// One value of the small subset of Python literal syntax that .npy headers use.
struct PythonLiteral {
  enum class Kind { String, Integer, Boolean, None, Sequence };
  Kind kind = Kind::None;
  std::string text;                   // Kind::String
  int64_t integer = 0;                // Kind::Integer
  bool boolean = false;               // Kind::Boolean
  bool is_list = false;               // Kind::Sequence: [...] rather than (...)
  std::vector<PythonLiteral> items;   // Kind::Sequence
};

// A recursive-descent parser for {'key': value, ...}. It accepts what NumPy writes and what
// other writers produce (either quote style, any spacing, trailing commas, "(5,)" and "()"
// tuples, Python 2's "3L" integers), and rejects everything else with the position.
class HeaderParser {
 public:
  HeaderParser(std::string_view text, const ByteSource& file) : text_(text), file_(file) {}

  std::map<std::string, PythonLiteral> parse_dict() {
    std::map<std::string, PythonLiteral> entries;
    skip_whitespace();
    expect('{');
    skip_whitespace();
    while (!consume('}')) {
      if (peek() != '\'' && peek() != '"') fail("expected a quoted key");
      std::string key = parse_string();
      skip_whitespace();
      expect(':');
      PythonLiteral value = parse_value(0);
      if (!entries.emplace(key, std::move(value)).second) {
        fail(fmt::format("the key '{}' appears twice", printable(key)));
      }
      skip_whitespace();
      if (!consume(',')) {
        skip_whitespace();
        expect('}');
        break;
      }
      skip_whitespace();
    }
    skip_whitespace();
    if (position_ != text_.size()) fail("unexpected text after the closing '}'");
    return entries;
  }

 private:
  [[noreturn]] void fail(std::string_view message) const {
    file_.fail(
        fmt::format("malformed header: {} at character {} of \"{}\"", message, position_, printable(text_, 200)));
  }

  char peek() const { return position_ < text_.size() ? text_[position_] : '\0'; }

  bool consume(char expected) {
    if (position_ >= text_.size() || text_[position_] != expected) return false;
    ++position_;
    return true;
  }

  void expect(char expected) {
    if (!consume(expected)) fail(fmt::format("expected '{}'", expected));
  }

  void skip_whitespace() {
    while (position_ < text_.size() && std::strchr(" \t\r\n", text_[position_]) != nullptr) ++position_;
  }

  std::string parse_string() {
    const char quote = text_[position_++];
    std::string result;
    while (true) {
      if (position_ >= text_.size()) fail("unterminated string");
      const char character = text_[position_++];
      if (character == quote) return result;
      if (character == '\\') {
        if (position_ >= text_.size()) fail("unterminated string");
        result += text_[position_++];
      } else {
        result += character;
      }
    }
  }

  PythonLiteral parse_value(int depth) {
    if (depth > kMaxNesting) fail("tuples nested too deeply");
    skip_whitespace();
    PythonLiteral value;
    const char first = peek();
    if (first == '\'' || first == '"') {
      value.kind = PythonLiteral::Kind::String;
      value.text = parse_string();
    } else if (first == '(' || first == '[') {
      ++position_;
      value.kind = PythonLiteral::Kind::Sequence;
      value.is_list = first == '[';
      const char closing = first == '(' ? ')' : ']';
      skip_whitespace();
      while (!consume(closing)) {
        value.items.push_back(parse_value(depth + 1));
        skip_whitespace();
        if (!consume(',')) {
          skip_whitespace();
          expect(closing);
          break;
        }
        skip_whitespace();
      }
    } else if (first == '-' || first == '+' || (first >= '0' && first <= '9')) {
      value.kind = PythonLiteral::Kind::Integer;
      value.integer = parse_integer();
    } else {
      const size_t start = position_;
      while (std::isalpha(static_cast<unsigned char>(peek()))) ++position_;
      const std::string_view word = text_.substr(start, position_ - start);
      if (word == "True" || word == "False") {
        value.kind = PythonLiteral::Kind::Boolean;
        value.boolean = word == "True";
      } else if (word == "None") {
        value.kind = PythonLiteral::Kind::None;
      } else {
        position_ = start;
        fail("expected a string, an integer, a tuple, True, False or None");
      }
    }
    return value;
  }

  int64_t parse_integer() {
    const bool negative = consume('-');
    if (!negative) consume('+');
    if (!std::isdigit(static_cast<unsigned char>(peek()))) fail("expected digits");
    uint64_t magnitude = 0;
    constexpr uint64_t kLimit = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
    while (std::isdigit(static_cast<unsigned char>(peek()))) {
      const auto digit = static_cast<uint64_t>(text_[position_++] - '0');
      if (magnitude > (kLimit - digit) / 10) fail("integer too large");
      magnitude = magnitude * 10 + digit;
    }
    if (peek() == 'L' || peek() == 'l') ++position_;  // Python 2 long, written by old NumPy
    return negative ? -static_cast<int64_t>(magnitude) : static_cast<int64_t>(magnitude);
  }

  std::string_view text_;
  const ByteSource& file_;
  size_t position_ = 0;
};

// ---- element types ------------------------------------------------------------------------------

// How one descr is stored in the file and what visrep makes of it.
struct ElementType {
  enum class Conversion { None, Float16ToFloat32, BoolToUInt8 };
  DType dtype = kFloat32;  // of the loaded tensor
  size_t file_bytes = 4;   // per element in the file
  bool big_endian = false;
  Conversion conversion = Conversion::None;
};

ElementType parse_descr(const std::string& descr, const ByteSource& file) {
  // descr = byte order ('<' little, '>' big, '|' not applicable, '=' native) + kind + size.
  std::string_view code = descr;
  bool big_endian = false;
  if (!code.empty() && std::strchr("<>|=", code.front()) != nullptr) {
    big_endian = code.front() == '>';
    code.remove_prefix(1);
  }
  using Conversion = ElementType::Conversion;
  if (code == "f4") return {kFloat32, 4, big_endian, Conversion::None};
  if (code == "f8") return {kFloat64, 8, big_endian, Conversion::None};
  if (code == "i4") return {kInt32, 4, big_endian, Conversion::None};
  if (code == "i8") return {kInt64, 8, big_endian, Conversion::None};
  if (code == "u1") return {kUInt8, 1, false, Conversion::None};
  if (code == "b1") return {kUInt8, 1, false, Conversion::BoolToUInt8};
  if (code == "f2") return {kFloat32, 2, big_endian, Conversion::Float16ToFloat32};
  file.fail(fmt::format("unsupported descr '{}'; visrep reads '<f4', '<f8', '<f2', '<i4', '<i8', '|u1', '|b1' "
                        "and their big-endian '>' forms",
                        printable(descr)));
}

std::string_view descr_for(DType dtype, std::string_view context) {
  switch (dtype) {
    case DType::Float32: return "<f4";
    case DType::Float64: return "<f8";
    case DType::Int32: return "<i4";
    case DType::Int64: return "<i8";
    case DType::UInt8: return "|u1";
    case DType::BFloat16:
      VISREP_FAIL("{}: .npy has no bfloat16 type; convert the tensor with .to(kFloat32) first "
                  "(exact: every bfloat16 value is a float32 value)",
                  context);
  }
  VISREP_FAIL("{}: unknown dtype {}", context, static_cast<int>(dtype));
}

// ---- reading --------------------------------------------------------------------------------------

struct NpyHeader {
  Shape shape;  // as the array is indexed, whatever the storage order
  ElementType element;
  bool fortran_order = false;
  uint64_t data_offset = 0;
};

const PythonLiteral& required_entry(const std::map<std::string, PythonLiteral>& entries, const std::string& key,
                                    PythonLiteral::Kind kind, std::string_view kind_name, const ByteSource& file) {
  const auto found = entries.find(key);
  if (found == entries.end()) file.fail(fmt::format("the header has no '{}' entry", key));
  if (found->second.kind != kind) {
    file.fail(fmt::format("the header's '{}' entry is not {}{}", key, kind_name,
                          key == "descr" && found->second.kind == PythonLiteral::Kind::Sequence
                              ? " (a list describes a structured array, which visrep does not read)"
                              : ""));
  }
  return found->second;
}

NpyHeader read_header(const ByteSource& file) {
  if (file.size() < kMagic.size() + 2) {
    file.fail(fmt::format("too short to be a .npy file ({} bytes)", file.size()));
  }
  std::array<char, 8> preamble{};
  file.read_at(0, preamble.data(), preamble.size(), "the magic string");
  if (std::string_view(preamble.data(), kMagic.size()) != kMagic) {
    file.fail("not a .npy file: it does not start with the magic string \"\\x93NUMPY\"");
  }
  const int major = static_cast<unsigned char>(preamble[6]);
  const int minor = static_cast<unsigned char>(preamble[7]);
  // Version 1.0 stores the header length in 2 bytes; 2.0 (large headers) and 3.0 (UTF-8
  // header) in 4 bytes, both little-endian.
  if (minor != 0 || major < 1 || major > 3) file.fail(fmt::format("unsupported .npy version {}.{}", major, minor));
  const size_t length_bytes = major == 1 ? 2 : 4;
  std::array<unsigned char, 4> length_field{};
  file.read_at(preamble.size(), length_field.data(), length_bytes, "the header length");
  uint64_t header_length = 0;
  for (size_t i = 0; i < length_bytes; ++i) header_length |= static_cast<uint64_t>(length_field[i]) << (8 * i);

  const uint64_t header_offset = preamble.size() + length_bytes;
  if (header_length > file.size() - header_offset) {
    file.fail(fmt::format("the header length {} runs past the end of the {}-byte file", header_length, file.size()));
  }
  if (header_length > kMaxHeaderBytes) {
    file.fail(fmt::format("the header length {} exceeds the {}-byte limit", header_length, kMaxHeaderBytes));
  }
  std::string text(header_length, '\0');
  file.read_at(header_offset, text.data(), text.size(), "the header");

  const auto entries = HeaderParser(text, file).parse_dict();
  for (const auto& [key, value] : entries) {
    if (key != "descr" && key != "fortran_order" && key != "shape") {
      file.fail(fmt::format("the header has an unexpected key '{}'", printable(key)));
    }
  }
  using Kind = PythonLiteral::Kind;
  NpyHeader header;
  header.element = parse_descr(required_entry(entries, "descr", Kind::String, "a string", file).text, file);
  header.fortran_order = required_entry(entries, "fortran_order", Kind::Boolean, "True or False", file).boolean;
  const PythonLiteral& shape = required_entry(entries, "shape", Kind::Sequence, "a tuple", file);
  for (const PythonLiteral& size : shape.items) {
    if (size.kind != Kind::Integer) file.fail("the header's 'shape' holds something other than integers");
    header.shape.push_back(size.integer);
  }
  header.data_offset = header_offset + header_length;
  return header;
}

void reverse_bytes_of_each_element(void* data, size_t count, size_t element_bytes) {
  auto* bytes = static_cast<unsigned char*>(data);
  for (size_t i = 0; i < count; ++i) std::reverse(bytes + i * element_bytes, bytes + (i + 1) * element_bytes);
}

// Reads the data as a row-major tensor of `shape` (the reversed shape for Fortran order).
Tensor read_elements(const ByteSource& file, const NpyHeader& header, const Shape& shape, uint64_t data_bytes) {
  const ElementType& element = header.element;
  Tensor result = empty(shape, element.dtype);
  const auto count = static_cast<size_t>(result.numel());
  switch (element.conversion) {
    case ElementType::Conversion::None:
      file.read_at(header.data_offset, result.raw_data(), data_bytes, "the array data");
      if (element.big_endian) reverse_bytes_of_each_element(result.raw_data(), count, element.file_bytes);
      break;
    case ElementType::Conversion::BoolToUInt8: {
      file.read_at(header.data_offset, result.raw_data(), data_bytes, "the array data");
      uint8_t* values = result.data<uint8_t>();
      for (size_t i = 0; i < count; ++i) values[i] = values[i] != 0 ? 1 : 0;
      break;
    }
    case ElementType::Conversion::Float16ToFloat32: {
      std::vector<uint16_t> halves(count);
      file.read_at(header.data_offset, halves.data(), data_bytes, "the array data");
      if (element.big_endian) reverse_bytes_of_each_element(halves.data(), count, sizeof(uint16_t));
      float* values = result.data<float>();
      for (size_t i = 0; i < count; ++i) values[i] = float16_to_float32(halves[i]);
      break;
    }
  }
  return result;
}

// The array in a whole .npy file, which `file` holds (a file on disk or an .npz member).
Tensor read_npy(const ByteSource& file) {
  const NpyHeader header = read_header(file);
  const uint64_t data_bytes = checked_byte_count(header.shape, header.element.file_bytes, file, "the array");
  const uint64_t available = file.size() - header.data_offset;
  if (available < data_bytes) {
    file.fail(fmt::format("the data is truncated: shape {} needs {} bytes after the header but the file holds {}",
                          shape_string(header.shape), data_bytes, available));
  }
  if (!header.fortran_order) return read_elements(file, header, header.shape, data_bytes);

  // Fortran order stores the first index fastest: that is the row-major layout of the
  // reversed shape. Reading it that way and reversing the dimensions gives the array.
  const Shape reversed_shape(header.shape.rbegin(), header.shape.rend());
  std::vector<int64_t> reversed_order(header.shape.size());
  for (size_t d = 0; d < reversed_order.size(); ++d) reversed_order[d] = static_cast<int64_t>(reversed_order.size() - 1 - d);
  return read_elements(file, header, reversed_shape, data_bytes).permute(reversed_order).contiguous();
}

// Writes `tensor` as a .npy file onto `out`; `context` opens error messages.
void write_npy(std::ostream& out, const Tensor& tensor, std::string_view context) {
  VISREP_CHECK(tensor.defined(), "{}: the tensor is undefined", context);
  const std::string_view descr = descr_for(tensor.dtype(), context);
  const Tensor host = tensor.detach().cpu().contiguous();

  std::string shape_text = "(";
  for (size_t d = 0; d < host.shape().size(); ++d) shape_text += fmt::format("{}{}", d ? ", " : "", host.shape()[d]);
  shape_text += host.shape().size() == 1 ? ",)" : ")";  // Python's 1-tuple needs the comma
  std::string header = fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': {}, }}", descr, shape_text);
  // Pad with spaces so that magic (6) + version (2) + length (2) + header, ended by '\n',
  // is a multiple of 64: the layout np.save writes.
  const size_t preamble_bytes = kMagic.size() + 2 + 2;
  const size_t unpadded = preamble_bytes + header.size() + 1;
  header.append((kDataAlignment - unpadded % kDataAlignment) % kDataAlignment, ' ');
  header += '\n';
  VISREP_CHECK(header.size() <= std::numeric_limits<uint16_t>::max(), "{}: header too long", context);

  const auto data_bytes = static_cast<size_t>(host.numel()) * element_size(host.dtype());
  out.write(kMagic.data(), static_cast<std::streamsize>(kMagic.size()));
  const std::array<char, 4> version_and_length{1, 0, static_cast<char>(header.size() & 0xff),
                                               static_cast<char>(header.size() >> 8)};
  out.write(version_and_length.data(), version_and_length.size());
  out.write(header.data(), static_cast<std::streamsize>(header.size()));
  if (data_bytes > 0) out.write(static_cast<const char*>(host.raw_data()), static_cast<std::streamsize>(data_bytes));
}

}  // namespace

Tensor load_npy(const std::string& path) { return read_npy(InputFile(path, "load_npy")); }

Tensor parse_npy(std::string_view bytes, const std::string& context) { return read_npy(MemoryBytes(bytes, context)); }

void save_npy(const std::string& path, const Tensor& tensor) {
  const std::string context = fmt::format("save_npy: '{}'", path);
  // Checked before the file is opened, so a bad tensor leaves no file behind.
  VISREP_CHECK(tensor.defined(), "{}: the tensor is undefined", context);
  descr_for(tensor.dtype(), context);
  util::write_file_atomically(path, [&](std::ostream& out) { write_npy(out, tensor, context); });
}

std::string npy_bytes(const Tensor& tensor, const std::string& context) {
  std::ostringstream out;
  write_npy(out, tensor, context);
  return std::move(out).str();
}

}  // namespace visrep::io
