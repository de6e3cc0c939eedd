// Unit tests of the ALS kernels against dense double-precision references.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include <Eigen/Cholesky>

#include "mfrec/als_kernels.hpp"
#include "mfrec/error.hpp"
#include "test_csr.hpp"

namespace mfrec {
namespace {

using testdata::random_csr;
using testdata::random_factors;
using testdata::gram;
using testdata::rel_err;

// Dense eq. 4 system of one row in double: (A, b).
void dense_system(const CsrBlock& R, Index u, const FactorMatrix& Y, const AlsParams& p,
                  Eigen::MatrixXd& A, Eigen::VectorXd& b) {
  const Eigen::MatrixXd Yd = Y.cast<double>();
  Eigen::VectorXd c = Eigen::VectorXd::Ones(Y.rows()), pref = Eigen::VectorXd::Zero(Y.rows());
  const Index nnz = R.indptr[u + 1] - R.indptr[u];
  for (Index t = R.indptr[u]; t < R.indptr[u + 1]; ++t) {
    const double r = R.data[t];
    c(R.indices[t]) = p.confidence == ConfidenceRule::kHu ? 1 + p.alpha * r : p.alpha * r;
    pref(R.indices[t]) = r > 0;
  }
  const double lambda = p.regularization * (p.scale_regularization ? nnz : 1);
  A = Yd.transpose() * c.asDiagonal() * Yd +
      lambda * Eigen::MatrixXd::Identity(Y.cols(), Y.cols());
  b = Yd.transpose() * c.cwiseProduct(pref);
}

bool bitwise_equal(const FactorMatrix& a, const FactorMatrix& b) {
  return a.rows() == b.rows() && a.cols() == b.cols() &&
         std::memcmp(a.data(), b.data(), sizeof(float) * a.size()) == 0;
}

struct Case {
  ConfidenceRule rule;
  bool scale;
  Real alpha, lambda;
};
const Case kCases[] = {{ConfidenceRule::kHu, false, 1.0f, 1.0f},
                       {ConfidenceRule::kHu, true, 2.0f, 0.5f},
                       {ConfidenceRule::kImplicit, false, 0.5f, 1.0f},  // some c = 0.5 < 1
                       {ConfidenceRule::kImplicit, true, 3.0f, 0.1f}};

AlsParams params(const Case& c, Index f, Solver s) {
  AlsParams p;
  p.factors = static_cast<int>(f);
  p.regularization = c.lambda;
  p.alpha = c.alpha;
  p.confidence = c.rule;
  p.scale_regularization = c.scale;
  p.solver = s;
  return p;
}

// 0 non-zeros (empty), 1-4 (Woodbury path at f = 8), 5-12 (rank-1 updates), 20-25 (gathered GEMM).
const std::vector<Index> kCounts = {3, 0, 1, 2, 7, 12, 20, 25, 1, 0, 4};

TEST(GramAccumulate, EqualsDoubleProductOnARowRange) {
  for (Index f : {5, 8, 13, 64}) {
    const FactorMatrix Y = random_factors(700, f, 7 + f);
    Eigen::MatrixXd out = Eigen::MatrixXd::Constant(f, f, 3.0);  // accumulated into
    gram_accumulate(Y, 37, 661, out, 2);
    const Eigen::MatrixXd Yd = Y.middleRows(37, 624).cast<double>();
    const Eigen::MatrixXd ref = Eigen::MatrixXd::Constant(f, f, 3.0) + Yd.transpose() * Yd;
    EXPECT_LT((out - ref).norm() / ref.norm(), 1e-6) << "f=" << f;
    EXPECT_EQ(out, out.transpose()) << "f=" << f;
  }
}

// A Y of fewer rows than a Gram task (the item factors) is split into bands of row groups, as many
// as the threads call for: every thread count gives the same bits, with and without the padded
// copy (f = 200) and for f below a vector's width.
TEST(GramAccumulate, OneTaskSplitIntoBandsIsThreadIndependent) {
  for (Index f : {5, 13, 64, 200}) {
    const FactorMatrix Y = random_factors(2465, f, 40 + f);
    Eigen::MatrixXd ref = Eigen::MatrixXd::Zero(f, f);
    gram_accumulate(Y, 0, Y.rows(), ref, 1);
    const Eigen::MatrixXd Yd = Y.cast<double>();
    EXPECT_LT((ref - Yd.transpose() * Yd).norm() / ref.norm(), 1e-6) << "f=" << f;
    for (int threads : {2, 3, 7}) {
      Eigen::MatrixXd out = Eigen::MatrixXd::Zero(f, f);
      gram_accumulate(Y, 0, Y.rows(), out, threads);
      EXPECT_EQ(out, ref) << "f=" << f << ", threads " << threads;
    }
  }
}

// The trainer's per-rank shares: for any partition of the rows they sum to the whole Gram matrix
// up to double rounding (each aligned chunk's float products are computed once, identically).
TEST(GramAccumulate, SharesOfAnyPartitionSumToTheWhole) {
  const Index n = 9000, f = 13;
  const FactorMatrix Y = random_factors(n, f, 3);
  Eigen::MatrixXd whole = Eigen::MatrixXd::Zero(f, f);
  gram_accumulate(Y, 0, n, whole, 2);
  for (const std::vector<Index>& bounds : std::vector<std::vector<Index>>{
           {0, n}, {0, 4500, n}, {0, 37, 700, 4097, 8999, n}, {0, 0, 255, 256, 257, n}}) {
    Eigen::MatrixXd sum = Eigen::MatrixXd::Zero(f, f);
    for (std::size_t p = 0; p + 1 < bounds.size(); ++p) {
      Eigen::MatrixXd share = Eigen::MatrixXd::Zero(f, f);
      gram_accumulate_share(Y, bounds[p], bounds[p + 1], share, 1 + static_cast<int>(p % 3));
      sum += share;
    }
    EXPECT_LT((sum - whole).norm() / whole.norm(), 1e-14) << "parts " << bounds.size() - 1;
  }
}

// The oracle itself, against normal equations assembled independently in this file.
TEST(DenseOracle, MatchesIndependentlyAssembledSystem) {
  const Index f = 6, n_items = 25;
  const FactorMatrix Y = random_factors(n_items, f, 10);
  for (const Case& c : kCases) {
    const CsrBlock R = random_csr(kCounts, n_items, 4, /*odd_values=*/true);
    const AlsParams p = params(c, f, Solver::kCholesky);
    for (Index u = 0; u < R.n_rows(); ++u) {
      Eigen::MatrixXd A;
      Eigen::VectorXd b;
      dense_system(R, u, Y, p, A, b);
      const Eigen::VectorXd ref = A.ldlt().solve(b);
      EXPECT_LT(rel_err(solve_row_dense_oracle(R, u, Y, p), ref), 1e-10) << "row " << u;
    }
  }
}

TEST(CholeskySolver, MatchesDenseOracle) {
  const Index f = 8, n_items = 30;
  const FactorMatrix Y = random_factors(n_items, f, 11);
  const DenseMatrix YtY = gram(Y);
  for (const Case& c : kCases) {
    const CsrBlock R = random_csr(kCounts, n_items, 5, /*odd_values=*/c.rule == ConfidenceRule::kHu);
    const AlsParams p = params(c, f, Solver::kCholesky);
    FactorMatrix X = FactorMatrix::Constant(R.n_rows(), f, 9.0f);
    solve_rows(R, Y, YtY, p, X, 2);
    for (Index u = 0; u < R.n_rows(); ++u) {
      const Eigen::VectorXd ref = solve_row_dense_oracle(R, u, Y, p);
      const Eigen::VectorXd x = X.row(u).transpose().cast<double>();
      if (kCounts[u] == 0)
        EXPECT_EQ(x.norm(), 0.0) << "empty row " << u;
      else
        EXPECT_LT(rel_err(x, ref), 1e-4) << "row " << u << " nnz " << kCounts[u];
    }
  }
}

// Rows with nnz <= f/2 take the Woodbury path, with z_i = M y_i precomputed for all columns when
// the block holds many such rows, per row otherwise. Both must match the oracle, and a row's
// result must be bitwise the same whichever CsrBlock it is solved in.
TEST(CholeskySolver, LightRowsMatchOracleAndDoNotDependOnTheBlock) {
  const Index f = 16, n_items = 40;
  const FactorMatrix Y = random_factors(n_items, f, 3, 0.3f);
  const DenseMatrix YtY = gram(Y);
  std::vector<Index> counts(60);
  for (size_t i = 0; i < counts.size(); ++i) counts[i] = 1 + static_cast<Index>(i % 4);
  counts[10] = 9;  // a direct row among them
  for (const Case& c : kCases) {
    const CsrBlock R = random_csr(counts, n_items, 17);  // 150 non-zeros > 40 columns: precomputed
    const AlsParams p = params(c, f, Solver::kCholesky);
    FactorMatrix X = FactorMatrix::Zero(R.n_rows(), f);
    solve_rows(R, Y, YtY, p, X, 2);
    for (Index u = 0; u < R.n_rows(); ++u)
      EXPECT_LT(rel_err(X.row(u).transpose().cast<double>(), solve_row_dense_oracle(R, u, Y, p)),
                1e-4)
          << "row " << u;
    for (Index u : {0, 3, 10, 59}) {  // alone: z_i computed for this row only
      const CsrBlock one = R.row_range(u, u + 1);
      FactorMatrix x1 = FactorMatrix::Zero(1, f);
      solve_rows(one, Y, YtY, p, x1, 1);
      EXPECT_TRUE(bitwise_equal(x1, X.middleRows(u, 1))) << "row " << u;
    }
  }
}

// Light rows are solved kSpdLanes at a time, each window's rows ordered by their number of
// non-zeros, the lanes' k x k systems padded to the batch's largest: rows of every k up to f / 2
// side by side (and rows of c = 1 or p = 0 outside G) must match the oracle and be bitwise the
// same as when solved alone (a batch of one, z_i computed for that row only).
TEST(CholeskySolver, BatchedLightRowsOfMixedSizeMatchOracleAndTheRowAlone) {
  const Index f = 64, n_items = 120;
  const FactorMatrix Y = random_factors(n_items, f, 31, 0.2f);
  const DenseMatrix YtY = gram(Y);
  std::vector<Index> counts(700);
  std::mt19937 rng(5);
  for (Index& k : counts) k = rng() % 7 == 0 ? 0 : 1 + static_cast<Index>(rng() % (f / 2));
  counts[100] = f / 2 + 3;  // a direct row among them
  for (const Case& c : kCases) {
    const CsrBlock R =
        random_csr(counts, n_items, 41, /*odd_values=*/c.rule == ConfidenceRule::kHu);
    const AlsParams p = params(c, f, Solver::kCholesky);
    FactorMatrix X = FactorMatrix::Constant(R.n_rows(), f, 5.0f);
    solve_rows(R, Y, YtY, p, X, 2);
    for (Index u = 0; u < R.n_rows(); ++u) {
      if (counts[u] == 0) {
        EXPECT_EQ(X.row(u).norm(), 0.0f) << "row " << u;
        continue;
      }
      EXPECT_LT(rel_err(X.row(u).transpose().cast<double>(), solve_row_dense_oracle(R, u, Y, p)),
                1e-4)
          << "row " << u << " nnz " << counts[u];
    }
    for (Index u = 0; u < R.n_rows(); u += 23) {
      const CsrBlock one = R.row_range(u, u + 1);
      FactorMatrix x1 = FactorMatrix::Zero(1, f);
      solve_rows(one, Y, YtY, p, x1, 1);
      EXPECT_TRUE(bitwise_equal(x1, X.middleRows(u, 1))) << "row " << u << " nnz " << counts[u];
    }
  }
}

TEST(ConjugateGradient, ManyStepsFromZeroMatchDenseOracle) {
  const Index f = 8, n_items = 30;
  const FactorMatrix Y = random_factors(n_items, f, 12);
  const DenseMatrix YtY = gram(Y);
  for (const Case& c : kCases) {
    const CsrBlock R = random_csr(kCounts, n_items, 6);
    AlsParams p = params(c, f, Solver::kConjugateGradient);
    p.cg_steps = 50;
    FactorMatrix X = FactorMatrix::Zero(R.n_rows(), f);
    solve_rows(R, Y, YtY, p, X, 2);
    for (Index u = 0; u < R.n_rows(); ++u) {
      if (kCounts[u] == 0) {
        EXPECT_EQ(X.row(u).norm(), 0.0f);
        continue;
      }
      EXPECT_LT(rel_err(X.row(u).transpose().cast<double>(), solve_row_dense_oracle(R, u, Y, p)),
                1e-4)
          << "row " << u;
    }
  }
}

// A row so long that CG reads its y_i from Y in place instead of gathering them (nnz * f above
// 4M floats), and the direct solver in many chunks: both must still solve eq. 4.
TEST(Solvers, HugeRowMatchesDenseSolution) {
  const Index f = 16, n_items = 300000;
  const FactorMatrix Y = random_factors(n_items, f, 18, 0.05f);
  const CsrBlock R = random_csr({n_items - 7}, n_items, 19);
  AlsParams p = params(kCases[0], f, Solver::kConjugateGradient);
  p.cg_steps = 40;
  Eigen::MatrixXd A;
  Eigen::VectorXd b;
  dense_system(R, 0, Y, p, A, b);
  const Eigen::VectorXd ref = A.ldlt().solve(b);
  for (Solver s : {Solver::kConjugateGradient, Solver::kCholesky}) {
    p.solver = s;
    FactorMatrix X = FactorMatrix::Zero(1, f);
    solve_rows(R, Y, gram(Y), p, X, 2);
    EXPECT_LT(rel_err(X.row(0).transpose().cast<double>(), ref), 1e-4);
  }
  // CG in the eigenbasis (solve_rows_eigenbasis), whose warm rows take the same path
  p.solver = Solver::kConjugateGradient;
  const std::optional<Eigenbasis> e = eigenbasis(gram(Y).cast<double>());
  ASSERT_TRUE(e.has_value());
  FactorMatrix Yq = Y, X = FactorMatrix::Zero(1, f);
  rotate_rows(Yq, e->vectors, 2);
  solve_rows_eigenbasis(R, Yq, *e, p, X, 2);
  rotate_rows(X, e->vectors.transpose(), 2);
  EXPECT_LT(rel_err(X.row(0).transpose().cast<double>(), ref), 1e-4);
}

// Three steps from a warm start: the error in the A-norm (which CG minimises over the Krylov
// space) must drop for every row, and by a clear factor overall.
TEST(ConjugateGradient, ThreeStepsReduceTheErrorFromAWarmStart) {
  const Index f = 24, n_items = 60;
  const FactorMatrix Y = random_factors(n_items, f, 13, 0.5f);
  const DenseMatrix YtY = gram(Y);
  std::vector<Index> counts(40);
  for (size_t i = 0; i < counts.size(); ++i) counts[i] = 1 + static_cast<Index>(i * 7 % 30);
  for (const Case& c : kCases) {
    const CsrBlock R = random_csr(counts, n_items, 8);
    AlsParams p = params(c, f, Solver::kConjugateGradient);
    p.cg_steps = 3;
    const FactorMatrix X0 = random_factors(R.n_rows(), f, 21, 0.5f);
    FactorMatrix X = X0;
    solve_rows(R, Y, YtY, p, X, 3);
    double before = 0, after = 0;
    for (Index u = 0; u < R.n_rows(); ++u) {
      Eigen::MatrixXd A;
      Eigen::VectorXd b;
      dense_system(R, u, Y, p, A, b);
      const Eigen::VectorXd xs = A.ldlt().solve(b);
      const Eigen::VectorXd e0 = X0.row(u).transpose().cast<double>() - xs;
      const Eigen::VectorXd e1 = X.row(u).transpose().cast<double>() - xs;
      const double n0 = e0.dot(A * e0), n1 = e1.dot(A * e1);
      EXPECT_LT(n1, n0) << "row " << u;
      before += n0;
      after += n1;
    }
    EXPECT_LT(after, 0.1 * before);
  }
}

TEST(Solvers, EmptyRowsGiveZero) {
  const Index f = 6;
  const FactorMatrix Y = random_factors(20, f, 1);
  const CsrBlock R = random_csr({0, 3, 0, 0}, 20, 2);
  for (Solver s : {Solver::kCholesky, Solver::kConjugateGradient}) {
    for (const Case& c : kCases) {
      FactorMatrix X = FactorMatrix::Constant(4, f, 1.5f);
      solve_rows(R, Y, gram(Y), params(c, f, s), X, 1);
      for (Index u : {0, 2, 3}) EXPECT_EQ(X.row(u).squaredNorm(), 0.0f);
      EXPECT_GT(X.row(1).squaredNorm(), 0.0f);
    }
  }
}

// One row over two columns under the `implicit` rule with r = (1, r1), r1 < 0 (so c_1 < 0) and
// lambda = 0: the system of eq. 4 is indefinite.
void indefinite_row(const FactorMatrix& Y, Real r1, Solver s, FactorMatrix& X) {
  CsrBlock R;
  R.n_rows_global = 1;
  R.n_cols = 2;
  R.indptr = {0, 2};
  R.indices = {0, 1};
  R.data = {1.0f, r1};
  AlsParams p;
  p.factors = 2;
  p.regularization = 0;
  p.confidence = ConfidenceRule::kImplicit;
  p.solver = s;
  X = FactorMatrix::Zero(1, 2);
  solve_rows(R, Y, gram(Y), p, X, 1);
}

// y_0 = (1,1), y_1 = (0,1), c = (1,-4): A = [[1,1],[1,-3]], b = (1,1), so the first CG direction
// p = b has p^T A p = 0 exactly. CG must stop the row instead of dividing by zero.
TEST(ConjugateGradient, StopsOnAZeroCurvatureDirection) {
  FactorMatrix Y(2, 2), X;
  Y << 1, 1, 0, 1;
  indefinite_row(Y, -4.0f, Solver::kConjugateGradient, X);
  EXPECT_TRUE(X.allFinite()) << X;
}

// y_0 = (1,1), y_1 = (1,2), c = (1,-4): A = [[-3,-7],[-7,-15]] (LLT fails), b = (1,1), and
// A^-1 b = (2,-1), which the direct solver must still return.
TEST(CholeskySolver, SolvesIndefiniteSystems) {
  FactorMatrix Y(2, 2), X;
  Y << 1, 1, 1, 2;
  indefinite_row(Y, -4.0f, Solver::kCholesky, X);
  EXPECT_NEAR(X(0, 0), 2.0f, 1e-5);
  EXPECT_NEAR(X(0, 1), -1.0f, 1e-5);
}

namespace {

// solve(rows, X, threads) from X0 gives the bits of `ref` with 1, 2 and 3 threads, and with R cut in
// two "ranks" at several places.
template <class Solve>
void expect_same_bits_any_threads_and_cut(const CsrBlock& R, const FactorMatrix& X0, const FactorMatrix& ref,
                                          Solve solve) {
  for (int t : {1, 2, 3}) {
    FactorMatrix X = X0;
    solve(R, X, t);
    EXPECT_TRUE(bitwise_equal(X, ref)) << "threads " << t;
  }
  for (Index cut : {1, 131, 333}) {
    FactorMatrix a = X0.topRows(cut), b = X0.bottomRows(R.n_rows() - cut);
    solve(R.row_range(0, cut), a, 2);
    solve(R.row_range(cut, R.n_rows()), b, 2);
    FactorMatrix X(R.n_rows(), X0.cols());
    X << a, b;
    EXPECT_TRUE(bitwise_equal(X, ref)) << "cut " << cut;
  }
}

}  // namespace

// Results are bitwise independent of the thread count and of where the CsrBlock boundaries fall.
TEST(Solvers, BitwiseIndependentOfThreadsAndPartition) {
  const Index f = 20, n_items = 150;
  const FactorMatrix Y = random_factors(n_items, f, 4, 0.2f);
  const DenseMatrix YtY = gram(Y);
  std::vector<Index> counts(700);
  std::mt19937 rng(1);
  for (Index& k : counts) k = rng() % 3 == 0 ? static_cast<Index>(rng() % 60) : rng() % 6;
  const CsrBlock R = random_csr(counts, n_items, 9);
  for (Solver s : {Solver::kCholesky, Solver::kConjugateGradient}) {
    for (const Case& c : kCases) {
      const AlsParams p = params(c, f, s);
      const FactorMatrix X0 = random_factors(R.n_rows(), f, 5, 0.1f);
      FactorMatrix ref = X0;
      solve_rows(R, Y, YtY, p, ref, 1);
      expect_same_bits_any_threads_and_cut(R, X0, ref, [&](const CsrBlock& part, FactorMatrix& X, int t) {
        solve_rows(part, Y, YtY, p, X, t);
      });
      const LossTerms l1 = loss_rows(R, Y, YtY, p, ref, 1), l3 = loss_rows(R, Y, YtY, p, ref, 3);
      EXPECT_EQ(l1.data, l3.data);
      EXPECT_EQ(l1.reg, l3.reg);
    }
  }
  const FactorMatrix Z = random_factors(20000, f, 6);  // several Gram tasks
  Eigen::MatrixXd g1 = Eigen::MatrixXd::Zero(f, f), g3 = Eigen::MatrixXd::Zero(f, f);
  gram_accumulate(Z, 0, Z.rows(), g1, 1);
  gram_accumulate(Z, 0, Z.rows(), g3, 3);
  EXPECT_EQ(g1, g3);
}

TEST(LossRows, EqualsBruteForceDenseLoss) {
  const Index f = 7, n_items = 30;
  const FactorMatrix Y = random_factors(n_items, f, 14);
  const DenseMatrix YtY = gram(Y);
  for (const Case& c : kCases) {
    const CsrBlock R = random_csr(kCounts, n_items, 15, /*odd_values=*/true);
    const AlsParams p = params(c, f, Solver::kCholesky);
    const FactorMatrix X = random_factors(R.n_rows(), f, 16);
    double data = 0, reg = 0;
    for (Index u = 0; u < R.n_rows(); ++u) {
      Eigen::VectorXd cu = Eigen::VectorXd::Ones(n_items), pu = Eigen::VectorXd::Zero(n_items);
      for (Index t = R.indptr[u]; t < R.indptr[u + 1]; ++t) {
        const double r = R.data[t];
        cu(R.indices[t]) = c.rule == ConfidenceRule::kHu ? 1 + c.alpha * r : c.alpha * r;
        pu(R.indices[t]) = r > 0;
      }
      const Eigen::VectorXd pred = Y.cast<double>() * X.row(u).transpose().cast<double>();
      data += cu.dot((pu - pred).cwiseAbs2());
      reg += c.lambda * (c.scale ? kCounts[u] : 1) * X.row(u).cast<double>().squaredNorm();
    }
    const LossTerms l = loss_rows(R, Y, YtY, p, X, 2);
    EXPECT_NEAR(l.data, data, 1e-5 * std::abs(data));
    EXPECT_NEAR(l.reg, reg, 1e-6 * reg);
  }
}

TEST(Solvers, RejectInconsistentInputs) {
  const FactorMatrix Y = random_factors(20, 4, 1);
  const CsrBlock R = random_csr({1, 2}, 20, 2);
  FactorMatrix X(3, 4);  // one row too many
  EXPECT_THROW(solve_rows(R, Y, gram(Y), AlsParams{}, X, 1), Error);
  FactorMatrix X2(2, 4);
  EXPECT_THROW(solve_rows(R, Y, DenseMatrix::Zero(5, 5), AlsParams{}, X2, 1), Error);
  EXPECT_THROW(loss_rows(R, Y, gram(Y), AlsParams{}, X, 1), Error);
  CsrBlock bad = R;
  bad.indices.back() = 20;  // == n_cols
  EXPECT_THROW(solve_rows(bad, Y, gram(Y), AlsParams{}, X2, 1), Error);
  EXPECT_NO_THROW(solve_rows(R, Y, gram(Y), AlsParams{}, X2, 1));
}

}  // namespace
}  // namespace mfrec

namespace mfrec {
namespace {

// Largest |a_u - b_u| / |b_u| over the rows with a non-zero b_u.
double worst_row_error(const FactorMatrix& a, const FactorMatrix& b) {
  double worst = 0;
  for (Index u = 0; u < b.rows(); ++u)
    if (b.row(u).norm() > 0) worst = std::max<double>(worst, (a.row(u) - b.row(u)).norm() / b.row(u).norm());
  return worst;
}

}  // namespace

// CG in the eigenbasis of YtY (solve_rows_eigenbasis, the user half-step's), rotated back. Exact
// rows, whatever X held: those with at most f / 2 non-zeros where the Woodbury path applies
// (lambda > 0, every c_ui >= 1; ALS-WR too, M_u being diagonal), and those with at most
// eigenbasis_cold_rows; their solution is the dense oracle's where A_u is positive definite. The
// other rows are the standard basis's CG from their x (up to rounding). Converged, every row is
// the oracle's; each row's bits are independent of the threads and of where the CsrBlock
// boundaries fall; rows with no non-zeros give 0.
TEST(Solvers, EigenbasisCgSolvesLightRowsExactlyAndHeavyRowsAsTheStandardBasis) {
  for (Index f : {8, 20, 64}) {
    const Index n_items = 150;
    const FactorMatrix Y = random_factors(n_items, f, 4, 0.2f);
    const Eigen::MatrixXd G = Y.cast<double>().transpose() * Y.cast<double>();
    const std::optional<Eigenbasis> e = eigenbasis(G);
    ASSERT_TRUE(e.has_value());
    ASSERT_LT((e->vectors.transpose() * e->vectors - Eigen::MatrixXd::Identity(f, f)).norm(), 1e-12);
    FactorMatrix Yq = Y;
    rotate_rows(Yq, e->vectors, 2);
    std::vector<Index> counts(500);
    std::mt19937 rng(static_cast<unsigned>(f));
    for (Index& k : counts) k = rng() % 3 == 0 ? static_cast<Index>(rng() % 60) : rng() % 8;
    const CsrBlock R = random_csr(counts, n_items, 9);
    for (const Case& c : kCases) {
      AlsParams p = params(c, f, Solver::kConjugateGradient);
      const Index cold = eigenbasis_cold_rows(p.cg_steps);
      ASSERT_GE(cold, p.cg_steps);
      auto solve = [&](const CsrBlock& part, FactorMatrix& X, int t) { solve_rows_eigenbasis(part, Yq, *e, p, X, t); };
      const FactorMatrix X0 = random_factors(R.n_rows(), f, 5, 0.1f), X1 = random_factors(R.n_rows(), f, 6, 0.3f);
      FactorMatrix standard = X0, rotated = X0, other = X1;
      solve_rows(R, Y, G.cast<Real>(), p, standard, 2);
      solve(R, rotated, 2);
      solve(R, other, 2);
      FactorMatrix back = rotated;
      rotate_rows(back, e->vectors.transpose(), 2);
      int exact = 0, warm = 0, warm_off = 0;
      for (Index u = 0; u < R.n_rows(); ++u) {
        const Index k = counts[static_cast<std::size_t>(u)];
        bool c_at_least_1 = true;
        for (Index t = R.indptr[u]; t < R.indptr[u + 1]; ++t)
          c_at_least_1 = c_at_least_1 && (c.rule == ConfidenceRule::kHu ? 1.0f + c.alpha * R.data[t] : c.alpha * R.data[t]) >= 1.0f;
        const bool woodbury = c.lambda > 0 && k <= f / 2 && c_at_least_1;  // ALS-WR too: M_u diagonal
        const auto err = [&](const Eigen::RowVectorXf& ref) { return (back.row(u) - ref).norm() / ref.norm(); };
        if (k == 0) {
          EXPECT_EQ(rotated.row(u).norm(), 0.0f);
        } else if (woodbury || k <= cold) {
          ++exact;
          EXPECT_TRUE(rotated.row(u) == other.row(u)) << "row " << u << ": an exact row does not read x";
          if (c_at_least_1) {  // A_u positive definite
            const Eigen::RowVectorXf ref = solve_row_dense_oracle(R, u, Y, p).cast<Real>().transpose();
            EXPECT_LT(err(ref), 1e-4) << "f " << f << ", row " << u;
            warm_off += (standard.row(u) - ref).norm() > 1e-3 * ref.norm();
          }
        } else {
          ++warm;
          EXPECT_LT(err(standard.row(u)), 1e-4) << "f " << f << ", row " << u;
        }
      }
      EXPECT_GT(exact, 100);
      EXPECT_GT(warm, 50);
      if (c.rule == ConfidenceRule::kHu) EXPECT_GT(warm_off, 10) << "f " << f << ": 3 warm steps are not exact";
      expect_same_bits_any_threads_and_cut(R, X0, rotated, solve);
      if (c.rule == ConfidenceRule::kHu) {  // c >= 1: A_u positive definite, CG converges in f steps
        p.cg_steps = static_cast<int>(2 * f);
        FactorMatrix X = X0;
        solve(R, X, 2);
        rotate_rows(X, e->vectors.transpose(), 2);
        FactorMatrix oracle(R.n_rows(), f);
        for (Index u = 0; u < R.n_rows(); ++u) oracle.row(u) = solve_row_dense_oracle(R, u, Y, p).cast<Real>().transpose();
        EXPECT_LT(worst_row_error(X, oracle), 1e-3) << "f " << f << ", converged";
      }
    }
  }
}

// Few light rows (fewer non-zeros than columns: the exact solver would compute each row's own
// z_i = M y_i). With the diagonal M of the eigenbasis no z_i is formed, in either case. Still the
// exact solution.
TEST(Solvers, EigenbasisCgFewLightRows) {
  const Index f = 20, n_items = 150;
  const FactorMatrix Y = random_factors(n_items, f, 7, 0.2f);
  const Eigen::MatrixXd G = Y.cast<double>().transpose() * Y.cast<double>();
  const std::optional<Eigenbasis> e = eigenbasis(G);
  ASSERT_TRUE(e.has_value());
  FactorMatrix Yq = Y;
  rotate_rows(Yq, e->vectors, 1);
  const CsrBlock R = random_csr({1, 2, 3, 0, 5, 8, 10}, n_items, 3);  // 29 non-zeros, all <= f / 2
  const AlsParams p = params(kCases[0], f, Solver::kConjugateGradient);
  FactorMatrix X = random_factors(R.n_rows(), f, 8, 0.1f);
  solve_rows_eigenbasis(R, Yq, *e, p, X, 2);
  rotate_rows(X, e->vectors.transpose(), 1);
  for (Index u = 0; u < R.n_rows(); ++u) {
    if (R.indptr[u + 1] == R.indptr[u]) {
      EXPECT_EQ(X.row(u).norm(), 0.0f);
      continue;
    }
    const Eigen::RowVectorXf ref = solve_row_dense_oracle(R, u, Y, p).cast<Real>().transpose();
    EXPECT_LT((X.row(u) - ref).norm() / ref.norm(), 1e-4) << "row " << u;
  }
}

// solve_rows_eigenbasis refuses what it cannot solve: another solver, a Gram matrix that is not
// diagonal, a rotation of the wrong size.
TEST(Solvers, EigenbasisCgRefusesWhatItCannotSolve) {
  const Index f = 6, n_items = 20;
  const FactorMatrix Y = random_factors(n_items, f, 4, 0.2f);
  const CsrBlock R = random_csr({3, 0, 5}, n_items, 2);
  const Eigen::MatrixXd G = Y.cast<double>().transpose() * Y.cast<double>();
  Eigenbasis e = *eigenbasis(G);
  FactorMatrix X = FactorMatrix::Zero(R.n_rows(), f);
  const AlsParams p = params(kCases[0], f, Solver::kConjugateGradient);
  EXPECT_NO_THROW(solve_rows_eigenbasis(R, Y, e, p, X, 1));
  EXPECT_THROW(solve_rows_eigenbasis(R, Y, e, params(kCases[0], f, Solver::kCholesky), X, 1), Error);
  Eigenbasis full = e;
  full.gram = G.cast<Real>();
  EXPECT_THROW(solve_rows_eigenbasis(R, Y, full, p, X, 1), Error);
  Eigenbasis small = e;
  small.vectors = Eigen::MatrixXd::Identity(f - 1, f - 1);
  EXPECT_THROW(solve_rows_eigenbasis(R, Y, small, p, X, 1), Error);
}

// A diagonal YtY takes an elementwise product in place of the f x f one: the same bits, since the
// product's other terms add exact zeros (here against off-diagonal entries too small to change a
// sum, which keep the product).
TEST(Solvers, DiagonalGramGivesTheProductsBits) {
  const Index f = 24, n_items = 90;
  const FactorMatrix Y = random_factors(n_items, f, 8, 0.3f);
  DenseMatrix D = DenseMatrix::Zero(f, f);
  for (Index j = 0; j < f; ++j) D(j, j) = 0.5f + 0.1f * static_cast<float>(j);
  DenseMatrix nearly = D;
  nearly(3, 5) = nearly(5, 3) = 1e-30f;
  std::vector<Index> counts(300);
  std::mt19937 rng(3);
  for (Index& k : counts) k = rng() % 12;
  const CsrBlock R = random_csr(counts, n_items, 4);
  const AlsParams p = params(kCases[0], f, Solver::kConjugateGradient);
  const FactorMatrix X0 = random_factors(R.n_rows(), f, 9, 0.1f);
  FactorMatrix a = X0, b = X0;
  solve_rows(R, Y, D, p, a, 2);
  solve_rows(R, Y, nearly, p, b, 2);
  EXPECT_TRUE(bitwise_equal(a, b));
  EXPECT_FALSE(bitwise_equal(a, X0));
}

}  // namespace mfrec
