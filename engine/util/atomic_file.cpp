#include "engine/util/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <ostream>
#include <streambuf>
#include <system_error>
#include <vector>

#include "engine/error.h"

namespace visrep::util {
namespace {

std::string last_system_error() { return std::strerror(errno); }

// A std::streambuf over a POSIX file descriptor. std::ofstream would be simpler but gives
// no access to its descriptor, and the data must be fsync'ed before the rename, or a crash
// shortly after it can leave an empty file under the target name (the rename reaches the
// disk before the data on ext4 with delalloc and on XFS).
class FileDescriptorBuffer : public std::streambuf {
 public:
  explicit FileDescriptorBuffer(int descriptor) : descriptor_(descriptor), buffer_(kBufferBytes) { reset_buffer(); }

  // Why the last write failed (errno's text), or empty when every write succeeded.
  const std::string& failure() const { return failure_; }

 protected:
  int_type overflow(int_type character) override {
    if (!flush_buffer()) return traits_type::eof();
    if (!traits_type::eq_int_type(character, traits_type::eof())) {
      *pptr() = traits_type::to_char_type(character);
      pbump(1);
    }
    return traits_type::not_eof(character);
  }

  int sync() override { return flush_buffer() ? 0 : -1; }

  // Large blocks (tensor data) go straight to the file rather than through the buffer.
  std::streamsize xsputn(const char* data, std::streamsize count) override {
    if (count < static_cast<std::streamsize>(buffer_.size())) return std::streambuf::xsputn(data, count);
    if (!flush_buffer() || !write_all(data, static_cast<size_t>(count))) return 0;
    return count;
  }

 private:
  static constexpr size_t kBufferBytes = size_t{1} << 16;

  void reset_buffer() { setp(buffer_.data(), buffer_.data() + buffer_.size()); }

  bool flush_buffer() {
    const auto pending = static_cast<size_t>(pptr() - pbase());
    const bool written = pending == 0 || write_all(pbase(), pending);
    reset_buffer();
    return written;
  }

  bool write_all(const char* data, size_t count) {
    if (!failure_.empty()) return false;  // the file already has a hole; keep failing
    while (count > 0) {
      const ssize_t written = ::write(descriptor_, data, count);
      if (written < 0) {
        if (errno == EINTR) continue;
        failure_ = last_system_error();
        return false;
      }
      data += written;
      count -= static_cast<size_t>(written);
    }
    return true;
  }

  int descriptor_;
  std::vector<char> buffer_;
  std::string failure_;
};

// The temporary file next to the target. Until commit() succeeds, destroying it closes
// and deletes it, so every error path (including exceptions from the writer) cleans up.
class TemporaryFile {
 public:
  explicit TemporaryFile(const std::string& target) : target_(target) {
    // The pid keeps two processes apart; the sequence number keeps two threads of one
    // process apart when they write the same target.
    static std::atomic<uint64_t> sequence{0};
    path_ = fmt::format("{}.tmp-{}-{}", target, ::getpid(), sequence.fetch_add(1));
    descriptor_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    VISREP_CHECK(descriptor_ >= 0, "cannot write '{}': creating the temporary file '{}' failed: {}", target_, path_,
                 last_system_error());
  }

  ~TemporaryFile() {
    if (descriptor_ >= 0) ::close(descriptor_);
    if (!committed_) ::unlink(path_.c_str());
  }

  TemporaryFile(const TemporaryFile&) = delete;
  TemporaryFile& operator=(const TemporaryFile&) = delete;

  int descriptor() const { return descriptor_; }

  // Makes the data durable, then moves it over the target.
  void commit() {
    VISREP_CHECK(::fsync(descriptor_) == 0, "cannot write '{}': fsync failed: {}", target_, last_system_error());
    const int descriptor = descriptor_;
    descriptor_ = -1;
    // close() can report a failed delayed write (NFS, some FUSE file systems).
    VISREP_CHECK(::close(descriptor) == 0, "cannot write '{}': close failed: {}", target_, last_system_error());
    VISREP_CHECK(::rename(path_.c_str(), target_.c_str()) == 0, "cannot write '{}': renaming '{}' over it failed: {}",
                 target_, path_, last_system_error());
    committed_ = true;
    sync_parent_directory();
  }

 private:
  // Makes the rename itself durable. Best effort: some file systems refuse to fsync a
  // directory, and by now the new file is already in place.
  void sync_parent_directory() const {
    std::filesystem::path directory = std::filesystem::path(target_).parent_path();
    std::error_code ignored;
    if (directory.empty()) directory = std::filesystem::current_path(ignored);
    const int descriptor = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (descriptor < 0) return;
    ::fsync(descriptor);
    ::close(descriptor);
  }

  std::string target_;
  std::string path_;
  int descriptor_ = -1;
  bool committed_ = false;
};

}  // namespace

void write_file_atomically(const std::string& path, const std::function<void(std::ostream&)>& writer) {
  VISREP_CHECK(!path.empty(), "write_file_atomically: the path is empty");
  TemporaryFile file(path);
  {
    FileDescriptorBuffer buffer(file.descriptor());
    std::ostream stream(&buffer);
    try {
      writer(stream);
    } catch (const std::exception& error) {
      VISREP_FAIL("cannot write '{}': {}", path, error.what());
    }
    stream.flush();
    VISREP_CHECK(buffer.failure().empty(), "cannot write '{}': {}", path, buffer.failure());
    VISREP_CHECK(stream.good(), "cannot write '{}': the output stream reported an error", path);
  }
  file.commit();
}

void write_file_atomically(const std::string& path, std::string_view contents) {
  write_file_atomically(path, [contents](std::ostream& stream) {
    stream.write(contents.data(), static_cast<std::streamsize>(contents.size()));
  });
}

}  // namespace visrep::util
