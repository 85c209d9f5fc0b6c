// .npz archives through libzip (https://libzip.org/documentation/): reading opens the file
// with zip_open and unpacks each member into memory for the .npy parser; writing builds the
// whole archive in a libzip memory buffer and hands it to util::write_file_atomically, so a
// failed save never leaves half an archive behind.
#include "engine/io/npz.h"

#include <zip.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <set>
#include <utility>
#include <vector>

#include "engine/error.h"
#include "engine/io/binary_reader.h"
#include "engine/io/npy.h"
#include "engine/util/atomic_file.h"

namespace visrep::io {
namespace {

constexpr std::string_view kMemberSuffix = ".npy";
// Deflate cannot expand data by more than about 1032:1 (RFC 1951: a 258-byte match costs at
// least two bits). A member claiming more than that is corrupt, and its claimed size must
// not turn into an allocation.
constexpr uint64_t kMaxDeflateRatio = 1032;
// An archive with no members: the 22-byte end-of-central-directory record alone, which is
// what np.savez writes for no arrays (libzip would write nothing at all).
constexpr std::string_view kEmptyArchive{"PK\x05\x06\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 22};

struct ArchiveCloser {
  void operator()(zip_t* archive) const { zip_discard(archive); }
};
struct MemberCloser {
  void operator()(zip_file_t* member) const { zip_fclose(member); }
};
struct SourceFreer {
  void operator()(zip_source_t* source) const { zip_source_free(source); }
};
using ArchivePointer = std::unique_ptr<zip_t, ArchiveCloser>;
using MemberPointer = std::unique_ptr<zip_file_t, MemberCloser>;
using SourcePointer = std::unique_ptr<zip_source_t, SourceFreer>;

// libzip's message for an error code returned by zip_open.
std::string zip_open_message(int code) {
  zip_error_t error;
  zip_error_init_with_code(&error, code);
  std::string message = zip_error_strerror(&error);
  zip_error_fini(&error);
  return message;
}

// Opens the archive; `check_consistency` adds libzip's comparison of every local header
// with the central directory. The file is known to exist (load_npz checked), so libzip's
// codes are about the contents and are translated into what they mean for a zip file:
// libzip's own words ("No such file", "File already exists") describe its file-system calls.
ArchivePointer open_archive(const std::string& path, bool check_consistency) {
  int code = ZIP_ER_OK;
  zip_t* archive = zip_open(path.c_str(), ZIP_RDONLY | (check_consistency ? ZIP_CHECKCONS : 0), &code);
  if (archive != nullptr) return ArchivePointer(archive);
  switch (code) {
    case ZIP_ER_OPEN:
    case ZIP_ER_READ:
      VISREP_FAIL("load_npz: cannot read '{}': {}", path, zip_open_message(code));
    case ZIP_ER_NOENT:
      // libzip reports a size or offset of 0xFFFFFFFF without the Zip64 record that must then
      // carry the real value, or a member outside the file, as a missing entry.
      VISREP_FAIL("load_npz: '{}': a member's size or offset field is invalid (0xFFFFFFFF without its Zip64 "
                  "record, or pointing outside the file): a corrupt or truncated archive",
                  path);
    case ZIP_ER_EXISTS:
      VISREP_FAIL("load_npz: '{}': two members have the same name", path);
    case ZIP_ER_NOZIP:
    case ZIP_ER_INCONS:
    case ZIP_ER_EOF:
      VISREP_FAIL("load_npz: '{}': not a zip archive, or a truncated or corrupt one ({})", path,
                  zip_open_message(code));
    default:
      VISREP_FAIL("load_npz: '{}': cannot read the zip archive: {}", path, zip_open_message(code));
  }
}

// np.savez writes stored members, np.savez_compressed deflated ones; libzip could also
// unpack others (bzip2, lzma, zstd), whose size fields nothing here can bound.
std::string compression_name(int32_t method) {
  switch (method) {
    case ZIP_CM_DEFLATE64: return "deflate64";
    case ZIP_CM_BZIP2: return "bzip2";
    case ZIP_CM_LZMA: return "lzma";
    case ZIP_CM_XZ: return "xz";
    case 93: return "zstd";  // ZIP_CM_ZSTD, which libzip 1.7 does not define
    default: return fmt::format("method {}", method);
  }
}

// Every size field of every member, checked against the file before anything is unpacked:
// a member's unpacked size becomes an allocation, so it must follow from bytes that exist.
void check_member_sizes(const zip_stat_t& stat, uint64_t file_size, const std::string& context) {
  const uint64_t size = stat.size;
  const uint64_t packed_size = stat.comp_size;
  VISREP_CHECK(stat.encryption_method == ZIP_EM_NONE, "{}: is encrypted; np.savez never encrypts", context);
  VISREP_CHECK(stat.comp_method == ZIP_CM_STORE || stat.comp_method == ZIP_CM_DEFLATE,
               "{}: is compressed with {}; np.savez and np.savez_compressed write only stored or deflated members",
               context, compression_name(stat.comp_method));
  VISREP_CHECK(packed_size <= file_size, "{}: claims {} packed bytes, more than the {}-byte file holds (truncated?)",
               context, packed_size, file_size);
  VISREP_CHECK(stat.comp_method != ZIP_CM_STORE || size == packed_size,
               "{}: a stored member claims {} bytes unpacked but {} packed", context, size, packed_size);
  VISREP_CHECK(stat.comp_method != ZIP_CM_DEFLATE || size <= packed_size * kMaxDeflateRatio + 1024,
               "{}: claims {} bytes unpacked from {} deflated bytes, more than deflate can produce", context, size,
               packed_size);
}

// The whole unpacked member (its sizes checked by check_member_sizes), checked against its CRC.
std::string read_member(zip_t* archive, zip_uint64_t index, uint64_t size, const std::string& context) {
  MemberPointer member(zip_fopen_index(archive, index, 0));
  VISREP_CHECK(member != nullptr, "{}: cannot open the member: {}", context, zip_strerror(archive));
  std::string bytes(size, '\0');
  const zip_int64_t got = zip_fread(member.get(), bytes.data(), size);
  VISREP_CHECK(got >= 0, "{}: corrupt data: {}", context, zip_file_strerror(member.get()));
  VISREP_CHECK(static_cast<uint64_t>(got) == size, "{}: truncated: {} of its {} bytes could be read", context, got,
               size);
  // libzip checks the CRC when a read reaches the end of the member: read once more.
  char extra = 0;
  const zip_int64_t after_end = zip_fread(member.get(), &extra, 1);
  VISREP_CHECK(after_end >= 0, "{}: corrupt data: {}", context, zip_file_strerror(member.get()));
  VISREP_CHECK(after_end == 0, "{}: holds more than the {} bytes its header declares", context, size);
  return bytes;
}

}  // namespace

TensorMap load_npz(const std::string& path) {
  // The file itself first, so that whatever libzip says next is about its contents.
  std::error_code status_error;
  const std::filesystem::file_status status = std::filesystem::status(path, status_error);
  VISREP_CHECK(std::filesystem::exists(status), "load_npz: cannot open '{}': no such file", path);
  VISREP_CHECK(std::filesystem::is_regular_file(status), "load_npz: cannot open '{}': not a regular file", path);
  std::error_code size_error;
  const uint64_t file_size = std::filesystem::file_size(path, size_error);
  VISREP_CHECK(!size_error, "load_npz: '{}': cannot read the file size: {}", path, size_error.message());

  ArchivePointer archive = open_archive(path, /*check_consistency=*/false);
  const zip_int64_t count = zip_get_num_entries(archive.get(), 0);
  VISREP_CHECK(count >= 0, "load_npz: '{}': cannot list the members: {}", path, zip_strerror(archive.get()));

  // The central directory, checked whole before any member is unpacked.
  struct Member {
    zip_uint64_t index;
    uint64_t size;
    std::string key;
    std::string context;
  };
  std::vector<Member> members;
  std::set<std::string> names;
  uint64_t packed_total = 0;
  for (zip_int64_t index = 0; index < count; ++index) {
    zip_stat_t stat;
    zip_stat_init(&stat);
    VISREP_CHECK(zip_stat_index(archive.get(), static_cast<zip_uint64_t>(index), 0, &stat) == 0,
                 "load_npz: '{}': cannot read member {}: {}", path, index, zip_strerror(archive.get()));
    const std::string name = stat.name != nullptr ? stat.name : "";
    const std::string context = fmt::format("load_npz: '{}': member '{}'", path, printable(name));
    VISREP_CHECK(names.insert(name).second, "{}: appears twice in the archive", context);
    VISREP_CHECK(name.size() > kMemberSuffix.size() && name.ends_with(kMemberSuffix),
                 "{}: not a .npy array (np.savez names every member '<key>.npy')", context);
    check_member_sizes(stat, file_size, context);
    // Members never share bytes in an archive np.savez writes; overlapping ones (a "zip
    // bomb" unpacking one compressed block many times) add up to more than the file.
    packed_total += stat.comp_size;
    VISREP_CHECK(packed_total <= file_size,
                 "load_npz: '{}': the members' packed sizes add up to more than the {}-byte file (by member '{}'): "
                 "members overlap or the size fields are corrupt",
                 path, file_size, printable(name));
    members.push_back({static_cast<zip_uint64_t>(index), stat.size, name.substr(0, name.size() - kMemberSuffix.size()),
                       context});
  }
  // Now that the names are known to be distinct, libzip's own check of every local header
  // against the central directory (which reports duplicates only as "File already exists").
  archive = open_archive(path, /*check_consistency=*/true);

  TensorMap tensors;
  for (const Member& member : members) {
    const std::string bytes = read_member(archive.get(), member.index, member.size, member.context);
    Tensor tensor = parse_npy(bytes, member.context);
    tensors.emplace(member.key, std::move(tensor));
  }
  return tensors;
}

void save_npz(const std::string& path, const TensorMap& tensors) {
  // Every member is serialised before anything is written, so a bad tensor (bfloat16, an
  // undefined one) fails with its name and leaves no file behind.
  std::vector<std::pair<std::string, std::string>> members;  // (member name, .npy bytes)
  for (const auto& [key, tensor] : tensors) {
    VISREP_CHECK(!key.empty(), "save_npz: '{}': an empty key has no member name", path);
    members.emplace_back(key + std::string(kMemberSuffix),
                         npy_bytes(tensor, fmt::format("save_npz: '{}': member '{}'", path, key)));
  }

  if (members.empty()) {
    util::write_file_atomically(path, kEmptyArchive);
    return;
  }

  // libzip writes the archive into `archive_bytes` when it is closed; zip_source_keep lets the
  // buffer outlive the archive so it can be read back.
  zip_error_t error;
  zip_error_init(&error);
  SourcePointer archive_bytes(zip_source_buffer_create(nullptr, 0, 0, &error));
  VISREP_CHECK(archive_bytes != nullptr, "save_npz: '{}': cannot create the archive buffer: {}", path,
               zip_error_strerror(&error));
  ArchivePointer archive(zip_open_from_source(archive_bytes.get(), ZIP_TRUNCATE, &error));
  VISREP_CHECK(archive != nullptr, "save_npz: '{}': cannot create the archive: {}", path, zip_error_strerror(&error));
  zip_source_keep(archive_bytes.get());
  zip_error_fini(&error);

  for (const auto& [name, bytes] : members) {
    // The member's bytes are borrowed (freep = 0): `members` outlives zip_close below.
    zip_source_t* member = zip_source_buffer(archive.get(), bytes.data(), bytes.size(), 0);
    VISREP_CHECK(member != nullptr, "save_npz: '{}': member '{}': {}", path, name, zip_strerror(archive.get()));
    const zip_int64_t index = zip_file_add(archive.get(), name.c_str(), member, 0);
    if (index < 0) {
      zip_source_free(member);  // on failure the archive did not take it
      VISREP_FAIL("save_npz: '{}': cannot add member '{}': {}", path, name, zip_strerror(archive.get()));
    }
    VISREP_CHECK(zip_set_file_compression(archive.get(), static_cast<zip_uint64_t>(index), ZIP_CM_STORE, 0) == 0,
                 "save_npz: '{}': member '{}': {}", path, name, zip_strerror(archive.get()));
  }
  VISREP_CHECK(zip_close(archive.get()) == 0, "save_npz: '{}': cannot write the archive: {}", path,
               zip_strerror(archive.get()));
  archive.release();  // zip_close freed it

  std::string contents;
  zip_source_t* buffer = archive_bytes.get();
  VISREP_CHECK(zip_source_open(buffer) == 0, "save_npz: '{}': cannot read the archive buffer: {}", path,
               zip_error_strerror(zip_source_error(buffer)));
  zip_source_seek(buffer, 0, SEEK_END);
  const zip_int64_t size = zip_source_tell(buffer);
  zip_source_seek(buffer, 0, SEEK_SET);
  VISREP_CHECK(size >= 0, "save_npz: '{}': cannot measure the archive buffer: {}", path,
               zip_error_strerror(zip_source_error(buffer)));
  contents.resize(static_cast<size_t>(size));
  const zip_int64_t got = zip_source_read(buffer, contents.data(), static_cast<zip_uint64_t>(size));
  zip_source_close(buffer);
  VISREP_CHECK(got == size, "save_npz: '{}': read {} of the archive's {} bytes back", path, got, size);
  util::write_file_atomically(path, contents);
}

}  // namespace visrep::io
