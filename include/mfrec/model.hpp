// The model file: factors, id maps, item details, what each user has seen, the popularity
// ranking, every hyperparameter, the metrics and where the data came from.
//
//   /user_factors [n_users, f] float32 (row-major)     /item_factors [n_items, f] float32
//   /users/id, /items/{id,name,category,style,description,gender_affinity,price}
//   /seen/{indptr,indices,data}  the training matrix (user x item) the model was fitted on
//   /popularity/{count int64, ranking int32}            distinct training users per item
//   /metrics attributes (the ALS model), /metrics/system, /metrics/baseline likewise
//   root attributes: format = "mfrec-model", format_version, program_version, created,
//     factors, regularization, alpha, confidence, scale_regularization, solver, cg_steps,
//     iterations, seed, k, dataset, dataset_fingerprint
#pragma once
#include <map>
#include <string>
#include <vector>

#include "mfrec/als_kernels.hpp"
#include "mfrec/comm.hpp"
#include "mfrec/dataset.hpp"
#include "mfrec/types.hpp"

namespace mfrec {

inline constexpr const char* kModelFormat = "mfrec-model";

struct ModelMeta {
  AlsParams als;
  int iterations = 0;
  std::uint64_t seed = 0;
  int k = 20;
  std::string dataset;                // path of the prepared data it was trained on
  std::string dataset_fingerprint;    // hex
  std::string program_version;
  std::string created;                // ISO-8601 UTC
  std::map<std::string, double> metrics, system_metrics, baseline_metrics;
};

std::string solver_name(Solver s);
Solver parse_solver(const std::string& name);  // "cg" | "cholesky"; ConfigError otherwise
std::string confidence_name(ConfidenceRule c);
ConfidenceRule parse_confidence(const std::string& name);  // "hu" | "implicit"
std::string utc_now_iso();

// Everything needed to write a model, as held by the ranks after training.
struct ModelParts {
  const FactorMatrix* user_factors = nullptr;  // all users (every rank holds them)
  const FactorMatrix* item_factors = nullptr;  // all items
  const CsrBlock* seen_local = nullptr;        // this rank's rows of the training matrix
  std::vector<std::string> user_ids_local;     // ids of this rank's users (seen_local's rows)
  const dataset::ItemTable* items = nullptr;
  const std::vector<Index>* popularity = nullptr;
};

// Collective: writes the model to `path` atomically (a .partial file renamed when complete).
void write_model(const std::string& path, const Comm& comm, const ModelParts& parts, const ModelMeta& meta);

// A model loaded into memory (serial; for recommending and serving).
struct Model {
  std::string path;
  FactorMatrix user_factors, item_factors;
  std::vector<std::string> user_ids;
  dataset::ItemTable items;
  CsrBlock seen;
  std::vector<Index> popularity;
  std::vector<std::int32_t> popular;  // items by descending popularity
  ModelMeta meta;
};
Model read_model(const std::string& path);
// Only the metadata (attributes), without the factors.
ModelMeta read_model_meta(const std::string& path);

}  // namespace mfrec
