// The row exchange (exchange.hpp): sparse and allgather give the same factors and metrics at
// 1, 2, 3 and 4 ranks, also with ranks that own no rows and items nobody references; its plans
// and byte counts are consistent; auto picks the mode with fewer bytes (on one node, copies).
#include <gtest/gtest.h>

#include "mfrec/exchange.hpp"
#include "mfrec/training_run.hpp"
#include "test_data.hpp"
#include "test_model.hpp"

using namespace mfrec;

namespace {

std::string scratch(const Comm& comm, const std::string& name) {
  return comm.bcast("exchange_" + std::to_string(comm.size()) + "_" + name);
}

// A random prepared file (testdata::write_random_prepared) named for the rank count.
std::string random_file(const Comm& comm, const std::string& name, Index users, Index items, int per_user,
                        std::uint64_t seed, std::vector<Index> cold = {}) {
  const std::string path = scratch(comm, name);
  testdata::write_random_prepared(path, comm, users, items, per_user, seed, std::move(cold));
  return path;
}

RunOptions options(ExchangeMode mode, Solver solver = Solver::kConjugateGradient, int iterations = 5) {
  RunOptions o = testdata::quick_run_options(solver, iterations, 7);
  o.train.exchange = mode;
  return o;
}

struct Outcome {
  FactorMatrix X, Y;
  Evaluation e;
  ExchangeMode used;
  int stages;
  std::map<std::string, PhaseTimer::Stat> received;
};

Outcome train_on(const Comm& comm, const std::string& path, const RunOptions& o) {
  h5::File f = h5::File::open(path, &comm);
  GroupData d = load_group_data(f, comm);
  std::unique_ptr<Trainer> t;
  RunResult r = run_point(comm, d, o, &t);
  return {t->gather_user_factors(), t->gather_item_factors(), r.evaluations.back(), r.exchange, t->item_stages(), r.received};
}

double rel_diff(const FactorMatrix& a, const FactorMatrix& b) {
  return (a - b).norm() / std::max(1e-30f, b.norm());
}

void expect_same(const Outcome& a, const Outcome& b) {
  EXPECT_LE(rel_diff(a.X, b.X), 1e-5);
  EXPECT_LE(rel_diff(a.Y, b.Y), 1e-5);
  EXPECT_NEAR(a.e.model.map, b.e.model.map, 1e-6);
  EXPECT_NEAR(a.e.model.auc, b.e.model.auc, 1e-6);
  EXPECT_EQ(a.e.model.n_users, b.e.model.n_users);
}

// Sparse and allgather on every rank of world, and allgather on rank 0 alone: all the same.
// `memory_mib`: the sparse run's --exchange-memory (0: one stage).
Outcome expect_modes_agree(const Comm& world, const std::string& path, Solver solver = Solver::kConjugateGradient,
                           double memory_mib = 0) {
  RunOptions so = options(ExchangeMode::kSparse, solver);
  so.train.exchange_memory_mib = memory_mib;
  Outcome sparse = train_on(world, path, so);
  Outcome full = train_on(world, path, options(ExchangeMode::kAllgather, solver));
  EXPECT_EQ(sparse.used, ExchangeMode::kSparse);
  EXPECT_EQ(full.used, ExchangeMode::kAllgather);
  expect_same(sparse, full);
  Comm self = world.split(world.rank(), 0);
  if (world.rank() == 0) {
    Outcome one = train_on(self, path, options(ExchangeMode::kAllgather, solver));
    expect_same(sparse, one);
  }
  world.barrier();
  return sparse;
}

// Received rows, buffer and values of a staged plan: after each stage's run, every non-zero of
// its rows finds its column's row in its slot. Returns the rows received over all stages.
Index run_stages(const Comm& world, const CsrBlock& block, const Bounds& other, const std::vector<Stage>& stages) {
  const int r = world.rank();
  const Index f = 2;
  FactorMatrix own(other[r + 1] - other[r], f), buffer(stages.front().buffer_rows, f);
  for (Index i = 0; i < own.rows(); ++i) own.row(i).setConstant(static_cast<Real>(other[r] + i));
  buffer.setConstant(-1);
  Index received = 0;
  for (const Stage& st : stages) {
    st.ex.run(world, own, buffer, 1, &st.slots);
    received += st.ex.held();
    const CsrBlock rows = st.rows_of(block);
    const auto nz0 = block.indptr[static_cast<std::size_t>(st.begin)];
    for (std::size_t k = 0; k < rows.indices.size(); ++k)
      EXPECT_EQ(buffer(rows.indices[k], 1), static_cast<Real>(block.indices[nz0 + k]));
  }
  return received;
}

// A block from its rows' columns.
CsrBlock block_of(const std::vector<std::vector<std::int32_t>>& rows, Index n_cols) {
  CsrBlock block;
  block.n_rows_global = static_cast<Index>(rows.size());
  block.n_cols = n_cols;
  for (const auto& row : rows) {
    for (std::int32_t c : row) block.indices.push_back(c), block.data.push_back(1.0f);
    block.indptr.push_back(static_cast<std::int64_t>(block.indices.size()));
  }
  return block;
}

// A staging case: the block of `rows` over n_cols columns, those columns spread evenly over the
// ranks, and the block's stages for at most max_held rows held (plan_stages, rows `width` wide).
struct Staged {
  CsrBlock block;
  Bounds other;
  std::vector<Stage> stages;
};
Staged staged(const Comm& comm, const std::vector<std::vector<std::int32_t>>& rows, Index n_cols, Index max_held,
              int width) {
  Staged s{block_of(rows, n_cols), partition_even(n_cols, comm.size()), {}};
  s.stages = plan_stages(comm, s.block, s.other, max_held, width);
  return s;
}

}  // namespace

TEST(Exchange, SparseEqualsAllgatherForBothSolvers) {
  Comm world = Comm::world();
  const std::string path = random_file(world, "basic.h5", 157, 41, 9, 11, {3, 100});
  expect_modes_agree(world, path, Solver::kConjugateGradient);
  expect_modes_agree(world, path, Solver::kCholesky);
}

// 400 items, 3 picks per user: most items are referenced by no user at all.
TEST(Exchange, ItemsNobodyReferences) {
  Comm world = Comm::world();
  expect_modes_agree(world, random_file(world, "sparse_items.h5", 60, 400, 3, 5));
}

// Evaluation scores against every item: read in place when every rank holds every item (the
// allgather always), gathered otherwise (sparse, where most items are referenced by nobody);
// the same values either way.
TEST(Exchange, EvaluationItemsInPlaceOrGathered) {
  Comm world = Comm::world();
  const std::string path = random_file(world, "eval_items.h5", 60, 400, 3, 5);
  for (ExchangeMode mode : {ExchangeMode::kAllgather, ExchangeMode::kSparse}) {
    h5::File f = h5::File::open(path, &world);
    GroupData d = load_group_data(f, world);
    std::unique_ptr<Trainer> t;
    run_point(world, d, options(mode), &t);
    const ItemFactors items = t->evaluation_items(0);
    ASSERT_EQ(items.all == nullptr, mode == ExchangeMode::kSparse);
    FactorMatrix Y;
    if (items.all) Y = *items.all;
    else items.fetch(0, items.n_items, Y);
    EXPECT_EQ(Y, t->gather_item_factors());
  }
}

// Items above --eval-memory are gathered and scored in blocks: the evaluation is the one of every
// item at once, bit for bit, at any rank count (5,000 items at f = 7: blocks of one tile of 2,016
// items, the last with the rest). Sparse with 60 users: no rank holds every item.
TEST(Exchange, EvaluationInItemBlocks) {
  Comm world = Comm::world();
  const std::string path = random_file(world, "eval_blocks.h5", 60, 5000, 3, 11, {4, 9});
  RunOptions o = options(ExchangeMode::kSparse, Solver::kConjugateGradient, 2);
  o.eval_memory_mib = 0;  // every item gathered at once
  const Outcome whole = train_on(world, path, o);
  o.eval_memory_mib = 0.01;  // 374 items at f = 7: one tile per block
  const Outcome blocked = train_on(world, path, o);
  ASSERT_GT(whole.e.model.n_users, 0);
  ASSERT_GT(whole.e.cold_users, 0);
  std::vector<double> a(kEvaluationFields), b(kEvaluationFields);
  evaluation_to_row(whole.e, a.data());
  evaluation_to_row(blocked.e, b.data());
  EXPECT_EQ(a, b);
  EXPECT_EQ(blocked.X, whole.X);
  // And at one rank, where every item is held: the same metrics as the gathered ones.
  Comm self = world.split(world.rank(), 0);
  if (world.rank() == 0) expect_same(train_on(self, path, o), blocked);
  world.barrier();
}

// Fewer users and items than ranks: some ranks own no rows of either side, also with a budget
// under one user row (a rank whose block is staged runs stages that ranks with no items run empty).
TEST(Exchange, RanksThatOwnNoRows) {
  Comm world = Comm::world();
  const std::string path = random_file(world, "tiny.h5", 2, 3, 3, 7);
  expect_modes_agree(world, path);
  const double row_mib = options(ExchangeMode::kSparse).train.als.factors * sizeof(Real) / (1024.0 * 1024.0);
  expect_modes_agree(world, path, Solver::kConjugateGradient, row_mib / 4);
}

// Enough rows that the ranks' parts cut through the Gram kernel's 256-row chunks: the chunk past
// a rank's last row is completed from the rows it holds.
TEST(Exchange, GramChunksCutByRankBoundaries) {
  Comm world = Comm::world();
  expect_modes_agree(world, random_file(world, "chunks.h5", 1500, 700, 6, 13));
}

// Users whose items lie in a window that moves with the user: an item row's users are few and
// nearby, so stages can keep each user from its first to its last (a budget of 100 user rows
// holds all live at once), and each travels once per iteration, as with one stage (only the
// Gram's tail rows, at most 255 a rank and also read by item rows, may travel twice). The
// factors are the allgather's.
TEST(Exchange, StagedItemHalfStepKeepsEachUser) {
  Comm world = Comm::world();
  const std::string path = scratch(world, "banded.h5");
  const Index users = 1500, items = 700;
  {
    std::vector<testdata::Triplet> train, test;
    for (Index u = 0; u < users; ++u)
      for (Index j = 0; j < 6; ++j) {
        const Index i = (u * items / users + 4 * j + u % 3) % items;
        (j == 5 ? test : train).push_back({u, i, 1.0f + static_cast<float>(j)});
      }
    testdata::write_prepared(path, world, users, items, train, test);
  }
  const double row_bytes = options(ExchangeMode::kSparse).train.als.factors * sizeof(Real);
  const Outcome whole = train_on(world, path, options(ExchangeMode::kSparse));
  EXPECT_EQ(whole.stages, 1);  // the default budget holds every user here
  for (Solver solver : {Solver::kConjugateGradient, Solver::kCholesky}) {
    const Outcome staged = expect_modes_agree(world, path, solver, 100 * row_bytes / (1024.0 * 1024.0));
    EXPECT_GT(staged.stages, 3);
    EXPECT_LE(staged.received.at("exchange").max, whole.received.at("exchange").max + 255 * row_bytes);
  }
}

// Users with items anywhere: all live across any item row, far over a budget of 40 user rows.
// Stages then hold at most 20 distinct users, evicting some to receive them again later: more
// bytes than one stage, and the same factors.
TEST(Exchange, StagedItemHalfStepEvicts) {
  Comm world = Comm::world();
  const std::string path = random_file(world, "staged.h5", 1500, 700, 6, 13);
  const double row_mib = options(ExchangeMode::kSparse).train.als.factors * sizeof(Real) / (1024.0 * 1024.0);
  const Outcome whole = train_on(world, path, options(ExchangeMode::kSparse));
  for (Solver solver : {Solver::kConjugateGradient, Solver::kCholesky}) {
    const Outcome staged = expect_modes_agree(world, path, solver, 40 * row_mib);
    EXPECT_GT(staged.stages, 2);
    if (world.size() > 1) EXPECT_GT(staged.received.at("exchange").max, whole.received.at("exchange").max);
  }
  // A budget under one row's users: such a row is a stage of its own (the buffer takes it).
  EXPECT_GT(expect_modes_agree(world, path, Solver::kConjugateGradient, row_mib / 4).stages, 2);
}

// More items than users: the item side is the one solved in the eigenbasis (use_eigenbasis), in
// stages too, with the user rows rotated before they travel. The factors are the allgather's and
// one rank's.
TEST(Exchange, StagedHalfStepInTheEigenbasis) {
  Comm world = Comm::world();
  const std::string path = random_file(world, "wide.h5", 300, 900, 8, 17);
  const double row_mib = options(ExchangeMode::kSparse).train.als.factors * sizeof(Real) / (1024.0 * 1024.0);
  ASSERT_TRUE(use_eigenbasis(options(ExchangeMode::kSparse).train.als, 900, 300));
  EXPECT_GT(expect_modes_agree(world, path, Solver::kConjugateGradient, 40 * row_mib).stages, 2);
}

// Stages of a block whose 10 rows each read 10 columns of their own: a budget of 60 columns
// needs 2 stages, and they are made equal (5 rows, 50 columns each), not filled greedily (60 + 40).
TEST(Exchange, StagesAreBalanced) {
  Comm world = Comm::world();
  std::vector<std::vector<std::int32_t>> rows(10);
  for (std::int32_t c = 0; c < 100; ++c) rows[static_cast<std::size_t>(c / 10)].push_back(c);
  const auto [block, other, stages] = staged(world, rows, 100, 60, 4);
  ASSERT_EQ(stages.size(), 2u);
  EXPECT_EQ(stages[0].begin, 0);
  EXPECT_EQ(stages[0].end, 5);
  EXPECT_EQ(stages[1].begin, 5);
  EXPECT_EQ(stages[1].end, 10);
  for (const Stage& st : stages) {
    EXPECT_EQ(st.ex.held(), 50);
    EXPECT_EQ(st.rows_of(block).n_rows(), 5);
    EXPECT_EQ(st.rows_of(block).n_cols, 50);  // the second stage reuses the first's 50 slots
  }
  EXPECT_TRUE(plan_stages(world, block, other, 100, 4).empty());  // one stage holds everything
  EXPECT_EQ(plan_stages(world, block, other, 1, 4).size(), 10u);  // a row over the budget: alone
}

// Rows 0-3 read columns 0-3, one each, and rows 4-7 read them again: all 4 are live across row
// 3, more than a budget of 2. Stages then hold at most half the budget's distinct columns (here
// one row each), and a full buffer evicts the column read again farthest ahead: at row 2 column
// 1 (next read at row 5, column 0 at row 4), at row 3 column 2. Six rows received into 2 slots,
// where keeping all takes 4 slots and receiving each stage's afresh takes 8.
TEST(Exchange, OverBudgetEvictsTheFarthest) {
  Comm world = Comm::world();
  const Staged band = staged(world, {{0}, {1}, {2}, {3}, {0}, {1}, {2}, {3}}, 4, 2, 2);
  ASSERT_EQ(band.stages.size(), 8u);
  EXPECT_EQ(band.stages[0].buffer_rows, 2);
  EXPECT_EQ(run_stages(world, band.block, band.other, band.stages), 6);
  // Row 0 reads 10 columns, rows 1-9 one each, a budget of 1: row 0 is a stage of its own and the
  // buffer takes its 10 columns; nothing is read twice, nothing received twice.
  std::vector<std::vector<std::int32_t>> rows = {{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}};
  for (std::int32_t c = 10; c < 19; ++c) rows.push_back({c});
  const Staged wide = staged(world, rows, 19, 1, 2);
  ASSERT_EQ(wide.stages.size(), 10u);
  EXPECT_EQ(wide.stages[0].end, 1);
  EXPECT_EQ(wide.stages[0].buffer_rows, 10);
  EXPECT_EQ(run_stages(world, wide.block, wide.other, wide.stages), 19);
}

// Row i reads columns i and i + 1 (a band): with 4 live columns allowed, stages of 3 rows. Each
// column is received once, by the first stage that reads it, and kept for the next stage that
// reads it; columns done with give their slots to later ones (4 slots, not 13). After each
// stage's run, every non-zero of its block finds its column's row in its slot.
TEST(Exchange, StagesReceiveEachRowOnce) {
  Comm world = Comm::world();
  const Index rows = 12, n = rows + 1;
  std::vector<std::vector<std::int32_t>> cols;
  for (std::int32_t i = 0; i < rows; ++i) cols.push_back({i, i + 1});
  const auto [block, other, stages] = staged(world, cols, n, 4, 2);
  ASSERT_EQ(stages.size(), 4u);
  for (const Stage& st : stages) {
    EXPECT_EQ(st.end - st.begin, 3);
    EXPECT_EQ(st.buffer_rows, 4);
  }
  EXPECT_EQ(run_stages(world, block, other, stages), n);  // staged afresh, stages would hold 4 columns each: 16
}

// Plans: every row sent is received once; what Comm counts equals what the plan predicts; held
// rows hold the owners' values after run().
TEST(Exchange, PlanTrafficAndValues) {
  Comm world = Comm::world();
  const int P = world.size(), r = world.rank();
  const Index n = 1000, f = 3;
  const Bounds b = partition_even(n, P);
  // Rank r wants every (r + 2)-th row and row r.
  std::vector<Index> want;
  for (Index i = 0; i < n; i += r + 2) want.push_back(i);
  if (r % (r + 2) != 0) want.push_back(r);
  std::sort(want.begin(), want.end());
  RowExchange ex = RowExchange::sparse(world, b, want, static_cast<int>(f));
  ASSERT_EQ(ex.held(), static_cast<Index>(want.size()));
  EXPECT_EQ(world.sum(ex.rows_sent()), world.sum(ex.rows_received()));
  FactorMatrix own(b[r + 1] - b[r], f), held(ex.held(), f);
  for (Index i = 0; i < own.rows(); ++i)
    for (Index k = 0; k < f; ++k) own(i, k) = static_cast<Real>(10 * (b[r] + i) + k);
  const Comm::Traffic before = world.traffic();
  ex.run(world, own, held, 1);
  EXPECT_DOUBLE_EQ(world.traffic().sent - before.sent, static_cast<double>(ex.rows_sent() * f * sizeof(Real)));
  EXPECT_DOUBLE_EQ(world.traffic().received - before.received,
                   static_cast<double>(ex.rows_received() * f * sizeof(Real)));
  for (Index p = 0; p < ex.held(); ++p) {
    EXPECT_EQ(ex.id(p), want[static_cast<std::size_t>(p)]);
    EXPECT_EQ(ex.position(want[static_cast<std::size_t>(p)]), p);
    EXPECT_EQ(held(p, 2), static_cast<Real>(10 * want[static_cast<std::size_t>(p)] + 2));
  }
  // A packing buffer of 100 bytes: many rounds, the same rows.
  RowExchange small = RowExchange::sparse(world, b, want, static_cast<int>(f), 100);
  if (P > 1) EXPECT_GT(small.rounds(), 3);
  FactorMatrix held2(small.held(), f);
  held2.setZero();
  small.run(world, own, held2, 1);
  EXPECT_EQ(held2, held);
  // The allgather plan moves every row not owned.
  RowExchange all = RowExchange::allgather(world, b);
  EXPECT_EQ(all.rows_received(), n - (b[r + 1] - b[r]));
  EXPECT_EQ(all.held(), n);
}

// Users of group g touch only items of group g: with as many groups as ranks, a rank's users
// reference only the items it owns and sparse moves fewer bytes, so auto picks it (and the
// report's bytes say so); on one rank nothing moves and auto keeps allgather.
TEST(Exchange, AutoPicksTheFewerBytes) {
  Comm world = Comm::world();
  const std::string path = scratch(world, "blocks.h5");
  const int P = world.size();
  {
    std::vector<testdata::Triplet> train, test;
    const Index users = 512 * P, items = 256 * P;  // whole Gram chunks (256 rows) per rank
    for (Index u = 0; u < users; ++u) {
      const Index g = u * P / users;  // the rank that will own u under an even partition
      for (Index j = 0; j < 4; ++j) {
        const Index i = g * (items / P) + (u * 7 + j * 3) % (items / P);
        (j == 3 ? test : train).push_back({u, i, 1.0f});
      }
    }
    testdata::write_prepared(path, world, users, items, train, test);
  }
  Outcome a = train_on(world, path, options(ExchangeMode::kAuto));
  Outcome s = train_on(world, path, options(ExchangeMode::kSparse));
  Outcome g = train_on(world, path, options(ExchangeMode::kAllgather));
  expect_same(a, g);
  if (P == 1) {
    EXPECT_EQ(a.used, ExchangeMode::kAllgather);
    EXPECT_EQ(g.received.at("exchange").max, 0.0);
  } else {
    EXPECT_EQ(a.used, ExchangeMode::kSparse);
    EXPECT_LT(s.received.at("exchange").max, g.received.at("exchange").max)
        << s.received.at("exchange").min << " " << g.received.at("exchange").min << " " << a.received.at("exchange").max;
    // Allgather receives every row not owned, on both sides, each iteration.
    EXPECT_GT(g.received.at("exchange").min, 0.0);
  }
}

// Every user also rates an item of the next rank's group, 7 in 10 of them: on 2 ranks sparse then
// moves about 0.8 of the allgather's bytes, but on one node it also copies each row it sends into
// its send buffer, which makes it the more copying of the two: auto takes the allgather there. On
// more ranks the allgather's bytes grow with the rank count and sparse stays cheaper.
TEST(Exchange, AutoCountsThePackingCopyOnOneNode) {
  Comm world = Comm::world();
  const std::string path = scratch(world, "neighbours.h5");
  const int P = world.size();
  ASSERT_EQ(world.split_shared().size(), P) << "the test runs its ranks on one node";
  {
    std::vector<testdata::Triplet> train, test;
    const Index users = 512 * P, items = 256 * P, per = items / P;
    for (Index u = 0; u < users; ++u) {
      const Index g = u * P / users, next = (g + 1) % P;
      train.push_back({u, g * per + (u * 7) % per, 1.0f});
      if (P > 1 && u % 10 < 7) train.push_back({u, next * per + (u * 3) % per, 1.0f});
      test.push_back({u, g * per + (u * 5 + 1) % per, 1.0f});
    }
    testdata::write_prepared(path, world, users, items, train, test);
  }
  Outcome a = train_on(world, path, options(ExchangeMode::kAuto));
  Outcome s = train_on(world, path, options(ExchangeMode::kSparse));
  Outcome g = train_on(world, path, options(ExchangeMode::kAllgather));
  expect_same(a, g);
  if (P > 1) EXPECT_LT(s.received.at("exchange").max, g.received.at("exchange").max);  // fewer bytes either way
  EXPECT_EQ(a.used, P <= 2 ? ExchangeMode::kAllgather : ExchangeMode::kSparse);  // one rank: nothing to move
}

TEST(Exchange, ParseNamesTheOption) {
  EXPECT_EQ(parse_exchange("sparse"), ExchangeMode::kSparse);
  EXPECT_EQ(exchange_name(parse_exchange("allgather")), "allgather");
  try {
    parse_exchange("ring");
    ADD_FAILURE() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("--exchange"), std::string::npos) << e.what();
  }
}
