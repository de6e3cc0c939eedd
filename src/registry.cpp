#include "mfrec/registry.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <boost/crc.hpp>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <set>
#include <sstream>

#include "mfrec/error.hpp"
#include "mfrec/log.hpp"

namespace mfrec {

namespace {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

constexpr const char* kIndexFile = "index.json";
constexpr const char* kIndexTable = "INDEX.md";
constexpr const char* kLockFile = ".lock";
constexpr const char* kPublishPrefix = ".publish-";  // DIR/NAME/.publish-HOST-PID-RAND.tmp

[[noreturn]] void sys_fail(const std::string& what, const std::string& path) {
  const int err = errno;
  throw IoError(what + " " + path + ": " + std::strerror(err));
}

// Test hook (documented in docs/registry.md): MFREC_REGISTRY_FAULT=POINT makes the process die
// at POINT as if it had crashed (exit status 70, no clean-up); MFREC_REGISTRY_FAULT=throw:POINT
// throws an IoError there instead. Points: after-copy, after-model-rename, before-index-rename.
void fault_point(const char* point) {
  const char* env = std::getenv("MFREC_REGISTRY_FAULT");
  if (env == nullptr || *env == '\0') return;
  std::string s(env);
  const bool do_throw = s.rfind("throw:", 0) == 0;
  if (do_throw) s = s.substr(6);
  if (s != point) return;
  if (do_throw) throw IoError(std::string("injected fault at ") + point + " (MFREC_REGISTRY_FAULT)");
  std::fflush(nullptr);
  std::_Exit(70);
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  // Close, reporting errors (a failed close can mean lost data on network file systems).
  void close(const std::string& path) {
    const int fd = fd_;
    fd_ = -1;
    if (fd >= 0 && ::close(fd) != 0) sys_fail("cannot close", path);
  }

 private:
  int fd_;
};

void fsync_dir(const std::string& dir) {
  Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) sys_fail("cannot open directory", dir);
  // Some file systems refuse fsync on a directory (EINVAL); the rename is still atomic there.
  if (::fsync(fd.get()) != 0 && errno != EINVAL && errno != EROFS) sys_fail("cannot fsync directory", dir);
}

// mkdir that tolerates a concurrent creator.
void ensure_dir(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0777) == 0) return;
  const int err = errno;
  struct stat st {};
  if (err == EEXIST && ::stat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return;
  errno = err;
  sys_fail("cannot create directory", dir);
}

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

// Reads the whole file, feeding every block to `sink`.
template <class Sink>
std::int64_t read_blocks(const std::string& path, Sink&& sink) {
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

std::string format_crc(std::uint32_t crc) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "crc32:%08x", crc);
  return buf;
}

std::string hostname() {
  char buf[256] = {0};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "localhost";
  std::string h(buf);
  for (char& c : h)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-') c = '_';
  return h.empty() ? "localhost" : h;
}

// HOST-PID-RAND: unique over hosts, processes and calls.
std::string unique_suffix() {
  static std::atomic<unsigned> counter{0};
  static const unsigned seed = std::random_device{}();
  char buf[64];
  std::snprintf(buf, sizeof buf, "-%ld-%08x%04x", static_cast<long>(::getpid()), seed, counter++ & 0xffffu);
  return hostname() + buf;
}

// Writes `text` to `path` atomically: a temp file beside it, fsync, rename, fsync the directory.
void write_file_atomic(const std::string& path, const std::string& text, const char* fault = nullptr) {
  const fs::path p(path);
  const std::string dir = p.parent_path().string();
  const std::string tmp = dir + "/." + p.filename().string() + "." + unique_suffix() + ".tmp";
  try {
    Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666));
    if (fd.get() < 0) sys_fail("cannot create", tmp);
    write_all(fd.get(), text.data(), text.size(), tmp);
    if (::fsync(fd.get()) != 0) sys_fail("cannot fsync", tmp);
    fd.close(tmp);
    if (fault) fault_point(fault);
    if (::rename(tmp.c_str(), path.c_str()) != 0) sys_fail("cannot rename " + tmp + " to", path);
  } catch (...) {
    ::unlink(tmp.c_str());
    throw;
  }
  fsync_dir(dir);
}

// The registry's exclusive lock: an open-file-description lock on DIR/.lock (per open file, so
// it excludes other threads as well as other processes, and works over NFS), released when the
// file is closed, including by a crash. A process-wide mutex is taken first, for systems
// without OFD locks.
class DirLock {
 public:
  explicit DirLock(const std::string& dir) : guard_(mutex()), path_(dir + "/" + kLockFile) {
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd_ < 0) sys_fail("cannot open the registry lock", path_);
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
      if (errno == EINVAL) break;  // kernel without OFD locks: fall back to flock
      const int err = errno;
      ::close(fd_);
      errno = err;
      sys_fail("cannot lock", path_);
    }
#endif
    while (!locked) {
      if (::flock(fd_, LOCK_EX) == 0) {
        locked = true;
      } else if (errno != EINTR) {
        const int err = errno;
        ::close(fd_);
        errno = err;
        sys_fail("cannot lock", path_);
      }
    }
  }
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;
  ~DirLock() { ::close(fd_); }

 private:
  static std::mutex& mutex() {
    static std::mutex m;
    return m;
  }
  std::unique_lock<std::mutex> guard_;
  std::string path_;
  int fd_ = -1;
};

bool valid_name(const std::string& s) {
  if (s.empty() || s.size() > 100) return false;
  if (!std::isalnum(static_cast<unsigned char>(s[0]))) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
  });
}

void check_name(const std::string& name) {
  if (!valid_name(name))
    throw InputError("invalid model name '" + name +
                     "': use letters, digits, '.', '_' and '-', starting with a letter or digit");
}

std::string stage_list() {
  std::string s;
  for (const auto& st : registry_stages()) s += (s.empty() ? "" : ", ") + st;
  return s;
}

void check_stage(const std::string& stage) {
  const auto& all = registry_stages();
  if (std::find(all.begin(), all.end(), stage) == all.end())
    throw InputError("unknown stage '" + stage + "' (stages: " + stage_list() + ")");
}

// Tidy a float parameter for JSON: the shortest decimal that reads back as the same float.
double tidy(float v) {
  if (!std::isfinite(v)) return v;
  char buf[32];
  for (int prec = 6; prec <= 9; ++prec) {
    std::snprintf(buf, sizeof buf, "%.*g", prec, static_cast<double>(v));
    if (std::strtof(buf, nullptr) == v) break;
  }
  return std::strtod(buf, nullptr);
}

nlohmann::json metrics_json(const std::map<std::string, double>& m) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [k, v] : m) j[k] = v;  // NaN is written as null
  return j;
}

struct BadEntry : std::runtime_error {
  using std::runtime_error::runtime_error;
};

RegistryEntry entry_from_json(const nlohmann::json& j) {
  RegistryEntry e;
  e.name = j.at("name").get<std::string>();
  e.version = j.at("version").get<int>();
  e.file = j.at("file").get<std::string>();
  e.checksum = j.at("checksum").get<std::string>();
  e.bytes = j.value("bytes", std::int64_t{0});
  e.stages = j.value("stages", std::vector<std::string>{});
  e.created = j.value("created", std::string());
  e.source = j.value("source", std::string());
  e.meta = j.value("meta", nlohmann::json::object());
  const fs::path f(e.file);
  bool escapes = f.is_absolute() || e.file.empty();
  for (const auto& part : f)
    if (part == "..") escapes = true;
  if (!valid_name(e.name) || e.version < 1 || escapes)
    throw BadEntry("bad entry for '" + e.name + "' version " + std::to_string(e.version) +
                   " (invalid name or version, or a file outside the registry)");
  return e;
}

bool entry_less(const RegistryEntry& a, const RegistryEntry& b) {
  return a.name != b.name ? a.name < b.name : a.version < b.version;
}

std::vector<RegistryEntry> read_index(const std::string& dir) {
  const std::string path = dir + "/" + kIndexFile;
  std::ifstream in(path);
  if (!in) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0 && errno == ENOENT) return {};
    sys_fail("cannot read", path);
  }
  std::vector<RegistryEntry> entries;
  try {
    const nlohmann::json j = nlohmann::json::parse(in);
    if (!j.is_object() || j.value("format", std::string()) != kRegistryFormat)
      throw IoError(path + ": not a registry index (format is not \"" + kRegistryFormat + "\")");
    const int version = j.value("format_version", 0);
    if (version < 1 || version > kRegistryFormatVersion)
      throw IoError(path + ": registry index format_version " + std::to_string(version) +
                    " is not supported (this program reads 1 to " + std::to_string(kRegistryFormatVersion) + ")");
    for (const auto& m : j.at("models")) entries.push_back(entry_from_json(m));
  } catch (const nlohmann::json::exception& e) {
    throw IoError(path + ": not a valid registry index: " + e.what());
  } catch (const BadEntry& e) {
    throw IoError(path + ": not a valid registry index: " + e.what());
  }
  std::sort(entries.begin(), entries.end(), entry_less);
  return entries;
}

// Under the lock: temp files of the index are only written under the lock, so any left over
// are from a crash; publish temps of a process on this host that no longer runs likewise.
void remove_stale_temps(const std::string& dir, const std::string& name_dir) {
  auto scan = [](const std::string& d, auto&& stale) {
    DIR* h = ::opendir(d.c_str());
    if (h == nullptr) return;
    std::vector<std::string> victims;
    while (const dirent* de = ::readdir(h)) {
      const std::string f = de->d_name;
      if (stale(f)) victims.push_back(d + "/" + f);
    }
    ::closedir(h);
    for (const auto& v : victims) ::unlink(v.c_str());
  };
  auto ends_with = [](const std::string& s, const std::string& t) {
    return s.size() >= t.size() && s.compare(s.size() - t.size(), t.size(), t) == 0;
  };
  scan(dir, [&](const std::string& f) {
    return ends_with(f, ".tmp") && (f.rfind(std::string(".") + kIndexFile + ".", 0) == 0 ||
                                    f.rfind(std::string(".") + kIndexTable + ".", 0) == 0);
  });
  if (name_dir.empty()) return;
  const std::string host = hostname();
  scan(name_dir, [&](const std::string& f) {
    if (f.rfind(kPublishPrefix, 0) != 0 || !ends_with(f, ".tmp")) return false;
    // .publish-HOST-PID-RAND.tmp
    const std::string core = f.substr(std::strlen(kPublishPrefix), f.size() - std::strlen(kPublishPrefix) - 4);
    const auto r = core.rfind('-');
    if (r == std::string::npos || r == 0) return false;
    const auto p = core.rfind('-', r - 1);
    if (p == std::string::npos) return false;
    if (core.substr(0, p) != host) return false;
    const std::string pid_text = core.substr(p + 1, r - p - 1);
    if (pid_text.empty() || !std::all_of(pid_text.begin(), pid_text.end(), ::isdigit)) return false;
    const long pid = std::strtol(pid_text.c_str(), nullptr, 10);
    if (pid <= 0 || pid == static_cast<long>(::getpid())) return false;
    return ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH;
  });
}

std::string now_iso() { return utc_now_iso(); }

void write_index(const std::string& dir, std::vector<RegistryEntry> entries) {
  std::sort(entries.begin(), entries.end(), entry_less);
  ojson doc;
  doc["format"] = kRegistryFormat;
  doc["format_version"] = kRegistryFormatVersion;
  doc["updated"] = now_iso();
  doc["models"] = ojson::array();
  for (const auto& e : entries) doc["models"].push_back(registry_entry_json(e));
  write_file_atomic(dir + "/" + kIndexFile, doc.dump(2) + "\n", "before-index-rename");
  // The table is derived: a failure here leaves the (authoritative) index committed.
  try {
    std::string md = "# Model registry\n\nGenerated from `index.json` (the authoritative index) at " + now_iso() +
                     ". Do not edit; use `mfrec_registry`.\n\n";
    md += entries.empty() ? std::string("No models registered.\n") : format_registry_table(entries, true);
    write_file_atomic(dir + "/" + kIndexTable, md);
  } catch (const std::exception& ex) {
    spdlog::warn("registry {}: index.json updated, but {} was not: {}", dir, kIndexTable, ex.what());
  }
}

struct Spec {
  std::string name;
  int version = 0;    // > 0: that version
  std::string stage;  // non-empty: the holder of that label
};

Spec parse_spec(const std::string& text) {
  Spec s;
  const auto bad = [&]() {
    return InputError("bad model spec '" + text + "': expected NAME, NAME:VERSION or NAME@STAGE");
  };
  const auto colon = text.find(':'), at = text.find('@');
  if (colon != std::string::npos && at != std::string::npos) throw bad();
  if (colon != std::string::npos) {
    s.name = text.substr(0, colon);
    const std::string v = text.substr(colon + 1);
    if (v.empty() || v.size() > 9 || !std::all_of(v.begin(), v.end(), ::isdigit)) throw bad();
    s.version = std::stoi(v);
    if (s.version < 1) throw bad();
  } else if (at != std::string::npos) {
    s.name = text.substr(0, at);
    s.stage = text.substr(at + 1);
    if (s.stage.empty()) throw bad();
  } else {
    s.name = text;
  }
  if (s.name.empty()) throw bad();
  check_name(s.name);
  if (!s.stage.empty()) check_stage(s.stage);
  return s;
}

// Index into `entries` of the version `spec` names.
std::size_t resolve(const std::vector<RegistryEntry>& entries, const std::string& text, const std::string& dir) {
  const Spec s = parse_spec(text);
  std::vector<std::size_t> versions;
  std::set<std::string> names;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    names.insert(entries[i].name);
    if (entries[i].name == s.name) versions.push_back(i);
  }
  if (versions.empty()) {
    std::string known;
    int shown = 0;
    for (const auto& n : names) {
      if (shown++ == 10) {
        known += ", ...";
        break;
      }
      known += (known.empty() ? "" : ", ") + n;
    }
    throw InputError("unknown model '" + s.name + "' in registry " + dir +
                     (known.empty() ? std::string(" (the registry is empty)") : " (models: " + known + ")"));
  }
  if (s.version > 0) {
    for (auto i : versions)
      if (entries[i].version == s.version) return i;
    throw InputError("model '" + s.name + "' has no version " + std::to_string(s.version) + " (versions " +
                     std::to_string(entries[versions.front()].version) + " to " +
                     std::to_string(entries[versions.back()].version) + ")");
  }
  if (!s.stage.empty()) {
    for (auto i : versions)
      if (entries[i].has_stage(s.stage)) return i;
    throw InputError("no version of model '" + s.name + "' has the stage '" + s.stage + "'");
  }
  std::size_t best = versions.front();
  for (auto i : versions)
    if (entries[i].version > entries[best].version) best = i;
  return best;
}

// Give `stage` to entries[target], taking it from the other versions of the same name.
bool move_stage(std::vector<RegistryEntry>& entries, std::size_t target, const std::string& stage) {
  bool changed = false;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    if (i == target || entries[i].name != entries[target].name) continue;
    auto& st = entries[i].stages;
    const auto it = std::remove(st.begin(), st.end(), stage);
    if (it != st.end()) {
      st.erase(it, st.end());
      changed = true;
    }
  }
  if (!entries[target].has_stage(stage)) {
    entries[target].stages.push_back(stage);
    changed = true;
  }
  return changed;
}

std::string metric_text(const nlohmann::json& meta, const char* group) {
  const auto g = meta.find(group);
  if (g == meta.end() || !g->is_object()) return "-";
  const auto v = g->find("map_at_k");
  if (v == g->end() || !v->is_number()) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4f", v->get<double>());
  return buf;
}

}  // namespace

const std::vector<std::string>& registry_stages() {
  static const std::vector<std::string> stages{"candidate", "staging", "production"};
  return stages;
}

bool RegistryEntry::has_stage(const std::string& stage) const {
  return std::find(stages.begin(), stages.end(), stage) != stages.end();
}

Registry::Registry(std::string dir, bool create) {
  if (dir.empty()) throw ConfigError("option --registry: empty path");
  fs::path p = fs::absolute(fs::path(dir)).lexically_normal();
  if (p.filename().empty() && p.has_parent_path() && p != p.root_path()) p = p.parent_path();
  dir_ = p.string();
  struct stat st {};
  if (::stat(dir_.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) throw ConfigError("option --registry: " + dir + " is a file, not a directory");
  } else if (errno == ENOTDIR) {
    throw ConfigError("option --registry: " + dir + ": a part of the path is a file, not a directory");
  } else if (errno != ENOENT) {
    throw ConfigError("option --registry: cannot access " + dir + ": " + std::strerror(errno));
  } else if (!create) {
    throw ConfigError("option --registry: " + dir + " does not exist");
  } else {
    // mkdir -p, tolerating concurrent creators.
    std::vector<fs::path> missing;
    for (fs::path q = p; !q.empty() && ::stat(q.c_str(), &st) != 0; q = q.parent_path()) {
      missing.push_back(q);
      if (q == q.root_path()) break;
    }
    for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
      try {
        ensure_dir(it->string());
      } catch (const IoError& e) {
        throw ConfigError("option --registry: cannot create " + dir + ": " + e.what());
      }
    }
  }
  read_index(dir_);  // a malformed index is reported now, not at first use
}

RegistryEntry Registry::publish(const std::string& model_path, const std::string& name,
                                const std::vector<std::string>& stages_in) {
  check_name(name);
  std::vector<std::string> stages;
  for (const auto& s : stages_in) {
    check_stage(s);
    if (std::find(stages.begin(), stages.end(), s) == stages.end()) stages.push_back(s);
  }
  struct stat st {};
  if (::stat(model_path.c_str(), &st) != 0) throw InputError("model file " + model_path + " does not exist");
  if (!S_ISREG(st.st_mode)) throw InputError("model file " + model_path + " is not a regular file");
  const ModelMeta meta = read_model_meta(model_path);  // InputError unless it is an mfrec model

  RegistryEntry e;
  e.name = name;
  e.stages = stages;
  e.source = fs::absolute(fs::path(model_path)).lexically_normal().string();
  e.meta = model_meta_json(meta);

  // 1. Copy the bytes to a temporary name in the model's directory (no lock needed), fsync.
  const std::string name_dir = dir_ + "/" + name;
  ensure_dir(name_dir);
  std::string placed = name_dir + "/" + kPublishPrefix + unique_suffix() + ".tmp";  // removed on failure
  try {
    {
      Fd out(::open(placed.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666));
      if (out.get() < 0) sys_fail("cannot create", placed);
      boost::crc_32_type crc;
      e.bytes = read_blocks(model_path, [&](const char* data, std::size_t n) {
        crc.process_bytes(data, n);
        write_all(out.get(), data, n, placed);
      });
      if (::fsync(out.get()) != 0) sys_fail("cannot fsync", placed);
      out.close(placed);
      e.checksum = format_crc(crc.checksum());
    }
    fault_point("after-copy");

    // 2. Under the lock: number the version, move the copy into place, replace the index.
    DirLock lock(dir_);
    remove_stale_temps(dir_, name_dir);
    std::vector<RegistryEntry> entries = read_index(dir_);
    int version = 0;
    for (const auto& x : entries)
      if (x.name == name) version = std::max(version, x.version);
    // Files of versions that never reached the index (a crash after step 2's rename) keep
    // their numbers: a version number is never reused.
    if (DIR* h = ::opendir(name_dir.c_str())) {
      while (const dirent* de = ::readdir(h)) {
        const std::string f = de->d_name;
        if (f.size() > 4 && f[0] == 'v' && f.compare(f.size() - 3, 3, ".h5") == 0) {
          const std::string digits = f.substr(1, f.size() - 4);
          if (!digits.empty() && digits.size() <= 9 && std::all_of(digits.begin(), digits.end(), ::isdigit))
            version = std::max(version, std::stoi(digits));
        }
      }
      ::closedir(h);
    }
    e.version = version + 1;
    e.file = name + "/v" + std::to_string(e.version) + ".h5";
    e.created = now_iso();
    const std::string final_path = dir_ + "/" + e.file;
    if (::rename(placed.c_str(), final_path.c_str()) != 0) sys_fail("cannot rename " + placed + " to", final_path);
    placed = final_path;
    fsync_dir(name_dir);
    fault_point("after-model-rename");

    entries.push_back(e);
    for (const auto& s : stages) move_stage(entries, entries.size() - 1, s);
    write_index(dir_, entries);  // the commit point
    placed.clear();
  } catch (...) {
    if (!placed.empty()) ::unlink(placed.c_str());
    throw;
  }
  return e;
}

std::vector<RegistryEntry> Registry::list() const { return read_index(dir_); }

RegistryEntry Registry::find(const std::string& spec) const {
  const auto entries = read_index(dir_);
  return entries[resolve(entries, spec, dir_)];
}

RegistryEntry Registry::promote(const std::string& spec, const std::string& stage) {
  check_stage(stage);
  parse_spec(spec);  // a malformed spec fails before taking the lock
  DirLock lock(dir_);
  remove_stale_temps(dir_, "");
  auto entries = read_index(dir_);
  const std::size_t i = resolve(entries, spec, dir_);
  if (move_stage(entries, i, stage)) write_index(dir_, entries);
  return entries[i];
}

std::string Registry::verified_path(const std::string& spec) const {
  const RegistryEntry e = find(spec);
  const std::string path = dir_ + "/" + e.file;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    throw InputError(path + ": model file of " + e.spec() + " is missing from the registry");
  const std::string sum = file_checksum(path);
  if (sum != e.checksum)
    throw InputError(path + ": checksum mismatch for " + e.spec() + " (file " + sum + ", index " + e.checksum +
                     "); refusing to load it");
  return path;
}

nlohmann::json model_meta_json(const ModelMeta& m) {
  nlohmann::json j;
  j["parameters"] = {{"factors", m.als.factors},
                     {"regularization", tidy(m.als.regularization)},
                     {"alpha", tidy(m.als.alpha)},
                     {"confidence", confidence_name(m.als.confidence)},
                     {"scale_regularization", m.als.scale_regularization},
                     {"solver", solver_name(m.als.solver)},
                     {"cg_steps", m.als.cg_steps},
                     {"iterations", m.iterations},
                     {"seed", m.seed},
                     {"k", m.k}};
  j["metrics"] = metrics_json(m.metrics);
  j["baseline_metrics"] = metrics_json(m.baseline_metrics);
  j["system_metrics"] = metrics_json(m.system_metrics);
  j["dataset"] = m.dataset;
  j["dataset_fingerprint"] = m.dataset_fingerprint;
  j["program_version"] = m.program_version;
  j["created"] = m.created;
  return j;
}

bool beats_baseline(const ModelMeta& meta) {
  const auto a = meta.metrics.find("map_at_k");
  const auto b = meta.baseline_metrics.find("map_at_k");
  if (a == meta.metrics.end() || b == meta.baseline_metrics.end()) return false;
  return std::isfinite(a->second) && std::isfinite(b->second) && a->second > b->second;
}

bool beats_baseline(const nlohmann::json& meta) {
  auto get = [&](const char* group, double& out) {
    if (!meta.is_object()) return false;
    const auto g = meta.find(group);
    if (g == meta.end() || !g->is_object()) return false;
    const auto v = g->find("map_at_k");
    if (v == g->end() || !v->is_number()) return false;
    out = v->get<double>();
    return std::isfinite(out);
  };
  double a = 0, b = 0;
  return get("metrics", a) && get("baseline_metrics", b) && a > b;
}

std::string file_checksum(const std::string& path) {
  boost::crc_32_type crc;
  read_blocks(path, [&](const char* data, std::size_t n) { crc.process_bytes(data, n); });
  return format_crc(crc.checksum());
}

nlohmann::ordered_json registry_entry_json(const RegistryEntry& e) {
  ojson j;
  j["name"] = e.name;
  j["version"] = e.version;
  j["file"] = e.file;
  j["checksum"] = e.checksum;
  j["bytes"] = e.bytes;
  j["stages"] = e.stages;
  j["created"] = e.created;
  j["source"] = e.source;
  j["beats_baseline"] = beats_baseline(e.meta);
  j["meta"] = e.meta.is_null() ? ojson::object() : ojson::parse(e.meta.dump());
  return j;
}

std::string format_registry_table(const std::vector<RegistryEntry>& entries, bool markdown) {
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"NAME", "VERSION", "STAGES", "MAP@K", "BASELINE-MAP@K", "CREATED", "FILE"});
  if (markdown) rows[0] = {"name", "version", "stages", "MAP@K", "baseline MAP@K", "created", "file"};
  for (const auto& e : entries) {
    std::string stages;
    for (const auto& s : e.stages) stages += (stages.empty() ? "" : ",") + s;
    rows.push_back({e.name, std::to_string(e.version), stages.empty() ? "-" : stages, metric_text(e.meta, "metrics"),
                    metric_text(e.meta, "baseline_metrics"), e.created, e.file});
  }
  std::ostringstream out;
  if (markdown) {
    for (std::size_t r = 0; r < rows.size(); ++r) {
      out << "|";
      for (const auto& c : rows[r]) out << " " << c << " |";
      out << "\n";
      if (r == 0) {
        out << "|";
        for (std::size_t c = 0; c < rows[0].size(); ++c) out << (c == 1 || c == 3 || c == 4 ? "---:|" : "---|");
        out << "\n";
      }
    }
    return out.str();
  }
  std::vector<std::size_t> width(rows[0].size(), 0);
  for (const auto& r : rows)
    for (std::size_t c = 0; c < r.size(); ++c) width[c] = std::max(width[c], r[c].size());
  for (const auto& r : rows) {
    std::string line;
    for (std::size_t c = 0; c < r.size(); ++c) {
      const bool right = c == 1 || c == 3 || c == 4;
      const std::string pad(width[c] - r[c].size(), ' ');
      line += right ? pad + r[c] : r[c] + (c + 1 < r.size() ? pad : "");
      if (c + 1 < r.size()) line += "  ";
    }
    out << line << "\n";
  }
  return out.str();
}

}  // namespace mfrec
