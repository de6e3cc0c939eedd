#include "mfrec/paths.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <system_error>

#include "mfrec/error.hpp"

namespace mfrec {

namespace fs = std::filesystem;

namespace {

[[noreturn]] void fail(const PathArg& a, const std::string& message) {
  throw ConfigError("option --" + a.option + ": " + a.path + ": " + message);
}

std::string normalised(const std::string& p) {
  std::error_code ec;
  fs::path abs = fs::weakly_canonical(fs::absolute(p, ec), ec);
  if (ec) abs = fs::absolute(p).lexically_normal();
  return abs.string();
}

// The nearest directory at or above `p` that exists (for outputs that create their parents).
fs::path existing_ancestor(fs::path p) {
  std::error_code ec;
  p = fs::absolute(p, ec).lexically_normal();
  while (!p.empty() && !fs::exists(p, ec)) {
    if (p == p.parent_path()) break;
    p = p.parent_path();
  }
  return p;
}

bool writable_dir(const fs::path& d) { return ::access(d.c_str(), W_OK | X_OK) == 0; }

void check_one(const PathArg& a) {
  std::error_code ec;
  const fs::file_status st = fs::status(a.path, ec);
  const bool exists = fs::exists(st);
  switch (a.role) {
    case PathRole::InputFile:
      if (!exists) fail(a, "no such file");
      if (fs::is_directory(st)) fail(a, "is a directory, not a file");
      if (::access(a.path.c_str(), R_OK) != 0) fail(a, "cannot be read");
      break;
    case PathRole::InputDir:
      if (!exists) fail(a, "no such directory");
      if (!fs::is_directory(st)) fail(a, "is not a directory");
      break;
    case PathRole::OutputFile: {
      if (exists && fs::is_directory(st)) fail(a, "is a directory, not a file");
      fs::path dir = fs::absolute(a.path, ec).parent_path();
      if (fs::exists(dir, ec) && !fs::is_directory(dir, ec)) fail(a, dir.string() + " is a file, not a directory");
      if (!fs::is_directory(dir, ec)) fail(a, "its directory " + dir.string() + " does not exist");
      if (!writable_dir(dir)) fail(a, "its directory " + dir.string() + " is not writable");
      break;
    }
    case PathRole::OutputDir: {
      if (exists && !fs::is_directory(st)) fail(a, "is a file, not a directory");
      const fs::path base = existing_ancestor(a.path);
      if (!fs::is_directory(base, ec)) fail(a, base.string() + " is not a directory");
      if (!writable_dir(base)) fail(a, (exists ? "is not writable" : base.string() + " is not writable"));
      break;
    }
  }
}

}  // namespace

bool is_output(PathRole role) { return role == PathRole::OutputFile || role == PathRole::OutputDir; }

bool same_path(const std::string& a, const std::string& b) {
  struct stat sa {}, sb {};
  if (::stat(a.c_str(), &sa) == 0 && ::stat(b.c_str(), &sb) == 0) return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
  return normalised(a) == normalised(b);
}

void check_paths(const std::vector<PathArg>& args) {
  for (std::size_t i = 0; i < args.size(); ++i) {
    const PathArg& a = args[i];
    if (a.path.empty()) continue;
    check_one(a);
    if (!is_output(a.role)) continue;
    for (std::size_t j = 0; j < args.size(); ++j) {
      const PathArg& b = args[j];
      if (j == i || b.path.empty() || (is_output(b.role) && j > i)) continue;
      if (same_path(a.path, b.path))
        fail(a, std::string("is the same file as --") + b.option + (is_output(b.role) ? " (another output)" : " (an input)"));
    }
  }
}

}  // namespace mfrec
