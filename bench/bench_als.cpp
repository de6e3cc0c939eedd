// Throughput of one ALS iteration (Gram of Y, user half-step, Gram of X, item half-step) on a
// synthetic implicit-feedback matrix shaped like the seed data set, for both solvers and
// several factor counts, against the machine's float GEMM measured in the same run. The Gram
// matrix (gram_accumulate) and the solvers are the kernels mfrec_dist's trainer runs on each rank.
//
//   bench_als [--threads N] [--users U] [--items I] [--nnz Z] [--iters K] [--factors 64,128,200]
//             [--solvers cg,chol] [--seed S] [--input PREPARED.h5] [--regularization L]
//             [--alpha A] [--cg-steps S]
//
// --input times the training matrix of a prepared file (mfrec_prep) instead: /matrix/train and
// /matrix/train_by_item as mfrec_dist loads them on one rank (load_train_data), the initial
// factors as its trainer makes them (init_factor_row from --seed, default mfrec_dist's), so that
// its seconds per iteration compare with mfrec_dist's on the same file, threads and parameters
// (bench/bench_dist_vs_als.sh). --regularization, --alpha and --cg-steps default to mfrec_dist's.
//
// GFLOP/s counts the operations of the algorithm as executed (solve_rows_flops; Gram matrices as
// one triangle, n f (f + 1)); multiply and add count as two, as in the GEMM rate 2 m n k / t.
//
// The limit is the best float GEMM of the machine whatever flags this binary was built with:
// OpenBLAS's sgemm (Debian's build picks its kernel for the CPU at run time, DYNAMIC_ARCH), and
// Eigen's product as compiled here, the faster of the two. It is measured at the solver's problem
// size, C (m x f) = A (m x f) B (f x f) -- the shape of every f x f product the solvers and the
// Gram run -- on the same OpenMP threads (each thread one single-threaded sgemm on its own
// 4096-row, cache-resident panel), once before every timed ALS iteration (interleaved), median.
// A square 2048^3 product is printed once for context.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <time.h>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <cblas.h>

#include "mfrec/als_kernels.hpp"
#include "mfrec/comm.hpp"
#include "mfrec/dataset.hpp"
#include "mfrec/error.hpp"
#include "mfrec/h5.hpp"
#include "mfrec/trainer.hpp"

extern "C" char* openblas_get_corename(void);
extern "C" void openblas_set_num_threads(int);

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
  std::string input;  // a prepared file: its training matrix instead of the synthetic one
  Real regularization = defaults::kRegularization, alpha = defaults::kAlpha;
  int cg_steps = defaults::kCgSteps;
};

[[noreturn]] void usage(const char* msg) {
  std::fprintf(stderr,
               "bench_als: %s\nusage: bench_als [--threads N] [--users U] [--items I] [--nnz Z] "
               "[--iters K] [--factors 64,128,200] [--solvers cg,chol] [--seed S] "
               "[--input PREPARED.h5] [--regularization L] [--alpha A] [--cg-steps S]\n",
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
      else if (key == "--input") o.input = v;
      else if (key == "--regularization") o.regularization = std::stof(v);
      else if (key == "--alpha") o.alpha = std::stof(v);
      else if (key == "--cg-steps") o.cg_steps = std::stoi(v);
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
      o.nnz > o.users * o.items / 2 || o.cg_steps < 1 || !(o.regularization >= 0) || !(o.alpha >= 0))
    usage("out-of-range value");
  for (int f : o.factors)
    if (f < 1) usage("out-of-range value for --factors");
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

// The trainer's initial factors (trainer.hpp: init_factor_row, TrainConfig's scale): mfrec_dist
// starts from exactly these with the same --seed.
FactorMatrix trainer_factors(Index rows, Index f, int side, std::uint64_t seed) {
  FactorMatrix M(rows, f);
  const Real scale = TrainConfig{}.init_scale;
  for (Index i = 0; i < rows; ++i) init_factor_row(seed, side, i, scale, M.row(i).data(), static_cast<int>(f));
  return M;
}

FactorMatrix random_factors(Index rows, Index f, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.0f, 0.1f);
  FactorMatrix M(rows, f);
  for (Index i = 0; i < M.size(); ++i) M.data()[i] = n(rng);
  return M;
}

// CPU seconds of the whole process (all threads) since t0, divided by the threads: on an idle
// machine the wall time, on a shared one the time the work would take with the cores to itself.
double cpu_per_thread(std::clock_t c0, int threads) {
  return static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC / threads;
}

// One float GEMM C = A B (row-major, m x k times k x n) on `threads` OpenMP threads, each thread
// its own m-row panel; returns GFLOP/s of the slowest-finishing whole (wall clock).
struct GemmCase {
  Index m, n, k;
  std::vector<std::vector<float>> a, c;  // per thread
  std::vector<float> b;
  GemmCase(Index m_, Index n_, Index k_, int threads) : m(m_), n(n_), k(k_) {
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    b.resize(static_cast<size_t>(k * n));
    for (float& x : b) x = u(rng);
    for (int t = 0; t < threads; ++t) {
      a.emplace_back(static_cast<size_t>(m * k));
      for (float& x : a.back()) x = u(rng);
      c.emplace_back(static_cast<size_t>(m * n));
    }
  }
};

enum class GemmLib { kOpenBlas, kEigen };

struct Rate {
  double wall, cpu;  // GFLOP/s on wall time and on CPU time / threads
};

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

// The cpu rate counts each thread's own CPU time in its products (no barrier, no spinning).
Rate gemm_rate(GemmCase& g, GemmLib lib, int threads, int reps) {
  using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  std::vector<double> cpu(threads, 0.0);
  const auto t0 = Clock::now();
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num();
    const double c0 = thread_cpu_seconds();
    for (int r = 0; r < reps; ++r) {
      if (lib == GemmLib::kOpenBlas) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(g.m),
                    static_cast<int>(g.n), static_cast<int>(g.k), 1.0f, g.a[t].data(),
                    static_cast<int>(g.k), g.b.data(), static_cast<int>(g.n), 0.0f,
                    g.c[t].data(), static_cast<int>(g.n));
      } else {
        Eigen::Map<const RowMat> A(g.a[t].data(), g.m, g.k), B(g.b.data(), g.k, g.n);
        Eigen::Map<RowMat> C(g.c[t].data(), g.m, g.n);
        C.noalias() = A * B;
      }
    }
    cpu[t] = thread_cpu_seconds() - c0;
  }
  const double wall = seconds_since(t0), flops = 2.0 * g.m * g.n * g.k * reps * threads;
  double cpu_sum = 0;
  for (double c : cpu) cpu_sum += c;
  return {flops / wall * 1e-9, flops / (cpu_sum / threads) * 1e-9};
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

struct Timing {
  double total, gram, user, item;          // wall seconds
  double cpu, cpu_gram, cpu_user, cpu_item;  // CPU seconds / threads
};

// A half-step as the Trainer solves it: in the eigenbasis of YtY when use_eigenbasis, where Y is
// rotated and X solved afresh, and both stay (the next half-step works in any basis).
void half_step(const CsrBlock& R, FactorMatrix& Y, const Eigen::MatrixXd& YtY, const AlsParams& p, FactorMatrix& X,
               int threads) {
  const std::optional<Eigenbasis> e = use_eigenbasis(p, R.n_rows(), Y.rows()) ? eigenbasis(YtY) : std::nullopt;
  if (!e) return solve_rows(R, Y, YtY.cast<float>(), p, X, threads);
  rotate_rows(Y, e->vectors, threads);
  solve_rows_eigenbasis(R, Y, *e, p, X, threads);
}

// One ALS iteration; returns its parts in seconds.
Timing iteration(const CsrBlock& Ru, const CsrBlock& Ri, const AlsParams& p, FactorMatrix& X,
                 FactorMatrix& Y, int threads) {
  Timing t{};
  const std::clock_t c0 = std::clock();
  const auto t0 = Clock::now();
  Eigen::MatrixXd G = Eigen::MatrixXd::Zero(p.factors, p.factors);
  gram_accumulate(Y, 0, Y.rows(), G, threads);
  t.gram = seconds_since(t0);
  t.cpu_gram = cpu_per_thread(c0, threads);
  auto t1 = Clock::now();
  auto c1 = std::clock();
  half_step(Ru, Y, G, p, X, threads);
  t.user = seconds_since(t1);
  t.cpu_user = cpu_per_thread(c1, threads);
  t1 = Clock::now();
  c1 = std::clock();
  G.setZero();
  gram_accumulate(X, 0, X.rows(), G, threads);
  t.gram += seconds_since(t1);
  t.cpu_gram += cpu_per_thread(c1, threads);
  t1 = Clock::now();
  c1 = std::clock();
  half_step(Ri, X, G, p, Y, threads);
  t.item = seconds_since(t1);
  t.cpu_item = cpu_per_thread(c1, threads);
  t.total = seconds_since(t0);
  t.cpu = cpu_per_thread(c0, threads);
  return t;
}

std::string load_average() {
  std::string load;
  std::getline(std::ifstream("/proc/loadavg"), load);
  return load;
}

// The benchmark proper, on the user x item matrix Ru and its transpose Ri; `source`: where the
// matrix came from, for the first line.
int bench(const Options& o, const CsrBlock& Ru, const CsrBlock& Ri, const std::string& source) {
  openblas_set_num_threads(1);  // one sgemm per OpenMP thread: the solver's threads, no pool
  Eigen::setNbThreads(1);
  const Index users = Ru.n_rows(), items = Ri.n_rows();
  Index max_item = 0;
  for (Index i = 0; i < Ri.n_rows(); ++i) max_item = std::max(max_item, Ri.indptr[i + 1] - Ri.indptr[i]);
  std::printf("matrix %lld x %lld, %lld non-zeros (largest item %lld), %s\n",
              static_cast<long long>(users), static_cast<long long>(items),
              static_cast<long long>(Ru.nnz()), static_cast<long long>(max_item), source.c_str());
  std::printf("threads %d; kernels: %s; Eigen SIMD as built: %s; OpenBLAS core: %s\n", o.threads,
              kernel_path_name(), Eigen::SimdInstructionSetsInUse(), openblas_get_corename());
  {
    GemmCase sq(2048 / o.threads, 2048, 2048, o.threads);
    double ob = 0, ei = 0;
    for (int r = 0; r < 3; ++r) {
      ob = std::max(ob, gemm_rate(sq, GemmLib::kOpenBlas, o.threads, 1).wall);
      ei = std::max(ei, gemm_rate(sq, GemmLib::kEigen, o.threads, 1).wall);
    }
    std::printf("square float GEMM 2048^3, best of 3: OpenBLAS %.1f GFLOP/s, Eigen %.1f GFLOP/s\n",
                ob, ei);
  }
  std::printf("load average at start %s\n", load_average().c_str());
  std::printf("median of %d iterations after one warm-up, each after one run of each GEMM at "
              "the solver's size (m x f)(f x f)\n",
              o.iters);
  std::printf(
      "s/iter: wall seconds per iteration (gram + users + items); cpu/thr: CPU seconds / threads; "
      "GFLOP/s: on wall time; GEMM: the limit, the faster of OpenBLAS and Eigen at this f, run "
      "before each iteration; %%GEMM: the ratio of the medians. cpu columns: the same on CPU "
      "seconds / threads (robust to a shared machine), per half-step too\n\n");
  std::printf("%-9s %4s %8s %7s %7s %7s %7s %8s %8s %8s %6s | %7s %7s %7s %7s %6s\n", "solver",
              "f", "s/iter", "cpu/thr", "gram", "users", "items", "GFLOP/it", "GFLOP/s", "GEMM",
              "%GEMM", "users", "items", "all", "GEMM", "%GEMM");
  for (Solver s : o.solvers) {
    for (int f : o.factors) {
      AlsParams p;
      p.factors = f;
      p.solver = s;
      p.regularization = o.regularization;
      p.alpha = o.alpha;
      p.cg_steps = o.cg_steps;
      FactorMatrix X = o.input.empty() ? random_factors(users, f, 1) : trainer_factors(users, f, 0, o.seed);
      FactorMatrix Y = o.input.empty() ? random_factors(items, f, 2) : trainer_factors(items, f, 1, o.seed);
      const double fu = use_eigenbasis(p, Ru.n_rows(), Ri.n_rows()) ? eigenbasis_flops(Ru, Ri.n_rows(), p)
                                                                      : solve_rows_flops(Ru, p);
      const double fi = use_eigenbasis(p, Ri.n_rows(), Ru.n_rows()) ? eigenbasis_flops(Ri, Ru.n_rows(), p)
                                                                      : solve_rows_flops(Ri, p);
      const double flops = fu + fi + static_cast<double>(users + items) * f * (f + 1);
      // A 4096-row panel per thread (cache-resident: the GEMM's best case at this shape), repeated
      // to about 1 GFLOP per run so that a run lasts milliseconds, not microseconds.
      GemmCase g(4096, f, f, o.threads);
      const int reps = std::max(1, static_cast<int>(1e9 / (2.0 * 4096 * f * f * o.threads)));
      iteration(Ru, Ri, p, X, Y, o.threads);  // warm-up
      gemm_rate(g, GemmLib::kOpenBlas, o.threads, reps);
      gemm_rate(g, GemmLib::kEigen, o.threads, reps);
      std::vector<double> tot, cpu, gram, usr, itm, cusr, citm, ob, ei, obc, eic;
      for (int k = 0; k < o.iters; ++k) {
        const Rate rb = gemm_rate(g, GemmLib::kOpenBlas, o.threads, reps);
        const Rate re = gemm_rate(g, GemmLib::kEigen, o.threads, reps);
        ob.push_back(rb.wall), obc.push_back(rb.cpu), ei.push_back(re.wall), eic.push_back(re.cpu);
        const Timing t = iteration(Ru, Ri, p, X, Y, o.threads);
        tot.push_back(t.total), cpu.push_back(t.cpu), gram.push_back(t.gram);
        usr.push_back(t.user), itm.push_back(t.item);
        cusr.push_back(t.cpu_user), citm.push_back(t.cpu_item);
      }
      const double sec = median(tot), rate = flops / sec * 1e-9;
      const double crate = flops / median(cpu) * 1e-9;
      const double limit = std::max(median(ob), median(ei));
      const double climit = std::max(median(obc), median(eic));
      std::printf("%-9s %4d %8.4f %7.4f %7.4f %7.4f %7.4f %8.2f %8.1f %8.1f %5.0f%% | %7.1f %7.1f "
                  "%7.1f %7.1f %5.0f%%\n",
                  s == Solver::kCholesky ? "cholesky" : "cg", f, sec, median(cpu), median(gram),
                  median(usr), median(itm), flops * 1e-9, rate, limit, 100.0 * rate / limit,
                  fu / median(cusr) * 1e-9, fi / median(citm) * 1e-9, crate, climit,
                  100.0 * crate / climit);
      std::printf("          GEMM medians: OpenBLAS %.1f (cpu %.1f), Eigen %.1f (cpu %.1f)\n",
                  median(ob), median(obc), median(ei), median(eic));
      std::fflush(stdout);
    }
  }
  std::printf("load average at end %s\n", load_average().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  try {
    kernel_path();  // MFREC_KERNELS, if set, is read here
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_als: %s\n", e.what());
    return 2;
  }
  if (!o.input.empty()) {
    // The library's reader, as mfrec_dist's on one rank (MPI for its Comm: a singleton here).
    return run_program("bench_als", argc, argv, [&](Comm& world) {
      if (world.size() != 1) throw ConfigError("bench_als --input runs on one process (no mpirun -n > 1)");
      const auto t0 = Clock::now();
      TrainData d;
      std::unique_ptr<h5::File> f;
      agree_on(world, [&] { f = std::make_unique<h5::File>(h5::File::open(o.input, &world)); });
      try {
        d = load_train_data(*f, world);
      } catch (const AgreedError&) {
        f->close();  // before MPI_Finalize (as read_group_data)
        throw;
      }
      f->close();
      char read[32];
      std::snprintf(read, sizeof read, " in %.1f s", seconds_since(t0));
      return bench(o, d.users, d.items, "read from " + o.input + read);
    });
  }
  const auto tg = Clock::now();
  const CsrBlock Ru = make_users(o);
  const CsrBlock Ri = transpose(Ru);
  char generated[64];
  std::snprintf(generated, sizeof generated, "generated in %.1f s", seconds_since(tg));
  return bench(o, Ru, Ri, generated);
}
