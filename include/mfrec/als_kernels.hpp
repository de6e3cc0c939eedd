// Compute kernels of implicit-feedback ALS (Hu, Koren & Volinsky, "Collaborative Filtering for
// Implicit Feedback Datasets", ICDM 2008). Pure std + Eigen + OpenMP: no MPI, no I/O.
//
// Notation (paper, section 4): r_ui >= 0 raw observations, p_ui = [r_ui > 0] preferences,
// c_ui confidences, lambda the regulariser. One half-step fixes Y and solves, for every row u,
//   (Y^T Y + Y^T (C^u - I) Y + lambda_u I) x_u = Y^T C^u p(u)                         (eq. 4)
// where only the non-zeros of row u enter C^u - I, so Y^T Y is shared by all rows.
//
// Determinism: every row is solved by a fixed sequence of floating-point operations that depends
// only on that row, Y, YtY and the parameters -- never on the thread count, on how rows are
// grouped into blocks, or on which rows sit in the same CsrBlock (MPI partition).
#pragma once
#include <optional>
#include <utility>
#include <Eigen/Core>

#include <cstdint>

#include "mfrec/types.hpp"

namespace mfrec {

enum class Solver { kConjugateGradient, kCholesky };

enum class ConfidenceRule {
  kHu,        // c = 1 + alpha * r  (paper, eq. 6; the default)
  kImplicit,  // c = alpha * r      (the `implicit` library's convention)
};

// The one table of training defaults: AlsParams, TrainConfig, GridSpace and mfrec_dist's options
// all start from these. Chosen on the default data set (docs/benchmarks.md), where they reach
// MAP@20 0.28 against the popularity baseline's 0.03 and item-kNN's 0.26 (64 factors: 0.23,
// below item-kNN).
namespace defaults {
inline constexpr int kFactors = 128;
inline constexpr Real kRegularization = 10;
inline constexpr Real kAlpha = 40;
inline constexpr int kIterations = 15;
inline constexpr int kCgSteps = 3;  // as `implicit`
inline constexpr std::uint64_t kSeed = 42;
}  // namespace defaults

struct AlsParams {
  int factors = defaults::kFactors;
  Real regularization = defaults::kRegularization;
  Real alpha = defaults::kAlpha;
  ConfidenceRule confidence = ConfidenceRule::kHu;
  bool scale_regularization = false;  // ALS-WR (Zhou et al. 2008, Spark): lambda_u = lambda * nnz(u)
  Solver solver = Solver::kConjugateGradient;
  int cg_steps = defaults::kCgSteps;
};

// out += Y[begin:end)^T Y[begin:end) (f x f): the one Gram kernel, which the trainer runs and
// bench_als times. Products run in float over chunks of rows aligned to absolute row numbers and
// are accumulated in double. threads <= 0 means omp_get_max_threads(). The result does not
// depend on the thread count. `origin`: Y holds the rows [origin, origin + Y.rows()) of a larger
// matrix, and begin, end and the chunks' alignment are row numbers of that larger matrix.
void gram_accumulate(const FactorMatrix& Y, Index begin, Index end, Eigen::MatrixXd& out,
                     int threads = 0, Index origin = 0);

// A rank's share of the Gram matrix of a Y every rank holds in full: the aligned chunks whose
// first row lies in [begin, end) (whole, even where they reach past `end`). For consecutive ranges
// that cover Y's rows, the shares sum to gram_accumulate(Y, 0, rows) and every chunk is computed
// by exactly one share, with the same float operations whatever the ranges: the sum over ranks
// differs between partitions only by double rounding, so training does not depend on the rank
// count. (Cutting chunks at the ranges' ends would differ by float rounding, ~1e-7, which CG
// amplifies to ~1e-4 in the factors.)
void gram_accumulate_share(const FactorMatrix& Y, Index begin, Index end, Eigen::MatrixXd& out,
                           int threads = 0);
// The rows [first, second) that the share [begin, end) of an n_rows matrix reads (empty when
// first >= second): whole chunks from the first aligned row at or after begin.
std::pair<Index, Index> gram_share_rows(Index begin, Index end, Index n_rows);
// The first row of the chunk that holds `row`.
Index gram_chunk_start(Index row);

// One half-step for the rows of R (column j of R is row j of Y): writes the solution of eq. 4 into
// X.row(u) for every local row u. X has R.n_rows() rows and f = Y.cols() columns; with the
// conjugate-gradient solver its content is the warm start. YtY is the full Gram matrix of Y.
// Rows without non-zeros get x_u = 0 (the exact solution, as the right-hand side is zero).
//  * kConjugateGradient: cg_steps steps of CG (Takacs, Pilaszy & Tikk, RecSys 2011), run in
//    lockstep over blocks of rows so that YtY times the block's directions is one matrix product.
//  * kCholesky: an exact solve. Rows with many non-zeros factor their own f x f system (blocked
//    Cholesky in float; pivoted LDLT in double if A_u is not positive definite). Rows with few non-zeros
//    (k <= f/2, all c_ui >= 1, lambda > 0, no ALS-WR) solve the equivalent k x k capacitance
//    system instead (Sherman-Morrison-Woodbury against M = (YtY + lambda I)^-1, inverted once
//    per call): O(k^2 f) rather than O(f^3) per row.
// Uses `threads` OpenMP threads (<= 0: omp_get_max_threads()).
void solve_rows(const CsrBlock& R, const FactorMatrix& Y, const DenseMatrix& YtY,
                const AlsParams& p, FactorMatrix& X, int threads);

// CG in the eigenbasis of YtY. With YtY = Q diag(d) Q^T and the rows of Y rotated by Q (Y Q),
// YtY v becomes d (.) v (f flops instead of 2 f^2), and M_u = YtY + lambda_u I, which A_u differs
// from only by the row's weighted y_i y_i^T, is diagonal. solve_rows_eigenbasis solves the light
// rows exactly, without reading or rotating their previous x:
//  * rows with lambda > 0, every c_ui >= 1 and at most f / 2 non-zeros (every user of the default
//    data at f >= 64): the k x k Woodbury system of solve_rows with kCholesky, against the
//    diagonal M_u = (YtY + lambda_u I)^-1, never multiplied out (so ALS-WR rows too, whose
//    lambda_u differs by row);
//  * other rows with at most eigenbasis_cold_rows(cg_steps) non-zeros: CG preconditioned by M_u
//    from x = M_u^-1 b_u (the solution where every c_ui = 1). That start's error lies in the span
//    of the k vectors M_u^-1 y_i of the items with c_ui != 1, which the preconditioned operator
//    I + M_u^-1 G^T W G never leaves: max(cg_steps, k) steps solve the row exactly.
// A heavier row runs implicit's CG (cg_steps steps, not preconditioned) from its x of the
// previous basis turned to this one (x Q, 2 f^2), converging across iterations. The Trainer leaves
// both sides' factors in that basis until the next such half-step (scores x.y do not depend on
// the basis) and rotates back to the standard basis for model files. use_eigenbasis says when the
// rotation of the rows read is less work than the Gram products it saves; the Trainer and
// bench_als decide it from global row counts, so that every rank and partition solves a side the
// same way.
struct Eigenbasis {
  Eigen::MatrixXd vectors;  // Q: orthonormal columns
  DenseMatrix gram;         // diag(d): YtY in the basis Q
};
// std::nullopt when the eigensolver fails (a NaN in YtY): then solve in the current basis.
std::optional<Eigenbasis> eigenbasis(const Eigen::MatrixXd& YtY);
// The half-step above for the rows of R, Y's rows in e's basis (Y Q): X holds the rows in the
// previous basis (the warm rows' start) and is written in e's. CG only (an Error otherwise); as
// solve_rows, each row's bits depend on that row, Y, e and p only.
void solve_rows_eigenbasis(const CsrBlock& R, const FactorMatrix& Y, const Eigenbasis& e,
                           const AlsParams& p, FactorMatrix& X, int threads);
// The most non-zeros of a row outside the Woodbury path that solve_rows_eigenbasis solves
// exactly by preconditioned CG: cg_steps + 1, the fastest limit measured (docs/benchmarks.md).
Index eigenbasis_cold_rows(int cg_steps);
// M = M Q (Q f x f, rounded to float), in place: each row's bits depend only on that row and Q.
void rotate_rows(FactorMatrix& M, const Eigen::MatrixXd& Q, int threads);
inline bool use_eigenbasis(const AlsParams& p, Index rows_solved, Index rows_read) {
  return p.solver == Solver::kConjugateGradient && p.cg_steps >= 2 && rows_solved > rows_read;
}

// Loss terms of the local rows (paper, eq. 3, this side's part):
//   data = sum_u sum_i c_ui (p_ui - x_u.y_i)^2 over ALL columns i (c_ui = 1 where r_ui = 0),
//   reg  = sum_u lambda_u ||x_u||^2.
// Evaluated as x_u^T YtY x_u plus corrections over the non-zeros; summed in double in a fixed
// order. The caller adds the other side's regulariser.
struct LossTerms {
  double data = 0, reg = 0;
};
LossTerms loss_rows(const CsrBlock& R, const FactorMatrix& Y, const DenseMatrix& YtY,
                    const AlsParams& p, const FactorMatrix& X, int threads);

// Instruction set of the solver kernels' inner products (the f x f products, the Gram, the sparse
// sweeps and the factorisation), chosen once at run time from what the CPU has, whatever flags the
// library was built with. kScalar is portable C++ (vectorised only as far as the build flags allow).
// The environment variable MFREC_KERNELS=scalar|avx2|avx512 overrides the choice at the first call
// (a path the CPU lacks is an Error). Every path gives each row a result that depends only on that
// row; different paths differ by float rounding (the SIMD paths group sums differently).
enum class KernelPath { kScalar, kAvx2, kAvx512 };
KernelPath kernel_path();
const char* kernel_path_name();
// Forces a path (tests, benchmarks); false, and nothing changed, if the CPU lacks it.
bool set_kernel_path(KernelPath path);
bool kernel_path_supported(KernelPath path);

// Test oracle: builds the explicit n_cols x n_cols diagonal C^u and solves eq. 4 with a dense
// LDLT in double.
Eigen::VectorXd solve_row_dense_oracle(const CsrBlock& R, Index local_row, const FactorMatrix& Y,
                                       const AlsParams& p);

// The floating-point operations solve_rows performs on R with f = p.factors (the model used by
// the benchmark; multiply and add count as two, symmetric products count one triangle).
double solve_rows_flops(const CsrBlock& R, const AlsParams& p);
// The same for a half-step in the eigenbasis as the Trainer runs it, reading `rows_read` rows of Y:
// the eigensolver, one rotation of each row read, preconditioned CG against the diagonal Gram.
double eigenbasis_flops(const CsrBlock& R, Index rows_read, const AlsParams& p);

}  // namespace mfrec
