// The ANN index against exact search on a synthetic catalogue (in process, no HTTP): build time,
// recall@N of the top N by inner product (seen items left out) and of similar items (cosine), and
// per-query latency of both, exact and ANN, in the same run.
//
//   bench_ann [--items 246500] [--factors 64] [--queries 2000] [--n 20] [--seen 30] [--ef 128]
//             [--m 16] [--ef-construction 200] [--threads 0] [--index FILE (write it / reuse it)]
//   bench_ann --model-out FILE [--users 20000] [--items ..] [--factors ..] [--seen ..]
//             writes a model file with the same synthetic item factors (and that many users with
//             their seen items) for bench/bench_serve.sh, and exits
//
// The factors are synthetic (ann_synthetic.hpp): clustered directions, log-normal norms. The item
// factors depend only on --items, --factors and the fixed seed, so an --index written by one run
// fits the model another run writes.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <sys/stat.h>
#include <vector>

#include "mfrec/ann.hpp"
#include "mfrec/ann_synthetic.hpp"
#include "mfrec/comm.hpp"
#include "mfrec/error.hpp"
#include "mfrec/metrics.hpp"
#include "mfrec/model.hpp"

using namespace mfrec;
using Clock = std::chrono::steady_clock;

namespace {

double pct(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(q * static_cast<double>(v.size())))];
}

// A model file around synthetic factors: users U0000000.., items I0000000.. in 20 categories,
// /seen from the synthetic seen lists (confidence 1), popularity counted from them.
void write_synthetic_model(const Comm& comm, const std::string& path, const SyntheticFactors& s) {
  const Index nu = s.users.rows(), ni = s.items.rows();
  CsrBlock seen;
  seen.n_rows_global = nu;
  seen.n_cols = ni;
  std::vector<Index> popularity(static_cast<std::size_t>(ni), 0);
  std::vector<std::string> user_ids;
  char buf[32];
  for (Index u = 0; u < nu; ++u) {
    for (auto i : s.seen[static_cast<std::size_t>(u)]) {
      seen.indices.push_back(i);
      seen.data.push_back(1.0f);
      ++popularity[static_cast<std::size_t>(i)];
    }
    seen.indptr.push_back(static_cast<std::int64_t>(seen.indices.size()));
    std::snprintf(buf, sizeof buf, "U%07ld", static_cast<long>(u));
    user_ids.emplace_back(buf);
  }
  dataset::ItemTable t;
  t.resize(static_cast<std::size_t>(ni));
  for (Index i = 0; i < ni; ++i) {
    const auto k = static_cast<std::size_t>(i);
    std::snprintf(buf, sizeof buf, "I%07ld", static_cast<long>(i));
    t.id[k] = buf;
    t.name[k] = std::string("Synthetic item ") + buf;
    t.category[k] = "category" + std::to_string(i % 20);
    t.style[k] = "style" + std::to_string(i % 7);
    t.description[k] = "A synthetic item for the ANN benchmark.";
    t.gender_affinity[k] = "";
    t.price[k] = 1.0f + static_cast<float>(i % 100);
  }
  ModelMeta meta;
  meta.als.factors = static_cast<int>(s.items.cols());
  meta.dataset = "synthetic (bench_ann)";
  meta.created = utc_now_iso();
  ModelParts parts{&s.users, &s.items, 0, &seen, user_ids, &t, &popularity};  // one rank: every row is local
  write_model(path, comm, parts, meta);
}

int body(Comm& comm, int argc, char** argv) {
  long items = 246500, queries = 2000, users = 20000;
  std::string model_out;
  int factors = 64, n = 20, seen = 30, ef = kAnnDefaultEf;
  AnnParams p;
  std::string index_path;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    const char* v = argv[i + 1];
    if (a == "--items") items = std::atol(v);
    else if (a == "--factors") factors = std::atoi(v);
    else if (a == "--queries") queries = std::atol(v);
    else if (a == "--n") n = std::atoi(v);
    else if (a == "--seen") seen = std::atoi(v);
    else if (a == "--ef") ef = std::atoi(v);
    else if (a == "--m") p.m = std::atoi(v);
    else if (a == "--ef-construction") p.ef_construction = std::atoi(v);
    else if (a == "--threads") p.threads = std::atoi(v);
    else if (a == "--index") index_path = v;
    else if (a == "--metric") p.metric = v;
    else if (a == "--model-out") model_out = v;
    else if (a == "--users") users = std::atol(v);
    else throw ConfigError("unknown option " + a);
  }
  if (!model_out.empty()) {
    write_synthetic_model(comm, model_out, synthetic_factors(items, factors, users, seen, 12345));
    std::printf("bench_ann: %ld users x %ld items x %d factors written to %s\n", users, items, factors,
                model_out.c_str());
    return 0;
  }
  const SyntheticFactors s = synthetic_factors(items, factors, queries, seen, 12345);
  std::printf("== bench_ann: %ld items x %d factors (synthetic: clustered, log-normal norms %.2f..%.2f), %ld queries, "
              "n=%d, %d seen each\n",
              items, factors, static_cast<double>(s.items.rowwise().norm().minCoeff()),
              static_cast<double>(s.items.rowwise().norm().maxCoeff()), queries, n, seen);

  auto t0 = Clock::now();
  struct stat st {};
  const bool reuse = !index_path.empty() && ::stat(index_path.c_str(), &st) == 0;
  AnnIndex index = reuse ? AnnIndex::load(index_path, s.items) : AnnIndex::build(s.items, p);
  const double build_s = std::chrono::duration<double>(Clock::now() - t0).count();
  if (!index_path.empty() && !reuse) index.save(index_path);
  std::printf("index (M=%d, ef_construction=%d, metric %s): %.1f s to %s\n", index.params().m,
              index.params().ef_construction, index.params().metric.c_str(), build_s, reuse ? "load" : "build");
  index.set_ef(ef);

  FactorMatrix unit = s.items;
  for (Index i = 0; i < unit.rows(); ++i)
    if (unit.row(i).norm() > 0) unit.row(i).normalize();

  std::vector<double> t_exact, t_ann, t_sim_exact, t_sim_ann;
  double hit = 0, hit_sim = 0;
  std::vector<std::int32_t> exact, approx, sc;
  std::vector<Real> scores;
  for (long q = 0; q < queries; ++q) {
    const Real* x = s.users.row(q).data();
    std::vector<std::int32_t> ex = s.seen[static_cast<std::size_t>(q)];
    std::sort(ex.begin(), ex.end());
    auto a = Clock::now();
    Vector sv = s.items * s.users.row(q).transpose();
    top_k_excluding(sv.data(), s.items.rows(), ex.data(), static_cast<Index>(ex.size()), n, exact);
    auto b = Clock::now();
    rank_candidates(index.top_inner_product(x, n + static_cast<int>(ex.size())), s.items, x, ex, n, approx, scores);
    auto c = Clock::now();
    t_exact.push_back(std::chrono::duration<double>(b - a).count());
    t_ann.push_back(std::chrono::duration<double>(c - b).count());
    std::sort(exact.begin(), exact.end());
    for (auto i : approx) hit += std::binary_search(exact.begin(), exact.end(), i);

    const auto item = static_cast<std::int32_t>((q * 7919) % items);
    const std::vector<std::int32_t> self{item};
    a = Clock::now();
    Vector cs = unit * unit.row(item).transpose();
    top_k_excluding(cs.data(), unit.rows(), self.data(), 1, n, exact);
    b = Clock::now();
    rank_candidates(index.top_cosine(unit.row(item).data(), n + 1), unit, unit.row(item).data(), self, n, approx, scores);
    c = Clock::now();
    t_sim_exact.push_back(std::chrono::duration<double>(b - a).count());
    t_sim_ann.push_back(std::chrono::duration<double>(c - b).count());
    std::sort(exact.begin(), exact.end());
    for (auto i : approx) hit_sim += std::binary_search(exact.begin(), exact.end(), i);
  }
  const double total = static_cast<double>(queries) * n;
  std::printf("top-%d by inner product: recall %.4f (ef %d); exact p50 %.3f ms p99 %.3f ms; ANN p50 %.3f ms p99 %.3f ms\n",
              n, hit / total, ef, pct(t_exact, 0.5) * 1e3, pct(t_exact, 0.99) * 1e3, pct(t_ann, 0.5) * 1e3,
              pct(t_ann, 0.99) * 1e3);
  std::printf("similar items (cosine):  recall %.4f (ef %d); exact p50 %.3f ms p99 %.3f ms; ANN p50 %.3f ms p99 %.3f ms\n",
              hit_sim / total, ef, pct(t_sim_exact, 0.5) * 1e3, pct(t_sim_exact, 0.99) * 1e3, pct(t_sim_ann, 0.5) * 1e3,
              pct(t_sim_ann, 0.99) * 1e3);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return run_program("bench_ann", argc, argv, [&](Comm& comm) { return body(comm, argc, argv); });
}
