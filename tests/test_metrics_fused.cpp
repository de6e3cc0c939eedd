// The fused score-and-rank pass (src/metrics_fused.cpp) against the unfused one it replaced:
// the same sums, bit for bit, over catalogue sizes around Eigen's panel and the tiles, blocks that
// leave one user alone, ties, NaN scores, many positives (the binary-search AUC), users without
// training items, duplicates, and 1 to 3 threads; and the pass over items in blocks against the
// pass over all of them at once.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <utility>
#include <vector>

#include "mfrec/metrics.hpp"

namespace mfrec {
namespace {

struct Case {
  FactorMatrix X, Y;
  CsrBlock train, test;
};

CsrBlock block_of(const std::vector<std::vector<std::int32_t>>& rows, Index n_items) {
  CsrBlock b;
  b.n_rows_global = static_cast<Index>(rows.size());
  b.n_cols = n_items;
  for (const auto& r : rows) {
    for (std::int32_t i : r) {
      b.indices.push_back(i);
      b.data.push_back(1.0f);
    }
    b.indptr.push_back(static_cast<std::int64_t>(b.indices.size()));
  }
  return b;
}

// coarse: factors on a grid of 1/4, so that many scores tie exactly; tail: every evaluated user
// also has a test item among the last 20 (Eigen's edge items).
Case make_case(Index n_users, Index n_items, int f, std::uint32_t seed, bool coarse = false, bool tail = false) {
  std::mt19937 g(seed);
  std::normal_distribution<float> nd(0, 0.5f);
  Case c;
  c.X.resize(n_users, f);
  c.Y.resize(n_items, f);
  auto value = [&]() { return coarse ? std::round(nd(g) * 4) / 4 : nd(g); };
  for (Index i = 0; i < c.X.size(); ++i) c.X.data()[i] = value();
  for (Index i = 0; i < c.Y.size(); ++i) c.Y.data()[i] = value();
  std::uniform_int_distribution<std::int32_t> item(0, static_cast<std::int32_t>(n_items - 1));
  std::vector<std::vector<std::int32_t>> tr(static_cast<std::size_t>(n_users)), te(tr.size());
  for (Index u = 0; u < n_users; ++u) {
    const int n_tr = u % 7 == 3 ? 0 : static_cast<int>(g() % 30);  // some users without history
    const int n_te = u % 5 == 1 ? 0 : 1 + static_cast<int>(g() % (u % 9 == 2 ? 150 : 8));  // some > 64
    for (int j = 0; j < n_tr; ++j) tr[u].push_back(item(g));  // duplicates possible
    for (int j = 0; j < n_te; ++j) te[u].push_back(item(g));  // may overlap the training items
    if (tail && n_te > 0 && n_items > 20) te[u].push_back(static_cast<std::int32_t>(n_items - 1 - u % 20));
    if (u % 11 == 4 && n_items > 2) tr[u].push_back(static_cast<std::int32_t>(n_items - 1));  // the very last item
  }
  c.train = block_of(tr, n_items);
  c.test = block_of(te, n_items);
  return c;
}

void expect_identical(const MetricSums& a, const MetricSums& b, const std::string& what) {
  const auto va = a.to_array(), vb = b.to_array();
  for (int j = 0; j < MetricSums::kFields; ++j) EXPECT_EQ(va[j], vb[j]) << what << ", field " << j;
}

// The item factors of c fetched in blocks of at most block_items, recording the blocks fetched.
ItemFactors in_blocks(const Case& c, Index block_items, std::vector<std::pair<Index, Index>>& fetched) {
  ItemFactors items;
  items.n_items = c.Y.rows();
  items.factors = c.Y.cols();
  items.block_items = block_items;
  items.fetch = [&c, &fetched](Index begin, Index end, FactorMatrix& out) {
    fetched.emplace_back(begin, end);
    out = c.Y.middleRows(begin, end - begin);
  };
  return items;
}

// Blocked against unblocked: identical sums, each block fetched twice, blocks of whole tiles
// starting at tile multiples (the last may add a partial tile), together every item.
void check_blocked(const Case& c, int k, Index block_items, int threads, const std::string& what) {
  const HistorySums whole =
      evaluate_rows_by_history(c.X, ItemFactors::in_memory(c.Y), c.train, c.test, k, threads);
  std::vector<std::pair<Index, Index>> fetched;
  const HistorySums blocked = evaluate_rows_by_history(c.X, in_blocks(c, block_items, fetched), c.train, c.test, k, threads);
  const std::string w = what + ", blocks of " + std::to_string(block_items) + " items";
  expect_identical(blocked.warm, whole.warm, w + ", warm");
  expect_identical(blocked.cold, whole.cold, w + ", cold");
  const Index n_items = c.Y.rows(), tile = std::min<Index>(2016, std::max<Index>(48, 98304 / c.Y.cols() / 48 * 48));
  // Blocks of whole tiles, a last one under a tile joining the block before: one block when the
  // first leaves less than a tile; then one fetch of every item, and the unblocked pass.
  const Index block = std::max(tile, block_items / tile * tile);
  if (n_items < block + tile) {
    EXPECT_EQ(fetched, (std::vector<std::pair<Index, Index>>{{0, n_items}})) << w;
    return;
  }
  ASSERT_EQ(fetched.size() % 2, 0u) << w;
  const std::size_t blocks = fetched.size() / 2;
  for (std::size_t b = 0; b < blocks; ++b) {
    EXPECT_EQ(fetched[b], fetched[blocks + b]) << w << ": the second pass fetches the same blocks";
    EXPECT_EQ(fetched[b].first, b == 0 ? 0 : fetched[b - 1].second) << w;
    EXPECT_EQ(fetched[b].first % tile, 0) << w;
    if (b + 1 < blocks) EXPECT_LE(fetched[b].second - fetched[b].first, std::max(block_items, tile)) << w;
  }
  EXPECT_EQ(fetched[blocks - 1].second, n_items) << w;
}

void check(const Case& c, int k, const std::string& what) {
  const MetricSums ref = evaluate_rows_unfused(c.X, c.Y, c.train, c.test, k, 1);
  for (int threads : {1, 2, 3})
    expect_identical(evaluate_rows(c.X, c.Y, c.train, c.test, k, threads), ref,
                     what + ", " + std::to_string(threads) + " threads");
  const Index n_items = c.Y.rows();
  for (Index block_items : {Index(1), std::max<Index>(1, n_items / 3)}) check_blocked(c, k, block_items, 2, what);
}

}  // namespace

TEST(MetricsFused, IdenticalToUnfusedAroundPanelsAndTiles) {
  // Items around Eigen's panel (48), a tile (98304 / f items) and several tiles.
  for (Index n_items : {1, 2, 5, 47, 48, 49, 95, 97, 1535, 1536, 1537, 2465, 4000}) {
    for (int f : {1, 3, 64}) {
      const Case c = make_case(70, n_items, f, static_cast<std::uint32_t>(n_items * 31 + f));
      check(c, 20, "items " + std::to_string(n_items) + ", f " + std::to_string(f));
    }
  }
}

TEST(MetricsFused, IdenticalWhenTheUnfusedBlocksLeaveOneUserAlone) {
  // 128 users per unfused block at these sizes: 129 and 257 users leave one alone (a GEMV then),
  // 130 two; 2 users, one block of two.
  for (Index n_users : {1, 2, 129, 130, 257}) {
    const Case c = make_case(n_users, 700, 16, static_cast<std::uint32_t>(n_users));
    check(c, 10, "users " + std::to_string(n_users));
  }
}

TEST(MetricsFused, IdenticalOnLargeCataloguesWithSmallerUnfusedBlocks) {
  // Unfused blocks of 4M / n_items users: 104 at 40,000 items, 17 at 246,500 (fused blocks of 119).
  for (Index n_items : {40000, 246500}) {
    const Case c = make_case(n_items > 100000 ? 52 : 210, n_items, 8, static_cast<std::uint32_t>(n_items));
    check(c, 20, "items " + std::to_string(n_items));
  }
}

TEST(MetricsFused, InBlocksBeyondTwoMillionItems) {
  // Beyond 2^21 items the unfused blocks hold two users. An odd number of evaluated users leaves
  // the last one alone: a GEMV over every item in one pass, a GEMV over each block in blocks. Blocks
  // of 700,000 items are 347 tiles of 2,016 and leave 5 items after the third: they join it (a
  // GEMV of 5 items is Eigen's coefficient-wise product, another rounding). The last 64 items'
  // scores differ by less than their rounding (as in IdenticalToTheLastRoundingStep).
  Case c;
  for (Index n = 5;; ++n) {
    c = make_case(n, 3 * 347 * 2016 + 5, 8, 3, false, true);
    Index evaluated = 0;
    for (Index r = 0; r < n; ++r) evaluated += c.test.indptr[r + 1] > c.test.indptr[r] ? 1 : 0;
    if (evaluated % 2 == 1) break;
  }
  const Index n = c.Y.rows();
  for (Index i = n - 63; i < n; ++i) {
    c.Y.row(i) = c.Y.row(n - 64);
    Real& y = c.Y(i, i % 8);
    y = std::nextafter(y, i % 2 ? Real(1) : Real(-1));
  }
  check(c, 20, "2,098,661 items");
  for (Index block_items : {Index(700000), n - 1}) check_blocked(c, 20, block_items, 2, "2,098,661 items");
}

TEST(MetricsFused, IdenticalWithTiesAndNaN) {
  Case c = make_case(150, 1000, 4, 5, /*coarse=*/true);
  check(c, 20, "coarse factors (ties)");
  c.Y(7, 0) = std::numeric_limits<Real>::quiet_NaN();   // one item scores NaN for every user
  c.Y(999, 1) = std::numeric_limits<Real>::quiet_NaN();  // one in the last tile
  c.X(3, 2) = std::numeric_limits<Real>::quiet_NaN();   // one user scores NaN everywhere
  check(c, 20, "NaN scores");
  check(c, 1, "k = 1");
  check(c, 2000, "k beyond the catalogue");
}

// Items in groups of 64 whose factors differ from the group's first by one unit in the last place
// of one factor: their scores differ by less than their rounding, so the order within the top K
// and the AUC's ties see every rounding step. A score computed in any other order than the
// unfused pass's changes the sums (the test of the test: it fails when metrics_fused.cpp
// evaluates a lone user fused, drops the FMA, or computes the last tile for all users at once).
TEST(MetricsFused, IdenticalToTheLastRoundingStep) {
  for (Index n_items : {2465, 246500}) {
    const int f = 32;
    // Evaluated users one more than a multiple of the unfused block (128 users; 17 at 246,500
    // items), so that the last one is alone in its block.
    const Index block = n_items > 100000 ? 17 : 128;
    Case c;
    for (Index n = block; ; ++n) {
      c = make_case(n, n_items, f, 17, false, true);
      Index evaluated = 0;
      for (Index r = 0; r < n; ++r) evaluated += c.test.indptr[r + 1] > c.test.indptr[r] ? 1 : 0;
      if (evaluated % block == 1 && evaluated > 2 * block) break;
    }
    for (Index i = 0; i < n_items; ++i) {
      if (i % 64 == 0) continue;
      c.Y.row(i) = c.Y.row(i - i % 64);
      Real& y = c.Y(i, i % f);
      y = std::nextafter(y, i % 2 ? Real(1) : Real(-1));
    }
    check(c, 20, "permuted factors, items " + std::to_string(n_items));
  }
}

}  // namespace mfrec

namespace mfrec {
// The first tile's lower bound of the K-th best score counts the training items that may be among
// its group maxima: here the 32 best items (one per group of 32) include 20 training items, and
// the top 20 is the other 12 and the 8 best of the rest (the test items).
TEST(MetricsFused, TrainingItemsAmongTheBestScoresOfTheFirstTile) {
  const Index n_items = 3000, n_users = 40;
  Case c;
  c.X = FactorMatrix::Constant(n_users, 1, 1.0f);
  c.Y.resize(n_items, 1);
  std::mt19937 g(9);
  std::uniform_real_distribution<float> u01(0, 1);
  for (Index i = 0; i < n_items; ++i) c.Y(i, 0) = i < 32 ? 10.0f + 0.01f * static_cast<float>(i) : u01(g);
  std::vector<std::int32_t> order(static_cast<std::size_t>(n_items - 32));
  for (std::size_t j = 0; j < order.size(); ++j) order[j] = static_cast<std::int32_t>(32 + j);
  std::sort(order.begin(), order.end(), [&](std::int32_t a, std::int32_t b) { return c.Y(a, 0) > c.Y(b, 0); });
  std::vector<std::vector<std::int32_t>> tr(n_users), te(n_users);
  for (Index u = 0; u < n_users; ++u) {
    for (std::int32_t i = 0; i < 20; ++i) tr[u].push_back(i);
    te[u].assign(order.begin(), order.begin() + 8);
  }
  c.train = block_of(tr, n_items);
  c.test = block_of(te, n_items);
  check(c, 20, "training items among the first tile's best");
  EXPECT_DOUBLE_EQ(evaluate_rows(c.X, c.Y, c.train, c.test, 20, 1).mean().precision, 8.0 / 20);
}
}  // namespace mfrec
