#include "mfrec/evaluation.hpp"

#include <algorithm>
#include <cstdint>

#include "mfrec/hash.hpp"

namespace mfrec {

std::vector<Index> popularity_counts(const Comm& comm, const TrainData& data) {
  std::vector<Index> counts = item_user_counts(data.users, data.n_items);
  comm.allreduce_sum(counts.data(), counts.size());
  return counts;
}

namespace {

// The test block with only the rows `keep(local row)` selects (the others left empty).
template <class Keep>
CsrBlock keep_rows(const CsrBlock& test, Keep&& keep) {
  CsrBlock out;
  out.n_rows_global = test.n_rows_global;
  out.n_cols = test.n_cols;
  out.row_begin = test.row_begin;
  out.indptr.assign(1, 0);
  for (Index r = 0; r < test.n_rows(); ++r) {
    if (keep(r)) {
      out.indices.insert(out.indices.end(), test.indices.begin() + test.indptr[r], test.indices.begin() + test.indptr[r + 1]);
      out.data.insert(out.data.end(), test.data.begin() + test.indptr[r], test.data.begin() + test.indptr[r + 1]);
    }
    out.indptr.push_back(static_cast<std::int64_t>(out.indices.size()));
  }
  return out;
}

// The sample's hash of a global user id: a bijection of the id for a given seed (splitmix64 is
// one), so no two users tie.
std::uint64_t sample_hash(std::uint64_t seed, Index user) {
  return splitmix64(splitmix64(seed) ^ static_cast<std::uint64_t>(user));
}

MetricSums reduce(const Comm& comm, const MetricSums& s) {
  auto v = s.to_array();  // n_users travels as a double: exact below 2^53
  comm.allreduce_sum(v.data(), v.size());
  return MetricSums::from_array(v.data());
}

}  // namespace

CsrBlock sample_test_rows(const Comm& comm, const CsrBlock& test, const EvalSample& sample) {
  if (sample.users < 0) throw ConfigError("option --eval-users: must not be negative (0: every test user)");
  if (sample.users == 0) return test;
  std::vector<std::uint64_t> hashes;
  for (Index r = 0; r < test.n_rows(); ++r)
    if (test.indptr[r + 1] > test.indptr[r]) hashes.push_back(sample_hash(sample.seed, test.row_begin + r));
  std::sort(hashes.begin(), hashes.end());
  auto count_upto = [&](std::uint64_t t) {  // users with a hash <= t, over all ranks
    return comm.sum(static_cast<std::int64_t>(std::upper_bound(hashes.begin(), hashes.end(), t) - hashes.begin()));
  };
  if (count_upto(~std::uint64_t(0)) <= sample.users) return test;  // fewer test users than asked: all
  // The smallest t with count_upto(t) >= users: the users-th smallest hash (hashes are distinct).
  std::uint64_t lo = 0, hi = ~std::uint64_t(0);
  while (lo < hi) {
    const std::uint64_t mid = lo + (hi - lo) / 2;
    if (count_upto(mid) >= sample.users) hi = mid;
    else lo = mid + 1;
  }
  return keep_rows(test, [&](Index r) {
    return test.indptr[r + 1] > test.indptr[r] && sample_hash(sample.seed, test.row_begin + r) <= lo;
  });
}

MetricSums evaluate_knn(const Comm& comm, const TrainData& data, const CsrBlock& test_all, const ItemNeighbours& knn,
                        const std::vector<Index>& popularity, int k, int threads, const EvalSample& sample) {
  if (knn.n_items != data.n_items) throw Error("evaluate_knn: the neighbour lists are not of this data's items");
  const CsrBlock test = sample_test_rows(comm, test_all, sample);
  const std::vector<Real> pad = popularity_pad(popularity);
  const CsrBlock& train = data.users;
  const RowScoreFn score = [&](Index r, Real* out) {
    const auto b = train.indptr[r], n = train.indptr[r + 1] - b;
    knn_scores(knn, train.indices.data() + b, train.data.data() + b, n, pad, out);
  };
  return reduce(comm, evaluate_scored_rows(score, train, test, k, threads)).mean();
}

Evaluation evaluate(const Comm& comm, const TrainData& data, const CsrBlock& test_all, const FactorMatrix& X_local,
                    const ItemFactors& items, const std::vector<Index>& popularity, int k, int threads,
                    const ItemNeighbours* knn, const EvalSample& sample) {
  if (test_all.row_begin != data.users.row_begin || test_all.n_rows() != data.users.n_rows())
    throw Error("evaluate: test rows do not match the training rows");
  const CsrBlock test = sample_test_rows(comm, test_all, sample);
  Evaluation e;
  e.k = k;
  const HistorySums model = evaluate_rows_by_history(X_local, items, data.users, test, k, threads);
  const HistorySums pop = evaluate_fixed_scores_by_history(popularity_scores(popularity), data.users, test, k, threads);
  MetricSums all = model.warm, system = model.warm, baseline = pop.warm;
  all += model.cold;
  system += pop.cold;
  baseline += pop.cold;
  e.model = reduce(comm, all).mean();
  e.system = reduce(comm, system).mean();
  e.baseline = reduce(comm, baseline).mean();
  e.cold_users = comm.sum(pop.cold.n_users);
  if (knn && !knn->empty()) {
    e.knn = evaluate_knn(comm, data, test, *knn, popularity, k, threads);  // already sampled
    e.knn_k = knn->k;
  }
  return e;
}

Evaluation evaluate(const Comm& comm, const TrainData& data, const CsrBlock& test, const FactorMatrix& X_local,
                    const FactorMatrix& Y, const std::vector<Index>& popularity, int k, int threads,
                    const ItemNeighbours* knn, const EvalSample& sample) {
  return evaluate(comm, data, test, X_local, ItemFactors::in_memory(Y), popularity, k, threads, knn, sample);
}

void evaluation_to_row(const Evaluation& e, double* row) {
  row[0] = e.k;
  row[1] = static_cast<double>(e.cold_users);
  row[2] = e.knn_k;
  double* out = row + 3;
  for (const MetricSums* m : {&e.model, &e.system, &e.baseline, &e.knn}) {
    const auto v = m->to_array();
    out = std::copy(v.begin(), v.end(), out);
  }
}

Evaluation evaluation_from_row(const double* row) {
  Evaluation e;
  e.k = static_cast<int>(row[0]);
  e.cold_users = static_cast<Index>(row[1]);
  e.knn_k = static_cast<int>(row[2]);
  e.model = MetricSums::from_array(row + 3);
  e.system = MetricSums::from_array(row + 3 + MetricSums::kFields);
  e.baseline = MetricSums::from_array(row + 3 + 2 * MetricSums::kFields);
  e.knn = MetricSums::from_array(row + 3 + 3 * MetricSums::kFields);
  return e;
}

std::map<std::string, double> metric_map(const MetricSums& m) {
  return {{"map_at_k", m.map},         {"map_at_k_seed", m.map_seed}, {"precision_at_k", m.precision},
          {"recall_at_k", m.recall},   {"ndcg_at_k", m.ndcg},         {"auc", m.auc},
          {"users", static_cast<double>(m.n_users)}};
}

std::map<std::string, double> metric_se_map(const MetricSums& m) {
  std::map<std::string, double> out;
  for (int j = 0; j < MetricSums::kMetrics; ++j) out[std::string(kMetricKeys[j]) + "_se"] = m.se[j];
  return out;
}

}  // namespace mfrec
