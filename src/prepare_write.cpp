// Writing the prepared file: user ids, the item table, the three CSR matrices and the root
// attributes that say how they were made (docs/data-format.md). Collective; the caller commits.
#include <algorithm>

#include "mfrec/comm.hpp"
#include "mfrec/prepare_steps.hpp"
#include "mfrec/version.hpp"

namespace mfrec::prepare {
namespace {

// A distributed string column: each rank writes its users' rows.
void write_user_column(h5::File& f, const std::string& name, const std::vector<std::string>& local, Index row_begin,
                       Index n_users, const Comm& comm) {
  std::int64_t width = 1;
  for (const auto& s : local) width = std::max<std::int64_t>(width, static_cast<std::int64_t>(s.size()));
  width = comm.max(width);
  f.create_string_dataset(name, static_cast<Index>(n_users), static_cast<std::size_t>(width));
  f.write_string_rows(name, static_cast<Index>(row_begin), local);
}

void set_root_attrs(h5::File& f, const Options& opt, const Loaded& L, Index nnz_train, Index nnz_test) {
  f.set_attr("/", "format", dataset::kPreparedFormat);
  f.set_attr("/", "format_version", dataset::kFormatVersion);
  f.set_attr("/", "program", std::string("mfrec_prep ") + kVersion);
  f.set_attr("/", "source", opt.input);
  f.set_attr("/", "source_format", format_name(L.format));
  std::string types;
  for (int t = 0; t < dataset::kNumEventTypes; ++t) types += std::string(t ? "," : "") + dataset::kEventTypes[t];
  f.set_attr("/", "event_types", types);
  f.set_attr("/", "weights", weights_string(opt.weights));
  if (opt.split == SplitMethod::kTime) {
    // Attributes only a time split has, so a random split's file stays as it always was.
    f.set_attr("/", "split_method", "time");
    if (opt.holdout_last > 0) f.set_attr("/", "holdout_last", static_cast<std::int64_t>(opt.holdout_last));
    else f.set_attr("/", "holdout_fraction", opt.holdout_fraction);
    f.set_attr("/", "split", std::string("each user's ") +
                                 (opt.holdout_last > 0 ? "last holdout_last" : "latest round(holdout_fraction * n)") +
                                 " pairs by (time of the pair's first event, item index) are test, at most n - 1 (docs/data-format.md)");
  } else {
    f.set_attr("/", "test_fraction", opt.test_fraction);
    f.set_attr("/", "seed", static_cast<std::int64_t>(opt.seed));
    f.set_attr("/", "split", "test iff hash(seed, user index, item index) < test_fraction, hash from splitmix64 (docs/data-format.md)");
  }
  if (opt.min_value) {
    f.set_attr("/", "min_value", *opt.min_value);
    f.set_attr("/", "n_dropped", static_cast<std::int64_t>(L.n_dropped));
  }
  if (opt.item_order == Order::kCategory) f.set_attr("/", "item_order", "category");
  if (opt.user_order == Order::kCategory) f.set_attr("/", "user_order", "category");
  if (!opt.items.path.empty()) f.set_attr("/", "items_source", opt.items.path);
  if (!opt.users.path.empty()) f.set_attr("/", "users_source", opt.users.path);
  f.set_attr("/", "n_users", static_cast<std::int64_t>(L.n_users));
  f.set_attr("/", "n_items", static_cast<std::int64_t>(L.n_items));
  f.set_attr("/", "n_events", static_cast<std::int64_t>(L.n_events));
  f.set_attr("/", "nnz_train", static_cast<std::int64_t>(nnz_train));
  f.set_attr("/", "nnz_test", static_cast<std::int64_t>(nnz_test));
  f.set_attr("/", "nnz_train_by_item", static_cast<std::int64_t>(nnz_train));
}

}  // namespace

void write_prepared(h5::File& out, const Options& opt, const Loaded& L, const Matrices& m, const Comm& comm) {
  write_user_column(out, "/users/id", L.user_ids, L.users[comm.rank()], L.n_users, comm);
  for (std::size_t c = 0; c < L.user_columns.size(); ++c)
    write_user_column(out, "/users/" + L.user_columns[c], L.user_values[c], L.users[comm.rank()], L.n_users, comm);
  if (L.items_full) dataset::write_items(out, L.items);
  else out.write_strings("/items/id", L.items.id);
  dataset::write_csr(out, "/matrix/train", m.train, comm);
  dataset::write_csr(out, "/matrix/train_by_item", m.by_item, comm);
  dataset::write_csr(out, "/matrix/test", m.test, comm);
  set_root_attrs(out, opt, L, m.nnz_train, m.nnz_test);
}

}  // namespace mfrec::prepare
