// Throughput of the evaluation's score-and-rank pass (evaluate_rows: scores of every evaluated
// user against every item, top K with training items left out, exact AUC) next to the float GEMM
// rate of the same machine, threads and shapes, measured in the same invocation; for the default
// catalogue (2,465 items) and the 100x one (246,500). Synthetic random factors and rows.
//
//   bench_eval [--threads N] [--items 2465,246500] [--factors 128] [--users U] [--cells C]
//              [--train T] [--test S] [--k K] [--reps R] [--seed S] [--unfused yes|no] [--time cpu|wall]
//              [--blocks MIB]
//
// Times are the best of R runs, by CPU seconds / threads (default: on a machine shared with
// other jobs, time spent waiting for a core is not counted) or by wall seconds (--time wall).
// Users per catalogue: min(U, C / items), so each catalogue costs about the same. GFLOP/s counts
// the scores' 2 f flops per (user, item), for the evaluation and the GEMMs alike. The GEMM rates:
// "gemm 128 x all" is the unfused pass's product alone (128 users x every item, output streamed
// to memory), "gemm 256 x tile" 256 users by cache-sized tiles of items (the fused pass's
// product alone), "gemm 2048^3" a square product (Eigen's own threads): the reference is the best
// of the three. The fused and unfused passes must give identical sums (checked, and printed).
// --blocks MIB: also the pass over items fetched in blocks of at most MIB (mfrec_dist
// --eval-memory; here each fetch copies the block, in place of the ranks' gather), its time
// against the fused pass over every item in memory, and the items' memory either way (checked
// identical too).
#include <omp.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "mfrec/metrics.hpp"

namespace {

using namespace mfrec;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

struct Options {
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::vector<Index> items = {2465, 246500};
  int factors = 128, k = 20, reps = 3, train = 4, test = 2;
  Index users = 65291;  // the default data set's evaluated users
  double cells = 5e8;   // users x items per catalogue
  unsigned seed = 42;
  bool unfused = true;
  bool cpu_time = true;  // --time cpu (default) or wall
  double blocks_mib = 0;  // > 0: also the pass in item blocks of at most this many MiB
};

[[noreturn]] void usage(const char* msg) {
  std::fprintf(stderr,
               "bench_eval: %s\nusage: bench_eval [--threads N] [--items 2465,246500] [--factors F] [--users U] "
               "[--cells C] [--train T] [--test S] [--k K] [--reps R] [--seed S] [--unfused yes|no] [--time cpu|wall] "
               "[--blocks MIB]\n",
               msg);
  std::exit(2);
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
      else if (key == "--factors") o.factors = std::stoi(v);
      else if (key == "--users") o.users = std::stoll(v);
      else if (key == "--cells") o.cells = std::stod(v);
      else if (key == "--train") o.train = std::stoi(v);
      else if (key == "--test") o.test = std::stoi(v);
      else if (key == "--k") o.k = std::stoi(v);
      else if (key == "--reps") o.reps = std::stoi(v);
      else if (key == "--seed") o.seed = static_cast<unsigned>(std::stoul(v));
      else if (key == "--unfused") o.unfused = v == "yes";
      else if (key == "--time") o.cpu_time = v == "cpu";
      else if (key == "--blocks") o.blocks_mib = std::stod(v);
      else if (key == "--items") {
        o.items.clear();
        for (std::size_t b = 0, e; b <= v.size(); b = e + 1) {
          e = v.find(',', b);
          if (e == std::string::npos) e = v.size();
          o.items.push_back(std::stoll(v.substr(b, e - b)));
        }
      } else {
        usage(("unknown option " + key).c_str());
      }
    } catch (const std::exception&) {
      usage(("bad value for " + key + ": " + v).c_str());
    }
  }
  if (o.threads < 1 || o.factors < 1 || o.users < 1 || o.k < 1 || o.reps < 1 || o.train < 0 || o.test < 1 ||
      !(o.blocks_mib >= 0))
    usage("values must be positive");
  for (Index n : o.items)
    if (n < 1) usage("--items must be positive");
  return o;
}

FactorMatrix random_factors(Index n, int f, unsigned seed) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d(0, 0.3f);
  FactorMatrix m(n, f);
  for (Index i = 0; i < m.size(); ++i) m.data()[i] = d(g);
  return m;
}

CsrBlock random_rows(Index n_users, Index n_items, int per_user, unsigned seed) {
  std::mt19937 g(seed);
  std::uniform_int_distribution<std::int32_t> item(0, static_cast<std::int32_t>(n_items - 1));
  CsrBlock b;
  b.n_rows_global = n_users;
  b.n_cols = n_items;
  for (Index u = 0; u < n_users; ++u) {
    for (int j = 0; j < per_user; ++j) {
      b.indices.push_back(item(g));
      b.data.push_back(1.0f);
    }
    b.indptr.push_back(static_cast<std::int64_t>(b.indices.size()));
  }
  return b;
}

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         1e-6 * static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

// The best of `reps` runs of f: by wall time, or (g_cpu_time) by CPU time / threads, which a
// machine shared with other jobs disturbs less (time spent waiting for a core is not counted).
bool g_cpu_time = true;
int g_threads = 1;
template <class F>
double best_seconds(int reps, F f) {
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = Clock::now();
    const double c0 = cpu_seconds();
    f();
    const double wall = seconds_since(t0), cpu = (cpu_seconds() - c0) / g_threads;
    best = std::min(best, g_cpu_time ? cpu : wall);
  }
  return best;
}

// GEMM of blocks of `block` users by `tile` items at a time (tile = n_items: the whole row),
// blocks over the threads, Eigen serial inside each (as the evaluation runs it).
double gemm_blocks_seconds(const FactorMatrix& X, const FactorMatrix& Y, Index block, Index tile, int threads,
                           int reps) {
  const Index n_users = X.rows(), n_items = Y.rows();
  const Index n_blocks = (n_users + block - 1) / block;
  return best_seconds(reps, [&] {
#pragma omp parallel num_threads(threads)
    {
      omp_set_num_threads(1);
      FactorMatrix C(block, std::min(tile, n_items));
#pragma omp for schedule(dynamic, 1)
      for (Index b = 0; b < n_blocks; ++b) {
        const Index u0 = b * block, nb = std::min(block, n_users - u0);
        for (Index i0 = 0; i0 < n_items; i0 += tile) {
          const Index n = std::min(tile, n_items - i0);
          Eigen::Map<FactorMatrix> M(C.data(), nb, n);
          M.noalias() = X.middleRows(u0, nb) * Y.middleRows(i0, n).transpose();
        }
      }
    }
  });
}

double square_gemm_gflops(int threads) {
  const Index n = 2048;
  Eigen::setNbThreads(threads);
  const DenseMatrix A = DenseMatrix::Random(n, n), B = DenseMatrix::Random(n, n);
  DenseMatrix C(n, n);
  const double t = best_seconds(3, [&] { C.noalias() = A * B; });
  Eigen::setNbThreads(1);
  return 2.0 * n * n * n / t * 1e-9;
}

bool identical(const MetricSums& a, const MetricSums& b) { return a.to_array() == b.to_array(); }

// The pass over items in blocks of at most o.blocks_mib against the fused pass over all of them
// (t_fused seconds); false when the sums differ.
bool print_blocked(const Options& o, const FactorMatrix& X, const FactorMatrix& Y, const CsrBlock& train,
                   const CsrBlock& test, double t_fused) {
  const double row_mib = static_cast<double>(o.factors) * sizeof(Real) / (1024.0 * 1024.0);
  ItemFactors items;
  items.n_items = Y.rows();
  items.factors = Y.cols();
  items.block_items = std::max<Index>(1, static_cast<Index>(o.blocks_mib / row_mib));
  items.fetch = [&Y](Index begin, Index end, FactorMatrix& out) { out = Y.middleRows(begin, end - begin); };
  const std::vector<Index> b = item_block_bounds(items.n_items, items.factors, items.block_items);
  Index widest = 0;
  for (std::size_t j = 0; j + 1 < b.size(); ++j) widest = std::max(widest, b[j + 1] - b[j]);
  HistorySums blocked;
  const double t = best_seconds(o.reps, [&] { blocked = evaluate_rows_by_history(X, items, train, test, o.k, o.threads); });
  const HistorySums whole = evaluate_rows_by_history(X, ItemFactors::in_memory(Y), train, test, o.k, o.threads);
  const bool same = identical(blocked.warm, whole.warm) && identical(blocked.cold, whole.cold);
  std::printf("  in %zu block%s of <= %lld items (--blocks %g): %.3f s, %.2fx the fused pass's time; item factors "
              "held %.1f MiB against %.1f; identical %s\n",
              b.size() - 1, b.size() == 2 ? "" : "s", static_cast<long long>(widest), o.blocks_mib, t, t / t_fused,
              row_mib * static_cast<double>(widest), row_mib * static_cast<double>(Y.rows()), same ? "yes" : "NO");
  return same;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  g_cpu_time = o.cpu_time;
  g_threads = o.threads;
  std::string load;
  std::getline(std::ifstream("/proc/loadavg"), load);
  const double square = square_gemm_gflops(o.threads);
  std::printf("threads %d, SIMD %s, f %d, K %d, %d training and %d test items per user; best of %d by %s time; "
              "load average %s\n", o.threads, Eigen::SimdInstructionSetsInUse(), o.factors, o.k, o.train, o.test,
              o.reps, o.cpu_time ? "CPU" : "wall", load.c_str());
  std::printf("gemm 2048^3 (Eigen, %d threads): %.1f GFLOP/s\n\n", o.threads, square);
  std::printf("%8s %7s %12s %12s %12s %12s %12s %8s %9s\n", "items", "users", "gemm128xall", "gemm256xtile",
              "unfused", "fused", "fused s", "%GEMM", "identical");
  for (const Index n_items : o.items) {
    const Index n_users = std::max<Index>(1, std::min<Index>(o.users, static_cast<Index>(o.cells / n_items)));
    const FactorMatrix X = random_factors(n_users, o.factors, o.seed), Y = random_factors(n_items, o.factors, o.seed + 1);
    const CsrBlock train = random_rows(n_users, n_items, o.train, o.seed + 2);
    const CsrBlock test = random_rows(n_users, n_items, o.test, o.seed + 3);
    const double flops = 2.0 * static_cast<double>(o.factors) * static_cast<double>(n_users) * static_cast<double>(n_items);
    auto gflops = [&](double s) { return flops / s * 1e-9; };
    const double g_all = gflops(gemm_blocks_seconds(X, Y, 128, n_items, o.threads, o.reps));
    const Index tile = std::min<Index>(2016, std::max<Index>(48, 98304 / o.factors / 48 * 48));  // metrics_fused.cpp's
    const double g_tile = gflops(gemm_blocks_seconds(X, Y, 256, tile, o.threads, o.reps));
    MetricSums fused, unfused;
    const double t_fused = best_seconds(o.reps, [&] { fused = evaluate_rows(X, Y, train, test, o.k, o.threads); });
    double g_unfused = 0;
    bool same = true;
    if (o.unfused) {
      g_unfused = gflops(best_seconds(o.reps, [&] { unfused = evaluate_rows_unfused(X, Y, train, test, o.k, o.threads); }));
      same = identical(fused, unfused);
    }
    const double reference = std::max({g_all, g_tile, square});
    std::printf("%8lld %7lld %12.1f %12.1f %12.1f %12.1f %12.3f %7.0f%% %9s\n", static_cast<long long>(n_items),
                static_cast<long long>(n_users), g_all, g_tile, g_unfused, gflops(t_fused), t_fused,
                100 * gflops(t_fused) / reference, o.unfused ? (same ? "yes" : "NO") : "-");
    std::fflush(stdout);
    if (!same) return 1;
    if (o.blocks_mib > 0 && !print_blocked(o, X, Y, train, test, t_fused)) return 1;
  }
  std::printf("\nGFLOP/s: 2 f users items / seconds; %%GEMM: fused against the best of the three GEMM rates\n");
  return 0;
}
