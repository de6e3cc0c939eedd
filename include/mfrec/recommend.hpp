// Recommending from a trained model: the top N for a known user (leaving out what they have
// seen), the popular list (the fallback for unknown users and users without history), similar
// items (cosine on item factors), and fold-in for a new user given an item history (one ALS
// half-step against the fixed item factors, no retraining). Also the batch job that writes
// every user's top N (collective, parallel HDF5) and the JSON rendering used by mfrec_serve.
//
// A Recommender is immutable after construction: every member is const and thread-safe, so a
// server can share one between request threads and swap in a new one (shared_ptr) on reload.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "mfrec/ann.hpp"
#include "mfrec/model.hpp"
#include "mfrec/types.hpp"

namespace mfrec {

class Comm;

// Where a model came from: a file path, or a registry entry (name, version, the spec asked for).
struct ModelSource {
  std::string path;      // the model file actually loaded
  std::string spec;      // the registry spec ("retail-als@production"); empty for a plain path
  std::string name;      // registry name (empty for a plain path)
  int version = 0;       // registry version (0 for a plain path)
  std::string checksum;  // registry checksum (empty for a plain path)
  std::string ann_path, ann_checksum;  // the registry entry's ANN index (empty: it has none)
  std::string describe() const;  // "retail-als:3 (model.h5)" or the path
};

// Resolve a model: with an empty `registry_dir`, `model` is a file path; otherwise `spec` is
// looked up in the registry ("name", "name:3", "name@stage") and its file verified against its
// checksum. Errors come from the registry (ConfigError for a missing directory, InputError for
// an unknown or malformed spec or a checksum mismatch) or from reading the file.
ModelSource resolve_model(const std::string& model, const std::string& registry_dir, const std::string& spec);
// The registry entry `spec` points to now, without verifying the file (cheap: for polling).
// Throws like resolve_model.
ModelSource peek_registry(const std::string& registry_dir, const std::string& spec);

// A ranked list of item indices with their scores, best first.
struct ItemList {
  std::vector<std::int32_t> items;
  std::vector<Real> scores;
  std::string source;  // "model", "popular", "similar", "fold-in" or "knn"
};

// The bounds every interface applies to N.
inline constexpr int kMaxN = 1000;

class Recommender {
 public:
  // Checks the model (check_model) first: one made in memory gets the reader's checks.
  explicit Recommender(Model model, ModelSource source = {});
  // Searches with `ann` (InputError unless it was built for this model's item factors).
  Recommender(Model model, ModelSource source, std::shared_ptr<const AnnIndex> ann);
  // Reads and checks the file once (read_model), then builds the indexes. With `ann` on (or
  // auto and more than its threshold of items) also loads the ANN index: the registry entry's
  // (checksum verified), or ann.index, or the model path's (ann_index_path). InputError naming
  // the file when it is corrupt or built for another model, or when it is missing and the mode
  // is on; missing in auto mode: a warning, and exact search.
  static std::shared_ptr<const Recommender> load(const ModelSource& source, const AnnConfig& ann = {AnnMode::kOff});

  const Model& model() const { return model_; }
  const ModelSource& source() const { return source_; }
  Index n_users() const { return model_.user_factors.rows(); }
  Index n_items() const { return model_.item_factors.rows(); }

  // Row of a user / item id, or -1 when unknown.
  Index user_row(const std::string& id) const;
  Index item_row(const std::string& id) const;
  // Whether the user's training row has any item (a user without history has zero factors).
  bool has_history(Index user_row) const;
  // The ANN index top N, fold-in and similar items search with (null: exact search).
  const AnnIndex* ann() const { return ann_.get(); }
  // "exact" or "ann (ef 128)": for logs and health.
  std::string search_name() const;

  // The top n by x_u . y_i, leaving out the user's training items. A user without history gets
  // the popular list (source "popular"). 1 <= n (else ConfigError); fewer come back when fewer
  // items are left. With an ANN index (ann()), top N, fold-in and similar items take their
  // candidates from it (approximate), with exact scores and the same order and exclusions.
  ItemList for_user_row(Index row, int n) const;
  // As for_user_row; an unknown id gets the popular list (source "popular").
  ItemList for_user(const std::string& id, int n) const;
  // The n most popular items (distinct training users), leaving out `exclude`.
  ItemList popular(int n, const std::vector<std::int32_t>& exclude = {}) const;
  // The n items most similar to `item` by cosine of item factors (the item itself left out).
  ItemList similar(Index item, int n) const;
  // Fold-in: the factors of a new user with raw observations `weights` (> 0; empty: 1 each) on
  // `items` (duplicates are summed), solved exactly (Cholesky) with the model's ALS parameters.
  Vector fold_in_factors(const std::vector<std::int32_t>& items, const std::vector<Real>& weights = {}) const;
  // The top n for that user, leaving out the history items.
  ItemList fold_in(const std::vector<std::int32_t>& items, const std::vector<Real>& weights, int n) const;
  // Whether the model holds the item-kNN baseline's neighbour lists (/knn; mfrec_dist --knn-k).
  bool has_knn() const { return !model_.knn.empty(); }
  // The item-kNN fallback for a user without factors: the top n by sum of w_i * sim(i, j) over
  // the history `items` (weights as for fold_in; duplicates summed), leaving them out; past the
  // items kNN scores come the popular ones (scores below 0). Source "knn". InputError when the
  // model has no /knn.
  ItemList knn(const std::vector<std::int32_t>& items, const std::vector<Real>& weights, int n) const;

  // One item's details: {id, name, category, style, price, description}.
  nlohmann::ordered_json item_json(Index item) const;
  // The list as an array of {rank, id, name, category, style, price, description, score}.
  nlohmann::ordered_json items_json(const ItemList& list) const;
  // A response body: the fields of `head` first, then {"source", "model" (name:version or
  // path), "count", "items": items_json}.
  nlohmann::ordered_json response(const ItemList& list, nlohmann::ordered_json head = nullptr) const;
  // The same as response(list, head).dump(), built from item details rendered once at load
  // (the server's fast path: no JSON tree per request). Invalid UTF-8 becomes U+FFFD.
  std::string response_text(const ItemList& list, const nlohmann::ordered_json& head = nullptr) const;
  // Model description for health and responses: {path, name, version, created, users, items, factors}.
  nlohmann::ordered_json model_json() const;

 private:
  struct Checked {};  // the model has passed check_model already
  Recommender(Model model, ModelSource source, Checked);

  ItemList top_n(const Vector& scores, const std::vector<std::int32_t>& exclude, int n, const char* source) const;
  // The top n by x . y_i through the ANN index, leaving out `exclude` (sorted).
  ItemList ann_top_n(const Real* x, const std::vector<std::int32_t>& exclude, int n, const char* source) const;

  Model model_;
  ModelSource source_;
  std::unordered_map<std::string, Index> user_index_, item_index_;
  FactorMatrix item_unit_;  // item factors scaled to unit length (zero rows stay zero)
  DenseMatrix yty_;         // Y^T Y for fold-in
  std::vector<Real> popular_scores_;
  std::vector<Real> knn_pad_;               // popularity_pad of the counts, for knn()
  std::vector<std::string> item_fragment_;  // "\"id\":...,\"description\":..." per item
  std::string model_label_;                 // "retail-als:3" or the path
  std::shared_ptr<const AnnIndex> ann_;      // null: exact search
};

// The top n of each row of X against Y, leaving out each row's non-zeros in `seen` (same rows);
// rows without any seen item get `fallback` (the popular ranking; flag set). Output row-major
// [X.rows(), n]: items (-1 where fewer than n are left) and scores (NaN there); fallback rows get
// the popularity `fallback_scores` of their items. Blocks of rows run over `threads` OpenMP
// threads; the result does not depend on the thread count.
struct TopNBlock {
  std::vector<std::int32_t> items;
  std::vector<Real> scores;
  std::vector<std::uint8_t> fallback;
};
TopNBlock top_n_rows(const FactorMatrix& X, const FactorMatrix& Y, const CsrBlock& seen, int n,
                     const std::vector<std::int32_t>& fallback, const std::vector<Real>& fallback_scores,
                     int threads);

// The batch job, collective over comm: every rank reads its even share of the users from the
// model (parallel HDF5, read_model_share: validated as every model is), computes their top n and
// writes its rows into `output` (atomically):
//   /recommendations/items int32 [n_users, n] (-1 padding), /recommendations/scores float32,
//   /recommendations/fallback uint8 [n_users] (1: popular list, no history), /users/id,
//   /items/id; root attributes format = "mfrec-recommendations", n, model.
// With `csv` non-empty, also a CSV file (csv.hpp's quoting) with the header
//   user_id,rank,item_id,item_name,category,score,source
// (rank 0 joins the ranks' parts in order). The paths are checked first (check_paths: the model
// exists, the outputs' directories are writable, no two are the same file); any failure, on any
// rank, is agreed (AgreedError on every rank) and leaves neither output behind. Returns the
// number of users.
struct BatchResult {
  Index users = 0, fallback_users = 0;
  double seconds = 0;
};
BatchResult recommend_all(const Comm& comm, const std::string& model_path, const std::string& output,
                          const std::string& csv, int n, int threads);

}  // namespace mfrec
