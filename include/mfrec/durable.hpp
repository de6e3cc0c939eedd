// Durable outputs: every file mfrec writes is written under a temporary name beside its final
// one and renamed into place when complete, so a reader (or a crash) never sees half a file and
// an existing file is replaced only by a whole new one.
//
//   AtomicFile out(path);            // writes "<path>.partial"
//   out.stream() << ...;
//   out.commit();                    // flush, fsync, rename to path, fsync the directory
//   // destroyed without commit(): the partial file is removed
#pragma once
#include <fstream>
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
  // naming the file when any step fails (the partial file is then removed).
  void commit();

 private:
  std::string path_, tmp_;
  std::ofstream out_;
  bool committed_ = false;
};

// Writes `text` to `path` through an AtomicFile.
void write_file_atomic(const std::string& path, const std::string& text);

// fsync a directory, so a rename inside it survives a crash (EINVAL/EROFS are ignored: some file
// systems do not sync directories; the rename is still atomic there). IoError on other failures.
void fsync_dir(const std::string& dir);

// fsync a file by name. IoError naming it on failure.
void fsync_file(const std::string& path);

}  // namespace mfrec
