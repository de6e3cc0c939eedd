// The whole data set as one HDF5 file: each rank generates its users' attributes and events in
// batches and writes them with collective parallel HDF5 into "<output>.partial", committed at
// the end. The file does not depend on the number of ranks.
#include "mfrec/generate.hpp"

#include <algorithm>
#include <cstring>
#include <memory>

#include "mfrec/comm.hpp"
#include "mfrec/error.hpp"
#include "mfrec/h5.hpp"
#include "mfrec/log.hpp"
#include "mfrec/partition.hpp"
#include "mfrec/version.hpp"

namespace mfrec::gen {

namespace {

std::size_t digits(std::int64_t v) { return std::to_string(std::max<std::int64_t>(v, 0)).size(); }

constexpr Index kEventChunk = Index{1} << 17;
constexpr Index kUserChunk = Index{1} << 16;
constexpr std::int64_t kMaxUsersPerBatch = std::int64_t(1) << 18;

// Batches of consecutive users with about `batch_events` events each: the user offsets where
// batches start, then the end.
std::vector<std::int64_t> batch_cuts(const std::vector<std::int64_t>& counts, std::int64_t batch_events) {
  std::vector<std::int64_t> cut{0};
  std::int64_t acc = 0;
  for (std::size_t i = 0; i < counts.size(); ++i) {
    acc += counts[i];
    if (acc >= batch_events || static_cast<std::int64_t>(i + 1) - cut.back() >= kMaxUsersPerBatch) {
      cut.push_back(static_cast<std::int64_t>(i + 1));
      acc = 0;
    }
  }
  if (cut.back() != static_cast<std::int64_t>(counts.size())) cut.push_back(static_cast<std::int64_t>(counts.size()));
  return cut;
}

// /users and /events with their final sizes (collective).
void create_datasets(h5::File& f, const Options& opt) {
  const h5::DatasetOptions user_opt{kUserChunk, opt.deflate}, event_opt{kEventChunk, opt.deflate};
  const auto n_users = static_cast<Index>(opt.n_users), n_events = static_cast<Index>(opt.n_events);
  std::size_t persona_width = 1;
  for (const auto& p : persona_names()) persona_width = std::max(persona_width, p.size());
  f.create_string_dataset("/users/id", n_users, digits(opt.n_users - 1), user_opt);
  f.create_string_dataset("/users/gender", n_users, 1, user_opt);
  f.create_dataset<std::int16_t>("/users/age", {n_users}, user_opt);
  f.create_string_dataset("/users/persona", n_users, persona_width, user_opt);
  f.create_string_dataset("/users/discount_persona", n_users, std::strlen(kDiscountPersonas[2]), user_opt);
  f.create_string_dataset("/users/channel", n_users, 7, user_opt);
  f.create_dataset<std::int64_t>("/events/user", {n_events}, event_opt);
  f.create_dataset<std::int32_t>("/events/item", {n_events}, event_opt);
  f.create_dataset<std::uint8_t>("/events/type", {n_events}, event_opt);
  f.create_dataset<std::int64_t>("/events/timestamp", {n_events}, event_opt);
  f.create_dataset<std::uint8_t>("/events/discount", {n_events}, event_opt);
}

void set_root_attrs(h5::File& f, const Options& opt, const dataset::ItemTable& items) {
  std::string type_names;
  for (const char* t : dataset::kEventTypes) type_names += (type_names.empty() ? "" : ",") + std::string(t);
  f.set_attr("/events/type", "names", type_names);
  f.set_attr("/", "format", dataset::kDatasetFormat);
  f.set_attr("/", "format_version", dataset::kFormatVersion);
  f.set_attr("/", "generator", "mfrec_gen");
  f.set_attr("/", "generator_version", kVersion);
  f.set_attr("/", "seed", static_cast<std::int64_t>(opt.seed));
  f.set_attr("/", "n_users", opt.n_users);
  f.set_attr("/", "n_items", static_cast<std::int64_t>(items.size()));
  f.set_attr("/", "n_events", opt.n_events);
  f.set_attr("/", "end_time", opt.end_time);
  f.set_attr("/", "window_days", static_cast<std::int64_t>(kWindowDays));
}

}  // namespace

Summary generate(const Options& opt, const dataset::ItemTable& items, const Comm& comm) {
  const double t0 = Comm::wtime();
  if (opt.n_users < 1 || opt.n_users > kMaxUsers) throw ConfigError("option --users: must be in [1, 2^31]");
  if (opt.n_events < 1) throw ConfigError("option --events: must be positive");
  if (opt.batch_events < 1) throw ConfigError("option --batch-events: must be positive");
  if (opt.deflate < 0 || opt.deflate > 9) throw ConfigError("option --deflate: must be in [0, 9]");
  if (items.size() == 0) throw ConfigError("option --items: must be positive");

  PhaseTimer timer;
  auto model_scope = std::make_unique<PhaseTimer::Scope>(timer, "model");
  const Model model(items, opt.seed);
  const Bounds bounds = partition_even(opt.n_users, comm.size());
  const std::int64_t u_begin = bounds[comm.rank()], u_end = bounds[comm.rank() + 1];
  const auto counts = user_event_counts(opt.n_events, opt.n_users, opt.seed, u_begin, u_end);
  std::int64_t local_events = 0;
  for (auto c : counts) local_events += c;
  const std::int64_t event_begin = comm.exscan_sum(local_events);

  // Every rank makes as many collective writes as the rank with the most batches (the others
  // write nothing).
  const std::vector<std::int64_t> cut = batch_cuts(counts, opt.batch_events);
  const auto local_batches = static_cast<std::int64_t>(cut.size()) - 1;
  const std::int64_t n_batches = comm.max(local_batches);

  model_scope.reset();
  auto create_scope = std::make_unique<PhaseTimer::Scope>(timer, "create");
  h5::File f = h5::File::create_atomic(opt.output, &comm);
  create_datasets(f, opt);
  dataset::write_items(f, items);
  create_scope.reset();

  Progress progress(comm, "events (rank 0's share)", static_cast<double>(local_events), 2.0);
  EventColumns ev;
  std::vector<std::string> ids, gender, persona, discount, channel;
  std::vector<std::int16_t> age;
  std::int64_t written = 0;
  for (std::int64_t b = 0; b < n_batches; ++b) {
    ev.clear();
    for (auto* v : {&ids, &gender, &persona, &discount, &channel}) v->clear();
    age.clear();
    const std::int64_t lo = b < local_batches ? cut[b] : 0, hi = b < local_batches ? cut[b + 1] : 0;
    std::int64_t batch_events = 0;
    for (std::int64_t i = lo; i < hi; ++i) batch_events += counts[i];
    auto gen_scope = std::make_unique<PhaseTimer::Scope>(timer, "generate");
    ev.user.reserve(batch_events);
    ev.item.reserve(batch_events);
    ev.type.reserve(batch_events);
    ev.timestamp.reserve(batch_events);
    ev.discount.reserve(batch_events);
    for (std::int64_t i = lo; i < hi; ++i) {
      const User u = model.user_and_events(u_begin + i, counts[i], opt.end_time, ev);
      ids.push_back(std::to_string(u.index));
      gender.emplace_back(1, u.gender);
      age.push_back(u.age);
      persona.push_back(persona_names()[u.persona]);
      discount.emplace_back(kDiscountPersonas[u.discount_persona]);
      channel.emplace_back(u.cstore ? "c-store" : "web");
    }
    gen_scope.reset();
    auto write_scope = std::make_unique<PhaseTimer::Scope>(timer, "write");
    const auto user_row = static_cast<Index>(u_begin + lo);
    f.write_string_rows("/users/id", user_row, ids);
    f.write_string_rows("/users/gender", user_row, gender);
    f.write_rows("/users/age", user_row, age.size(), age.data());
    f.write_string_rows("/users/persona", user_row, persona);
    f.write_string_rows("/users/discount_persona", user_row, discount);
    f.write_string_rows("/users/channel", user_row, channel);
    const auto event_row = static_cast<Index>(event_begin + written);
    f.write_rows("/events/user", event_row, ev.size(), ev.user.data());
    f.write_rows("/events/item", event_row, ev.size(), ev.item.data());
    f.write_rows("/events/type", event_row, ev.size(), ev.type.data());
    f.write_rows("/events/timestamp", event_row, ev.size(), ev.timestamp.data());
    f.write_rows("/events/discount", event_row, ev.size(), ev.discount.data());
    written += static_cast<std::int64_t>(ev.size());
    progress.update(static_cast<double>(written));
  }
  if (written != local_events) throw Error("generate: wrote " + std::to_string(written) + " events, expected " +
                                           std::to_string(local_events));
  progress.finish();

  auto commit_scope = std::make_unique<PhaseTimer::Scope>(timer, "commit");
  set_root_attrs(f, opt, items);
  f.commit();
  commit_scope.reset();
  for (const auto& [phase, st] : timer.summary(comm))
    spdlog::debug("phase {}: min {:.3f} s, mean {:.3f} s, max {:.3f} s", phase, st.min, st.mean, st.max);

  Summary s;
  s.n_users = opt.n_users;
  s.n_items = static_cast<std::int64_t>(items.size());
  s.n_events = opt.n_events;
  s.seconds = comm.max(Comm::wtime() - t0);
  return s;
}

}  // namespace mfrec::gen
