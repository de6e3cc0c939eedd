// Loading mfrec_prep's input: an mfrec data set read in slices by every rank, or a CSV parsed on
// rank 0; either way validated, weighted and routed to the ranks that own the users. Every check
// ends in the same AgreedError on every rank (comm.hpp), never in a rank left waiting.
#include <algorithm>
#include <climits>
#include <optional>

#include "mfrec/comm.hpp"
#include "mfrec/csv.hpp"
#include "mfrec/prepare_catalog.hpp"
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
      Index len[3];
      for (int c = 0; c < 3; ++c) len[c] = in->require(cols[c], h5::TypeClass::kInteger, 1)[0];
      for (int c = 1; c < 3; ++c)
        if (len[c] != len[0])
          throw InputError(path + ": dataset " + cols[0] + " has " + std::to_string(len[0]) + " rows but " + cols[c] +
                           " has " + std::to_string(len[c]));
      n_events = len[0];
      if (n_events == 0) throw InputError(path + ": dataset /events/user is empty: no events");
      if (opt.split == SplitMethod::kTime) {
        if (!in->exists("/events/timestamp"))
          throw InputError(path + ": no dataset /events/timestamp: --split time needs the events' times");
        const Index n_time = in->require("/events/timestamp", h5::TypeClass::kInteger, 1)[0];
        if (n_time != len[0])
          throw InputError(path + ": dataset /events/user has " + std::to_string(len[0]) +
                           " rows but /events/timestamp has " + std::to_string(n_time));
      }
      check_sizes(path, L.n_users, L.n_items);
    });
    L.n_events = n_events;
    L.users = partition_even(L.n_users, comm.size());
    {
      const Index b = L.users[comm.rank()], e = L.users[comm.rank() + 1];
      L.user_ids = in->read_string_rows("/users/id", static_cast<Index>(b), static_cast<Index>(e - b));
      check_agreed(comm, check_text(path, "/users/id", L.user_ids, b), b);
    }

    // Events: this rank's contiguous slice, in rounds of at most `batch` rows; each round is
    // validated, weighted and routed to the owners of its users.
    const Bounds ev = partition_even(n_events, comm.size());
    const Index begin = ev[comm.rank()], end = ev[comm.rank() + 1];
    const std::int64_t batch = std::max<std::int64_t>(1, opt.batch_events);
    const std::int64_t rounds = comm.max<std::int64_t>((end - begin + batch - 1) / batch);
    const auto buffer = static_cast<std::size_t>(std::max<std::int64_t>(1, std::min<std::int64_t>(batch, end - begin)));
    const bool with_time = opt.split == SplitMethod::kTime;
    std::vector<std::int64_t> user(buffer), item(buffer), type(buffer), time(with_time ? buffer : 0);
    timer.add("open", Comm::wtime() - t0);
    Triplets send;
    Progress progress(comm, "reading events", static_cast<double>(n_events), opt.progress ? 5.0 : 1e30);
    for (std::int64_t round = 0; round < rounds; ++round) {
      const Index b = std::min(end, begin + round * batch), n = std::min(end, b + batch) - b;
      t0 = Comm::wtime();
      in->read_rows("/events/user", static_cast<Index>(b), static_cast<Index>(n), user.data());
      in->read_rows("/events/item", static_cast<Index>(b), static_cast<Index>(n), item.data());
      in->read_rows("/events/type", static_cast<Index>(b), static_cast<Index>(n), type.data());
      if (with_time) in->read_rows("/events/timestamp", static_cast<Index>(b), static_cast<Index>(n), time.data());
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
          if (opt.min_value && static_cast<double>(w) < *opt.min_value) {
            ++L.n_dropped;
            continue;
          }
          send.row.push_back(user[i]);
          send.col.push_back(static_cast<std::int32_t>(item[i]));
          send.value.push_back(w);
          if (with_time) send.time.push_back(time[i]);
        }
      }
      check_agreed(comm, bad, bad_row);  // the lowest bad row wins, whatever the rank count
      const double t1 = Comm::wtime();
      timer.add("read", t1 - t0);
      route(send, L.users, L.records, comm, with_time);
      timer.add("route", Comm::wtime() - t1);
      progress.update(static_cast<double>(n_events) * static_cast<double>(round + 1) / static_cast<double>(rounds));
    }
    if (opt.progress) progress.finish();
    L.n_dropped = comm.sum<std::int64_t>(L.n_dropped);
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
  Catalog items, users;
  const bool with_time = opt.split == SplitMethod::kTime;
  {
    auto scope = timer.scope("read");
    CsvImport how;
    how.format = format;
    how.weights = opt.weights;
    how.layout = opt.csv;
    how.layout.encoding = opt.encoding;
    how.min_value = opt.min_value;
    how.need_time = with_time;
    agree_on(comm, [&] {
      if (comm.is_root()) d = read_csv(opt.input, how);
    });
    // The catalogs, matched to the events' ids (on rank 0, which has them).
    agree_on(comm, [&] {
      if (!comm.is_root()) return;
      auto source = [&](CatalogSource c) {  // a catalog has the input's encoding and comment
        c.layout.encoding = opt.encoding;
        c.layout.comment = opt.csv.comment;
        return c;
      };
      if (!opt.items.path.empty()) items = read_catalog(source(opt.items), CatalogKind::kItems, d.item_ids);
      if (!opt.users.path.empty()) users = read_catalog(source(opt.users), CatalogKind::kUsers, d.user_ids);
    });
  }
  std::int64_t head[5] = {static_cast<std::int64_t>(d.user_ids.size()), static_cast<std::int64_t>(d.item_ids.size()),
                          d.rows, static_cast<std::int64_t>(d.format), d.dropped};
  comm.bcast(head, 5);
  L.n_users = head[0];
  L.n_items = head[1];
  L.n_events = head[2];
  L.format = static_cast<InputFormat>(head[3]);
  L.n_dropped = head[4];
  agree_on(comm, [&] { check_sizes(opt.input, L.n_users, L.n_items); });
  if (comm.is_root() && opt.progress) {
    std::string extra = d.header ? ", header line skipped" : "";
    if (d.comments > 0) extra += ", " + std::to_string(d.comments) + " comment line" + (d.comments > 1 ? "s" : "") + " skipped";
    if (opt.csv.delimiter == 0 && d.delimiter != ',') extra += ", " + csv::delimiter_name(d.delimiter) + " separated";
    if (d.dropped > 0)
      extra += ", " + std::to_string(d.dropped) + " rows below --min-value " + format_double(*opt.min_value) + " dropped";
    spdlog::info("{}: {} lines, {} {} ({} users, {} items){}", opt.input, d.lines, d.size(),
                 L.format == InputFormat::kCsvEvents ? "events" : "triplets", L.n_users, L.n_items, extra);
    for (const Catalog* c : {&items, &users}) {
      const CatalogSource& src = c == &items ? opt.items : opt.users;
      if (src.path.empty()) continue;
      const char* what = c == &items ? "items" : "users";
      const std::size_t n = c == &items ? d.item_ids.size() : d.user_ids.size();
      std::string cols;
      for (const auto& col : c->columns) cols += (cols.empty() ? "" : ",") + col;
      spdlog::info("{}: {} rows ({}{}); {} of {} {} described; {} rows for {} without events skipped{}{}", src.path,
                   c->rows, csv::delimiter_name(c->delimiter), c->header ? ", header" : "", c->matched, n, what,
                   c->rows - c->matched, what, cols.empty() ? "" : "; columns " + cols,
                   c->ignored.empty() ? "" : "; ignored " + std::to_string(c->ignored.size()) + " column(s)");
    }
  }
  auto scope = timer.scope("distribute");
  L.users = partition_even(L.n_users, comm.size());
  L.user_ids = scatter_strings(d.user_ids, L.users, comm);
  d.user_ids = {};
  if (!opt.items.path.empty()) {
    dataset::ItemTable t;
    if (comm.is_root()) t = item_table(d.item_ids, items);
    for (auto* col : {&t.id, &t.name, &t.category, &t.style, &t.description, &t.gender_affinity}) *col = bcast_strings(*col, comm);
    t.price.resize(static_cast<std::size_t>(L.n_items));
    comm.bcast(t.price.data(), t.price.size());
    L.items = std::move(t);
    L.items_full = true;
  } else {
    L.items.id = bcast_strings(d.item_ids, comm);
  }
  d.item_ids = {};
  if (!opt.users.path.empty()) {
    L.user_columns = bcast_strings(users.columns, comm);
    for (std::size_t c = 0; c < L.user_columns.size(); ++c)
      L.user_values.push_back(scatter_strings(comm.is_root() ? users.values[c] : std::vector<std::string>{}, L.users, comm));
  }
  Triplets all;
  all.row = std::move(d.user);
  all.col = std::move(d.item);
  all.value = std::move(d.value);
  all.time = std::move(d.time);
  route(all, L.users, L.records, comm, with_time);
  return L;
}

}  // namespace mfrec::prepare
