#include "mfrec/durable.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

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

void fsync_dir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) sys_fail("cannot open directory", dir);
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  errno = err;
  if (rc != 0 && err != EINVAL && err != EROFS) sys_fail("cannot fsync directory", dir);
}

void fsync_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) sys_fail("cannot open", path);
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  errno = err;
  if (rc != 0 && err != EINVAL && err != EROFS) sys_fail("cannot fsync", path);
}

AtomicFile::AtomicFile(std::string path)
    : path_(std::move(path)), tmp_(partial_path(path_)), out_(tmp_, std::ios::binary | std::ios::trunc) {
  if (!out_) sys_fail("cannot create", tmp_);
}

AtomicFile::~AtomicFile() {
  if (committed_) return;
  out_.close();
  std::remove(tmp_.c_str());
}

void AtomicFile::commit() {
  out_.flush();
  const bool ok = static_cast<bool>(out_);
  out_.close();
  if (!ok || out_.fail()) {
    std::remove(tmp_.c_str());
    throw IoError("cannot write " + tmp_);
  }
  try {
    fsync_file(tmp_);
    if (::rename(tmp_.c_str(), path_.c_str()) != 0) sys_fail("cannot rename " + tmp_ + " to", path_);
  } catch (...) {
    std::remove(tmp_.c_str());
    throw;
  }
  committed_ = true;
  fsync_dir(parent_dir(path_));
}

void write_file_atomic(const std::string& path, const std::string& text) {
  AtomicFile f(path);
  f.stream() << text;
  f.commit();
}

}  // namespace mfrec
