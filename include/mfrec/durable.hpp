// Durable outputs: every file mfrec writes is written under a temporary name beside its final
// one and renamed into place when complete, so a reader (or a crash) never sees half a file and
// an existing file is replaced only by a whole new one.
//
//   AtomicFile out(path);            // writes "<path>.partial"
//   out.stream() << ...;
//   out.commit();                    // flush, fsync, rename to path, fsync the directory
//   // destroyed without commit(): the partial file is removed
#pragma once
#include <cstdint>
#include <fstream>
#include <functional>
#include <mutex>
#include <string>

namespace mfrec {

// The temporary name an output is written under before it is renamed to `path`.
std::string partial_path(const std::string& path);

class AtomicFile {
 public:
  // Opens "<path>.partial" for writing (binary, truncated). IoError naming it when it cannot.
  explicit AtomicFile(std::string path);
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  ~AtomicFile();  // removes the partial file unless committed

  std::ostream& stream() { return out_; }
  const std::string& path() const { return path_; }
  // Flushes, fsyncs and renames the partial file to path(), then fsyncs the directory. IoError
  // naming the file when any step fails (the partial file is then removed). `before_rename`, if
  // set, runs between the fsync and the rename (a test hook: the registry's fault points).
  void commit(const std::function<void()>& before_rename = {});

 private:
  std::string path_, tmp_;
  std::ofstream out_;
  bool committed_ = false;
};

// Writes `text` to `path` through an AtomicFile (`before_rename` as for commit()).
void write_file_atomic(const std::string& path, const std::string& text,
                       const std::function<void()>& before_rename = {});

// Reads the whole file, handing each block to `sink`; returns the byte count. IoError naming it.
std::int64_t read_file_blocks(const std::string& path, const std::function<void(const char*, std::size_t)>& sink);

// Copies `from` to a new file `to` (created exclusively: it must not exist) and fsyncs it; each
// block read also goes to `sink` (e.g. a checksum). Returns the byte count. On failure `to` is
// removed and IoError names the file. For copies whose final name is chosen later (rename).
std::int64_t copy_file_synced(const std::string& from, const std::string& to,
                              const std::function<void(const char*, std::size_t)>& sink = {});

// mkdir that tolerates a concurrent creator (an existing directory is fine). IoError otherwise.
void ensure_dir(const std::string& dir);

// An exclusive lock on a lock file (created if missing, never deleted), held until destroyed:
// an open-file-description lock (per open file, so it excludes other threads as well as other
// processes, and works over NFS), with flock where the kernel lacks OFD locks; released when
// the file is closed, including by a crash. A process-wide mutex is taken first, for systems
// without OFD locks.
class FileLock {
 public:
  explicit FileLock(std::string path);  // blocks until locked; IoError naming the file
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;
  ~FileLock();

 private:
  std::unique_lock<std::mutex> guard_;
  std::string path_;
  int fd_ = -1;
};

// fsync a directory, so a rename inside it survives a crash (EINVAL/EROFS are ignored: some file
// systems do not sync directories; the rename is still atomic there). IoError on other failures.
void fsync_dir(const std::string& dir);

// fsync a file by name. IoError naming it on failure.
void fsync_file(const std::string& path);

}  // namespace mfrec
