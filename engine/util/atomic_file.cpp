#include "engine/util/atomic_file.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <charconv>
#include <ctime>
#include <filesystem>
#include <map>
#include <mutex>
#include <ostream>
#include <streambuf>
#include <system_error>
#include <vector>

#include "engine/error.h"

namespace visrep::util {
namespace {

std::string last_system_error() { return std::strerror(errno); }

// The temporary file's name pattern, "<target>.tmp-<pid>-<sequence>" (TemporaryFile below).
constexpr std::string_view kTemporaryMarker = ".tmp-";
// How long a leftover must have been left unchanged before it counts as abandoned.
constexpr int64_t kStaleSeconds = 60;

// The writer's pid when `name` has the temporary-file pattern, else 0.
pid_t temporary_file_pid(std::string_view name) {
  const size_t marker = name.rfind(kTemporaryMarker);
  if (marker == std::string_view::npos || marker == 0) return 0;
  std::string_view rest = name.substr(marker + kTemporaryMarker.size());
  const size_t dash = rest.find('-');
  if (dash == std::string_view::npos || dash == 0 || dash + 1 == rest.size()) return 0;
  const std::string_view pid_text = rest.substr(0, dash), sequence_text = rest.substr(dash + 1);
  const auto all_digits = [](std::string_view text) {
    return text.find_first_not_of("0123456789") == std::string_view::npos;
  };
  if (!all_digits(pid_text) || !all_digits(sequence_text)) return 0;
  pid_t pid = 0;
  const auto [end, error] = std::from_chars(pid_text.data(), pid_text.data() + pid_text.size(), pid);
  return error == std::errc() && end == pid_text.data() + pid_text.size() ? pid : 0;
}

// No process of this pid exists on this machine (kill(2) with signal 0 only checks).
bool process_is_gone(pid_t pid) { return pid > 0 && ::kill(pid, 0) != 0 && errno == ESRCH; }

// What remove_stale_temporary_files found besides what it removed.
struct CleanupResult {
  size_t removed = 0;
  bool recent_leftover = false;  // a dead writer's file changed under a minute ago: look again later
};

CleanupResult clean_folder(const std::filesystem::path& folder) {
  CleanupResult result;
  std::error_code error;
  const pid_t self = ::getpid();
  for (std::filesystem::directory_iterator it(folder, error), end; !error && it != end; it.increment(error)) {
    const std::string name = it->path().filename().string();
    const pid_t pid = temporary_file_pid(name);
    if (pid == 0 || pid == self || !process_is_gone(pid)) continue;
    struct stat status {};
    if (::lstat(it->path().c_str(), &status) != 0 || !S_ISREG(status.st_mode)) continue;
    if (std::time(nullptr) - status.st_mtime < kStaleSeconds) {
      result.recent_leftover = true;
      continue;
    }
    if (::unlink(it->path().c_str()) == 0) ++result.removed;
  }
  return result;
}

// At a write into `folder`: clean it once per process, and again while a leftover was too
// recent to remove (a run resumed right after it was killed).
void clean_folder_before_write(const std::string& target) {
  static std::mutex mutex;
  static std::map<std::string, bool> look_again;  // folder -> a recent leftover was seen there
  std::filesystem::path folder = std::filesystem::path(target).parent_path();
  if (folder.empty()) folder = ".";
  const std::lock_guard<std::mutex> lock(mutex);
  const auto found = look_again.find(folder.string());
  if (found != look_again.end() && !found->second) return;
  look_again[folder.string()] = clean_folder(folder).recent_leftover;
}

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
    path_ = fmt::format("{}{}{}-{}", target, kTemporaryMarker, ::getpid(), sequence.fetch_add(1));
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
  clean_folder_before_write(path);
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

size_t remove_stale_temporary_files(const std::string& folder) { return clean_folder(folder).removed; }

}  // namespace visrep::util
