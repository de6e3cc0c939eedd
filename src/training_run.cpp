#include "mfrec/training_run.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <fstream>

#include "mfrec/dataset.hpp"
#include "mfrec/error.hpp"

namespace mfrec {

GroupData load_group_data(const h5::File& f, const Comm& comm) {
  GroupData g;
  g.train = load_train_data(f, comm);
  const int r = comm.rank();
  agree_on(comm, [&] {
    auto mt = dataset::matrix_info(f, "/matrix/test");
    if (mt.n_rows != g.train.n_users || mt.n_cols != g.train.n_items)
      throw InputError(f.path() + ": /matrix/test is " + std::to_string(mt.n_rows) + " x " + std::to_string(mt.n_cols) +
                       " but /matrix/train is " + std::to_string(g.train.n_users) + " x " + std::to_string(g.train.n_items));
  });
  agree_on(comm, [&] {
    g.test = dataset::read_csr_rows(f, "/matrix/test", g.train.user_bounds[r], g.train.user_bounds[r + 1]);
  });
  g.popularity = popularity_counts(comm, g.train);
  agree_on(comm, [&] {
    auto ud = f.require("/users/id", h5::TypeClass::kString, 1);
    if (static_cast<Index>(ud[0]) != g.train.n_users)
      throw InputError(f.path() + ": /users/id has " + std::to_string(ud[0]) + " rows, expected " + std::to_string(g.train.n_users));
  });
  g.user_ids_local = f.read_string_rows("/users/id", static_cast<Index>(g.train.user_bounds[r]),
                                        static_cast<Index>(g.train.users.n_rows()));
  g.fingerprint = dataset::fingerprint(g.train.users, comm);
  return g;
}

GroupData read_group_data(const std::string& path, const Comm& comm) {
  std::unique_ptr<h5::File> f;
  agree_on(comm, [&] { f = std::make_unique<h5::File>(h5::File::open(path, &comm)); });
  try {
    GroupData g = load_group_data(*f, comm);
    f->close();
    return g;
  } catch (const AgreedError&) {
    f->close();  // every rank is here: the collective close is safe (left open, MPI_Finalize aborts)
    throw;
  }
}

namespace {

using RowMajorD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// The checkpoint of a run: both factor matrices, the evaluations so far and where it stopped.
void write_checkpoint(const std::string& path, const Comm& comm, const GroupData& data, const Trainer& t,
                      const RunOptions& opt, const std::vector<Evaluation>& evals, double train_seconds) {
  const FactorMatrix& X = t.local_user_factors();
  const FactorMatrix& Y = t.local_item_factors();
  const int r = comm.rank();
  h5::File file = h5::File::create_atomic(path, &comm);
  // Each rank writes its own rows (hyperslabs of one collective write).
  const Index f = X.cols(), ub = data.train.user_bounds[r], ib = data.train.item_bounds[r];
  file.create_dataset<float>("/user_factors", {data.train.n_users, f});
  file.create_dataset<float>("/item_factors", {data.train.n_items, f});
  file.write_rows("/user_factors", ub, X.rows(), X.data());
  file.write_rows("/item_factors", ib, Y.rows(), Y.data());
  // The factors as the trainer keeps them, in its working basis, so that a resumed run goes on with
  // the same bits; the basis rotates them to the standard one (Trainer::basis()).
  const RowMajorD basis = t.basis();
  file.create_dataset<double>("/basis", {f, f});
  file.write_rows("/basis", 0, comm.is_root() ? f : 0, basis.data());
  std::vector<double> rows(evals.size() * kEvaluationFields);
  for (std::size_t i = 0; i < evals.size(); ++i) evaluation_to_row(evals[i], &rows[i * kEvaluationFields]);
  file.create_dataset<double>("/evaluations", {static_cast<Index>(evals.size()), static_cast<Index>(kEvaluationFields)});
  file.write_rows("/evaluations", 0, comm.is_root() ? evals.size() : 0, rows.data());
  file.set_attr("/", "format", "mfrec-checkpoint");
  file.set_attr("/", "signature", opt.signature);
  file.set_attr("/", "iteration", t.iterations_done());
  file.set_attr("/", "train_seconds", train_seconds);
  file.commit();
}

bool file_exists(const Comm& comm, const std::string& path) {
  int exists = comm.is_root() && std::ifstream(path).good() ? 1 : 0;
  comm.bcast(&exists, 1);
  return exists != 0;
}

}  // namespace

RunResult run_point(const Comm& comm, const GroupData& data, const RunOptions& opt, std::unique_ptr<Trainer>* trainer_out) {
  RunResult res;
  res.eval_at = opt.eval_at;
  res.ranks = comm.size();
  res.threads = opt.train.threads;
  const double t0 = Comm::wtime();
  auto trainer = std::make_unique<Trainer>(comm, data.train, opt.train);
  const int n_iter = opt.train.iterations;
  double train_seconds = 0;
  std::size_t next_eval = 0;
  std::unique_ptr<h5::File> ckpt;
  if (!opt.checkpoint.empty() && opt.resume && file_exists(comm, opt.checkpoint)) {
    ckpt = std::make_unique<h5::File>(h5::File::open(opt.checkpoint, &comm));
    if (!ckpt->has_attr("/", "signature") || ckpt->attr_string("/", "signature") != opt.signature) {
      // Another run's or another data set's checkpoint (e.g. a rerun after new data): start over.
      if (comm.is_root()) spdlog::warn("{}{} belongs to a different run or data set: starting over", opt.label, opt.checkpoint);
      ckpt.reset();
    }
  }
  if (ckpt) {
    h5::File& f = *ckpt;
    const int it = static_cast<int>(f.attr_int("/", "iteration"));
    const int fdim = opt.train.als.factors;
    const int r = comm.rank();
    const Index ub = data.train.user_bounds[r], ib = data.train.item_bounds[r];
    FactorMatrix X(data.train.user_bounds[r + 1] - ub, fdim), Y(data.train.item_bounds[r + 1] - ib, fdim);
    if (f.require<float>("/user_factors", 2, fdim)[0] != data.train.n_users ||
        f.require<float>("/item_factors", 2, fdim)[0] != data.train.n_items)
      throw InputError(opt.checkpoint + ": factor matrices of the wrong shape for this data");
    f.read_rows("/user_factors", ub, X.rows(), X.data());  // this rank's rows only
    f.read_rows("/item_factors", ib, Y.rows(), Y.data());
    f.require<double>("/evaluations", 2, static_cast<Index>(kEvaluationFields));  // rows as this version writes them
    auto rows = f.read_all<double>("/evaluations");
    for (std::size_t i = 0; i + kEvaluationFields <= rows.size(); i += kEvaluationFields)
      res.evaluations.push_back(evaluation_from_row(&rows[i]));
    train_seconds = f.attr_double("/", "train_seconds");
    Eigen::MatrixXd basis;  // absent in checkpoints from before the working basis: the standard one
    if (f.exists("/basis")) {
      f.require<double>("/basis", 2, fdim);
      const std::vector<double> b = f.read_all<double>("/basis");
      if (b.size() != static_cast<std::size_t>(fdim) * fdim) throw InputError(opt.checkpoint + ": /basis is not factors x factors");
      basis = Eigen::Map<const RowMajorD>(b.data(), fdim, fdim);
    }
    trainer->set_local_factors(std::move(X), std::move(Y), it, basis);
    next_eval = res.evaluations.size();
    res.resumed_from = it;
    if (comm.is_root()) spdlog::info("{}resumed from {} at iteration {}", opt.label, opt.checkpoint, it);
    ckpt.reset();  // closed (collectively) before training goes on
  }
  for (int it = trainer->iterations_done() + 1; it <= n_iter; ++it) {
    const double s = Comm::wtime();
    trainer->iterate();
    const double dt = comm.max(Comm::wtime() - s);
    train_seconds += dt;
    if (it == n_iter) {  // the model's factors (and the last checkpoint's): once per run, not per iteration
      auto t = trainer->timer().scope("basis");
      trainer->to_standard_basis();
    }
    std::string extra;
    if (opt.loss_every > 0 && (it % opt.loss_every == 0 || it == n_iter)) {
      auto t = trainer->timer().scope("loss");
      double l = trainer->loss();
      res.losses.emplace_back(it, l);
      extra = fmt::format(", loss {:.6g}", l);
    }
    if (opt.progress && comm.is_root()) {
      const double eta = train_seconds / it * (n_iter - it);
      spdlog::info("{}iteration {}/{}: {:.3f} s{}, ETA {}", opt.label, it, n_iter, dt, extra, format_seconds(eta));
    }
    if (next_eval < opt.eval_at.size() && opt.eval_at[next_eval] == it) {
      auto t = trainer->timer().scope("evaluation");
      // Items are the small side: every rank scores its users against all of them, held or
      // gathered (in blocks above --eval-memory).
      const double row_bytes = static_cast<double>(opt.train.als.factors) * sizeof(Real);
      const Index block_items =
          opt.eval_memory_mib > 0
              ? std::max<Index>(1, static_cast<Index>(std::min(opt.eval_memory_mib * 1024 * 1024 / row_bytes, 1e15)))
              : 0;
      const ItemFactors items = trainer->evaluation_items(block_items);
      const std::vector<Index> b =
          items.all || block_items <= 0 ? std::vector<Index>{} : item_block_bounds(items.n_items, items.factors, block_items);
      if (next_eval == 0 && comm.is_root() && b.size() > 2) {
        Index widest = 0;
        for (std::size_t j = 0; j + 1 < b.size(); ++j) widest = std::max(widest, b[j + 1] - b[j]);
        spdlog::info("{}evaluation: the {} item rows are gathered in {} blocks of up to {} (--eval-memory {} MiB), "
                     "each block twice",
                     opt.label, items.n_items, b.size() - 1, widest, opt.eval_memory_mib);
      }
      res.evaluations.push_back(evaluate(comm, data.train, data.test, trainer->local_user_factors(), items,
                                         data.popularity, opt.k, opt.train.threads, nullptr,
                                         EvalSample{opt.eval_users, opt.train.seed}));
      if (!data.knn.empty()) {  // the kNN view depends on the data only: evaluated once per group
        res.evaluations.back().knn = data.knn_view;
        res.evaluations.back().knn_k = data.knn.k;
      }
      if (opt.on_eval) opt.on_eval(it, res.evaluations.back(), *trainer);
      ++next_eval;
    }
    const bool stop = opt.should_stop && opt.should_stop() && it < n_iter;
    if (!opt.checkpoint.empty() &&
        (stop || it == n_iter || (opt.checkpoint_every > 0 && it % opt.checkpoint_every == 0))) {
      auto t = trainer->timer().scope("checkpoint");
      write_checkpoint(opt.checkpoint, comm, data, *trainer, opt, res.evaluations, train_seconds);
    }
    if (stop) {
      res.interrupted = true;
      if (comm.is_root()) spdlog::warn("{}stopped at iteration {}: checkpoint {}", opt.label, it, opt.checkpoint);
      break;
    }
  }
  if (res.interrupted) {
    res.seconds = comm.max(Comm::wtime() - t0);
    return res;
  }
  if (next_eval != opt.eval_at.size()) throw ConfigError("evaluation iterations beyond --iterations");
  res.seconds_per_iteration = n_iter > 0 ? train_seconds / n_iter : 0;  // over every incarnation
  res.seconds = comm.max(Comm::wtime() - t0);
  res.phases = trainer->timer().summary(comm);
  res.exchange = trainer->exchange();
  std::map<std::string, double> sent, received;
  const double its = std::max(1, n_iter - res.resumed_from);  // the iterations this process ran
  for (const auto& [name, t] : trainer->traffic()) {
    sent[name] = t.sent / its;
    received[name] = t.received / its;
  }
  res.sent = PhaseTimer::summarize(sent, comm);
  res.received = PhaseTimer::summarize(received, comm);
  if (trainer_out) *trainer_out = std::move(trainer);
  return res;
}

}  // namespace mfrec
