// The registry's ANN indexes (registry.hpp): built from a version's model file, stored as
// DIR/NAME/vN.ann beside it and checksummed in index.json as the model is.
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include <spdlog/spdlog.h>

#include "mfrec/ann.hpp"
#include "mfrec/durable.hpp"
#include "mfrec/error.hpp"
#include "registry_internal.hpp"

namespace mfrec {

using namespace registry_detail;

std::string registry_detail::write_ann_temp(const std::string& model_path, const std::string& name_dir,
                                            const AnnParams& p, RegistryEntry& e) {
  const Model m = read_model(model_path);
  const auto t0 = std::chrono::steady_clock::now();
  const AnnIndex index = AnnIndex::build(m.item_factors, p);
  const std::string tmp = name_dir + "/" + kPublishPrefix + unique_suffix() + ".tmp";
  index.save(tmp);  // written as tmp.partial, renamed when complete
  try {
    e.ann_checksum = file_checksum(tmp);
    struct stat st {};
    e.ann_bytes = ::stat(tmp.c_str(), &st) == 0 ? static_cast<std::int64_t>(st.st_size) : 0;
    e.ann_metric = p.metric;
  } catch (...) {
    ::unlink(tmp.c_str());
    throw;
  }
  spdlog::info("ANN index of {} items x {} factors (M {}, ef_construction {}, metric {}) built in {:.1f} s",
               m.item_factors.rows(), m.item_factors.cols(), p.m, p.ef_construction, p.metric,
               std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  return tmp;
}

RegistryEntry Registry::build_index(const std::string& spec, const AnnParams& p) {
  const RegistryEntry e0 = find(spec);
  const std::string model = verified_path(e0.spec());
  const std::string name_dir = dir_ + "/" + e0.name;
  RegistryEntry built = e0;
  std::string placed = write_ann_temp(model, name_dir, p, built);  // removed on failure
  try {
    FileLock lock(dir_ + "/" + kLockFile);
    std::vector<RegistryEntry> entries = read_index(dir_);
    const std::size_t i = resolve(entries, e0.spec(), dir_);
    RegistryEntry& e = entries[i];
    e.ann_file = e.name + "/v" + std::to_string(e.version) + ".ann";
    e.ann_checksum = built.ann_checksum;
    e.ann_bytes = built.ann_bytes;
    e.ann_metric = built.ann_metric;
    const std::string final_path = dir_ + "/" + e.ann_file;
    if (::rename(placed.c_str(), final_path.c_str()) != 0)
      throw IoError("cannot rename " + placed + " to " + final_path + ": " + std::strerror(errno));
    placed.clear();
    fsync_dir(name_dir);
    write_index(dir_, entries);  // the commit point
    return e;
  } catch (...) {
    if (!placed.empty()) ::unlink(placed.c_str());
    throw;
  }
}

std::string Registry::verified_ann_path(const std::string& spec) const {
  const RegistryEntry e = find(spec);
  if (e.ann_file.empty())
    throw InputError(e.spec() + " has no ANN index in registry " + dir_ + " (build it: mfrec_registry build-index " +
                     e.spec() + ")");
  const std::string path = dir_ + "/" + e.ann_file;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    throw InputError(path + ": ANN index of " + e.spec() + " is missing from the registry");
  const std::string sum = file_checksum(path);
  if (sum != e.ann_checksum)
    throw InputError(path + ": checksum mismatch for the ANN index of " + e.spec() + " (file " + sum + ", index " +
                     e.ann_checksum + "); refusing to load it");
  return path;
}

}  // namespace mfrec
