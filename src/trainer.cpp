#include "mfrec/trainer.hpp"

#include <omp.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "mfrec/error.hpp"
#include "mfrec/hash.hpp"
#include "mfrec/huge_pages.hpp"

namespace mfrec {

void init_factor_row(std::uint64_t seed, int side, Index row, Real scale, Real* out, int f) {
  std::uint64_t state = splitmix64(splitmix64(seed) ^ splitmix64(static_cast<std::uint64_t>(side) << 56 ^ static_cast<std::uint64_t>(row)));
  for (int k = 0; k < f; ++k) {
    state = splitmix64(state);
    out[k] = scale * static_cast<Real>(static_cast<double>(state >> 11) * 0x1.0p-53);
  }
}

namespace {

double mib(double bytes) { return bytes / (1024.0 * 1024.0); }

}  // namespace

Trainer::Trainer(const Comm& comm, const TrainData& data, const TrainConfig& cfg) : comm_(comm), cfg_(cfg) {
  Eigen::setNbThreads(cfg_.threads);  // Eigen's own products use the rank's threads
  users_.bounds = &data.user_bounds;
  items_.bounds = &data.item_bounds;
  plan(cfg_.exchange, data);
  release_free_heap();  // the plans' temporaries
  const int f = cfg_.als.factors;
  const int r = comm_.rank();
  basis_ = Eigen::MatrixXd::Identity(f, f);
  // Every row is initialised from its global id alone, wherever it is held.
  auto init = [&](Side& s, int side) {
    const Index begin = (*s.bounds)[r], n = (*s.bounds)[r + 1] - begin;
    resize_huge(s.own, n, f);  // huge_pages.hpp: rows are read at random
    resize_huge(s.held, alias_ ? 0 : s.ex.held(), f);  // aliased: `own` is every row
#pragma omp parallel for num_threads(cfg_.threads) schedule(static)
    for (Index i = 0; i < n; ++i) init_factor_row(cfg_.seed, side, begin + i, cfg_.init_scale, s.own.row(i).data(), f);
#pragma omp parallel for num_threads(cfg_.threads) schedule(static)
    for (Index i = 0; i < s.held.rows(); ++i)
      init_factor_row(cfg_.seed, side, s.ex.id(i), cfg_.init_scale, s.held.row(i).data(), f);
  };
  init(users_, 0);
  init(items_, 1);
}

void Trainer::plan(ExchangeMode mode, const TrainData& data) {
  const int r = comm_.rank();
  const double row_bytes = static_cast<double>(cfg_.als.factors) * sizeof(Real);
  RowExchange ua = RowExchange::allgather(comm_, data.user_bounds), ia = RowExchange::allgather(comm_, data.item_bounds);
  auto bytes = [&](const RowExchange& u, const RowExchange& i) {  // per iteration, this rank
    return row_bytes * static_cast<double>(u.rows_sent() + u.rows_received() + i.rows_sent() + i.rows_received());
  };
  // One rank exchanges nothing either way: auto keeps the plain allgather (no plan to build).
  if (mode == ExchangeMode::kAuto && comm_.size() == 1) mode = ExchangeMode::kAllgather;
  mode_ = mode == ExchangeMode::kAuto ? ExchangeMode::kSparse : mode;
  if (mode_ == ExchangeMode::kSparse) {
    // The users this rank reads are those its item rows reference, and vice versa. When those
    // users exceed the budget, the item block is solved in stages that receive each user with the
    // first stage that reads it; the users' own exchange then carries only the Gram's tail rows.
    const double budget = cfg_.exchange_memory_mib * 1024 * 1024;
    if (budget > 0)
      items_.stages = plan_stages(comm_, data.items, data.user_bounds,
                                  std::max<Index>(1, static_cast<Index>(budget / row_bytes)), cfg_.als.factors);
    users_.ex = RowExchange::sparse(comm_, data.user_bounds,
                                    items_.stages.empty() ? wanted_rows(data.user_bounds, r, data.items)
                                                          : gram_tail_rows(data.user_bounds, r),
                                    cfg_.als.factors);
    items_.ex = RowExchange::sparse(comm_, data.item_bounds, wanted_rows(data.item_bounds, r, data.users), cfg_.als.factors);
    if (mode == ExchangeMode::kAuto) {
      double staged = 0, sent = static_cast<double>(users_.ex.rows_sent() + items_.ex.rows_sent());
      for (const Stage& st : items_.stages) {
        staged += row_bytes * static_cast<double>(st.ex.rows_sent() + st.ex.rows_received());
        sent += static_cast<double>(st.ex.rows_sent());
      }
      // On one node every byte moved is a memory copy, and the sparse exchange copies each row it
      // sends once more, into its send buffer (on 2 ranks that made it take twice the allgather's
      // time for 0.76 of its bytes): counted there. Across nodes the network's bytes decide.
      const bool one_node = comm_.split_shared().size() == comm_.size();
      const double packing = one_node ? row_bytes * sent : 0;
      const double sparse = comm_.max(bytes(users_.ex, items_.ex) + staged + packing), full = comm_.max(bytes(ua, ia));
      if (!(sparse < full)) mode_ = ExchangeMode::kAllgather;
      if (comm_.is_root())
        spdlog::info("exchange auto: {} ({:.2f} MiB per iteration on the busiest rank with sparse{}, {:.2f} MiB with allgather)",
                     exchange_name(mode_), mib(sparse), one_node ? " counting its packing copy on this one node" : "",
                     mib(full));
    }
  }
  // One rank with the allgather holds exactly its own rows: it reads them in place (reads()),
  // with no second copy and no exchange (a whole-matrix copy per half-step otherwise).
  alias_ = mode_ == ExchangeMode::kAllgather && comm_.size() == 1;
  if (mode_ == ExchangeMode::kAllgather) {
    users_.ex = std::move(ua);
    items_.ex = std::move(ia);
    users_.block = &data.users;
    items_.block = &data.items;
    users_.remapped = items_.remapped = CsrBlock{};
    items_.stages.clear();
  } else {
    // A block whose exchange holds every row of the other side reads them at their ids.
    auto remap = [](Side& s, const CsrBlock& block, const RowExchange& ex) {
      const bool at_ids = ex.held() == block.n_cols;
      s.remapped = at_ids ? CsrBlock{} : remap_columns(block, ex);
      s.block = at_ids ? &block : &s.remapped;
    };
    remap(users_, data.users, items_.ex);
    if (items_.stages.empty()) {
      remap(items_, data.items, users_.ex);
    } else {
      items_.block = &data.items;  // the stages' rows (Stage::rows_of) and row lengths (loss)
      const int stages = static_cast<int>(items_.stages.size());
      const Index most = comm_.max(items_.stages.front().buffer_rows);
      // Rows received per user row read: 1 when every user stays from its first stage to its last.
      Index arrivals = 0;
      for (const Stage& st : items_.stages) arrivals += st.ex.held();
      const auto read = static_cast<double>(referenced_columns(data.items).size());
      const double again = comm_.max(static_cast<double>(arrivals) / std::max(1.0, read));
      if (comm_.is_root())
        spdlog::info("exchange sparse: item half-step in {} stages (at most {} user rows, {:.1f} MiB, held at once; "
                     "each user row it reads received {:.2f} times at most; --exchange-memory {})",
                     stages, most, mib(row_bytes * static_cast<double>(most)), again, cfg_.exchange_memory_mib);
    }
  }
}

template <class F>
void Trainer::phase(const char* name, bool metered, F&& f) const {
  const Comm::Traffic before = comm_.traffic();
  {
    auto t = timer_.scope(name);
    f();
  }
  if (!metered) return;
  Comm::Traffic& acc = traffic_[name];
  acc.sent += comm_.traffic().sent - before.sent;
  acc.received += comm_.traffic().received - before.received;
}

Eigen::MatrixXd Trainer::gram(const Side& s, bool metered) const {
  // The kernel bench_als times (als_kernels): this rank's share of whole aligned chunks, so every
  // chunk's float products are the same for any partition; the allreduce adds them in double.
  // The last chunk may reach past this rank's rows into rows it holds for that purpose.
  const int f = cfg_.als.factors, r = comm_.rank();
  const Index begin = (*s.bounds)[r], end = (*s.bounds)[r + 1];
  Eigen::MatrixXd G = Eigen::MatrixXd::Zero(f, f);
  phase("gram", false, [&] {
    const auto [b, e] = gram_share_rows(begin, end, s.bounds->back());
    if (b >= e) return;
    const Index c = e > end ? std::max(b, gram_chunk_start(end)) : e;  // [c, e): the chunk past `end`
    if (c > b) gram_accumulate(s.own, b, c, G, cfg_.threads, begin);
    if (e > c) {
      FactorMatrix chunk(e - c, f);
      chunk.topRows(end - c) = s.own.middleRows(c - begin, end - c);
      chunk.bottomRows(e - end) = reads(s).middleRows(s.ex.position(end), e - end);
      gram_accumulate(chunk, c, e, G, cfg_.threads, c);
    }
  });
  phase("allreduce", metered, [&] { comm_.allreduce_sum(G.data(), static_cast<std::size_t>(G.size())); });
  return G;
}

std::optional<Eigenbasis> Trainer::agreed_eigenbasis(const Eigen::MatrixXd& G) const {
  const Index f = G.rows();
  std::optional<Eigenbasis> e = comm_.is_root() ? eigenbasis(G) : Eigenbasis{Eigen::MatrixXd(f, f), DenseMatrix(f, f)};
  int ok = e ? 1 : 0;
  comm_.bcast(&ok, 1);
  if (!ok) return std::nullopt;
  comm_.bcast(e->vectors.data(), static_cast<std::size_t>(e->vectors.size()));
  comm_.bcast(e->gram.data(), static_cast<std::size_t>(e->gram.size()));
  return e;
}

void Trainer::half_step(Side& mine, Side& other) {
  const Eigen::MatrixXd Gd = gram(other, true);
  const DenseMatrix G = Gd.cast<Real>();
  // The side with more rows: CG in the eigenbasis of G (als_kernels.hpp). Every row kept of the
  // other side turns to the new basis and stays there (iterate()); this side's rows are solved
  // there (solve_rows_eigenbasis turns those it warm-starts from), and `mine.held` is rewritten by
  // the exchange below.
  std::optional<Eigenbasis> e;
  if (use_eigenbasis(cfg_.als, mine.bounds->back(), other.bounds->back())) {
    phase("solve", false, [&] {
      e = agreed_eigenbasis(Gd);
      if (!e) return;  // a NaN in G: solved in the current basis
      for (FactorMatrix* m : {&other.own, &other.held}) rotate_rows(*m, e->vectors, cfg_.threads);
      basis_ = basis_ * e->vectors;
      standard_ = false;
    });
  }
  auto solve = [&](const CsrBlock& R, const FactorMatrix& Y, FactorMatrix& X) {
    if (e)
      solve_rows_eigenbasis(R, Y, *e, cfg_.als, X, cfg_.threads);
    else
      solve_rows(R, Y, G, cfg_.als, X, cfg_.threads);
  };
  if (mine.stages.empty()) {
    phase("solve", false, [&] { solve(*mine.block, reads(other), mine.own); });
  } else {
    // One buffer for every stage (plan_stages): each user row arrives in its slot with the first
    // stage that reads it and stays for the later ones. Zeroed once, as the direct solver may
    // transform every row of it (slots not yet filled are never used). `mine.held` (this side's
    // rows the other half-step reads) is not read while the stages are solved and is rewritten
    // whole by the exchange below: it is released meanwhile, so the two are never held at once
    // (at 100x on 16 ranks, 63 MB of item rows off the peak).
    mine.held.resize(0, cfg_.als.factors);
    resize_huge(stage_held_, mine.stages.front().buffer_rows, cfg_.als.factors);
    stage_held_.setZero();
    for (const Stage& st : mine.stages) {
      phase("exchange", true, [&] { st.ex.run(comm_, other.own, stage_held_, cfg_.threads, &st.slots); });
      phase("solve", false, [&] {
        FactorMatrix rows = mine.own.middleRows(st.begin, st.end - st.begin);
        solve(st.rows_of(*mine.block), stage_held_, rows);
        mine.own.middleRows(st.begin, st.end - st.begin) = rows;
      });
    }
    stage_held_.resize(0, cfg_.als.factors);  // held only while solving
    resize_huge(mine.held, mine.ex.held(), cfg_.als.factors);
  }
  phase("exchange", true, [&] {  // timed even when aliased, so the report keeps its phases
    if (!alias_) mine.ex.run(comm_, mine.own, mine.held, cfg_.threads);
  });
}

void Trainer::iterate() {
  half_step(users_, items_);
  half_step(items_, users_);
  ++done_;
}

double Trainer::loss() const {
  const DenseMatrix YtY = gram(items_, false).cast<Real>();
  LossTerms lu = loss_rows(*users_.block, reads(items_), YtY, cfg_.als, users_.own, cfg_.threads);
  // The item side's regulariser: lambda_i ||y_i||^2 over the local items.
  double reg_items = 0;
  const CsrBlock& items = *items_.block;
  for (Index i = 0; i < items_.own.rows(); ++i) {
    double lam = cfg_.als.regularization;
    if (cfg_.als.scale_regularization) lam *= static_cast<double>(items.indptr[i + 1] - items.indptr[i]);
    reg_items += lam * static_cast<double>(items_.own.row(i).squaredNorm());
  }
  double terms[3] = {lu.data, lu.reg, reg_items};
  comm_.allreduce_sum(terms, 3);
  return terms[0] + terms[1] + terms[2];
}

namespace {

FactorMatrix gather_side(const Comm& comm, const FactorMatrix& own, const Bounds& bounds) {
  FactorMatrix all(bounds.back(), own.cols());
  comm.allgatherv_rows(own.data(), own.rows(), part_sizes(bounds), own.cols(), all.data());
  return all;
}

}  // namespace

FactorMatrix Trainer::gather_item_factors() const {
  FactorMatrix all = gather_side(comm_, items_.own, *items_.bounds);
  to_standard(all);
  return all;
}

ItemFactors Trainer::evaluation_items(Index block_items) const {
  ItemFactors items;
  // Held rows are in id order: all of them are every item at its id.
  if (comm_.min(reads(items_).rows() == items_.bounds->back() ? 1 : 0) == 1) {
    items.all = &reads(items_);
    return items;
  }
  items.n_items = items_.bounds->back();
  items.factors = items_.own.cols();
  items.block_items = block_items;
  items.fetch = [this](Index begin, Index end, FactorMatrix& out) { gather_item_rows(begin, end, out); };
  return items;
}

void Trainer::gather_item_rows(Index begin, Index end, FactorMatrix& out) const {
  const Bounds& b = *items_.bounds;
  std::vector<std::int64_t> rows(b.size() - 1);
  for (std::size_t r = 0; r + 1 < b.size(); ++r)
    rows[r] = std::max<Index>(0, std::min(end, b[r + 1]) - std::max(begin, b[r]));
  const Index mine = b[static_cast<std::size_t>(comm_.rank())];
  const Index first = std::min(std::max<Index>(0, begin - mine), items_.own.rows());  // of this rank's rows
  out.resize(end - begin, items_.own.cols());
  comm_.allgatherv_rows(items_.own.data() + first * items_.own.cols(), rows[static_cast<std::size_t>(comm_.rank())],
                        rows, items_.own.cols(), out.data());
}

FactorMatrix Trainer::gather_user_factors() const {
  FactorMatrix all = gather_side(comm_, users_.own, *users_.bounds);
  to_standard(all);
  return all;
}

void Trainer::to_standard(FactorMatrix& rows) const {
  if (!standard_) rotate_rows(rows, basis_.transpose(), cfg_.threads);
}

void Trainer::copy_standard_factors(FactorMatrix& X, FactorMatrix& Y) const {
  X = users_.own;
  Y = items_.own;
  to_standard(X);
  to_standard(Y);
}

void Trainer::to_standard_basis() {
  if (standard_) return;
  // The held item rows too, rotated as their owners rotate them: the same bits. The held user rows
  // are rewritten by the exchange after the next user half-step before anything reads them.
  for (FactorMatrix* m : {&users_.own, &items_.own, &items_.held}) to_standard(*m);
  basis_.setIdentity();
  standard_ = true;
}

void Trainer::set_local_factors(FactorMatrix X, FactorMatrix Y, int iterations_done, const Eigen::MatrixXd& basis) {
  if (X.rows() != users_.own.rows() || X.cols() != users_.own.cols() || Y.rows() != items_.own.rows() ||
      Y.cols() != items_.own.cols())
    throw InputError("checkpoint factors have the wrong shape");
  if (basis.size() != 0 && (basis.rows() != X.cols() || basis.cols() != X.cols()))
    throw InputError("checkpoint basis has the wrong shape");
  standard_ = basis.size() == 0 || basis.isIdentity(0);
  basis_ = standard_ ? Eigen::MatrixXd::Identity(X.cols(), X.cols()) : basis;
  // Moved, not copied (a copy would double the peak at resume). The storage was touched when it
  // was read: advised now, its pages become huge ones as the kernel's khugepaged collapses them.
  users_.own = std::move(X);
  items_.own = std::move(Y);
  for (FactorMatrix* m : {&users_.own, &items_.own})
    advise_huge_pages(m->data(), static_cast<std::size_t>(m->size()) * sizeof(Real));
  if (!alias_) {
    users_.ex.run(comm_, users_.own, users_.held, cfg_.threads);
    items_.ex.run(comm_, items_.own, items_.held, cfg_.threads);
  }
  done_ = iterations_done;
}

}  // namespace mfrec
