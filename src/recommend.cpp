// The Recommender: top N for a user (seen items left out), the popular list, similar items and
// fold-in of a new user. Its JSON rendering is recommend_json.cpp; the batch job recommend_batch.cpp.
#include "mfrec/recommend.hpp"

#include <algorithm>
#include <cmath>

#include "mfrec/error.hpp"
#include "mfrec/knn.hpp"
#include "mfrec/metrics.hpp"
#include "recommend_internal.hpp"

namespace mfrec {

using recommend_detail::check_n;
using recommend_detail::dump_json;

Recommender::Recommender(Model model, ModelSource source)
    : Recommender((check_model(model), std::move(model)), std::move(source), Checked{}) {}

Recommender::Recommender(Model model, ModelSource source, Checked) : model_(std::move(model)), source_(std::move(source)) {
  if (source_.path.empty()) source_.path = model_.path;
  if (model_.row_begin != 0 || (model_.n_users_total != 0 && model_.n_users_total != n_users()))
    throw InputError(source_.path + ": a Recommender needs every user's rows, not a part of them");
  const Index nu = n_users(), ni = n_items(), f = model_.item_factors.cols();
  user_index_.reserve(static_cast<std::size_t>(nu));
  for (Index u = 0; u < nu; ++u) user_index_.emplace(model_.user_ids[static_cast<std::size_t>(u)], u);
  item_index_.reserve(static_cast<std::size_t>(ni));
  for (Index i = 0; i < ni; ++i) item_index_.emplace(model_.items.id[static_cast<std::size_t>(i)], i);

  item_unit_ = model_.item_factors;
  for (Index i = 0; i < ni; ++i) {
    const Real norm = item_unit_.row(i).norm();
    if (norm > 0) item_unit_.row(i) /= norm;
  }
  Eigen::MatrixXd g = Eigen::MatrixXd::Zero(f, f);
  gram_accumulate(model_.item_factors, 0, ni, g, 1);
  yty_ = g.cast<Real>();
  popular_scores_ = popularity_scores(model_.popularity);
  knn_pad_ = popularity_pad(model_.popularity);
  model_label_ = source_.name.empty() ? source_.path : source_.name + ":" + std::to_string(source_.version);
  item_fragment_.resize(static_cast<std::size_t>(ni));
  for (Index i = 0; i < ni; ++i) {
    const std::string d = dump_json(item_json(i));
    item_fragment_[static_cast<std::size_t>(i)] = d.substr(1, d.size() - 2);
  }
}

Index Recommender::user_row(const std::string& id) const {
  auto it = user_index_.find(id);
  return it == user_index_.end() ? -1 : it->second;
}

Index Recommender::item_row(const std::string& id) const {
  auto it = item_index_.find(id);
  return it == item_index_.end() ? -1 : it->second;
}

bool Recommender::has_history(Index row) const {
  return row >= 0 && row < n_users() && model_.seen.indptr[row + 1] > model_.seen.indptr[row];
}

ItemList Recommender::top_n(const Vector& scores, const std::vector<std::int32_t>& exclude, int n,
                            const char* source) const {
  ItemList out;
  out.source = source;
  top_k_excluding(scores.data(), n_items(), exclude.data(), static_cast<Index>(exclude.size()), n, out.items);
  out.scores.reserve(out.items.size());
  for (std::int32_t i : out.items) out.scores.push_back(scores[i]);
  return out;
}

ItemList Recommender::ann_top_n(const Real* x, const std::vector<std::int32_t>& exclude, int n,
                               const char* source) const {
  ItemList out;
  out.source = source;
  // The index cannot filter in hnswlib 0.6.2: ask for n + |exclude| and drop the excluded.
  const auto cand = ann_->top_inner_product(x, n + static_cast<int>(exclude.size()));
  rank_candidates(cand, model_.item_factors, x, exclude, n, out.items, out.scores);
  return out;
}

ItemList Recommender::for_user_row(Index row, int n) const {
  check_n(n);
  if (row < 0 || row >= n_users()) throw InputError("user row " + std::to_string(row) + " out of range");
  if (!has_history(row)) return popular(n);
  const auto b = model_.seen.indptr[row], e = model_.seen.indptr[row + 1];
  std::vector<std::int32_t> exclude(model_.seen.indices.begin() + b, model_.seen.indices.begin() + e);
  if (ann_) {
    std::sort(exclude.begin(), exclude.end());
    return ann_top_n(model_.user_factors.row(row).data(), exclude, n, "model");
  }
  Vector scores = model_.item_factors * model_.user_factors.row(row).transpose();
  return top_n(scores, exclude, n, "model");
}

ItemList Recommender::for_user(const std::string& id, int n) const {
  check_n(n);
  const Index row = user_row(id);
  return row < 0 ? popular(n) : for_user_row(row, n);
}

ItemList Recommender::popular(int n, const std::vector<std::int32_t>& exclude) const {
  check_n(n);
  std::vector<std::int32_t> ex(exclude);
  std::sort(ex.begin(), ex.end());
  ItemList out;
  out.source = "popular";
  for (std::int32_t i : model_.popular) {
    if (static_cast<int>(out.items.size()) >= n) break;
    if (std::binary_search(ex.begin(), ex.end(), i)) continue;
    out.items.push_back(i);
    out.scores.push_back(popular_scores_[static_cast<std::size_t>(i)]);
  }
  return out;
}

ItemList Recommender::similar(Index item, int n) const {
  check_n(n);
  if (item < 0 || item >= n_items()) throw InputError("item row " + std::to_string(item) + " out of range");
  if (ann_) {
    ItemList out;
    out.source = "similar";
    const std::vector<std::int32_t> self{static_cast<std::int32_t>(item)};
    rank_candidates(ann_->top_cosine(item_unit_.row(item).data(), n + 1), item_unit_, item_unit_.row(item).data(), self,
                    n, out.items, out.scores);
    return out;
  }
  Vector scores = item_unit_ * item_unit_.row(item).transpose();
  return top_n(scores, {static_cast<std::int32_t>(item)}, n, "similar");
}

Vector Recommender::fold_in_factors(const std::vector<std::int32_t>& items, const std::vector<Real>& weights) const {
  if (items.empty()) throw InputError("fold-in needs at least one item");
  if (!weights.empty() && weights.size() != items.size())
    throw InputError("fold-in: " + std::to_string(weights.size()) + " weights for " + std::to_string(items.size()) +
                     " items");
  std::vector<std::pair<std::int32_t, Real>> obs;
  obs.reserve(items.size());
  for (std::size_t k = 0; k < items.size(); ++k) {
    const std::int32_t i = items[k];
    if (i < 0 || i >= n_items()) throw InputError("fold-in: item index " + std::to_string(i) + " out of range");
    const Real w = weights.empty() ? Real(1) : weights[k];
    if (!std::isfinite(w) || w <= 0) throw InputError("fold-in: weights must be finite and positive");
    obs.emplace_back(i, w);
  }
  std::sort(obs.begin(), obs.end());
  CsrBlock r;
  r.n_rows_global = 1;
  r.n_cols = n_items();
  for (const auto& [i, w] : obs) {
    if (!r.indices.empty() && r.indices.back() == i) {
      r.data.back() += w;  // a repeated item: its observations add up, like events
    } else {
      r.indices.push_back(i);
      r.data.push_back(w);
    }
  }
  r.indptr = {0, static_cast<std::int64_t>(r.indices.size())};
  AlsParams p = model_.meta.als;
  p.solver = Solver::kCholesky;  // one row: solve exactly, no warm start to lean on
  FactorMatrix x = FactorMatrix::Zero(1, model_.item_factors.cols());
  solve_rows(r, model_.item_factors, yty_, p, x, 1);
  return x.row(0).transpose();
}

ItemList Recommender::fold_in(const std::vector<std::int32_t>& items, const std::vector<Real>& weights, int n) const {
  check_n(n);
  Vector x = fold_in_factors(items, weights);
  if (ann_) {
    std::vector<std::int32_t> exclude(items);
    std::sort(exclude.begin(), exclude.end());
    exclude.erase(std::unique(exclude.begin(), exclude.end()), exclude.end());
    return ann_top_n(x.data(), exclude, n, "fold-in");
  }
  Vector scores = model_.item_factors * x;
  return top_n(scores, items, n, "fold-in");
}

}  // namespace mfrec

namespace mfrec {

ItemList Recommender::knn(const std::vector<std::int32_t>& items, const std::vector<Real>& weights, int n) const {
  check_n(n);
  if (!has_knn())
    throw InputError(source_.path + ": the model has no item-kNN lists (/knn): train it with mfrec_dist --knn-k > 0");
  if (items.empty()) throw InputError("knn: needs at least one history item");
  if (!weights.empty() && weights.size() != items.size())
    throw InputError("knn: " + std::to_string(weights.size()) + " weights for " + std::to_string(items.size()) + " items");
  std::vector<std::pair<std::int32_t, Real>> obs;
  for (std::size_t k = 0; k < items.size(); ++k) {
    const std::int32_t i = items[k];
    if (i < 0 || i >= n_items()) throw InputError("knn: item index " + std::to_string(i) + " out of range");
    const Real w = weights.empty() ? Real(1) : weights[k];
    if (!std::isfinite(w) || w <= 0) throw InputError("knn: weights must be finite and positive");
    obs.emplace_back(i, w);
  }
  std::sort(obs.begin(), obs.end());
  std::vector<std::int32_t> idx;
  std::vector<Real> val;
  for (const auto& [i, w] : obs) {
    if (!idx.empty() && idx.back() == i) {
      val.back() += w;  // a repeated item adds up, as events do in the training matrix
    } else {
      idx.push_back(i);
      val.push_back(w);
    }
  }
  Vector scores(n_items());
  knn_scores(model_.knn, idx.data(), val.data(), static_cast<Index>(idx.size()), knn_pad_, scores.data());
  return top_n(scores, idx, n, "knn");
}

}  // namespace mfrec
