// The model registry's operations: open, publish, list, find, promote, verify (registry.hpp).
// The durable-file layer is durable.hpp; the index is registry_index.cpp.
#include "mfrec/registry.hpp"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/crc.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "mfrec/durable.hpp"
#include "mfrec/error.hpp"
#include "registry_internal.hpp"

namespace mfrec {

namespace fs = std::filesystem;
using namespace registry_detail;

namespace {

[[noreturn]] void sys_fail(const std::string& what, const std::string& path) {
  const int err = errno;
  throw IoError(what + " " + path + ": " + std::strerror(err));
}

}  // namespace

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
                                const std::vector<std::string>& stages_in, const AnnParams* ann) {
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
  std::string ann_placed;  // the index, likewise
  try {
    boost::crc_32_type crc;
    e.bytes = copy_file_synced(model_path, placed, [&](const char* data, std::size_t n) { crc.process_bytes(data, n); });
    e.checksum = format_crc(crc.checksum());
    fault_point("after-copy");
    if (ann) ann_placed = write_ann_temp(placed, name_dir, *ann, e);  // from the bytes published

    // 2. Under the lock: number the version, move the copy into place, replace the index.
    FileLock lock(dir_ + "/" + kLockFile);
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
    e.created = utc_now_iso();
    const std::string final_path = dir_ + "/" + e.file;
    if (::rename(placed.c_str(), final_path.c_str()) != 0) sys_fail("cannot rename " + placed + " to", final_path);
    placed = final_path;
    if (!ann_placed.empty()) {
      e.ann_file = name + "/v" + std::to_string(e.version) + ".ann";
      const std::string final_ann = dir_ + "/" + e.ann_file;
      if (::rename(ann_placed.c_str(), final_ann.c_str()) != 0) sys_fail("cannot rename " + ann_placed + " to", final_ann);
      ann_placed = final_ann;
    }
    fsync_dir(name_dir);
    fault_point("after-model-rename");

    entries.push_back(e);
    for (const auto& s : stages) move_stage(entries, entries.size() - 1, s);
    write_index(dir_, entries);  // the commit point
    placed.clear();
    ann_placed.clear();
  } catch (...) {
    if (!placed.empty()) ::unlink(placed.c_str());
    if (!ann_placed.empty()) ::unlink(ann_placed.c_str());
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
  FileLock lock(dir_ + "/" + kLockFile);
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

}  // namespace mfrec
