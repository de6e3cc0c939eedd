// mfrec_dist: distributed implicit-feedback ALS training and evaluation.
//   mpirun -n 32 mfrec_dist --data retail_prepared.h5 --output model.h5 --report run.json
#include <cstdio>
#include <fstream>

#include <nlohmann/json.hpp>

#include "mfrec/comm.hpp"
#include "mfrec/config.hpp"
#include "mfrec/experiment.hpp"
#include "mfrec/log.hpp"
#include "mfrec/model.hpp"
#include "mfrec/version.hpp"

using namespace mfrec;

namespace {

struct Options {
  std::string data = "retail_prepared.h5", output = "model.h5", report;
  int factors = 32, iterations = 15, cg_steps = 3, k = 20, threads = 0, loss_every = 0;
  double regularization = 100, alpha = 1;
  std::string solver = "cg", confidence = "hu", log_level = "info";
  bool scale_regularization = false;
  std::int64_t seed = 42;
};

void check(const Options& o) {
  require_option(o.factors >= 1, "factors", "must be at least 1");
  require_option(o.iterations >= 1, "iterations", "must be at least 1");
  require_option(o.regularization >= 0, "regularization", "must not be negative");
  require_option(o.alpha >= 0, "alpha", "must not be negative");
  require_option(o.k >= 1, "k", "must be at least 1");
  require_option(o.cg_steps >= 1, "cg-steps", "must be at least 1");
  require_option(o.threads >= 0, "threads", "must not be negative (0: automatic)");
  require_option(o.loss_every >= 0, "loss-every", "must not be negative");
}

nlohmann::json metrics_json(const MetricSums& m) {
  nlohmann::json j;
  for (const auto& [k, v] : metric_map(m)) j[k] = v;
  return j;
}

void print_table(const Evaluation& e) {
  std::printf("\n%-16s %10s %10s %10s\n", "metric (K=" , "ALS", "system", "popular");
  auto row = [](const char* name, double a, double s, double b) { std::printf("%-16s %10.4f %10.4f %10.4f\n", name, a, s, b); };
  row("MAP@K", e.model.map, e.system.map, e.baseline.map);
  row("MAP@K (seed)", e.model.map_seed, e.system.map_seed, e.baseline.map_seed);
  row("precision@K", e.model.precision, e.system.precision, e.baseline.precision);
  row("recall@K", e.model.recall, e.system.recall, e.baseline.recall);
  row("NDCG@K", e.model.ndcg, e.system.ndcg, e.baseline.ndcg);
  row("AUC", e.model.auc, e.system.auc, e.baseline.auc);
  std::printf("users evaluated: %lld (%lld with no training history; 'system' gives them the popular list)\n",
              static_cast<long long>(e.model.n_users), static_cast<long long>(e.cold_users));
  const double ratio = e.baseline.map > 0 ? e.model.map / e.baseline.map : 0;
  std::printf("ALS MAP@%d is %.2fx the popularity baseline's\n\n", e.k, ratio);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  return run_program("mfrec_dist", argc, argv, [&](Comm& world) {
    Options o;
    Cli cli("mfrec_dist",
            "Distributed implicit-feedback ALS (Hu, Koren, Volinsky 2008): trains on a prepared data set\n"
            "(mfrec_prep), evaluates on its held-out test matrix against the popularity baseline, and\n"
            "writes the model as HDF5. Run it under mpirun: users and items are partitioned over the ranks.");
    cli.add()
        ("data", po::value(&o.data)->default_value(o.data), "prepared data set (HDF5, from mfrec_prep)")
        ("output,o", po::value(&o.output)->default_value(o.output), "model file to write (HDF5; empty: none)")
        ("report", po::value(&o.report)->default_value(o.report), "write a JSON run report here (rank 0)")
        ("factors,f", po::value(&o.factors)->default_value(o.factors), "latent factors")
        ("regularization,l", po::value(&o.regularization)->default_value(o.regularization), "regularisation lambda")
        ("alpha,a", po::value(&o.alpha)->default_value(o.alpha), "confidence scale alpha")
        ("iterations,i", po::value(&o.iterations)->default_value(o.iterations), "ALS iterations")
        ("solver", po::value(&o.solver)->default_value(o.solver), "cg (conjugate gradient, warm-started) or cholesky (exact)")
        ("cg-steps", po::value(&o.cg_steps)->default_value(o.cg_steps), "conjugate-gradient steps per solve")
        ("confidence", po::value(&o.confidence)->default_value(o.confidence), "hu: c = 1 + alpha r; implicit: c = alpha r (the `implicit` library)")
        ("scale-regularization", po::bool_switch(&o.scale_regularization), "scale lambda by each row's non-zeros (ALS-WR, as Spark)")
        ("seed", po::value(&o.seed)->default_value(o.seed), "seed of the initial factors")
        ("k", po::value(&o.k)->default_value(o.k), "cut-off K of the ranking metrics")
        ("threads", po::value(&o.threads)->default_value(o.threads), "OpenMP threads per rank (0: the node's cores / ranks on the node)")
        ("loss-every", po::value(&o.loss_every)->default_value(o.loss_every), "compute the training loss every N iterations (0: never)")
        ("log-level", po::value(&o.log_level)->default_value(o.log_level), "debug, info, warn or error");
    if (!cli.parse(argc, argv, world.is_root())) return 0;
    check(o);
    init_logging(world, "mfrec_dist", o.log_level);

    RunOptions ro;
    ro.train.als.factors = o.factors;
    ro.train.als.regularization = static_cast<Real>(o.regularization);
    ro.train.als.alpha = static_cast<Real>(o.alpha);
    ro.train.als.solver = parse_solver(o.solver);
    ro.train.als.cg_steps = o.cg_steps;
    ro.train.als.confidence = parse_confidence(o.confidence);
    ro.train.als.scale_regularization = o.scale_regularization;
    ro.train.iterations = o.iterations;
    ro.train.seed = static_cast<std::uint64_t>(o.seed);
    ro.train.threads = o.threads > 0 ? o.threads : default_threads(world);
    ro.eval_at = {o.iterations};
    ro.k = o.k;
    ro.loss_every = o.loss_every;

    PhaseTimer io;
    GroupData data;
    {
      auto t = io.scope("read");
      h5::File f = h5::File::open(o.data, &world);
      data = load_group_data(f, world);
    }
    spdlog::info("{} users x {} items, {} training non-zeros, test rows {}; {} ranks x {} threads", data.train.n_users,
                 data.train.n_items, data.train.nnz, data.test.n_rows_global, world.size(), ro.train.threads);
    spdlog::info("factors {}, lambda {}, alpha {} ({}), {} solver, {} iterations", o.factors, o.regularization, o.alpha,
                 o.confidence, o.solver, o.iterations);

    std::unique_ptr<Trainer> trainer;
    RunResult res = run_point(world, data, ro, &trainer);
    const Evaluation& e = res.evaluations.back();
    spdlog::info("trained in {} ({:.3f} s per iteration)", format_seconds(res.seconds), res.seconds_per_iteration);

    char fp[24];
    std::snprintf(fp, sizeof fp, "%016llx", static_cast<unsigned long long>(data.fingerprint));
    if (!o.output.empty()) {
      auto t = io.scope("write");
      ModelMeta meta;
      meta.als = ro.train.als;
      meta.iterations = o.iterations;
      meta.seed = ro.train.seed;
      meta.k = o.k;
      meta.dataset = o.data;
      meta.dataset_fingerprint = fp;
      meta.created = world.bcast(utc_now_iso());
      meta.metrics = metric_map(e.model);
      meta.system_metrics = metric_map(e.system);
      meta.baseline_metrics = metric_map(e.baseline);
      h5::File src = h5::File::open(o.data, &world);
      dataset::ItemTable items = dataset::read_items(src);
      src.close();
      ModelParts parts;
      parts.user_factors = &trainer->user_factors();
      parts.item_factors = &trainer->item_factors();
      parts.seen_local = &data.train.users;
      parts.user_ids_local = data.user_ids_local;
      parts.items = &items;
      parts.popularity = &data.popularity;
      write_model(o.output, world, parts, meta);
      spdlog::info("model written to {}", o.output);
    }
    auto io_stats = io.summary(world);
    if (world.is_root()) {
      print_table(e);
      if (!o.report.empty()) {
        nlohmann::json j;
        j["program"] = "mfrec_dist";
        j["version"] = kVersion;
        j["config"] = {{"data", o.data},         {"factors", o.factors},     {"regularization", o.regularization},
                       {"alpha", o.alpha},       {"iterations", o.iterations}, {"solver", o.solver},
                       {"cg_steps", o.cg_steps}, {"confidence", o.confidence}, {"scale_regularization", o.scale_regularization},
                       {"seed", o.seed},         {"k", o.k},                 {"loss_every", o.loss_every},
                       {"output", o.output}};
        j["ranks"] = world.size();
        j["threads"] = ro.train.threads;
        j["data"] = {{"users", data.train.n_users}, {"items", data.train.n_items}, {"nnz_train", data.train.nnz},
                     {"fingerprint", fp}};
        j["seconds"] = res.seconds;
        j["seconds_per_iteration"] = res.seconds_per_iteration;
        for (const auto& [name, s] : res.phases) j["phases"][name] = {{"min", s.min}, {"mean", s.mean}, {"max", s.max}};
        for (const auto& [name, s] : io_stats) j["phases"]["io_" + name] = {{"min", s.min}, {"mean", s.mean}, {"max", s.max}};
        j["metrics"] = metrics_json(e.model);
        j["system"] = metrics_json(e.system);
        j["baseline"] = metrics_json(e.baseline);
        j["cold_users"] = e.cold_users;
        for (const auto& [it, l] : res.losses) j["loss"].push_back({{"iteration", it}, {"loss", l}});
        const std::string tmp = o.report + ".partial";
        std::ofstream out(tmp);
        out << j.dump(2) << "\n";
        out.close();
        if (!out || std::rename(tmp.c_str(), o.report.c_str()) != 0) throw IoError(o.report + ": cannot write report");
      }
    }
    return 0;
  });
}
