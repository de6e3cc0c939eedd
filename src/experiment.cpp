#include "mfrec/experiment.hpp"

#include <spdlog/spdlog.h>

#include "mfrec/dataset.hpp"
#include "mfrec/error.hpp"

namespace mfrec {

GroupData load_group_data(const h5::File& f, const Comm& comm) {
  GroupData g;
  g.train = load_train_data(f, comm);
  auto mt = dataset::matrix_info(f, "/matrix/test");
  if (mt.n_rows != g.train.n_users || mt.n_cols != g.train.n_items)
    throw InputError(f.path() + ": /matrix/test is " + std::to_string(mt.n_rows) + " x " + std::to_string(mt.n_cols) +
                     " but /matrix/train is " + std::to_string(g.train.n_users) + " x " + std::to_string(g.train.n_items));
  const int r = comm.rank();
  g.test = dataset::read_csr_rows(f, "/matrix/test", g.train.user_bounds[r], g.train.user_bounds[r + 1]);
  g.popularity = popularity_counts(comm, g.train);
  auto ud = f.require("/users/id", h5::TypeClass::kString, 1);
  if (static_cast<Index>(ud[0]) != g.train.n_users)
    throw InputError(f.path() + ": /users/id has " + std::to_string(ud[0]) + " rows, expected " + std::to_string(g.train.n_users));
  g.user_ids_local = f.read_string_rows("/users/id", static_cast<hsize_t>(g.train.user_bounds[r]),
                                        static_cast<hsize_t>(g.train.users.n_rows()));
  g.fingerprint = dataset::fingerprint(g.train.users, comm);
  return g;
}

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
  for (int it = 1; it <= n_iter; ++it) {
    const double s = Comm::wtime();
    trainer->iterate();
    const double dt = comm.max(Comm::wtime() - s);
    train_seconds += dt;
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
      FactorMatrix Xl = trainer->local_user_factors();
      res.evaluations.push_back(evaluate(comm, data.train, data.test, Xl, trainer->item_factors(), data.popularity,
                                         opt.k, opt.train.threads));
      if (opt.on_eval) opt.on_eval(it, res.evaluations.back(), *trainer);
      ++next_eval;
    }
  }
  if (next_eval != opt.eval_at.size()) throw ConfigError("evaluation iterations beyond --iterations");
  res.seconds_per_iteration = n_iter > 0 ? train_seconds / n_iter : 0;
  res.seconds = comm.max(Comm::wtime() - t0);
  res.phases = trainer->timer().summary(comm);
  if (trainer_out) *trainer_out = std::move(trainer);
  return res;
}

}  // namespace mfrec
