// Throughput of one ALS iteration (Gram of Y, user half-step, Gram of X, item half-step) on a
// synthetic implicit-feedback matrix shaped like the seed data set, for both solvers and
// several factor counts, next to the rate of a plain float GEMM on the same threads. The Gram
// matrix (gram_accumulate) and the solvers are the kernels mfrec_dist's trainer runs on each rank.
//
//   bench_als [--threads N] [--users U] [--items I] [--nnz Z] [--iters K] [--factors 64,128,200]
//             [--solvers cg,chol] [--seed S]
//
// GFLOP/s counts the operations of the algorithm as executed (solve_rows_flops; Gram matrices as
// one triangle, n f (f + 1)); multiply and add count as two, as in the GEMM rate 2 n^3 / t.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "mfrec/als_kernels.hpp"

namespace {

using namespace mfrec;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

struct Options {
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  Index users = 100000, items = 2465, nnz = 463000;
  int iters = 3;
  std::vector<int> factors = {64, 128, 200};
  std::vector<Solver> solvers = {Solver::kConjugateGradient, Solver::kCholesky};
  unsigned seed = 42;
};

[[noreturn]] void usage(const char* msg) {
  std::fprintf(stderr,
               "bench_als: %s\nusage: bench_als [--threads N] [--users U] [--items I] [--nnz Z] "
               "[--iters K] [--factors 64,128,200] [--solvers cg,chol] [--seed S]\n",
               msg);
  std::exit(2);
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  size_t b = 0;
  for (size_t e; (e = s.find(',', b)) != std::string::npos; b = e + 1) out.push_back(s.substr(b, e - b));
  out.push_back(s.substr(b));
  return out;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int a = 1; a < argc; ++a) {
    const std::string key = argv[a];
    if (key == "-h" || key == "--help") usage("help");
    if (a + 1 >= argc) usage(("missing value for " + key).c_str());
    const std::string v = argv[++a];
    try {
      if (key == "--threads") o.threads = std::stoi(v);
      else if (key == "--users") o.users = std::stoll(v);
      else if (key == "--items") o.items = std::stoll(v);
      else if (key == "--nnz") o.nnz = std::stoll(v);
      else if (key == "--iters") o.iters = std::stoi(v);
      else if (key == "--seed") o.seed = static_cast<unsigned>(std::stoul(v));
      else if (key == "--factors") {
        o.factors.clear();
        for (const auto& f : split(v)) o.factors.push_back(std::stoi(f));
      } else if (key == "--solvers") {
        o.solvers.clear();
        for (const auto& s : split(v)) {
          if (s == "cg") o.solvers.push_back(Solver::kConjugateGradient);
          else if (s == "chol") o.solvers.push_back(Solver::kCholesky);
          else usage(("unknown solver " + s).c_str());
        }
      } else {
        usage(("unknown option " + key).c_str());
      }
    } catch (const std::logic_error&) {
      usage(("bad value for " + key).c_str());
    }
  }
  if (o.threads < 1 || o.users < 1 || o.items < 1 || o.iters < 1 || o.nnz < 1 ||
      o.nnz > o.users * o.items / 2)
    usage("out-of-range value");
  return o;
}

// Users with log-normal activity, items with Zipf-like popularity (weight (i + 10)^-1), distinct
// items per user, confidences 1..15 with small values most frequent.
CsrBlock make_users(const Options& o) {
  std::mt19937_64 rng(o.seed);
  std::lognormal_distribution<double> activity(0.0, 1.0);
  std::vector<double> uw(o.users), iw(o.items);
  for (double& w : uw) w = activity(rng);
  for (Index i = 0; i < o.items; ++i) iw[i] = 1.0 / static_cast<double>(i + 10);
  std::discrete_distribution<Index> pick_user(uw.begin(), uw.end());
  std::discrete_distribution<std::int32_t> pick_item(iw.begin(), iw.end());
  std::geometric_distribution<int> value(0.35);
  // Per-user counts, capped at half the items so that rejection sampling below stays cheap.
  std::vector<Index> count(o.users, 0);
  for (Index placed = 0; placed < o.nnz;) {
    Index& c = count[pick_user(rng)];
    if (c < o.items / 2) ++c, ++placed;
  }
  CsrBlock R;
  R.n_rows_global = o.users;
  R.n_cols = o.items;
  R.indptr.reserve(o.users + 1);
  std::vector<char> seen(o.items, 0);
  std::vector<std::int32_t> row;
  for (Index u = 0; u < o.users; ++u) {
    row.clear();
    while (static_cast<Index>(row.size()) < count[u]) {
      const std::int32_t i = pick_item(rng);
      if (!seen[i]) seen[i] = 1, row.push_back(i);
    }
    std::sort(row.begin(), row.end());
    for (std::int32_t i : row) {
      seen[i] = 0;
      R.indices.push_back(i);
      R.data.push_back(static_cast<Real>(1 + std::min(value(rng), 14)));
    }
    R.indptr.push_back(static_cast<std::int64_t>(R.indices.size()));
  }
  return R;
}

CsrBlock transpose(const CsrBlock& R) {
  CsrBlock T;
  T.n_rows_global = R.n_cols;
  T.n_cols = R.n_rows();
  T.indptr.assign(R.n_cols + 1, 0);
  for (std::int32_t i : R.indices) ++T.indptr[i + 1];
  for (Index i = 0; i < R.n_cols; ++i) T.indptr[i + 1] += T.indptr[i];
  T.indices.resize(R.nnz());
  T.data.resize(R.nnz());
  std::vector<std::int64_t> next(T.indptr.begin(), T.indptr.end() - 1);
  for (Index u = 0; u < R.n_rows(); ++u)
    for (Index t = R.indptr[u]; t < R.indptr[u + 1]; ++t) {
      const std::int64_t k = next[R.indices[t]]++;
      T.indices[k] = static_cast<std::int32_t>(u);
      T.data[k] = R.data[t];
    }
  return T;
}

FactorMatrix random_factors(Index rows, Index f, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.0f, 0.1f);
  FactorMatrix M(rows, f);
  for (Index i = 0; i < M.size(); ++i) M.data()[i] = n(rng);
  return M;
}

double gemm_gflops(int threads) {
  const Index n = 2048;
  Eigen::setNbThreads(threads);
  const DenseMatrix A = DenseMatrix::Random(n, n), B = DenseMatrix::Random(n, n);
  DenseMatrix C(n, n);
  double best = 1e30;
  for (int r = 0; r < 3; ++r) {
    const auto t0 = Clock::now();
    C.noalias() = A * B;
    best = std::min(best, seconds_since(t0));
  }
  return 2.0 * n * n * n / best * 1e-9;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

struct Timing {
  double total, cpu, gram, user, item;
};

// One ALS iteration; returns its parts in seconds.
Timing iteration(const CsrBlock& Ru, const CsrBlock& Ri, const AlsParams& p, FactorMatrix& X,
                 FactorMatrix& Y, int threads) {
  Timing t{};
  const std::clock_t c0 = std::clock();
  const auto t0 = Clock::now();
  Eigen::MatrixXd G = Eigen::MatrixXd::Zero(p.factors, p.factors);
  gram_accumulate(Y, 0, Y.rows(), G, threads);
  t.gram = seconds_since(t0);
  auto t1 = Clock::now();
  solve_rows(Ru, Y, G.cast<float>(), p, X, threads);
  t.user = seconds_since(t1);
  t1 = Clock::now();
  G.setZero();
  gram_accumulate(X, 0, X.rows(), G, threads);
  t.gram += seconds_since(t1);
  t1 = Clock::now();
  solve_rows(Ri, X, G.cast<float>(), p, Y, threads);
  t.item = seconds_since(t1);
  t.total = seconds_since(t0);
  t.cpu = static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC / threads;
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  const auto tg = Clock::now();
  const CsrBlock Ru = make_users(o);
  const CsrBlock Ri = transpose(Ru);
  Index max_item = 0;
  for (Index i = 0; i < Ri.n_rows(); ++i) max_item = std::max(max_item, Ri.indptr[i + 1] - Ri.indptr[i]);
  std::printf("matrix %lld x %lld, %lld non-zeros (largest item %lld), generated in %.1f s\n",
              static_cast<long long>(o.users), static_cast<long long>(o.items),
              static_cast<long long>(Ru.nnz()), static_cast<long long>(max_item),
              seconds_since(tg));
  const double gemm = gemm_gflops(o.threads);
  std::printf("threads %d, SIMD %s, Eigen float GEMM 2048^3: %.1f GFLOP/s\n", o.threads,
              Eigen::SimdInstructionSetsInUse(), gemm);
  std::string load;
  std::getline(std::ifstream("/proc/loadavg"), load);
  std::printf("median of %d iterations after one warm-up; load average %s\n", o.iters, load.c_str());
  std::printf("s/iter: wall seconds per iteration (gram + users + items); cpu/thr: CPU seconds / "
              "threads\n\n");
  std::printf("%-9s %4s %9s %8s %8s %8s %8s %10s %9s %7s\n", "solver", "f", "s/iter", "cpu/thr",
              "gram", "users", "items", "GFLOP/it", "GFLOP/s", "%GEMM");
  for (Solver s : o.solvers) {
    for (int f : o.factors) {
      AlsParams p;
      p.factors = f;
      p.solver = s;
      FactorMatrix X = random_factors(o.users, f, 1), Y = random_factors(o.items, f, 2);
      const double flops = solve_rows_flops(Ru, p) + solve_rows_flops(Ri, p) +
                           static_cast<double>(o.users + o.items) * f * (f + 1);
      iteration(Ru, Ri, p, X, Y, o.threads);  // warm-up
      std::vector<double> tot, cpu, gram, usr, itm;
      for (int k = 0; k < o.iters; ++k) {
        const Timing t = iteration(Ru, Ri, p, X, Y, o.threads);
        tot.push_back(t.total), cpu.push_back(t.cpu), gram.push_back(t.gram);
        usr.push_back(t.user), itm.push_back(t.item);
      }
      const double sec = median(tot), rate = flops / sec * 1e-9;
      std::printf("%-9s %4d %9.4f %8.4f %8.4f %8.4f %8.4f %10.2f %9.1f %6.0f%%\n",
                  s == Solver::kCholesky ? "cholesky" : "cg", f, sec, median(cpu), median(gram),
                  median(usr), median(itm), flops * 1e-9, rate, 100.0 * rate / gemm);
      std::fflush(stdout);
    }
  }
  return 0;
}
