// The model registry: a directory of versioned model files with their metadata, an index a
// person can read, and stage labels.
//
//   DIR/index.json          the index (authoritative): every version of every model, pretty JSON
//   DIR/INDEX.md            the same as a table (derived, rewritten after every change)
//   DIR/.lock               the lock file (fcntl open-file-description lock; never deleted)
//   DIR/NAME/vN.h5          version N of model NAME, a byte copy of the published model file
//   DIR/NAME/vN.ann         its ANN index (ann.hpp), when one was built (publish --ann, build-index)
//
// Publishing copies the model to a temporary name beside its final one, fsyncs it, then, under
// an exclusive lock on DIR/.lock, picks the next version number, renames the copy into place
// and replaces index.json by write-temp + fsync + rename. A crash at any point leaves index.json
// as it was (at worst an unindexed file is left behind, which is ignored). Readers take no lock:
// they always see a complete index. Model files are never modified once published.
//
// Specs name a version: "NAME" (the latest), "NAME:3" (version 3), "NAME@production" (the
// version holding that stage label). Stage labels are candidate, staging and production; each is
// held by at most one version of a name (labelling a version moves the label from its holder).
// See docs/registry.md.
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "mfrec/ann.hpp"
#include "mfrec/model.hpp"

namespace mfrec {

inline constexpr const char* kRegistryFormat = "mfrec-registry";
inline constexpr int kRegistryFormatVersion = 1;

// The stage labels a version may carry.
const std::vector<std::string>& registry_stages();  // {"candidate", "staging", "production"}

struct RegistryEntry {
  std::string name;
  int version = 0;
  std::string file;      // path relative to the registry dir, e.g. "retail-als/v3.h5"
  std::string checksum;  // "crc32:1a2b3c4d" of the file's bytes
  std::int64_t bytes = 0;                // size of the file
  std::vector<std::string> stages;       // e.g. {"candidate"} or {"production"}
  std::string created;                   // registration time, ISO-8601 UTC
  std::string source;                    // absolute path the model was published from
  nlohmann::json meta;                   // model_meta_json of the model's metadata
  // The ANN index (index.json's "ann": {file, checksum, bytes, metric}), when one was built.
  std::string ann_file, ann_checksum, ann_metric;
  std::int64_t ann_bytes = 0;

  std::string spec() const { return name + ":" + std::to_string(version); }
  bool has_stage(const std::string& stage) const;
};

// An auto-promotion decision (decide_promotion, below).
struct PromotionDecision {
  bool promote = false;
  std::string metric;    // the selection metric compared on
  std::string champion;  // spec of the production holder it was compared with ("" when none)
  std::string reason;    // one line: why (or why not)
};

class Registry {
 public:
  // Opens (and with `create`, makes) the registry directory. ConfigError naming --registry when
  // DIR is a file, cannot be created, or (without `create`) does not exist; IoError when its
  // index.json is not a registry index.
  explicit Registry(std::string dir, bool create = true);

  // Copies the model file in as the next version of `name`, labelled with `stages` (each label
  // moved from the version that held it). Atomic and safe under concurrent publishers (other
  // threads or processes, other hosts on a file system with POSIX locks). InputError when the
  // file is not an mfrec model or the name or a stage is invalid. Returns the entry.
  // With `ann`, also builds the model's ANN index (before taking the lock) and publishes it in
  // the same commit, so no reader sees the version without its index.
  RegistryEntry publish(const std::string& model_path, const std::string& name,
                        const std::vector<std::string>& stages = {"candidate"}, const AnnParams* ann = nullptr);

  // Builds the ANN index of the version `spec` names (its model verified first) as
  // DIR/NAME/vN.ann and records it in the entry (replacing an earlier index). Returns the entry.
  RegistryEntry build_index(const std::string& spec, const AnnParams& ann);

  // All entries, by name then version.
  std::vector<RegistryEntry> list() const;

  // Resolves "name" (latest version), "name:3", "name@production". InputError when the spec is
  // malformed or names an unknown model, version or stage.
  RegistryEntry find(const std::string& spec) const;

  // Gives `stage` to the version `spec` names (moved from the version that held it). Atomic under
  // the lock. Returns the updated entry.
  RegistryEntry promote(const std::string& spec, const std::string& stage);

  // Champion/challenger auto-promotion: under the lock, gives `production` to the version `spec`
  // names only when decide_promotion against the name's current production holder says so, so
  // two concurrent auto-promotions cannot both win. Returns the decision; `entry` (if given)
  // receives the version's entry afterwards.
  PromotionDecision promote_if_better(const std::string& spec, RegistryEntry* entry = nullptr);

  // Absolute path of the model file after verifying its checksum against the index; InputError
  // ("checksum mismatch" or "missing") otherwise.
  std::string verified_path(const std::string& spec) const;
  // The same for the version's ANN index: InputError when it has none, or it is missing or its
  // checksum does not match.
  std::string verified_ann_path(const std::string& spec) const;

  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;  // absolute, without a trailing slash
};

// A model's metadata as JSON: {"parameters": {...}, "metrics": {...}, "baseline_metrics": {...},
// "system_metrics": {...}, "select_metric", "dataset", "dataset_fingerprint", "program_version",
// "created"}.
nlohmann::json model_meta_json(const ModelMeta& meta);

// The metric a model was selected by: meta.select_metric ("map_at_k" for entries of models
// written before it was stored).
std::string selection_metric(const nlohmann::json& meta);  // from model_meta_json / RegistryEntry::meta

// True when the model's selection metric is strictly above the popularity baseline's (both
// present and finite: metric_beats, evaluation.hpp). A model that does not beat the baseline may
// be registered, but is never promoted to production automatically.
bool beats_baseline(const ModelMeta& meta);
bool beats_baseline(const nlohmann::json& meta);  // from model_meta_json / RegistryEntry::meta

// Whether a new version (the challenger) should take `production` from the version holding it
// (the champion; nullptr when none does): only when, on the challenger's selection metric, it
// beats the popularity baseline AND the champion, both evaluated on the same data set (equal
// dataset_fingerprint). A missing or non-finite metric, a tie, a different fingerprint: no.
PromotionDecision decide_promotion(const RegistryEntry& challenger, const RegistryEntry* champion);
// {"promoted", "metric", "champion" (null when none), "reason"}: for reports.
nlohmann::ordered_json promotion_json(const PromotionDecision& d);

// Two versions side by side (mfrec_registry compare): parameters, metrics with the baseline's,
// selection metric, data set and fingerprint, sizes, stages, times; and which is better on the
// first one's selection metric when both were evaluated on the same data set.
nlohmann::ordered_json compare_json(const RegistryEntry& a, const RegistryEntry& b);
std::string format_comparison(const RegistryEntry& a, const RegistryEntry& b);

// "crc32:xxxxxxxx" of a file's bytes (IoError when unreadable).
std::string file_checksum(const std::string& path);

// An entry as it is stored in index.json (fields in a fixed, readable order).
nlohmann::ordered_json registry_entry_json(const RegistryEntry& e);

// The entries as a table: NAME VERSION STAGES MAP@K BASELINE-MAP@K CREATED FILE, aligned plain
// text (`markdown` false, as `mfrec_registry list` prints it) or a Markdown table (INDEX.md).
std::string format_registry_table(const std::vector<RegistryEntry>& entries, bool markdown = false);

}  // namespace mfrec
