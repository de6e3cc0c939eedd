// The fused score-and-rank pass of evaluate_rows (see metrics_internal.hpp, docs/metrics.md).
//
// Per block of users, the items are taken one tile at a time: a GEMM gives the block's scores on
// the tile (small enough to stay in cache), and each user's row of it is consumed at once by a
// streaming top K and by the AUC counts. The unfused pass stored a full row of scores per user
// (n_items floats) and read it again for the top K and once per positive for the AUC: at 246,500
// items that is memory traffic, not arithmetic.
//
// Identical results: every score is bit for bit the score of the unfused pass, so the top K, its
// ties (higher score, then smaller item) and the exact AUC counts are the same.
// - Eigen's GEMM computes a score on its full panels of items (multiples of 48 items from the
//   first) as one fused multiply-add chain over the factors, whatever the number of users (2 or
//   more) and the panel's place: tiles that start at multiples of 48 get the same values.
// - The last items (after the last full panel) take another path whose rounding depends on the
//   user's place in its GEMM: the last tile is computed per unfused block of users (the fused
//   blocks are whole multiples of them), so each user sits where it sat before.
// - A block of one user is a matrix-vector product in Eigen (another rounding): such a user (the
//   last one, when the unfused blocks leave one alone) is evaluated the unfused way, or in item
//   blocks by a GEMV over each block.
// - The AUC needs the scores of a user's positives before the tiles are counted: the same chain
//   (madd below) computes them for the items before the last tile; the last tile is computed
//   first and gives the others.
// Items in blocks (own_scores, positives, rank, finish): the blocks are whole tiles from tile
// multiples, so every tile and score is the one above; each user's state (FusedUserState) is
// kept from one block to the next, and its item sets are rebuilt from its rows per block.
// tests/test_metrics_fused.cpp checks the per-user values against evaluate_rows_unfused bitwise,
// and the blocked pass against the unblocked one.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#ifdef __AVX512F__
#include <immintrin.h>
#endif

#include "mfrec/metrics.hpp"
#include "metrics_internal.hpp"

namespace mfrec::detail {
namespace {

constexpr Index kPanel = 48;         // a multiple of Eigen's float panel height (12, 24 or 48 items)
constexpr Index kTileFloats = 98304;  // items per tile x factors: a tile of item factors is 384 KiB
constexpr Index kMaxTile = 42 * kPanel;  // 2,016 items
constexpr int kLanes = 16;            // items per vector of the chain scores
constexpr std::size_t kAucLinearMaxPositives = 64;  // above: binary searches over sorted positives

// One step of Eigen's score chain: fused when the target has FMA (Eigen then uses it), else a
// product then a sum.
inline Real madd(Real a, Real b, Real c) {
#ifdef __FMA__
  return std::fma(a, b, c);
#else
  return c + a * b;
#endif
}

// Bit l: s[l] > t (or >= t), for the 64 scores from s (sanitized: no NaN).
template <bool kOrEqual>
inline std::uint64_t above_mask(const Real* s, Real t) {
  std::uint64_t m = 0;
#ifdef __AVX512F__
  const __m512 tv = _mm512_set1_ps(t);
  for (int q = 0; q < 4; ++q)
    m |= static_cast<std::uint64_t>(_mm512_cmp_ps_mask(_mm512_loadu_ps(s + 16 * q), tv, kOrEqual ? _CMP_GE_OQ
                                                                                                   : _CMP_GT_OQ))
         << (16 * q);
#else
  for (int l = 0; l < 64; ++l) m |= static_cast<std::uint64_t>((kOrEqual ? s[l] >= t : s[l] > t) ? 1 : 0) << l;
#endif
  return m;
}

// Items per tile: kTileFloats / f, a multiple of kPanel, at most kMaxTile (a block's tile of
// scores stays within 2 MiB at small f).
Index tile_items(Index f) {
  const Index t = kTileFloats / std::max<Index>(1, f) / kPanel * kPanel;
  return std::min(kMaxTile, std::max(kPanel, t));
}

using Scored = std::pair<Real, std::int32_t>;  // (score, item)

void sorted_distinct(const std::int32_t* b, const std::int32_t* e, std::vector<std::int32_t>& out) {
  out.assign(b, e);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
}

// A user's items as sorted distinct sets, rebuilt from its rows whenever its block is loaded.
struct UserSets {
  std::vector<std::int32_t> train;  // training items: not ranked, not negatives
  std::vector<std::int32_t> pos;    // test items
  std::vector<std::int32_t> excl;   // training or test items
  void load(const CsrBlock& tr, const CsrBlock& te, Index r) {
    sorted_distinct(tr.indices.data() + tr.indptr[r], tr.indices.data() + tr.indptr[r + 1], train);
    sorted_distinct(te.indices.data() + te.indptr[r], te.indices.data() + te.indptr[r + 1], pos);
    excl.clear();
    std::set_union(train.begin(), train.end(), pos.begin(), pos.end(), std::back_inserter(excl));
  }
  bool is_train(std::int32_t i) const { return std::binary_search(train.begin(), train.end(), i); }
  // The index in excl of the first item >= i.
  Index excl_from(Index i) const {
    return std::lower_bound(excl.begin(), excl.end(), static_cast<std::int32_t>(std::min<Index>(i, INT32_MAX))) -
           excl.begin();
  }
};

// Items [begin, begin + Y.rows()) of the catalogue.
struct ItemView {
  const FactorMatrix& Y;
  Index begin;
  Index end() const { return begin + Y.rows(); }
};

// 2 #(s_i < s_p) + #(s_i == s_p) over the n scores s and the positives' sorted scores ps.
std::int64_t count_below(const Real* s, Index n, const std::vector<Real>& ps) {
  const Index np = static_cast<Index>(ps.size());
  std::int64_t c = 0;
  if (ps.size() <= kAucLinearMaxPositives) {
    constexpr Index kChunk = Index(1) << 20;  // 32-bit lane counters (vectorise twice as wide)
    for (const Real sp : ps) {
      for (Index i0 = 0; i0 < n; i0 += kChunk) {
        const Index e = std::min(n, i0 + kChunk);
        std::int32_t cc = 0;
#pragma omp simd reduction(+ : cc)
        for (Index i = i0; i < e; ++i) cc += (s[i] < sp ? 1 : 0) + (s[i] <= sp ? 1 : 0);
        c += cc;
      }
    }
    return c;
  }
  const Real lo = ps.front(), hi = ps.back();
  for (Index i = 0; i < n; ++i) {
    const Real v = s[i];
    if (v < lo) {
      c += 2 * np;
    } else if (v <= hi) {
      const auto l = std::lower_bound(ps.begin(), ps.end(), v) - ps.begin();
      const auto u = std::upper_bound(ps.begin() + l, ps.end(), v) - ps.begin();
      c += 2 * (np - u) + (u - l);
    }
  }
  return c;
}

}  // namespace

struct FusedWorker::Impl {
  const FactorMatrix& X;
  const CsrBlock& train;
  const CsrBlock& test;
  int k;
  Index sub_block, n_items, f, tile, last0;
  FactorMatrix lhs, row_lhs, row_scores;
  std::vector<Real> buf, last, wide, ybuf;
  std::vector<UserSets> sets;         // per user of the block
  std::vector<FusedUserState> own;    // run()'s states
  Workspace w;

  Impl(const FactorMatrix& X_, Index n_items_, const CsrBlock& tr, const CsrBlock& te, int k_, Index sb)
      : X(X_), train(tr), test(te), k(k_), sub_block(sb), n_items(n_items_), f(X_.cols()), tile(tile_items(X_.cols())),
        last0(n_items_ > 0 ? (n_items_ - 1) / tile * tile : 0), w(n_items_) {}

  // Users [0, fused) of a block of nb are fused; the last one is alone when the unfused blocks
  // leave it alone (a GEMV, as in the unfused pass).
  int fused_users(int nb) const { return nb % sub_block == 1 ? nb - 1 : nb; }

  // The sets of users rows[0..nb), and the factors of the fused ones.
  void load(const Index* rows, int nb, int nf) {
    if (sets.size() < static_cast<std::size_t>(nb)) sets.resize(static_cast<std::size_t>(nb));
    for (int j = 0; j < nb; ++j) sets[static_cast<std::size_t>(j)].load(train, test, rows[j]);
    lhs.resize(nf, f);
    for (int j = 0; j < nf; ++j) lhs.row(j) = X.row(rows[j]);
  }

  // The unfused evaluation of one user: a 1 x n_items product (a GEMV, as the unfused pass did).
  void run_alone(const FactorMatrix& Y, Index r, double* out) {
    const Real* s = alone_scores(r, ItemView{Y, 0});
    evaluate_user_row(s, n_items, train, test, r, k, w, out);
  }

  // A lone user's scores on the items of v: a GEMV over them. On a view from a multiple of the
  // tile with more than a tile of items it gives the bits of the GEMV over every item
  // (tests/test_metrics_fused.cpp, blocked against unblocked).
  const Real* alone_scores(Index r, const ItemView& v) {
    row_lhs.resize(1, f);
    row_lhs.row(0) = X.row(r);
    row_scores.resize(1, v.Y.rows());
    row_scores.noalias() = row_lhs * v.Y.transpose();
    sanitize(row_scores.data(), row_scores.data(), v.Y.rows());
    return row_scores.data();
  }

  // Scores of fused user j on `items` (all in v, before last0) by the chain of Eigen's full
  // panels, kLanes items at a time from a transposed copy of their factors.
  void chain_scores(int j, const ItemView& v, const std::int32_t* items, Index n, Real* out) {
    ybuf.resize(static_cast<std::size_t>(f * kLanes));  // lanes past n hold stale values: ignored
    const Real* x = lhs.row(j).data();
    for (Index g = 0; g < n; g += kLanes) {
      const int m = static_cast<int>(std::min<Index>(kLanes, n - g));
      for (int l = 0; l < m; ++l) {
        const Real* y = v.Y.row(items[g + l] - v.begin).data();
        for (Index d = 0; d < f; ++d) ybuf[d * kLanes + l] = y[d];
      }
      Real acc[kLanes] = {};
      for (Index d = 0; d < f; ++d) {
        const Real xd = x[d];
        const Real* yd = ybuf.data() + d * kLanes;
#pragma omp simd
        for (int l = 0; l < kLanes; ++l) acc[l] = madd(xd, yd[l], acc[l]);
      }
      for (int l = 0; l < m; ++l) out[g + l] = acc[l];
    }
  }

  // The fused users' scores on the last tile, per unfused block of users (see the top of the
  // file), when v holds it. A last tile under a panel is computed with the panel before it: Eigen
  // computes a small product (users + items + factors < 20) coefficient-wise, another rounding
  // than the unfused pass's GEMM over every item. (A view holding the last tile holds more than
  // a tile when it is not the first.)
  void last_tile(const ItemView& v, int nf) {
    if (last0 < v.begin || last0 >= v.end()) return;
    const Index nl = n_items - last0, from = last0 > 0 && nl < kPanel ? last0 - kPanel : last0;
    const Index nw = n_items - from;
    wide.resize(static_cast<std::size_t>(sub_block * nw));
    last.resize(static_cast<std::size_t>(nf * nl));
    for (Index b = 0; b < nf; b += sub_block) {
      const Index m = std::min<Index>(sub_block, nf - b);
      Eigen::Map<FactorMatrix> W(wide.data(), m, nw);
      W.noalias() = lhs.middleRows(b, m) * v.Y.middleRows(from - v.begin, nw).transpose();
      Eigen::Map<FactorMatrix>(last.data() + b * nl, m, nl) = W.rightCols(nl);
    }
    sanitize(last.data(), last.data(), static_cast<Index>(last.size()));
  }

  // The scores of the users' training and test items in v (the last tile's from `last`: the
  // caller ran last_tile on v).
  void own_scores_fused(const ItemView& v, int nf, FusedUserState* st) {
    const Index nl = n_items - last0;
    for (int j = 0; j < nf; ++j) {
      const UserSets& S = sets[static_cast<std::size_t>(j)];
      FusedUserState& u = st[j];
      u.excl_s.resize(S.excl.size());
      const Index a = S.excl_from(v.begin), b = S.excl_from(v.end());
      const Index m = std::clamp(S.excl_from(last0), a, b);
      chain_scores(j, v, S.excl.data() + a, m - a, u.excl_s.data() + a);
      sanitize(u.excl_s.data() + a, u.excl_s.data() + a, m - a);
      for (Index e = m; e < b; ++e) u.excl_s[e] = last[j * nl + S.excl[e] - last0];
    }
  }
  void own_scores_alone(Index r, const UserSets& S, const ItemView& v, FusedUserState& u) {
    const Real* s = alone_scores(r, v);
    u.excl_s.resize(S.excl.size());
    for (Index e = S.excl_from(v.begin), b = S.excl_from(v.end()); e < b; ++e) u.excl_s[e] = s[S.excl[e] - v.begin];
  }

  // Once every training and test item's score is known: the positives' sorted scores, and the
  // counts started.
  static void positives(const UserSets& S, FusedUserState& u) {
    u.pos_s.clear();
    for (std::size_t p = 0, e = 0; p < S.pos.size(); ++p) {
      while (S.excl[e] != S.pos[p]) ++e;
      u.pos_s.push_back(u.excl_s[e]);
    }
    std::sort(u.pos_s.begin(), u.pos_s.end());
    u.top.clear();
    u.c2 = 0;
  }

  // The streaming top K over scores s of items [i0, i0 + n), visited by increasing item: once K
  // are kept, an item enters only with a score strictly above the worst kept (an equal score
  // ranks after it); only the items above the worst kept at the start of each chunk of
  // kScanChunk scores are visited (a bit mask). The kept items
  // stay sorted best first (K is small: an insertion moves a few entries).
  static constexpr Index kScanChunk = 64;
  // Items come by increasing index, so a new one ranks before a kept one only with a strictly
  // higher score (RanksBefore's tie rule).
  static void insert(FusedUserState& u, Real s, std::int32_t item, std::size_t kk) {
    if (u.top.size() < kk) u.top.emplace_back();
    std::size_t j = u.top.size() - 1;
    for (; j > 0 && s > u.top[j - 1].first; --j) u.top[j] = u.top[j - 1];
    u.top[j] = {s, item};
  }
  // A lower bound of the K-th best candidate's score, from the first tile: the smallest of the
  // maxima of G >= K + t disjoint groups of its items (t: the user's training items there), so at
  // least K candidates score at least that much; an item below it never reaches the top K. It
  // saves most of the insertions of the first tile. -inf when the tile is too small.
  static constexpr Index kMaxBoundGroups = 64;
  Real first_bound(const UserSets& S, const Real* s, Index n) const {
    const Index t = std::lower_bound(S.train.begin(), S.train.end(), static_cast<std::int32_t>(std::min<Index>(n, INT32_MAX))) -
                    S.train.begin();
    const Index groups = (k + t + 15) / 16 * 16;  // group l: items l, l + groups, l + 2 groups, ...
    const Index rows = groups > 0 ? n / groups : 0;
    if (groups > kMaxBoundGroups || rows < 4) return -std::numeric_limits<Real>::infinity();
    Real m[kMaxBoundGroups];
    for (Index l = 0; l < groups; ++l) m[l] = s[l];
    for (Index r = 1; r < rows; ++r) {
      const Real* p = s + r * groups;
#pragma omp simd
      for (Index l = 0; l < groups; ++l) m[l] = p[l] > m[l] ? p[l] : m[l];
    }
    Real b = m[0];
    for (Index l = 1; l < groups; ++l) b = m[l] < b ? m[l] : b;
    return b;
  }

  // The top K and the AUC counts over the scores s of items [i0, i0 + n).
  void scan(FusedUserState& u, const UserSets& S, const Real* s, Index i0, Index n) {
    const std::size_t kk = static_cast<std::size_t>(k);
    const Real bound =
        u.top.size() < kk && i0 == 0 ? first_bound(S, s, n) : -std::numeric_limits<Real>::infinity();
    auto visit = [&](Index j) {
      const auto item = static_cast<std::int32_t>(i0 + j);
      const bool candidate = u.top.size() < kk ? s[j] >= bound : s[j] > u.top.back().first;
      if (candidate && !S.is_train(item)) insert(u, s[j], item, kk);
    };
    Index i = 0;
    for (; i + kScanChunk <= n; i += kScanChunk) {
      // Only these can enter: while filling, the scores >= the bound; then those above the worst
      // kept when the chunk starts (it only rises, and it is >= the bound).
      const std::uint64_t mask = u.top.size() < kk ? above_mask<true>(s + i, bound)
                                                   : above_mask<false>(s + i, u.top.back().first);
      for (std::uint64_t m = mask; m != 0; m &= m - 1) visit(i + __builtin_ctzll(m));
    }
    for (; i < n; ++i) visit(i);
    u.c2 += count_below(s, n, u.pos_s);
  }

  // The tiles of v (the last from `last`: the caller ran last_tile on v), for the fused users.
  void rank_fused(const ItemView& v, int nf, FusedUserState* st) {
    buf.resize(static_cast<std::size_t>(nf * tile));
    for (Index i0 = v.begin; i0 < v.end(); i0 += tile) {
      const Index n = std::min(tile, v.end() - i0);
      const Real* T = last.data();
      if (i0 != last0) {
        Eigen::Map<FactorMatrix> M(buf.data(), nf, n);
        M.noalias() = lhs * v.Y.middleRows(i0 - v.begin, n).transpose();
        sanitize(buf.data(), buf.data(), nf * n);
        T = buf.data();
      }
      for (int j = 0; j < nf; ++j) scan(st[j], sets[static_cast<std::size_t>(j)], T + j * n, i0, n);
    }
  }

  void finish_user(const UserSets& S, const FusedUserState& u, double* out) {
    std::vector<std::int32_t>& top = w.top;
    top.clear();
    for (const Scored& e : u.top) top.push_back(e.second);
    const RankStats r = rank_stats(top.data(), top.size(), S.pos.size(), k, [&S](std::int32_t item) {
      return std::binary_search(S.pos.begin(), S.pos.end(), item);
    });
    out[0] = r.ap;
    out[1] = r.ap_seed;
    out[2] = r.precision;
    out[3] = r.recall;
    out[4] = r.ndcg;
    const Index n_neg = n_items - static_cast<Index>(S.excl.size());
    if (S.pos.empty() || n_neg <= 0) {
      out[5] = 0.5;
      return;
    }
    const std::int64_t c2 = u.c2 - count_below(u.excl_s.data(), static_cast<Index>(u.excl_s.size()), u.pos_s);
    // 0.5 c2 = less + equal / 2 exactly (integers below 2^52): the unfused pass's numerator.
    out[5] = 0.5 * static_cast<double>(c2) /
             (static_cast<double>(S.pos.size()) * static_cast<double>(n_neg));
  }

  void run(const FactorMatrix& Y, const Index* rows, int nb, double* out) {
    const int nf = fused_users(nb);
    for (int j = nf; j < nb; ++j) run_alone(Y, rows[j], out + static_cast<std::size_t>(j) * 6);
    if (nf == 0) return;
    load(rows, nf, nf);
    if (own.size() < static_cast<std::size_t>(nf)) own.resize(static_cast<std::size_t>(nf));
    const ItemView v{Y, 0};
    last_tile(v, nf);  // the last tile first: it gives its own items' scores
    own_scores_fused(v, nf, own.data());
    for (int j = 0; j < nf; ++j) positives(sets[static_cast<std::size_t>(j)], own[static_cast<std::size_t>(j)]);
    rank_fused(v, nf, own.data());
    for (int j = 0; j < nf; ++j)
      finish_user(sets[static_cast<std::size_t>(j)], own[static_cast<std::size_t>(j)], out + static_cast<std::size_t>(j) * 6);
  }

  // The blocked pass's steps (metrics_internal.hpp).
  void own_scores(const ItemView& v, const Index* rows, int nb, FusedUserState* st) {
    const int nf = fused_users(nb);
    load(rows, nb, nf);
    last_tile(v, nf);
    own_scores_fused(v, nf, st);
    for (int j = nf; j < nb; ++j) own_scores_alone(rows[j], sets[static_cast<std::size_t>(j)], v, st[j]);
  }
  void positives(const Index* rows, int nb, FusedUserState* st) {
    load(rows, nb, 0);
    for (int j = 0; j < nb; ++j) positives(sets[static_cast<std::size_t>(j)], st[j]);
  }
  void rank(const ItemView& v, const Index* rows, int nb, FusedUserState* st) {
    const int nf = fused_users(nb);
    load(rows, nb, nf);
    last_tile(v, nf);
    rank_fused(v, nf, st);
    for (int j = nf; j < nb; ++j) scan(st[j], sets[static_cast<std::size_t>(j)], alone_scores(rows[j], v), v.begin, v.Y.rows());
  }
  void finish(const Index* rows, int nb, FusedUserState* st, double* out) {
    load(rows, nb, 0);
    for (int j = 0; j < nb; ++j) finish_user(sets[static_cast<std::size_t>(j)], st[j], out + static_cast<std::size_t>(j) * 6);
  }
};

FusedWorker::FusedWorker(const FactorMatrix& X, Index n_items, const CsrBlock& train, const CsrBlock& test, int k,
                         Index sub_block)
    : impl_(std::make_unique<Impl>(X, n_items, train, test, k, sub_block)) {}
FusedWorker::FusedWorker(FusedWorker&&) noexcept = default;
FusedWorker::~FusedWorker() = default;
Index FusedWorker::tile_items(Index f) { return mfrec::detail::tile_items(f); }
void FusedWorker::run(const FactorMatrix& Y, const Index* rows, int nb, double* out) { impl_->run(Y, rows, nb, out); }
void FusedWorker::own_scores(const FactorMatrix& Y, Index begin, const Index* rows, int nb, FusedUserState* state) {
  impl_->own_scores(ItemView{Y, begin}, rows, nb, state);
}
void FusedWorker::positives(const Index* rows, int nb, FusedUserState* state) { impl_->positives(rows, nb, state); }
void FusedWorker::rank(const FactorMatrix& Y, Index begin, const Index* rows, int nb, FusedUserState* state) {
  impl_->rank(ItemView{Y, begin}, rows, nb, state);
}
void FusedWorker::finish(const Index* rows, int nb, FusedUserState* state, double* out) {
  impl_->finish(rows, nb, state, out);
}

}  // namespace mfrec::detail
