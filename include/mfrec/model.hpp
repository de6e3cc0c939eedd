// The model file: factors, id maps, item details, what each user has seen, the popularity
// ranking, every hyperparameter, the metrics and where the data came from.
//
//   /user_factors [n_users, f] float32 (row-major)     /item_factors [n_items, f] float32
//   /users/id, /items/{id,name,category,style,description,gender_affinity,price}
//   /seen/{indptr,indices,data}  the training matrix (user x item) the model was fitted on
//   /popularity/{count int64, ranking int32}            distinct training users per item
//   /metrics attributes (the ALS model), /metrics/system, /metrics/baseline likewise
//   /knn/{indptr int64, indices int32, data float32}  the item-kNN baseline's neighbour lists
//     (knn.hpp; attribute k; optional), its metrics as attributes of /metrics/knn
//   root attributes: format = "mfrec-model", format_version, program_version, created,
//     factors, regularization, alpha, confidence, scale_regularization, solver, cg_steps,
//     iterations, seed, k, dataset, dataset_fingerprint, select_metric (absent in older files:
//     map_at_k)
#pragma once
#include <map>
#include <string>
#include <vector>

#include "mfrec/als_kernels.hpp"
#include "mfrec/comm.hpp"
#include "mfrec/dataset.hpp"
#include "mfrec/knn.hpp"
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
  // The metric the model was selected by (mfrec_dist --select-metric), a kMetricKeys name; the
  // registry compares it with the baseline and the production model on this metric.
  std::string select_metric = "map_at_k";
};

std::string solver_name(Solver s);
Solver parse_solver(const std::string& name);  // "cg" | "cholesky"; ConfigError otherwise
std::string confidence_name(ConfidenceRule c);
ConfidenceRule parse_confidence(const std::string& name);  // "hu" | "implicit"
std::string utc_now_iso();

// Everything needed to write a model, as held by the ranks after training.
struct ModelParts {
  const FactorMatrix* user_factors = nullptr;  // this rank's users (seen_local's rows)
  const FactorMatrix* item_factors = nullptr;  // this rank's items: rows [item_begin, item_begin + rows)
  Index item_begin = 0;
  const CsrBlock* seen_local = nullptr;        // this rank's rows of the training matrix
  std::vector<std::string> user_ids_local;     // ids of this rank's users (seen_local's rows)
  const dataset::ItemTable* items = nullptr;
  const std::vector<Index>* popularity = nullptr;
  const ItemNeighbours* knn = nullptr;         // every item's kNN lists (null or empty: none written)
  std::map<std::string, double> knn_metrics = {};  // the kNN baseline's evaluation (/metrics/knn)
};

// Collective: writes the model to `path` atomically (a .partial file renamed when complete).
void write_model(const std::string& path, const Comm& comm, const ModelParts& parts, const ModelMeta& meta);

// A model loaded into memory: every user (read_model; for recommending and serving) or one
// rank's rows of the users (read_model_rows; the batch job), and every item.
struct Model {
  std::string path;
  FactorMatrix user_factors, item_factors;  // user_factors: the rows read
  std::vector<std::string> user_ids;        // of the rows read
  dataset::ItemTable items;
  CsrBlock seen;                            // the rows read
  std::vector<Index> popularity;
  std::vector<std::int32_t> popular;  // items by descending popularity
  ItemNeighbours knn;                 // the kNN baseline's lists (empty when the file has none)
  ModelMeta meta;
  Index row_begin = 0;      // the first user row read
  Index n_users_total = 0;  // users in the file
};
// The one reader of model files, which validates what every use relies on. InputError naming the
// file and dataset when: it is not an mfrec model; a factor matrix is not as wide as the factors
// attribute; /users/id, /seen or /popularity do not match the factor matrices' rows; a factor
// is NaN or infinite; /popularity/ranking is not a permutation of the items (an index out of
// range, or one twice); /seen's indices are out of range or its confidences negative; /knn (when
// present) is not a valid neighbour matrix of the items (check_item_neighbours).
Model read_model(const std::string& path);
// Collective over comm (parallel HDF5): this rank's even share of the users (partition_even) and
// every item, checked as read_model checks. The shape checks fail on every rank alike; the
// content checks (finite factors, /seen) on the ranks whose rows hold the fault, after the file
// is closed: agree on them (comm.hpp's agree_on).
Model read_model_share(const std::string& path, const Comm& comm);
// The content checks of read_model on a model in memory (the Recommender runs them too).
void check_model(const Model& m);
// Only the metadata (attributes), without the factors.
ModelMeta read_model_meta(const std::string& path);

}  // namespace mfrec
