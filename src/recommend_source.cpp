// Where a model comes from: a file path, or a registry spec resolved (and verified) to one.
#include <filesystem>

#include "mfrec/error.hpp"
#include "mfrec/recommend.hpp"
#include "mfrec/registry.hpp"

namespace mfrec {

namespace fs = std::filesystem;

std::string ModelSource::describe() const {
  if (name.empty()) return path;
  return name + ":" + std::to_string(version) + " (" + path + ")";
}

ModelSource resolve_model(const std::string& model, const std::string& registry_dir, const std::string& spec) {
  ModelSource s;
  if (registry_dir.empty()) {
    if (model.empty()) throw ConfigError("option --model: no model file given (or use --registry and --spec)");
    s.path = model;
    return s;
  }
  if (spec.empty()) throw ConfigError("option --spec: empty registry spec (e.g. retail-als@production)");
  Registry reg(registry_dir, /*create=*/false);
  RegistryEntry e = reg.find(spec);
  // Verify the concrete version found, so a label moving meanwhile cannot mix two versions.
  s.path = reg.verified_path(e.spec());
  s.spec = spec;
  s.name = e.name;
  s.version = e.version;
  s.checksum = e.checksum;
  if (!e.ann_file.empty()) s.ann_path = (fs::path(reg.dir()) / e.ann_file).string();
  s.ann_checksum = e.ann_checksum;
  return s;
}

ModelSource peek_registry(const std::string& registry_dir, const std::string& spec) {
  Registry reg(registry_dir, /*create=*/false);
  RegistryEntry e = reg.find(spec);
  ModelSource s;
  s.path = (fs::path(reg.dir()) / e.file).string();
  s.spec = spec;
  s.name = e.name;
  s.version = e.version;
  s.checksum = e.checksum;
  if (!e.ann_file.empty()) s.ann_path = (fs::path(reg.dir()) / e.ann_file).string();
  s.ann_checksum = e.ann_checksum;
  return s;
}

}  // namespace mfrec
