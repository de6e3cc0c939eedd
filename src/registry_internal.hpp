// The registry's internals shared by its source files (registry.cpp: the Registry operations;
// registry_index.cpp: index.json and its table; registry_spec.cpp: names, stages and specs;
// registry_meta.cpp: metadata JSON, the baseline rule, checksums and tables;
// registry_promote.cpp: champion/challenger promotion and comparing two versions). Not installed.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "mfrec/registry.hpp"

namespace mfrec::registry_detail {

inline constexpr const char* kIndexFile = "index.json";
inline constexpr const char* kIndexTable = "INDEX.md";
inline constexpr const char* kLockFile = ".lock";
inline constexpr const char* kPublishPrefix = ".publish-";  // DIR/NAME/.publish-HOST-PID-RAND.tmp

// Test hook (docs/registry.md): MFREC_REGISTRY_FAULT=POINT makes the process die at POINT as if
// it had crashed (exit status 70, no clean-up); MFREC_REGISTRY_FAULT=throw:POINT throws an
// IoError there instead. Points: after-copy, after-model-rename, before-index-rename.
void fault_point(const char* point);

// HOST-PID-RAND: unique over hosts, processes and calls.
std::string unique_suffix();
std::string hostname();  // this host's name with characters other than [A-Za-z0-9.-] as '_'

// Names, stages and specs.
bool valid_name(const std::string& s);
void check_name(const std::string& name);    // InputError unless valid_name
void check_stage(const std::string& stage);  // InputError unless one of registry_stages()
struct Spec {
  std::string name;
  int version = 0;    // > 0: that version
  std::string stage;  // non-empty: the holder of that label
};
Spec parse_spec(const std::string& text);  // InputError when malformed
// Index into `entries` of the version `spec` names. InputError when there is none.
std::size_t resolve(const std::vector<RegistryEntry>& entries, const std::string& spec, const std::string& dir);
// Gives `stage` to entries[target], taking it from the other versions of the same name.
// Returns whether anything changed.
bool move_stage(std::vector<RegistryEntry>& entries, std::size_t target, const std::string& stage);

// The index. read_index: every entry, by name then version ({} when there is no index yet);
// IoError when it is not a registry index. write_index (under the lock): the commit point.
std::vector<RegistryEntry> read_index(const std::string& dir);
void write_index(const std::string& dir, std::vector<RegistryEntry> entries);
// Under the lock: removes what crashed writers left (index temp files; publish copies of
// processes on this host that no longer run, in `name_dir` when given).
void remove_stale_temps(const std::string& dir, const std::string& name_dir);

std::string format_crc(std::uint32_t crc);  // "crc32:xxxxxxxx"

// Builds the ANN index of the model file `model_path` and writes it to a new publish temp file in
// `name_dir` (removed by remove_stale_temps if this process dies); sets e's ann_checksum,
// ann_bytes and ann_metric. Returns the temp file's path.
std::string write_ann_temp(const std::string& model_path, const std::string& name_dir, const AnnParams& p,
                           RegistryEntry& e);

// meta[group][key] as a number (group: "metrics", "baseline_metrics", "system_metrics"); false
// when absent or not a number (a NaN is stored as null).
bool meta_metric(const nlohmann::json& meta, const char* group, const std::string& key, double& out);

}  // namespace mfrec::registry_detail
