// Loading mfrec_prep's input: an mfrec data set read in slices by every rank, or a CSV parsed on
// rank 0; either way validated, weighted and routed to the ranks that own the users. Every check
// ends in the same AgreedError on every rank (comm.hpp), never in a rank left waiting.
#include <algorithm>
#include <climits>
#include <optional>

#include "mfrec/comm.hpp"
#include "mfrec/prepare_steps.hpp"
#include "mfrec/utf8.hpp"

namespace mfrec::prepare {
namespace {

void check_sizes(const std::string& path, Index n_users, Index n_items) {
  if (n_users > INT32_MAX || n_items > INT32_MAX)
    throw InputError(path + ": " + std::to_string(n_users) + " users and " + std::to_string(n_items) +
                     " items: more than 2^31-1 of either is not supported");
}

// Names are stored and served as UTF-8: "" or the error for the first row of `values` (rows
// first_row...) that is not.
std::string check_text(const std::string& path, const std::string& dataset, const std::vector<std::string>& values,
                       Index first_row) {
  for (std::size_t i = 0; i < values.size(); ++i)
    if (!utf8::valid(values[i]))
      return path + ": dataset " + dataset + "[" + std::to_string(first_row + static_cast<Index>(i)) + "] " +
             utf8::describe_invalid(values[i]);
  return {};
}

void check_item_text(const std::string& path, const dataset::ItemTable& t) {
  const std::pair<const char*, const std::vector<std::string>*> columns[] = {
      {"/items/id", &t.id},       {"/items/name", &t.name},
      {"/items/category", &t.category}, {"/items/style", &t.style},
      {"/items/description", &t.description}, {"/items/gender_affinity", &t.gender_affinity}};
  for (const auto& [name, values] : columns) {
    const std::string err = check_text(path, name, *values, 0);
    if (!err.empty()) throw InputError(err);
  }
}

}  // namespace

InputFormat input_format(const Options& opt, const Comm& comm) {
  if (opt.format != InputFormat::kAuto) return opt.format;
  int code = 0;
  agree_on(comm, [&] {
    if (comm.is_root()) code = static_cast<int>(sniff_format(opt.input));
  });
  comm.bcast(&code, 1);
  return static_cast<InputFormat>(code);
}

Loaded load_hdf5(const Options& opt, const Comm& comm, PhaseTimer& timer) {
  Loaded L;
  L.format = InputFormat::kHdf5;
  L.items_full = true;
  const std::string& path = opt.input;
  std::optional<h5::File> in;
  try {
    double t0 = Comm::wtime();
    agree_on(comm, [&] { in.emplace(h5::File::open(path, &comm)); });
    // Metadata checks: every rank makes the same (collective) calls and sees the same answers.
    Index n_events = 0;
    agree_on(comm, [&] {
      if (in->has_attr("/", "format")) {
        const std::string f = in->attr_string("/", "format");
        if (f == dataset::kPreparedFormat)
          throw InputError(path + ": is already a prepared file (format " + f + "); give mfrec_prep the data set");
        if (f != dataset::kDatasetFormat)
          throw InputError(path + ": root attribute format is '" + f + "', expected '" + dataset::kDatasetFormat + "'");
      }
      L.n_users = static_cast<Index>(in->require("/users/id", h5::TypeClass::kString, 1)[0]);
      L.items = dataset::read_items(*in);
      L.n_items = static_cast<Index>(L.items.size());
      check_item_text(path, L.items);
      const char* cols[] = {"/events/user", "/events/item", "/events/type"};
      hsize_t len[3];
      for (int c = 0; c < 3; ++c) len[c] = in->require(cols[c], h5::TypeClass::kInteger, 1)[0];
      for (int c = 1; c < 3; ++c)
        if (len[c] != len[0])
          throw InputError(path + ": dataset " + cols[0] + " has " + std::to_string(len[0]) + " rows but " + cols[c] +
                           " has " + std::to_string(len[c]));
      n_events = static_cast<Index>(len[0]);
      if (n_events == 0) throw InputError(path + ": dataset /events/user is empty: no events");
      check_sizes(path, L.n_users, L.n_items);
    });
    L.n_events = n_events;
    L.users = partition_even(L.n_users, comm.size());
    {
      const Index b = L.users[comm.rank()], e = L.users[comm.rank() + 1];
      L.user_ids = in->read_string_rows("/users/id", static_cast<hsize_t>(b), static_cast<hsize_t>(e - b));
      check_agreed(comm, check_text(path, "/users/id", L.user_ids, b), b);
    }

    // Events: this rank's contiguous slice, in rounds of at most `batch` rows; each round is
    // validated, weighted and routed to the owners of its users.
    const Bounds ev = partition_even(n_events, comm.size());
    const Index begin = ev[comm.rank()], end = ev[comm.rank() + 1];
    const std::int64_t batch = std::max<std::int64_t>(1, opt.batch_events);
    const std::int64_t rounds = comm.max<std::int64_t>((end - begin + batch - 1) / batch);
    const auto buffer = static_cast<std::size_t>(std::max<std::int64_t>(1, std::min<std::int64_t>(batch, end - begin)));
    std::vector<std::int64_t> user(buffer), item(buffer), type(buffer);
    timer.add("open", Comm::wtime() - t0);
    Triplets send;
    Progress progress(comm, "reading events", static_cast<double>(n_events), opt.progress ? 5.0 : 1e30);
    for (std::int64_t round = 0; round < rounds; ++round) {
      const Index b = std::min(end, begin + round * batch), n = std::min(end, b + batch) - b;
      t0 = Comm::wtime();
      in->read_rows("/events/user", static_cast<hsize_t>(b), static_cast<hsize_t>(n), user.data());
      in->read_rows("/events/item", static_cast<hsize_t>(b), static_cast<hsize_t>(n), item.data());
      in->read_rows("/events/type", static_cast<hsize_t>(b), static_cast<hsize_t>(n), type.data());
      std::string bad;
      std::int64_t bad_row = 0;
      send.clear();
      send.row.reserve(static_cast<std::size_t>(n));
      send.col.reserve(static_cast<std::size_t>(n));
      send.value.reserve(static_cast<std::size_t>(n));
      for (Index i = 0; i < n && bad.empty(); ++i) {
        auto out_of_range = [&](const char* name, std::int64_t v, Index limit) {
          bad_row = b + i;
          bad = path + ": dataset " + name + "[" + std::to_string(b + i) + "] = " + std::to_string(v) +
                " is outside [0, " + std::to_string(limit) + ")";
        };
        if (user[i] < 0 || user[i] >= L.n_users) out_of_range("/events/user", user[i], L.n_users);
        else if (item[i] < 0 || item[i] >= L.n_items) out_of_range("/events/item", item[i], L.n_items);
        else if (type[i] < 0 || type[i] >= dataset::kNumEventTypes)
          out_of_range("/events/type", type[i], dataset::kNumEventTypes);
        else if (const float w = opt.weights[static_cast<std::size_t>(type[i])]; w > 0) {
          send.row.push_back(user[i]);
          send.col.push_back(static_cast<std::int32_t>(item[i]));
          send.value.push_back(w);
        }
      }
      check_agreed(comm, bad, bad_row);  // the lowest bad row wins, whatever the rank count
      const double t1 = Comm::wtime();
      timer.add("read", t1 - t0);
      route(send, L.users, L.records, comm);
      timer.add("route", Comm::wtime() - t1);
      progress.update(static_cast<double>(n_events) * static_cast<double>(round + 1) / static_cast<double>(rounds));
    }
    if (opt.progress) progress.finish();
    in->close();
  } catch (const AgreedError&) {
    // Every rank is here together, so the collective close cannot leave one waiting.
    if (in) in->close();
    throw;
  }
  return L;
}

Loaded load_csv(const Options& opt, InputFormat format, const Comm& comm, PhaseTimer& timer) {
  Loaded L;
  CsvData d;
  {
    auto scope = timer.scope("read");
    agree_on(comm, [&] {
      if (comm.is_root()) d = read_csv(opt.input, format, opt.weights, opt.encoding);
    });
  }
  std::int64_t head[4] = {static_cast<std::int64_t>(d.user_ids.size()), static_cast<std::int64_t>(d.item_ids.size()),
                          static_cast<std::int64_t>(d.size()), static_cast<std::int64_t>(d.format)};
  comm.bcast(head, 4);
  L.n_users = head[0];
  L.n_items = head[1];
  L.n_events = head[2];
  L.format = static_cast<InputFormat>(head[3]);
  agree_on(comm, [&] { check_sizes(opt.input, L.n_users, L.n_items); });
  if (comm.is_root() && opt.progress)
    spdlog::info("{}: {} lines, {} {} ({} users, {} items){}", opt.input, d.lines, d.size(),
                 L.format == InputFormat::kCsvEvents ? "events" : "triplets", L.n_users, L.n_items,
                 d.header ? ", header line skipped" : "");
  auto scope = timer.scope("distribute");
  L.users = partition_even(L.n_users, comm.size());
  L.user_ids = scatter_strings(d.user_ids, L.users, comm);
  d.user_ids = {};
  L.items.id = bcast_strings(d.item_ids, comm);
  d.item_ids = {};
  Triplets all;
  all.row = std::move(d.user);
  all.col = std::move(d.item);
  all.value = std::move(d.value);
  route(all, L.users, L.records, comm);
  return L;
}

}  // namespace mfrec::prepare
