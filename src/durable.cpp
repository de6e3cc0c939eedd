#include "mfrec/durable.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <vector>

#include "mfrec/error.hpp"

namespace mfrec {

namespace {

[[noreturn]] void sys_fail(const std::string& what, const std::string& path) {
  const int err = errno;
  throw IoError(what + " " + path + ": " + std::strerror(err));
}

std::string parent_dir(const std::string& path) {
  const std::string dir = std::filesystem::path(path).parent_path().string();
  return dir.empty() ? "." : dir;
}

}  // namespace

std::string partial_path(const std::string& path) { return path + ".partial"; }

namespace {

// fsync by name; EINVAL/EROFS (file systems that do not sync this kind of file) are not errors.
void fsync_path(const std::string& path, int flags, const char* what) {
  const int fd = ::open(path.c_str(), flags | O_RDONLY | O_CLOEXEC);
  if (fd < 0) sys_fail(std::string("cannot open ") + what, path);
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  errno = err;
  if (rc != 0 && err != EINVAL && err != EROFS) sys_fail(std::string("cannot fsync ") + what, path);
}

}  // namespace

void fsync_dir(const std::string& dir) { fsync_path(dir, O_DIRECTORY, "directory"); }

void fsync_file(const std::string& path) { fsync_path(path, 0, "file"); }

AtomicFile::AtomicFile(std::string path)
    : path_(std::move(path)), tmp_(partial_path(path_)), out_(tmp_, std::ios::binary | std::ios::trunc) {
  if (!out_) sys_fail("cannot create", tmp_);
}

AtomicFile::~AtomicFile() {
  if (committed_) return;
  out_.close();
  std::remove(tmp_.c_str());
}

void AtomicFile::commit(const std::function<void()>& before_rename) {
  out_.flush();
  const bool ok = static_cast<bool>(out_);
  out_.close();
  if (!ok || out_.fail()) {
    std::remove(tmp_.c_str());
    throw IoError("cannot write " + tmp_);
  }
  try {
    fsync_file(tmp_);
    if (before_rename) before_rename();
    if (::rename(tmp_.c_str(), path_.c_str()) != 0) sys_fail("cannot rename " + tmp_ + " to", path_);
  } catch (...) {
    std::remove(tmp_.c_str());
    throw;
  }
  committed_ = true;
  fsync_dir(parent_dir(path_));
}

void write_file_atomic(const std::string& path, const std::string& text,
                       const std::function<void()>& before_rename) {
  AtomicFile f(path);
  f.stream() << text;
  f.commit(before_rename);
}

namespace {

// A file descriptor closed on destruction; close(path) reports a failed close (on network file
// systems it can mean lost data).
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  void close(const std::string& path) {
    const int fd = fd_;
    fd_ = -1;
    if (fd >= 0 && ::close(fd) != 0) sys_fail("cannot close", path);
  }

 private:
  int fd_;
};

void write_all(int fd, const char* data, std::size_t n, const std::string& path) {
  while (n > 0) {
    const ssize_t w = ::write(fd, data, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      sys_fail("cannot write", path);
    }
    data += w;
    n -= static_cast<std::size_t>(w);
  }
}

}  // namespace

std::int64_t read_file_blocks(const std::string& path, const std::function<void(const char*, std::size_t)>& sink) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) sys_fail("cannot open", path);
  std::vector<char> buf(1 << 20);
  std::int64_t total = 0;
  for (;;) {
    const ssize_t r = ::read(fd.get(), buf.data(), buf.size());
    if (r < 0) {
      if (errno == EINTR) continue;
      sys_fail("cannot read", path);
    }
    if (r == 0) break;
    sink(buf.data(), static_cast<std::size_t>(r));
    total += r;
  }
  return total;
}

std::int64_t copy_file_synced(const std::string& from, const std::string& to,
                              const std::function<void(const char*, std::size_t)>& sink) {
  Fd out(::open(to.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666));
  if (out.get() < 0) sys_fail("cannot create", to);
  try {
    const std::int64_t bytes = read_file_blocks(from, [&](const char* data, std::size_t n) {
      if (sink) sink(data, n);
      write_all(out.get(), data, n, to);
    });
    if (::fsync(out.get()) != 0) sys_fail("cannot fsync", to);
    out.close(to);
    return bytes;
  } catch (...) {
    ::unlink(to.c_str());
    throw;
  }
}

void ensure_dir(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0777) == 0) return;
  const int err = errno;
  struct stat st {};
  if (err == EEXIST && ::stat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return;
  errno = err;
  sys_fail("cannot create directory", dir);
}

FileLock::FileLock(std::string path) : path_(std::move(path)) {
  static std::mutex process_mutex;
  guard_ = std::unique_lock<std::mutex>(process_mutex);
  fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666);
  if (fd_ < 0) sys_fail("cannot open the lock file", path_);
  auto fail = [&] {
    const int err = errno;
    ::close(fd_);
    errno = err;
    sys_fail("cannot lock", path_);
  };
  bool locked = false;
#ifdef F_OFD_SETLKW
  struct flock fl {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  for (;;) {
    if (::fcntl(fd_, F_OFD_SETLKW, &fl) == 0) {
      locked = true;
      break;
    }
    if (errno == EINTR) continue;
    if (errno == EINVAL) break;  // a kernel without OFD locks: fall back to flock
    fail();
  }
#endif
  while (!locked) {
    if (::flock(fd_, LOCK_EX) == 0) locked = true;
    else if (errno != EINTR) fail();
  }
}

FileLock::~FileLock() { ::close(fd_); }

}  // namespace mfrec
