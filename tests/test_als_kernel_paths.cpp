// The solver kernels of every instruction-set path this CPU has (the portable one always) against
// the dense double-precision oracle, at factor counts that exercise whole vectors, vector tails and
// several Cholesky panels, and with the defaults' confidences (alpha 40, lambda 10).
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <numeric>
#include <optional>
#include <random>
#include <vector>

#include "mfrec/als_kernels.hpp"
#include "mfrec/error.hpp"
#include "test_csr.hpp"

namespace mfrec {
namespace {

using testdata::random_csr;
using testdata::random_factors;
using testdata::gram;
using testdata::rel_err;

std::vector<KernelPath> supported_paths() {
  std::vector<KernelPath> out;
  for (KernelPath p : {KernelPath::kScalar, KernelPath::kAvx2, KernelPath::kAvx512})
    if (kernel_path_supported(p)) out.push_back(p);
  return out;
}

// Restores the path chosen at start-up when a test ends, whatever it set.
struct PathGuard {
  KernelPath saved = kernel_path();
  ~PathGuard() { set_kernel_path(saved); }
};

struct Setting {
  ConfidenceRule rule;
  bool scale;
  Real alpha, lambda;
};
const Setting kSettings[] = {{ConfidenceRule::kHu, false, 40.0f, 10.0f},  // the defaults
                             {ConfidenceRule::kHu, false, 1.0f, 0.5f},
                             {ConfidenceRule::kHu, true, 2.0f, 0.1f},
                             {ConfidenceRule::kImplicit, false, 3.0f, 1.0f}};

AlsParams params(const Setting& s, Index f, Solver solver) {
  AlsParams p;
  p.factors = static_cast<int>(f);
  p.confidence = s.rule;
  p.scale_regularization = s.scale;
  p.alpha = s.alpha;
  p.regularization = s.lambda;
  p.solver = solver;
  return p;
}

TEST(KernelPaths, PortablePathIsAlwaysThereAndSelectable) {
  PathGuard guard;
  ASSERT_TRUE(kernel_path_supported(KernelPath::kScalar));
  ASSERT_TRUE(set_kernel_path(KernelPath::kScalar));
  EXPECT_EQ(kernel_path(), KernelPath::kScalar);
  EXPECT_STREQ(kernel_path_name(), "scalar");
  // The start-up choice is the widest path the CPU has.
  const std::vector<KernelPath> all = supported_paths();
  EXPECT_EQ(guard.saved, all.back());
}

// Run by ctest once more with MFREC_KERNELS=bogus (test_als_kernel_paths_bad_env): every entry
// point then throws an Error naming the variable, before any parallel region (no terminate).
TEST(KernelPaths, BadEnvironmentValueIsAnError) {
  const char* env = std::getenv("MFREC_KERNELS");
  if (env == nullptr || std::strcmp(env, "bogus") != 0) GTEST_SKIP() << "needs MFREC_KERNELS=bogus";
  const FactorMatrix Y = random_factors(10, 4, 1, 1.0f);
  const CsrBlock R = random_csr({2, 3}, 10, 2);
  FactorMatrix X = FactorMatrix::Zero(2, 4);
  Eigen::MatrixXd G;
  AlsParams p = params(kSettings[0], 4, Solver::kCholesky);
  EXPECT_THROW(gram_accumulate(Y, 0, 10, G, 2), Error);
  EXPECT_THROW(solve_rows(R, Y, DenseMatrix::Identity(4, 4), p, X, 2), Error);
  EXPECT_THROW(loss_rows(R, Y, DenseMatrix::Identity(4, 4), p, X, 2), Error);
  try {
    kernel_path();
    ADD_FAILURE() << "no Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("MFREC_KERNELS"), std::string::npos) << e.what();
  }
}

TEST(KernelPaths, EveryPathSolvesToTheDenseOracle) {
  PathGuard guard;
  const Index n_items = 150;
  for (KernelPath path : supported_paths()) {
    ASSERT_TRUE(set_kernel_path(path));
    for (Index f : {8, 20, 37, 64}) {
      const FactorMatrix Y = random_factors(n_items, f, 40 + static_cast<unsigned>(f), 0.3f);
      const DenseMatrix YtY = gram(Y);
      // empty, Woodbury (k <= f/2), direct (k > f/2, several 16-row tiles, > one gather chunk
      // of the CG sweeps' 4-row groups plus a remainder)
      const std::vector<Index> counts = {0, 1, 2, std::max<Index>(1, f / 2), f / 2 + 1, 31, 90};
      for (const Setting& s : kSettings) {
        const CsrBlock R = random_csr(counts, n_items, 7 + static_cast<unsigned>(f));
        AlsParams chol = params(s, f, Solver::kCholesky), cg = params(s, f, Solver::kConjugateGradient);
        cg.cg_steps = static_cast<int>(4 * f);
        FactorMatrix Xc = FactorMatrix::Constant(R.n_rows(), f, 3.0f);
        FactorMatrix Xg = FactorMatrix::Zero(R.n_rows(), f);
        solve_rows(R, Y, YtY, chol, Xc, 2);
        solve_rows(R, Y, YtY, cg, Xg, 2);
        // CG in the eigenbasis of YtY: its light rows by Woodbury with M diagonal (weighted dots,
        // factor rows read unpadded), rotated back
        const std::optional<Eigenbasis> e = eigenbasis(YtY.cast<double>());
        ASSERT_TRUE(e.has_value());
        FactorMatrix Yq = Y, Xe = FactorMatrix::Zero(R.n_rows(), f);
        rotate_rows(Yq, e->vectors, 2);
        solve_rows_eigenbasis(R, Yq, *e, cg, Xe, 2);
        rotate_rows(Xe, e->vectors.transpose(), 2);
        for (Index u = 0; u < R.n_rows(); ++u) {
          const Eigen::VectorXd ref = solve_row_dense_oracle(R, u, Y, chol);
          if (counts[u] == 0) {
            EXPECT_EQ(Xc.row(u).norm(), 0.0f);
            EXPECT_EQ(Xg.row(u).norm(), 0.0f);
            EXPECT_EQ(Xe.row(u).norm(), 0.0f);
            continue;
          }
          EXPECT_LT(rel_err(Xc.row(u).transpose().cast<double>(), ref), 1e-4)
              << kernel_path_name() << " cholesky f=" << f << " row " << u << " alpha " << s.alpha;
          EXPECT_LT(rel_err(Xg.row(u).transpose().cast<double>(), ref), 1e-3)
              << kernel_path_name() << " cg f=" << f << " row " << u << " alpha " << s.alpha;
          EXPECT_LT(rel_err(Xe.row(u).transpose().cast<double>(), ref), 1e-3)
              << kernel_path_name() << " cg eigenbasis f=" << f << " row " << u << " alpha " << s.alpha;
        }
      }
    }
  }
}

// On every path a row's result depends on that row only: not on the threads, nor on the rows
// that share its CsrBlock (the MPI partition) or its CG lockstep block.
TEST(KernelPaths, EveryPathIsBitwiseIndependentOfThreadsAndPartition) {
  PathGuard guard;
  const Index f = 37, n_items = 200;
  const FactorMatrix Y = random_factors(n_items, f, 5, 0.2f);
  std::vector<Index> counts(400);
  std::mt19937 rng(3);
  for (Index& k : counts) k = rng() % 3 == 0 ? static_cast<Index>(rng() % 80) : rng() % 9;
  const CsrBlock R = random_csr(counts, n_items, 11);
  for (KernelPath path : supported_paths()) {
    ASSERT_TRUE(set_kernel_path(path));
    const DenseMatrix YtY = gram(Y);
    for (Solver solver : {Solver::kCholesky, Solver::kConjugateGradient}) {
      const AlsParams p = params(kSettings[0], f, solver);
      const FactorMatrix X0 = random_factors(R.n_rows(), f, 9, 0.1f);
      FactorMatrix ref = X0;
      solve_rows(R, Y, YtY, p, ref, 1);
      FactorMatrix X = X0;
      solve_rows(R, Y, YtY, p, X, 3);
      EXPECT_TRUE(X == ref) << kernel_path_name() << " threads";
      const Index cut = 157;
      CsrBlock a, b;
      for (CsrBlock* part : {&a, &b}) {
        const Index lo = part == &a ? 0 : cut, hi = part == &a ? cut : R.n_rows();
        part->n_rows_global = R.n_rows();
        part->n_cols = R.n_cols;
        part->indptr.assign(1, 0);
        for (Index u = lo; u < hi; ++u) {
          for (Index t = R.indptr[u]; t < R.indptr[u + 1]; ++t) {
            part->indices.push_back(R.indices[t]);
            part->data.push_back(R.data[t]);
          }
          part->indptr.push_back(static_cast<std::int64_t>(part->indices.size()));
        }
      }
      FactorMatrix xa = X0.topRows(cut), xb = X0.bottomRows(R.n_rows() - cut);
      solve_rows(a, Y, YtY, p, xa, 2);
      solve_rows(b, Y, YtY, p, xb, 2);
      EXPECT_TRUE(xa == ref.topRows(cut) && xb == ref.bottomRows(R.n_rows() - cut))
          << kernel_path_name() << " partition";
    }
  }
}

}  // namespace
}  // namespace mfrec
