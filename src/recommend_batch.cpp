// The batch job: every user's top N, each rank computing its even share of the users and writing
// its rows into one HDF5 file (parallel HDF5) and, optionally, a CSV (recommend_csv.cpp).
// Nothing is left behind when any step fails on any rank.
#include <algorithm>
#include <cstdio>
#include <limits>
#include <memory>
#include <optional>

#include "mfrec/comm.hpp"
#include "mfrec/error.hpp"
#include "mfrec/h5.hpp"
#include "mfrec/metrics.hpp"
#include "mfrec/paths.hpp"
#include "mfrec/recommend.hpp"
#include "recommend_internal.hpp"

namespace mfrec {

using recommend_detail::check_n;
using recommend_detail::write_batch_csv;

TopNBlock top_n_rows(const FactorMatrix& X, const FactorMatrix& Y, const CsrBlock& seen, int n,
                     const std::vector<std::int32_t>& fallback, const std::vector<Real>& fallback_scores,
                     int threads) {
  check_n(n);
  const Index rows = X.rows(), ni = Y.rows();
  if (seen.n_rows() != rows || seen.n_cols != ni || X.cols() != Y.cols())
    throw InputError("top_n_rows: shapes of X, Y and seen do not match");
  if (fallback_scores.size() != static_cast<std::size_t>(ni))
    throw InputError("top_n_rows: fallback scores must have one value per item");
  for (std::int32_t i : fallback)
    if (i < 0 || i >= ni) throw InputError("top_n_rows: fallback item " + std::to_string(i) + " is out of range");
  TopNBlock out;
  const auto nn = static_cast<std::size_t>(n);
  out.items.assign(static_cast<std::size_t>(rows) * nn, -1);
  out.scores.assign(static_cast<std::size_t>(rows) * nn, std::numeric_limits<Real>::quiet_NaN());
  out.fallback.assign(static_cast<std::size_t>(rows), 0);
  constexpr Index kBlock = 64;
  const Index n_blocks = (rows + kBlock - 1) / kBlock;
  std::string error;
#pragma omp parallel for schedule(dynamic, 1) num_threads(std::max(1, threads))
  for (Index blk = 0; blk < n_blocks; ++blk) {
    try {
      const Index b = blk * kBlock, e = std::min(rows, b + kBlock);
      FactorMatrix S = X.middleRows(b, e - b) * Y.transpose();
      std::vector<std::int32_t> top;
      for (Index u = b; u < e; ++u) {
        const auto sb = seen.indptr[u], se = seen.indptr[u + 1];
        const std::size_t off = static_cast<std::size_t>(u) * nn;
        if (se == sb) {
          out.fallback[static_cast<std::size_t>(u)] = 1;
          for (std::size_t k = 0; k < nn && k < fallback.size(); ++k) {
            out.items[off + k] = fallback[k];
            out.scores[off + k] = fallback_scores[static_cast<std::size_t>(fallback[k])];
          }
          continue;
        }
        top_k_excluding(S.row(u - b).data(), ni, seen.indices.data() + sb, se - sb, n, top);
        for (std::size_t k = 0; k < top.size(); ++k) {
          out.items[off + k] = top[k];
          out.scores[off + k] = S(u - b, top[k]);
        }
      }
    } catch (const std::exception& ex) {
#pragma omp critical(mfrec_top_n_rows_error)
      if (error.empty()) error = ex.what();
    }
  }
  if (!error.empty()) throw InputError(error);
  return out;
}

namespace {

// One HDF5 file, every rank writing its rows; returned uncommitted.
h5::File write_batch_h5(const Comm& comm, const std::string& output, const Model& m, const TopNBlock& top, int n,
                        const std::string& model_path) {
  std::optional<h5::File> file;
  agree_on(comm, [&] { file.emplace(h5::File::create_atomic(output, &comm)); });
  h5::File& out = *file;
  const auto nu = static_cast<Index>(m.n_users_total), nn = static_cast<Index>(n);
  const auto rb = static_cast<Index>(m.row_begin), rn = static_cast<Index>(m.user_factors.rows());
  out.create_dataset<std::int32_t>("/recommendations/items", {nu, nn});
  out.write_rows("/recommendations/items", rb, rn, top.items.data());
  out.create_dataset<float>("/recommendations/scores", {nu, nn});
  out.write_rows("/recommendations/scores", rb, rn, top.scores.data());
  out.create_dataset<std::uint8_t>("/recommendations/fallback", {nu}, {65536, 0});
  out.write_rows("/recommendations/fallback", rb, rn, top.fallback.data());
  std::int64_t width = 1;
  for (const auto& s : m.user_ids) width = std::max<std::int64_t>(width, static_cast<std::int64_t>(s.size()));
  width = comm.max(width);
  out.create_string_dataset("/users/id", nu, static_cast<std::size_t>(width), {65536, 0});
  out.write_string_rows("/users/id", rb, m.user_ids);
  out.write_strings("/items/id", m.items.id);
  out.set_attr("/", "format", "mfrec-recommendations");
  out.set_attr("/", "format_version", std::int64_t{1});
  out.set_attr("/", "n", n);
  out.set_attr("/", "model", comm.bcast(model_path));
  out.set_attr("/", "created", comm.bcast(utc_now_iso()));
  return std::move(out);
}

}  // namespace

BatchResult recommend_all(const Comm& comm, const std::string& model_path, const std::string& output,
                          const std::string& csv, int n, int threads) {
  check_n(n);
  const double t0 = Comm::wtime();
  // Nothing is read or written before every path is known to be usable (and distinct).
  agree_on(comm, [&] {
    check_paths({{"model", model_path, PathRole::InputFile},
                 {"output", output, PathRole::OutputFile},
                 {"csv", csv, PathRole::OutputFile}});
  });
  // This rank's users, every item; validated by the one model reader, the verdict agreed.
  Model m;
  agree_on(comm, [&] { m = read_model_share(model_path, comm); });
  TopNBlock top;
  agree_on(comm, [&] { top = top_n_rows(m.user_factors, m.item_factors, m.seen, n, m.popular,
                                         popularity_scores(m.popularity), threads); });

  h5::File out = write_batch_h5(comm, output, m, top, n, model_path);
  std::unique_ptr<AtomicFile> csv_file;  // rank 0's, uncommitted
  if (!csv.empty()) {
    try {
      csv_file = write_batch_csv(comm, csv, m, top, n);
    } catch (const AgreedError&) {
      out.close();  // every rank is here: close together (the partial file is then removed)
      throw;
    }
  }
  out.commit();
  // The CSV last: if it cannot be committed, the HDF5 file this run wrote goes too.
  agree_on(comm, [&] {
    if (!csv_file) return;
    try {
      csv_file->commit();
    } catch (...) {
      std::remove(output.c_str());
      throw;
    }
  });

  std::int64_t fallback_local = 0;
  for (auto v : top.fallback) fallback_local += v;
  BatchResult res;
  res.users = m.n_users_total;
  res.fallback_users = comm.sum(fallback_local);
  res.seconds = comm.max(Comm::wtime() - t0);
  return res;
}

}  // namespace mfrec
