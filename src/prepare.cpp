#include "mfrec/prepare.hpp"

#include <algorithm>
#include <charconv>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <unordered_map>

#include "mfrec/comm.hpp"
#include "mfrec/config.hpp"
#include "mfrec/h5.hpp"
#include "mfrec/hash.hpp"
#include "mfrec/version.hpp"

namespace mfrec::prepare {
namespace {

namespace fs = std::filesystem;

constexpr std::int64_t kRouteChunk = 1 << 20;  // records per rank per alltoallv round


std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string event_type_list() {
  std::string s;
  for (int t = 0; t < dataset::kNumEventTypes; ++t) {
    if (t > 0) s += t + 1 == dataset::kNumEventTypes ? " or " : ", ";
    s += dataset::kEventTypes[t];
  }
  return s;
}

// Strict number: the whole (trimmed) field, as strtod reads it.
bool parse_number(const std::string& s, double& out) {
  if (s.empty()) return false;
  char* end = nullptr;
  errno = 0;
  out = std::strtod(s.c_str(), &end);
  return end == s.c_str() + s.size();
}

// Runs f; an InputError it raises becomes this rank's message (empty when none).
template <class F>
std::string catch_input(F&& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  return {};
}


// ---- loading the input ------------------------------------------------------------------------

// What a rank holds after loading: the records of its users, its slice of the user ids, and
// the whole item table.
struct Loaded {
  InputFormat format = InputFormat::kAuto;
  Index n_users = 0, n_items = 0, n_events = 0;
  Bounds users;  // partition_even(n_users, ranks)
  std::vector<std::string> user_ids;  // this rank's users
  dataset::ItemTable items;           // every rank; only ids for imported data
  bool items_full = false;            // the table came from a data set (all columns)
  Triplets records;                   // this rank's (user, item, weight) records
};

void check_sizes(const std::string& path, Index n_users, Index n_items) {
  if (n_users > INT32_MAX || n_items > INT32_MAX)
    throw InputError(path + ": " + std::to_string(n_users) + " users and " + std::to_string(n_items) +
                     " items: more than 2^31-1 of either is not supported");
}

Loaded load_hdf5(const Options& opt, const Comm& comm, PhaseTimer& timer) {
  Loaded L;
  L.format = InputFormat::kHdf5;
  L.items_full = true;
  const std::string& path = opt.input;
  std::optional<h5::File> in;
  auto fail_if = [&](const std::string& local, std::int64_t key = 0) {
    const std::string msg = agree(comm, local, key);
    if (msg.empty()) return;
    if (in) in->close();
    throw SharedInputError(msg);
  };

  double t0 = Comm::wtime();
  fail_if(catch_input([&] { in.emplace(h5::File::open(path, &comm)); }));
  // Metadata checks: every rank makes the same (collective) calls and sees the same answers.
  Index n_events = 0;
  fail_if(catch_input([&] {
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
  }));
  L.n_events = n_events;
  L.users = partition_even(L.n_users, comm.size());
  {
    const Index b = L.users[comm.rank()], e = L.users[comm.rank() + 1];
    L.user_ids = in->read_string_rows("/users/id", static_cast<hsize_t>(b), static_cast<hsize_t>(e - b));
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
    fail_if(bad, bad_row);
    const double t1 = Comm::wtime();
    timer.add("read", t1 - t0);
    route(send, L.users, L.records, comm);
    timer.add("route", Comm::wtime() - t1);
    progress.update(static_cast<double>(n_events) * static_cast<double>(round + 1) / static_cast<double>(rounds));
  }
  if (opt.progress) progress.finish();
  in->close();
  return L;
}

Loaded load_csv(const Options& opt, InputFormat format, const Comm& comm, PhaseTimer& timer) {
  Loaded L;
  CsvData d;
  {
    auto scope = timer.scope("read");
    std::string err;
    if (comm.is_root()) err = catch_input([&] { d = read_csv(opt.input, format, opt.weights); });
    err = agree(comm, err);
    if (!err.empty()) throw SharedInputError(err);
  }
  std::int64_t head[4] = {static_cast<std::int64_t>(d.user_ids.size()), static_cast<std::int64_t>(d.item_ids.size()),
                          static_cast<std::int64_t>(d.size()), static_cast<std::int64_t>(d.format)};
  comm.bcast(head, 4);
  L.n_users = head[0];
  L.n_items = head[1];
  L.n_events = head[2];
  L.format = static_cast<InputFormat>(head[3]);
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

// ---- writing ------------------------------------------------------------------------------------

void write_user_ids(h5::File& f, const std::vector<std::string>& local, Index row_begin, Index n_users,
                    const Comm& comm) {
  std::int64_t width = 1;
  for (const auto& s : local) width = std::max<std::int64_t>(width, static_cast<std::int64_t>(s.size()));
  width = comm.max(width);
  f.create_string_dataset("/users/id", static_cast<hsize_t>(n_users), static_cast<std::size_t>(width));
  f.write_string_rows("/users/id", static_cast<hsize_t>(row_begin), local);
}

// DIR/<name>.partial, written by the ranks in turn (rank order = user order); returns this
// rank's error message (empty when none). Collective.
std::string write_csv_part(const fs::path& file, const CsrBlock& m, const std::vector<std::string>& user_ids,
                           const std::vector<std::string>& item_ids, const Comm& comm) {
  std::string err;
  for (int r = 0; r < comm.size(); ++r) {
    if (r == comm.rank() && err.empty()) {
      std::ofstream out(file, r == 0 ? std::ios::trunc : std::ios::app);
      if (!out) {
        err = file.string() + ": cannot write: " + std::strerror(errno);
      } else {
        if (r == 0) out << "user_id,item_id,confidence\n";
        std::string line;
        for (Index i = 0; i < m.n_rows(); ++i) {
          const std::string user = csv::quote(user_ids[static_cast<std::size_t>(i)]);
          for (std::int64_t k = m.indptr[i]; k < m.indptr[i + 1]; ++k) {
            line = user;
            line += ',';
            line += csv::quote(item_ids[static_cast<std::size_t>(m.indices[k])]);
            line += ',';
            line += format_float(m.data[k]);
            line += '\n';
            out << line;
          }
        }
        out.close();
        if (!out) err = file.string() + ": write failed";
      }
    }
    comm.barrier();
  }
  return err;
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
  f.set_attr("/", "test_fraction", opt.test_fraction);
  f.set_attr("/", "seed", static_cast<std::int64_t>(opt.seed));
  f.set_attr("/", "split", "test iff hash(seed, user index, item index) < test_fraction, hash from splitmix64 (docs/data-format.md)");
  f.set_attr("/", "n_users", static_cast<std::int64_t>(L.n_users));
  f.set_attr("/", "n_items", static_cast<std::int64_t>(L.n_items));
  f.set_attr("/", "n_events", static_cast<std::int64_t>(L.n_events));
  f.set_attr("/", "nnz_train", static_cast<std::int64_t>(nnz_train));
  f.set_attr("/", "nnz_test", static_cast<std::int64_t>(nnz_test));
  f.set_attr("/", "nnz_train_by_item", static_cast<std::int64_t>(nnz_train));
}

}  // namespace

// ---- options --------------------------------------------------------------------------------

InputFormat parse_format(const std::string& name) {
  const std::string n = lower(name);
  if (n == "auto") return InputFormat::kAuto;
  if (n == "hdf5" || n == "h5") return InputFormat::kHdf5;
  if (n == "csv-events" || n == "events") return InputFormat::kCsvEvents;
  if (n == "csv-triplets" || n == "triplets") return InputFormat::kCsvTriplets;
  throw ConfigError("option --format: unknown format '" + name + "' (auto, hdf5, csv-events or csv-triplets)");
}

const char* format_name(InputFormat f) {
  switch (f) {
    case InputFormat::kHdf5: return "hdf5";
    case InputFormat::kCsvEvents: return "csv-events";
    case InputFormat::kCsvTriplets: return "csv-triplets";
    default: return "auto";
  }
}

InputFormat sniff_format(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw InputError(path + ": cannot open: " + std::strerror(errno));
  unsigned char sig[8] = {0};
  const std::size_t n = std::fread(sig, 1, 8, f);
  std::fclose(f);
  static const unsigned char hdf5[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
  if (n == 8 && std::memcmp(sig, hdf5, 8) == 0) return InputFormat::kHdf5;
  const std::string ext = lower(fs::path(path).extension().string());
  if (ext == ".h5" || ext == ".hdf5") return InputFormat::kHdf5;  // opening it will say what is wrong
  return InputFormat::kAuto;
}

void validate(const Options& opt) {
  require_option(!opt.input.empty(), "input", "no input file given");
  require_option(opt.test_fraction > 0 && opt.test_fraction < 1, "test-fraction",
                 "must be in (0, 1), got " + format_double(opt.test_fraction));
  bool positive = false;
  for (float w : opt.weights) {
    require_option(std::isfinite(w) && w >= 0, "weights",
                   "weights must be finite and non-negative, got " + weights_string(opt.weights));
    positive = positive || w > 0;
  }
  require_option(positive, "weights", "at least one weight must be positive");
  require_option(opt.batch_events >= 1, "batch", "must be at least 1");
  const std::string out = opt.output.empty() ? default_output(opt.input) : opt.output;
  std::error_code ec;
  require_option(!fs::equivalent(opt.input, out, ec) && out != opt.input, "output",
                 "must differ from the input file " + opt.input);
}

std::string default_output(const std::string& input) {
  fs::path p(input);
  return (p.parent_path() / (p.stem().string() + "_prepared.h5")).string();
}

std::string format_double(double v) {
  char buf[32];
  auto res = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, res.ptr);
}

std::string format_float(float v) {
  char buf[32];
  auto res = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, res.ptr);
}

std::string weights_string(const Weights& w) {
  std::string s;
  for (std::size_t t = 0; t < w.size(); ++t) s += (t ? "," : "") + format_float(w[t]);
  return s;
}

double split_hash(std::uint64_t seed, Index user, Index item) {
  const std::uint64_t h = splitmix64(splitmix64(splitmix64(seed) ^ static_cast<std::uint64_t>(user)) ^ static_cast<std::uint64_t>(item));
  return static_cast<double>(h >> 11) * 0x1.0p-53;
}

// ---- CSV ------------------------------------------------------------------------------------------

namespace csv {

std::vector<std::string> split_line(const std::string& line, char delim, const std::string& file,
                                    std::int64_t line_no) {
  std::vector<std::string> out;
  split_line(line, delim, file, line_no, out);
  return out;
}

void split_line(const std::string& line, char delim, const std::string& file, std::int64_t line_no,
                std::vector<std::string>& out) {
  std::size_t used = 0;  // fields of `out` in use: their strings keep their capacity between lines
  auto next_field = [&]() -> std::string& {
    if (used == out.size()) out.emplace_back();
    std::string& f = out[used++];
    f.clear();
    return f;
  };
  const std::size_t n = line.size();
  auto space = [delim](char c) { return (c == ' ' || c == '\t') && c != delim; };
  std::size_t i = 0;
  while (true) {
    while (i < n && space(line[i])) ++i;
    std::string& field = next_field();
    if (i < n && line[i] == '"') {
      ++i;
      bool closed = false;
      while (i < n) {
        const char c = line[i++];
        if (c != '"') {
          field += c;
        } else if (i < n && line[i] == '"') {
          field += '"';
          ++i;
        } else {
          closed = true;
          break;
        }
      }
      if (!closed)
        throw InputError(file + ":" + std::to_string(line_no) + ": unterminated quoted field " +
                         std::to_string(used));
      while (i < n && space(line[i])) ++i;
      if (i < n && line[i] != delim)
        throw InputError(file + ":" + std::to_string(line_no) + ": text after the closing quote of field " +
                         std::to_string(used));
    } else {
      const std::size_t start = i;
      while (i < n && line[i] != delim) ++i;
      std::size_t stop = i;
      while (stop > start && space(line[stop - 1])) --stop;
      field.assign(line, start, stop - start);
    }
    if (i >= n) break;
    ++i;  // the delimiter
  }
  out.resize(used);
}

char detect_delimiter(const std::string& line) {
  if (line.find(',') != std::string::npos) return ',';
  if (line.find('\t') != std::string::npos) return '\t';
  if (line.find(';') != std::string::npos) return ';';
  return ',';
}

std::string quote(const std::string& field, char delim) {
  const bool needs = field.find_first_of(std::string("\"\r\n") + delim) != std::string::npos ||
                     (!field.empty() && (field.front() == ' ' || field.front() == '\t' || field.back() == ' ' ||
                                         field.back() == '\t'));
  if (!needs) return field;
  std::string q = "\"";
  for (char c : field) {
    if (c == '"') q += '"';
    q += c;
  }
  return q + '"';
}

}  // namespace csv

namespace {

// dataset::event_type_code without allocating: case-insensitive.
int type_code(const std::string& name) {
  for (int t = 0; t < dataset::kNumEventTypes; ++t) {
    const char* k = dataset::kEventTypes[t];
    std::size_t i = 0;
    while (i < name.size() && k[i] && std::tolower(static_cast<unsigned char>(name[i])) ==
                                          std::tolower(static_cast<unsigned char>(k[i])))
      ++i;
    if (i == name.size() && !k[i]) return t;
  }
  return -1;
}

enum Column { kUser, kItem, kType, kConfidence, kTimestamp, kNumColumns };

int column_of(const std::string& name) {
  static const std::vector<std::pair<const char*, Column>> names = {
      {"user_id", kUser}, {"user", kUser}, {"userid", kUser}, {"visitorid", kUser}, {"visitor_id", kUser},
      {"customer_id", kUser}, {"item_id", kItem}, {"item", kItem}, {"itemid", kItem}, {"product_id", kItem},
      {"product", kItem}, {"productid", kItem}, {"event_type", kType}, {"type", kType}, {"event", kType},
      {"eventtype", kType}, {"confidence", kConfidence}, {"rating", kConfidence}, {"weight", kConfidence},
      {"value", kConfidence}, {"count", kConfidence}, {"score", kConfidence}, {"timestamp", kTimestamp},
      {"time", kTimestamp}, {"ts", kTimestamp}};
  const std::string n = lower(name);
  for (const auto& [alias, col] : names)
    if (n == alias) return col;
  return -1;
}

}  // namespace

CsvData parse_csv(std::istream& in, const std::string& name, InputFormat format, const Weights& weights) {
  if (format == InputFormat::kHdf5) throw Error("parse_csv: not a CSV format");
  CsvData d;
  d.format = format;
  std::unordered_map<std::string, std::int64_t> users;
  std::unordered_map<std::string, std::int32_t> items;
  // Column positions: positional (user, item, type-or-confidence[, timestamp]) unless a header
  // names them; `n_fields` < 0: positional field-count rules.
  int col_user = 0, col_item = 1, col_value = 2;
  int n_fields = -1;
  bool first = true;
  std::string line;
  std::vector<std::string> f;
  std::int64_t line_no = 0;
  auto where = [&] { return name + ":" + std::to_string(line_no) + ": "; };

  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line_no == 1 && line.compare(0, 3, "\xEF\xBB\xBF") == 0) line.erase(0, 3);  // UTF-8 byte-order mark
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    if (first) d.delimiter = csv::detect_delimiter(line);
    csv::split_line(line, d.delimiter, name, line_no, f);

    if (first) {
      first = false;
      int pos[kNumColumns] = {-1, -1, -1, -1, -1};
      bool named = false;
      for (std::size_t c = 0; c < f.size(); ++c) {
        const int col = column_of(f[c]);
        if (col >= 0 && pos[col] < 0) {
          pos[col] = static_cast<int>(c);
          named = true;
        }
      }
      double number;
      const bool unnamed_header = !named && f.size() >= 3 && !parse_number(f[2], number) &&
                                  type_code(f[2]) < 0;
      if (named) {
        d.header = true;
        if (pos[kUser] < 0 || pos[kItem] < 0)
          throw InputError(where() + "the header names no " + (pos[kUser] < 0 ? "user" : "item") +
                           " column (expected e.g. user_id,item_id,event_type or user_id,item_id,confidence)");
        if (d.format == InputFormat::kAuto) {
          if (pos[kType] >= 0) d.format = InputFormat::kCsvEvents;
          else if (pos[kConfidence] >= 0) d.format = InputFormat::kCsvTriplets;
        }
        const int need = d.format == InputFormat::kCsvTriplets ? pos[kConfidence] : pos[kType];
        if (need < 0)
          throw InputError(where() + "the header names no " +
                           (d.format == InputFormat::kCsvTriplets ? "confidence" : d.format == InputFormat::kCsvEvents ? "event_type" : "event_type or confidence") +
                           " column");
        col_user = pos[kUser];
        col_item = pos[kItem];
        col_value = need;
        n_fields = static_cast<int>(f.size());
        continue;
      }
      if (unnamed_header) {
        d.header = true;
        continue;
      }
    }

    // A data line.
    const char* layout = d.format == InputFormat::kCsvTriplets ? "user_id,item_id,confidence"
                         : d.format == InputFormat::kCsvEvents ? "user_id,item_id,event_type[,timestamp]"
                                                               : "user_id,item_id,event_type[,timestamp] or user_id,item_id,confidence";
    if (n_fields >= 0) {
      if (static_cast<int>(f.size()) != n_fields)
        throw InputError(where() + "found " + std::to_string(f.size()) + " fields, the header has " +
                         std::to_string(n_fields));
    } else if (f.size() < 3) {
      throw InputError(where() + "expected 3 fields (" + layout + "), found " + std::to_string(f.size()));
    }
    const std::string& value = f[static_cast<std::size_t>(col_value)];
    if (d.format == InputFormat::kAuto) {
      double number;
      if (type_code(value) >= 0) d.format = InputFormat::kCsvEvents;
      else if (parse_number(value, number)) d.format = InputFormat::kCsvTriplets;
      else
        throw InputError(where() + "'" + value + "' is neither an event type (" + event_type_list() +
                         ") nor a confidence; give --format");
    }
    if (n_fields < 0) {
      const std::size_t most = d.format == InputFormat::kCsvEvents ? 4 : 3;
      if (f.size() > most)
        throw InputError(where() + "expected at most " + std::to_string(most) + " fields (" +
                         (d.format == InputFormat::kCsvEvents ? "user_id,item_id,event_type[,timestamp]"
                                                              : "user_id,item_id,confidence") +
                         "), found " + std::to_string(f.size()));
    }
    const std::string& user_id = f[static_cast<std::size_t>(col_user)];
    const std::string& item_id = f[static_cast<std::size_t>(col_item)];
    if (user_id.empty()) throw InputError(where() + "empty user id");
    if (item_id.empty()) throw InputError(where() + "empty item id");
    float v;
    if (d.format == InputFormat::kCsvEvents) {
      const int code = type_code(value);
      if (code < 0)
        throw InputError(where() + "unknown event type '" + value + "' (expected " + event_type_list() + ")");
      v = weights[static_cast<std::size_t>(code)];
    } else {
      double x;
      if (value.empty()) throw InputError(where() + "empty confidence");
      if (!parse_number(value, x)) throw InputError(where() + "confidence '" + value + "' is not a number");
      if (std::isnan(x)) throw InputError(where() + "confidence '" + value + "' is NaN");
      if (x < 0) throw InputError(where() + "confidence " + value + " is negative");
      if (!std::isfinite(x) || x > std::numeric_limits<float>::max())
        throw InputError(where() + "confidence '" + value + "' is not a finite float");
      v = static_cast<float>(x);
    }
    auto u = users.try_emplace(user_id, static_cast<std::int64_t>(users.size()));
    if (u.second) d.user_ids.push_back(user_id);
    if (items.size() >= static_cast<std::size_t>(INT32_MAX) && !items.count(item_id))
      throw InputError(where() + "more than 2^31-1 distinct items");
    auto it = items.try_emplace(item_id, static_cast<std::int32_t>(items.size()));
    if (it.second) d.item_ids.push_back(item_id);
    d.user.push_back(u.first->second);
    d.item.push_back(it.first->second);
    d.value.push_back(v);
  }
  if (in.bad()) throw InputError(name + ": read error after line " + std::to_string(line_no));
  d.lines = line_no;
  if (d.size() == 0)
    throw InputError(name + ": no events" + (line_no == 0 ? " (the file is empty)" : " (no data lines)"));
  return d;
}

CsvData read_csv(const std::string& path, InputFormat format, const Weights& weights) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path + ": cannot open: " + std::strerror(errno));
  return parse_csv(in, path, format, weights);
}

// ---- distributed building blocks --------------------------------------------------------------

void route(const Triplets& local, const Bounds& rows, Triplets& out, const Comm& comm) {
  const int p = comm.size();
  // Each record travels as two int64 (row; column << 32 | value bits). A round's receive
  // buffer must stay within MPI's int counts: p * chunk * 2 < 2^31.
  const std::int64_t chunk = std::max<std::int64_t>(1, std::min<std::int64_t>(kRouteChunk, (INT_MAX / 2 - 1) / p));
  const std::int64_t n = static_cast<std::int64_t>(local.size());
  const std::int64_t rounds = comm.max<std::int64_t>((n + chunk - 1) / chunk);
  std::vector<int> dest;
  std::vector<std::int64_t> counts(p), offset(p), send;
  for (std::int64_t round = 0; round < rounds; ++round) {
    const std::int64_t b = std::min(n, round * chunk), e = std::min(n, b + chunk);
    dest.resize(static_cast<std::size_t>(e - b));
    std::fill(counts.begin(), counts.end(), 0);
    for (std::int64_t i = b; i < e; ++i) {
      const int r = owner_of(rows, local.row[i]);
      if (r < 0 || r >= p) throw Error("prepare::route: row " + std::to_string(local.row[i]) + " has no owner");
      dest[i - b] = r;
      counts[r] += 2;
    }
    std::int64_t total = 0;
    for (int r = 0; r < p; ++r) {
      offset[r] = total;
      total += counts[r];
    }
    send.resize(static_cast<std::size_t>(total));
    for (std::int64_t i = b; i < e; ++i) {
      std::uint32_t bits;
      std::memcpy(&bits, &local.value[i], sizeof bits);
      std::int64_t& o = offset[dest[i - b]];
      send[o++] = local.row[i];
      send[o++] = static_cast<std::int64_t>(static_cast<std::uint64_t>(static_cast<std::uint32_t>(local.col[i])) << 32 | bits);
    }
    const std::vector<std::int64_t> recv = comm.alltoallv(send, counts);
    const std::size_t got = recv.size() / 2, had = out.size();
    out.row.resize(had + got);
    out.col.resize(had + got);
    out.value.resize(had + got);
    for (std::size_t k = 0; k < got; ++k) {
      const auto packed = static_cast<std::uint64_t>(recv[2 * k + 1]);
      const auto bits = static_cast<std::uint32_t>(packed & 0xffffffffu);
      out.row[had + k] = recv[2 * k];
      out.col[had + k] = static_cast<std::int32_t>(packed >> 32);
      std::memcpy(&out.value[had + k], &bits, sizeof bits);
    }
  }
}

CsrBlock to_csr(Triplets&& records, Index row_begin, Index row_end, Index n_rows_global, Index n_cols) {
  // Bucket by row (counting sort), then order each row by the key (column << 32 | value bits):
  // a total order, so duplicates are summed in the same order whatever the order they arrived
  // in, and the float result does not depend on the rank count.
  const std::size_t n_rows = static_cast<std::size_t>(row_end - row_begin), n = records.size();
  std::vector<std::int64_t> start(n_rows + 1, 0);
  for (std::size_t i = 0; i < n; ++i) {
    if (records.row[i] < row_begin || records.row[i] >= row_end)
      throw Error("prepare::to_csr: row " + std::to_string(records.row[i]) + " outside this block");
    ++start[static_cast<std::size_t>(records.row[i] - row_begin) + 1];
  }
  for (std::size_t r = 0; r < n_rows; ++r) start[r + 1] += start[r];
  std::vector<std::uint64_t> keys(n);
  {
    std::vector<std::int64_t> fill(start.begin(), start.end() - 1);
    for (std::size_t i = 0; i < n; ++i) {
      std::uint32_t bits;
      std::memcpy(&bits, &records.value[i], sizeof bits);
      keys[static_cast<std::size_t>(fill[static_cast<std::size_t>(records.row[i] - row_begin)]++)] =
          static_cast<std::uint64_t>(static_cast<std::uint32_t>(records.col[i])) << 32 | bits;
    }
  }
  records = Triplets{};
  CsrBlock m;
  m.n_rows_global = n_rows_global;
  m.n_cols = n_cols;
  m.row_begin = row_begin;
  m.indptr.assign(n_rows + 1, 0);
  for (std::size_t r = 0; r < n_rows; ++r) {
    const auto first = keys.begin() + start[r], last = keys.begin() + start[r + 1];
    std::sort(first, last);
    for (auto it = first; it != last;) {
      const std::uint64_t col = *it >> 32;
      double sum = 0;
      for (; it != last && (*it >> 32) == col; ++it) {
        const auto bits = static_cast<std::uint32_t>(*it & 0xffffffffu);
        float v;
        std::memcpy(&v, &bits, sizeof v);
        sum += v;
      }
      const float v = static_cast<float>(sum);
      if (v > 0) {
        m.indices.push_back(static_cast<std::int32_t>(col));
        m.data.push_back(v);
      }
    }
    m.indptr[r + 1] = static_cast<std::int64_t>(m.indices.size());
  }
  return m;
}

CsrBlock transpose(const CsrBlock& local, const Comm& comm) {
  const Bounds cols = partition_even(local.n_cols, comm.size());
  Triplets mine;
  {
    Triplets t;
    t.row.reserve(local.indices.size());
    t.col.reserve(local.indices.size());
    t.value = local.data;
    for (Index r = 0; r < local.n_rows(); ++r)
      for (std::int64_t k = local.indptr[r]; k < local.indptr[r + 1]; ++k) {
        t.row.push_back(local.indices[k]);
        t.col.push_back(static_cast<std::int32_t>(local.row_begin + r));
      }
    route(t, cols, mine, comm);
  }
  return to_csr(std::move(mine), cols[comm.rank()], cols[comm.rank() + 1], local.n_cols, local.n_rows_global);
}

void split(const CsrBlock& all, std::uint64_t seed, double fraction, CsrBlock& train, CsrBlock& test) {
  for (CsrBlock* m : {&train, &test}) {
    *m = CsrBlock{};
    m->n_rows_global = all.n_rows_global;
    m->n_cols = all.n_cols;
    m->row_begin = all.row_begin;
    m->indptr.assign(all.indptr.size(), 0);
  }
  for (Index r = 0; r < all.n_rows(); ++r) {
    for (std::int64_t k = all.indptr[r]; k < all.indptr[r + 1]; ++k) {
      CsrBlock& m = is_test(seed, all.row_begin + r, all.indices[k], fraction) ? test : train;
      m.indices.push_back(all.indices[k]);
      m.data.push_back(all.data[k]);
    }
    train.indptr[r + 1] = static_cast<std::int64_t>(train.indices.size());
    test.indptr[r + 1] = static_cast<std::int64_t>(test.indices.size());
  }
}

// ---- the whole preparation ---------------------------------------------------------------------

Summary run(const Options& opt_in, const Comm& comm) {
  const double start = Comm::wtime();
  validate(opt_in);
  Options opt = opt_in;
  if (opt.output.empty()) opt.output = default_output(opt.input);
  Summary s;
  s.output = opt.output;

  // The input's format: rank 0 looks, everybody hears.
  InputFormat format = opt.format;
  if (format == InputFormat::kAuto) {
    std::string err;
    int code = 0;
    if (comm.is_root()) err = catch_input([&] { code = static_cast<int>(sniff_format(opt.input)); });
    err = agree(comm, err);
    if (!err.empty()) throw SharedInputError(err);
    comm.bcast(&code, 1);
    format = static_cast<InputFormat>(code);
  }
  if (comm.is_root() && opt.progress)
    spdlog::info("reading {} ({}) on {} rank{}", opt.input, format == InputFormat::kAuto ? "csv" : format_name(format),
                 comm.size(), comm.size() > 1 ? "s" : "");
  Loaded L = format == InputFormat::kHdf5 ? load_hdf5(opt, comm, s.timer) : load_csv(opt, format, comm, s.timer);
  if (L.format != InputFormat::kHdf5) {
    std::string err;
    if (comm.is_root()) err = catch_input([&] { check_sizes(opt.input, L.n_users, L.n_items); });
    err = agree(comm, err);
    if (!err.empty()) throw SharedInputError(err);
  }
  s.source_format = L.format;
  s.n_users = L.n_users;
  s.n_items = L.n_items;
  s.n_events = L.n_events;

  // Sum the records of this rank's users into CSR rows, split, transpose.
  const int rank = comm.rank();
  CsrBlock train, test, by_item;
  {
    auto scope = s.timer.scope("aggregate");
    CsrBlock all = to_csr(std::move(L.records), L.users[rank], L.users[rank + 1], L.n_users, L.n_items);
    split(all, opt.seed, opt.test_fraction, train, test);
  }
  {
    auto scope = s.timer.scope("transpose");
    by_item = transpose(train, comm);
  }
  s.nnz_train = comm.sum<std::int64_t>(train.nnz());
  s.nnz_test = comm.sum<std::int64_t>(test.nnz());
  if (s.nnz_train == 0) {
    // Every rank knows the sums: the same error everywhere.
    throw SharedInputError(opt.input + ": no non-zero (user, item) pairs left for training (" +
                           std::to_string(s.nnz_test) + " in test)");
  }

  if (comm.is_root() && opt.progress) spdlog::info("writing {}", opt.output);
  h5::File out = h5::File::create_atomic(opt.output, &comm);
  {
    auto scope = s.timer.scope("write");
    write_user_ids(out, L.user_ids, L.users[rank], L.n_users, comm);
    if (L.items_full) dataset::write_items(out, L.items);
    else out.write_strings("/items/id", L.items.id);
    dataset::write_csr(out, "/matrix/train", train, comm);
    dataset::write_csr(out, "/matrix/train_by_item", by_item, comm);
    dataset::write_csr(out, "/matrix/test", test, comm);
    set_root_attrs(out, opt, L, s.nnz_train, s.nnz_test);
  }

  // The CSV export goes to .partial files first; they are renamed after the HDF5 commit.
  std::vector<fs::path> parts;
  if (!opt.export_csv_dir.empty()) {
    auto scope = s.timer.scope("export");
    const fs::path dir(opt.export_csv_dir);
    std::string err;
    if (comm.is_root()) {
      std::error_code ec;
      fs::create_directories(dir, ec);
      if (ec) err = dir.string() + ": cannot create directory: " + ec.message();
    }
    err = agree(comm, err);
    for (const char* name : {"train.csv", "test.csv"}) {
      if (!err.empty()) break;
      parts.push_back(dir / (std::string(name) + ".partial"));
      err = agree(comm, write_csv_part(parts.back(), std::string(name) == "train.csv" ? train : test, L.user_ids,
                                       L.items.id, comm),
                  0);
    }
    if (!err.empty()) {
      if (comm.is_root())
        for (const auto& p : parts) std::remove(p.c_str());
      out.close();  // collective; the uncommitted .partial is then removed
      throw SharedIoError(err);
    }
  }
  {
    auto scope = s.timer.scope("write");
    out.commit();
  }
  if (!parts.empty()) {
    std::string err;
    if (comm.is_root()) {
      for (const auto& p : parts) {
        fs::path final_path = p;
        final_path.replace_extension();  // drop ".partial"
        std::error_code ec;
        fs::rename(p, final_path, ec);
        if (ec && err.empty()) err = final_path.string() + ": cannot rename: " + ec.message();
      }
    }
    err = agree(comm, err);
    if (!err.empty()) throw SharedIoError(err);
  }
  s.seconds = comm.max(Comm::wtime() - start);
  return s;
}

}  // namespace mfrec::prepare
