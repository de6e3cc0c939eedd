// A small model trained on a prepared test file and written with the library's writer: what the
// recommend, batch and serve tests query.
#pragma once
#include <memory>
#include <string>

#include "mfrec/comm.hpp"
#include "mfrec/dataset.hpp"
#include "mfrec/h5.hpp"
#include "mfrec/model.hpp"
#include "mfrec/training_run.hpp"

namespace mfrec::testdata {

// Quick training options for the trainer tests: `factors` factors, lambda 0.5, alpha 2, one
// thread, no progress lines, evaluated at K = 5 after the last iteration.
inline RunOptions quick_run_options(Solver solver, int iterations, int factors) {
  RunOptions o;
  o.train.als.factors = factors;
  o.train.als.regularization = 0.5f;
  o.train.als.alpha = 2.0f;
  o.train.als.solver = solver;
  o.train.iterations = iterations;
  o.train.threads = 1;
  o.eval_at = {iterations};
  o.k = 5;
  o.progress = false;
  return o;
}

// Trains `als` for `iterations` on `data` (collective over comm) and writes the model to `model`.
inline void train_model(const Comm& comm, const std::string& data, const std::string& model, const AlsParams& als,
                        int iterations, std::uint64_t seed = 42) {
  h5::File f = h5::File::open(data, &comm);
  GroupData d = load_group_data(f, comm);
  dataset::ItemTable items = dataset::read_items(f);
  RunOptions o;
  o.train.als = als;
  o.train.iterations = iterations;
  o.train.threads = 1;
  o.train.seed = seed;
  o.eval_at = {iterations};
  o.k = 5;
  o.progress = false;
  std::unique_ptr<Trainer> t;
  run_point(comm, d, o, &t);
  ModelMeta meta;
  meta.als = als;
  meta.iterations = iterations;
  meta.dataset = data;
  ModelParts parts{&t->local_user_factors(), &t->local_item_factors(), d.train.item_bounds[comm.rank()], &d.train.users,
                   d.user_ids_local, &items, &d.popularity};
  write_model(model, comm, parts, meta);
}

}  // namespace mfrec::testdata
