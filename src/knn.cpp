// The item-kNN baseline (knn.hpp): cosine neighbours computed per item from the rows of the users
// who have it, as `implicit`'s all_pairs_knn does, and the users' scores from the lists.
#include "mfrec/knn.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <exception>

#include "mfrec/comm.hpp"
#include "mfrec/dataset.hpp"
#include "mfrec/error.hpp"

namespace mfrec {

ItemNeighbours item_neighbours_rows(const CsrBlock& item_rows, const CsrBlock& user_rows,
                                    const std::vector<Index>& user_ids, const std::vector<double>& item_norm,
                                    int k, int threads) {
  if (k < 1) throw ConfigError("option --knn-k: must be at least 1 (0: no kNN baseline)");
  if (threads < 1) throw ConfigError("knn: threads must be at least 1");
  const Index ni = static_cast<Index>(item_norm.size());
  if (user_rows.n_rows() != static_cast<Index>(user_ids.size()))
    throw InputError("knn: " + std::to_string(user_ids.size()) + " user ids for " +
                     std::to_string(user_rows.n_rows()) + " user rows");
  for (std::int32_t j : user_rows.indices)
    if (j < 0 || j >= ni) throw InputError("knn: item index " + std::to_string(j) + " out of range");
  // Each user's row once, its values divided by the items' norms (the columns normalised).
  std::vector<double> a(user_rows.data.size());
  for (std::size_t q = 0; q < a.size(); ++q) {
    const double nj = item_norm[static_cast<std::size_t>(user_rows.indices[q])];
    a[q] = nj > 0 ? static_cast<double>(user_rows.data[q]) / nj : 0.0;
  }
  // Where each non-zero's user is in user_ids: looked up once, before the parallel loop, so a
  // missing user is an error here and not inside it.
  std::vector<Index> pos(item_rows.indices.size());
  for (std::size_t p = 0; p < pos.size(); ++p) {
    const Index u = item_rows.indices[p];
    const auto it = std::lower_bound(user_ids.begin(), user_ids.end(), u);
    if (it == user_ids.end() || *it != u) throw InputError("knn: the row of user " + std::to_string(u) + " is missing");
    pos[p] = it - user_ids.begin();
  }

  const Index n = item_rows.n_rows();
  std::vector<std::vector<std::pair<double, std::int32_t>>> lists(static_cast<std::size_t>(n));
  std::exception_ptr error;
#pragma omp parallel num_threads(threads)
  {
    std::vector<double> acc;
    std::vector<char> mark;  // touched already (a product may be 0: a stored zero)
    std::vector<std::int32_t> touched;
    try {
      acc.assign(static_cast<std::size_t>(ni), 0.0);
      mark.assign(static_cast<std::size_t>(ni), 0);
    } catch (...) {
#pragma omp critical(mfrec_knn_error)
      if (!error) error = std::current_exception();
    }
#pragma omp for schedule(dynamic, 16)
    for (Index r = 0; r < n; ++r) {
      if (acc.empty()) continue;  // this thread could not allocate: reported after the loop
      const double norm = item_norm[static_cast<std::size_t>(item_rows.row_begin + r)];
      if (norm <= 0) continue;
      // sim(i, j) = sum over i's users u of (r_ui / |i|) (r_uj / |j|), summed in the same order
      // whatever the split: users ascending, then u's items ascending.
      for (auto p = item_rows.indptr[r]; p < item_rows.indptr[r + 1]; ++p) {
        const double w1 = static_cast<double>(item_rows.data[static_cast<std::size_t>(p)]) / norm;
        const Index u = pos[static_cast<std::size_t>(p)];
        for (auto q = user_rows.indptr[u]; q < user_rows.indptr[u + 1]; ++q) {
          const auto j = static_cast<std::size_t>(user_rows.indices[static_cast<std::size_t>(q)]);
          if (!mark[j]) {
            mark[j] = 1;
            touched.push_back(static_cast<std::int32_t>(j));
          }
          acc[j] += w1 * a[static_cast<std::size_t>(q)];
        }
      }
      auto& list = lists[static_cast<std::size_t>(r)];
      for (std::int32_t j : touched)
        if (acc[static_cast<std::size_t>(j)] > 0) list.emplace_back(acc[static_cast<std::size_t>(j)], j);
      for (std::int32_t j : touched) acc[static_cast<std::size_t>(j)] = 0, mark[static_cast<std::size_t>(j)] = 0;
      touched.clear();
      const auto order = [](const std::pair<double, std::int32_t>& x, const std::pair<double, std::int32_t>& y) {
        return x.first != y.first ? x.first > y.first : x.second < y.second;
      };
      const std::size_t keep = std::min(list.size(), static_cast<std::size_t>(k));
      std::partial_sort(list.begin(), list.begin() + static_cast<std::ptrdiff_t>(keep), list.end(), order);
      list.resize(keep);
    }
  }
  if (error) std::rethrow_exception(error);

  ItemNeighbours nb;
  nb.n_items = ni;
  nb.k = k;
  nb.indptr.assign(1, 0);
  for (const auto& list : lists) {
    for (const auto& [v, j] : list) {
      nb.indices.push_back(j);
      nb.data.push_back(static_cast<Real>(v));
    }
    nb.indptr.push_back(static_cast<std::int64_t>(nb.indices.size()));
  }
  return nb;
}

namespace {

// The rows of the users in `wanted` (sorted, global ids), fetched from the ranks that own them
// (data.users' rows, partitioned by data.user_bounds). Collective.
CsrBlock fetch_user_rows(const Comm& comm, const TrainData& data, const std::vector<Index>& wanted) {
  const int P = comm.size();
  std::vector<std::int64_t> ask(static_cast<std::size_t>(P));
  for (int r = 0; r < P; ++r) {
    const auto lo = std::lower_bound(wanted.begin(), wanted.end(), data.user_bounds[static_cast<std::size_t>(r)]);
    const auto hi = std::lower_bound(wanted.begin(), wanted.end(), data.user_bounds[static_cast<std::size_t>(r) + 1]);
    ask[static_cast<std::size_t>(r)] = hi - lo;
  }
  const std::vector<std::int64_t> asked_counts = comm.alltoallv(ask, std::vector<std::int64_t>(static_cast<std::size_t>(P), 1));
  const std::vector<std::int64_t> asked = comm.alltoallv(std::vector<std::int64_t>(wanted.begin(), wanted.end()), ask);
  // Answer: per asking rank, the rows' lengths, then their indices and values.
  const CsrBlock& own = data.users;
  std::vector<std::int64_t> lens, len_counts(static_cast<std::size_t>(P)), nnz_counts(static_cast<std::size_t>(P), 0);
  std::vector<std::int32_t> idx;
  std::vector<Real> val;
  std::size_t at = 0;
  for (int s = 0; s < P; ++s) {
    len_counts[static_cast<std::size_t>(s)] = asked_counts[static_cast<std::size_t>(s)];
    for (std::int64_t c = 0; c < asked_counts[static_cast<std::size_t>(s)]; ++c, ++at) {
      const Index row = asked[at] - own.row_begin;
      if (row < 0 || row >= own.n_rows()) throw Error("knn: asked for user " + std::to_string(asked[at]) + ", not mine");
      const auto b = own.indptr[row], e = own.indptr[row + 1];
      lens.push_back(e - b);
      idx.insert(idx.end(), own.indices.begin() + b, own.indices.begin() + e);
      val.insert(val.end(), own.data.begin() + b, own.data.begin() + e);
      nnz_counts[static_cast<std::size_t>(s)] += e - b;
    }
  }
  CsrBlock rows;
  rows.n_cols = data.n_items;
  rows.n_rows_global = static_cast<Index>(wanted.size());
  const std::vector<std::int64_t> got_lens = comm.alltoallv(lens, len_counts);
  rows.indices = comm.alltoallv(idx, nnz_counts);
  rows.data = comm.alltoallv(val, nnz_counts);
  rows.indptr.assign(1, 0);
  for (std::int64_t l : got_lens) rows.indptr.push_back(rows.indptr.back() + l);
  return rows;
}

template <class T>
std::vector<T> gather(const Comm& comm, const std::vector<T>& local) {
  const auto counts = comm.allgather_counts(static_cast<std::int64_t>(local.size()));
  std::int64_t total = 0;
  for (auto c : counts) total += c;
  std::vector<T> all(static_cast<std::size_t>(total));
  comm.allgatherv_rows(local.data(), static_cast<std::int64_t>(local.size()), counts, 1, all.data());
  return all;
}

}  // namespace

ItemNeighbours item_knn(const Comm& comm, const TrainData& data, int k, int threads) {
  if (k < 1) throw ConfigError("option --knn-k: must be at least 1 (0: no kNN baseline)");
  const CsrBlock& items = data.items;
  // Every item's norm: each item has one owner, so the sum over ranks adds zeros only.
  std::vector<double> norm(static_cast<std::size_t>(data.n_items), 0.0);
  for (Index r = 0; r < items.n_rows(); ++r) {
    double s = 0;
    for (auto p = items.indptr[r]; p < items.indptr[r + 1]; ++p)
      s += static_cast<double>(items.data[static_cast<std::size_t>(p)]) * items.data[static_cast<std::size_t>(p)];
    norm[static_cast<std::size_t>(items.row_begin + r)] = s;
  }
  comm.allreduce_sum(norm.data(), norm.size());
  for (double& x : norm) x = std::sqrt(x);
  // The users of this rank's items: only their rows travel.
  std::vector<Index> wanted(items.indices.begin(), items.indices.end());
  std::sort(wanted.begin(), wanted.end());
  wanted.erase(std::unique(wanted.begin(), wanted.end()), wanted.end());
  const CsrBlock user_rows = fetch_user_rows(comm, data, wanted);
  ItemNeighbours local = item_neighbours_rows(items, user_rows, wanted, norm, k, threads);
  // Every rank gets every list (n_items x k values: what scoring any user needs).
  std::vector<std::int64_t> lens(static_cast<std::size_t>(items.n_rows()));
  for (Index r = 0; r < items.n_rows(); ++r) lens[static_cast<std::size_t>(r)] = local.indptr[r + 1] - local.indptr[r];
  const std::vector<std::int64_t> all_lens = gather(comm, lens);
  ItemNeighbours nb;
  nb.n_items = data.n_items;
  nb.k = k;
  nb.indices = gather(comm, local.indices);
  nb.data = gather(comm, local.data);
  nb.indptr.assign(1, 0);
  for (std::int64_t l : all_lens) nb.indptr.push_back(nb.indptr.back() + l);
  return nb;
}

std::vector<Real> popularity_pad(const std::vector<Index>& counts) {
  Index top = 0;
  for (Index c : counts) top = std::max(top, c);
  std::vector<Real> pad(counts.size());
  for (std::size_t i = 0; i < counts.size(); ++i)
    pad[i] = static_cast<Real>(static_cast<double>(counts[i]) / static_cast<double>(top + 1));
  return pad;
}

void knn_scores(const ItemNeighbours& nb, const std::int32_t* items, const Real* values, Index n,
                const std::vector<Real>& pad, Real* out) {
  const Index ni = nb.n_items;
  std::fill(out, out + ni, Real(0));
  for (Index t = 0; t < n; ++t) {
    const std::int32_t i = items[t];
    if (i < 0 || i >= ni) throw InputError("knn: item index " + std::to_string(i) + " out of range");
    const Real r = values ? values[t] : Real(1);
    for (auto p = nb.indptr[i]; p < nb.indptr[i + 1]; ++p)
      out[nb.indices[static_cast<std::size_t>(p)]] += r * nb.data[static_cast<std::size_t>(p)];
  }
  for (Index j = 0; j < ni; ++j)
    if (!(out[j] > 0)) out[j] = (static_cast<std::size_t>(j) < pad.size() ? pad[static_cast<std::size_t>(j)] : Real(0)) - 1;
}

void check_item_neighbours(const ItemNeighbours& nb, const std::string& what) {
  const Index ni = nb.n_items;
  if (static_cast<Index>(nb.indptr.size()) != ni + 1 || nb.indptr.front() != 0)
    throw InputError(what + ": /knn/indptr has " + std::to_string(nb.indptr.size()) + " entries, expected " +
                     std::to_string(ni + 1) + " starting with 0");
  for (std::size_t r = 1; r < nb.indptr.size(); ++r)
    if (nb.indptr[r] < nb.indptr[r - 1]) throw InputError(what + ": /knn/indptr is decreasing");
  if (static_cast<std::size_t>(nb.indptr.back()) != nb.indices.size() || nb.indices.size() != nb.data.size())
    throw InputError(what + ": /knn/indices and /knn/data do not match /knn/indptr");
  for (std::int32_t j : nb.indices)
    if (j < 0 || j >= ni)
      throw InputError(what + ": dataset /knn/indices holds " + std::to_string(j) + ", outside [0, " +
                       std::to_string(ni) + ")");
  for (Real v : nb.data)
    if (!std::isfinite(v) || v < 0) throw InputError(what + ": dataset /knn/data holds a negative or non-finite value");
}

}  // namespace mfrec
