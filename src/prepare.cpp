// prepare::run and its options: the order of the steps (load, aggregate, split, transpose,
// write, export, commit); each step lives in its own file (prepare.hpp lists them).
#include "mfrec/prepare.hpp"

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <algorithm>
#include <filesystem>
#include <optional>

#include "mfrec/comm.hpp"
#include "mfrec/config.hpp"
#include "mfrec/prepare_catalog.hpp"
#include "mfrec/prepare_steps.hpp"

namespace mfrec::prepare {
namespace {

namespace fs = std::filesystem;

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
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

Encoding parse_encoding(const std::string& name) {
  const std::string n = lower(name);
  if (n == "utf-8" || n == "utf8") return Encoding::kUtf8;
  if (n == "latin1" || n == "latin-1" || n == "iso-8859-1") return Encoding::kLatin1;
  throw ConfigError("option --encoding: unknown encoding '" + name + "' (utf-8 or latin1)");
}

const char* encoding_name(Encoding e) { return e == Encoding::kLatin1 ? "latin1" : "utf-8"; }

SplitMethod parse_split(const std::string& name) {
  const std::string n = lower(name);
  if (n == "random") return SplitMethod::kRandom;
  if (n == "time") return SplitMethod::kTime;
  throw ConfigError("option --split: unknown split '" + name + "' (random or time)");
}

Order parse_order(const std::string& option, const std::string& name) {
  const std::string n = lower(name);
  if (n == "source") return Order::kSource;
  if (n == "category") return Order::kCategory;
  throw ConfigError("option --" + option + ": unknown order '" + name + "' (source or category)");
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
  require_option(opt.holdout_last >= 0, "holdout-last", "must be >= 0, got " + std::to_string(opt.holdout_last));
  require_option(opt.holdout_fraction > 0 && opt.holdout_fraction < 1, "holdout-fraction",
                 "must be in (0, 1), got " + format_double(opt.holdout_fraction));
  require_option(!opt.min_value || std::isfinite(*opt.min_value), "min-value", "must be a finite number");
  if (!opt.csv.columns.empty()) map_columns(opt.csv.columns);
  if (!opt.items.layout.columns.empty()) check_catalog_columns(CatalogKind::kItems, opt.items.layout.columns);
  if (!opt.users.layout.columns.empty()) check_catalog_columns(CatalogKind::kUsers, opt.users.layout.columns);
  // The programs check every path at start (check_paths); this keeps the one mistake that loses
  // data out of the library too.
  const std::string out = opt.output.empty() ? default_output(opt.input) : opt.output;
  require_option(!same_path(opt.input, out), "output", out + ": is the same file as --input (an input)");
}

std::string default_output(const std::string& input) {
  fs::path p(input);
  return (p.parent_path() / (p.stem().string() + "_prepared.h5")).string();
}

std::vector<PathArg> export_paths(const Options& opt) {
  std::vector<PathArg> out;
  std::error_code ec;
  if (opt.export_csv_dir.empty() || !fs::is_directory(opt.export_csv_dir, ec)) return out;
  for (const char* name : {"train.csv", "test.csv"})
    out.push_back({"export-csv", (fs::path(opt.export_csv_dir) / name).string(), PathRole::OutputFile});
  return out;
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

// ---- the whole preparation ---------------------------------------------------------------------

Summary run(const Options& opt_in, const Comm& comm) {
  const double start = Comm::wtime();
  validate(opt_in);
  Options opt = opt_in;
  if (opt.output.empty()) opt.output = default_output(opt.input);
  Summary s;
  s.output = opt.output;

  const InputFormat format = input_format(opt, comm);
  if (format == InputFormat::kHdf5) {
    // Every rank knows the format: the same ConfigError everywhere.
    const std::pair<bool, const char*> csv_only[] = {{!opt.items.path.empty(), "items"}, {!opt.users.path.empty(), "users"},
                                                     {!opt.csv.columns.empty(), "columns"}, {opt.csv.delimiter != 0, "delimiter"}};
    for (const auto& [given, name] : csv_only)
      require_option(!given, name, std::string("is for a CSV input; ") + opt.input +
                                       " is an HDF5 data set (its /items and /users are copied as they are)");
  }
  if (comm.is_root() && opt.progress)
    spdlog::info("reading {} ({}) on {} rank{}", opt.input, format == InputFormat::kAuto ? "csv" : format_name(format),
                 comm.size(), comm.size() > 1 ? "s" : "");
  Loaded L = format == InputFormat::kHdf5 ? load_hdf5(opt, comm, s.timer) : load_csv(opt, format, comm, s.timer);
  s.source_format = L.format;
  s.n_users = L.n_users;
  s.n_items = L.n_items;
  s.n_events = L.n_events;
  s.n_dropped = L.n_dropped;
  if (opt.item_order == Order::kCategory) order_items_by_category(L, opt.input);
  if (opt.user_order == Order::kCategory) order_users_by_category(L, opt.input, comm);

  // Sum the records of this rank's users into CSR rows, split, transpose.
  const int rank = comm.rank();
  CsrBlock train, test, by_item;
  {
    auto scope = s.timer.scope("aggregate");
    PairTimes times;
    if (opt.split == SplitMethod::kTime) times = first_times(L.records);
    CsrBlock all = to_csr(std::move(L.records), L.users[rank], L.users[rank + 1], L.n_users, L.n_items);
    if (opt.split == SplitMethod::kTime) split_by_time(all, times, opt.holdout_last, opt.holdout_fraction, train, test);
    else split(all, opt.seed, opt.test_fraction, train, test);
  }
  {
    auto scope = s.timer.scope("transpose");
    by_item = transpose(train, comm);
  }
  s.nnz_train = comm.sum<std::int64_t>(train.nnz());
  s.nnz_test = comm.sum<std::int64_t>(test.nnz());
  if (s.nnz_train == 0) {
    // Every rank knows the sums: the same error everywhere.
    throw AgreedError(opt.input + ": no non-zero (user, item) pairs left for training (" +
                      std::to_string(s.nnz_test) + " in test)");
  }

  if (comm.is_root() && opt.progress) spdlog::info("writing {}", opt.output);
  h5::File out = h5::File::create_atomic(opt.output, &comm);
  {
    auto scope = s.timer.scope("write");
    write_prepared(out, opt, L, Matrices{train, by_item, test, s.nnz_train, s.nnz_test}, comm);
  }
  // The CSV export is written before the HDF5 file is committed and renamed after it, so a
  // failure on either side leaves neither.
  std::optional<CsvExport> exported;
  if (!opt.export_csv_dir.empty()) {
    auto scope = s.timer.scope("export");
    try {
      exported.emplace(opt.export_csv_dir, train, test, L.user_ids, L.items.id, comm);
    } catch (const AgreedError&) {
      out.close();  // collective (every rank has the error); the uncommitted .partial is then removed
      throw;
    }
  }
  {
    auto scope = s.timer.scope("write");
    out.commit();
  }
  if (exported) {
    try {
      exported->commit();
    } catch (const AgreedError&) {
      if (comm.is_root()) std::remove(opt.output.c_str());
      throw;
    }
  }
  s.seconds = comm.max(Comm::wtime() - start);
  return s;
}

}  // namespace mfrec::prepare
