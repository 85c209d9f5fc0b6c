// Writing a file so that readers (and a crash) only ever see the old file or the whole
// new one, never half of it: the contents go to a temporary file in the same directory,
// which is flushed to disk (fsync) and then renamed over the target. rename(2) within one
// file system replaces the target atomically (POSIX), which is why the temporary file must
// live next to the target and not in /tmp.
//
// Checkpoints, state dicts, arrays and metrics files are all written through here.
//
// A write killed before its rename (kill -9, a crash, power loss) leaves its temporary file
// behind; the next write into that folder removes such leftovers (remove_stale_temporary_files).
#pragma once

#include <functional>
#include <iosfwd>
#include <string>
#include <string_view>

namespace visrep::util {

// Calls `writer` with a stream onto "<path>.tmp-<pid>-<n>", then flushes, fsyncs and
// renames that file to `path`. If anything fails (the directory does not exist, the disk
// is full, the writer throws, the rename is refused) the temporary file is removed, an
// existing target is left untouched, and a visrep::Error naming `path` is thrown (the
// writer's own message is kept in it).
void write_file_atomically(const std::string& path, const std::function<void(std::ostream&)>& writer);

// The same for contents already in memory.
void write_file_atomically(const std::string& path, std::string_view contents);

// Removes the temporary files of interrupted writes from `folder` and returns how many:
// only names of this writer's pattern ("<name>.tmp-<pid>-<n>"), only when no process of
// that pid is running here and the file has not changed for a minute (a writer on another
// machine or in another pid namespace sharing the folder keeps its file fresh while it
// writes). Anything else in the folder is left alone. write_file_atomically calls it for a
// folder at its first write there in a process (again while a leftover is too recent);
// apps may call it when a run starts.
size_t remove_stale_temporary_files(const std::string& folder);

}  // namespace visrep::util
