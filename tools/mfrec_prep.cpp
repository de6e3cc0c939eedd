// mfrec_prep: events (an mfrec data set, or a CSV of real events or triplets) -> the prepared
// file with the train / test matrices. Run under mpirun with any number of ranks; the output is
// the same byte for byte.
//
// Phases: options -> check paths -> prepare (load, aggregate, split, transpose, write) -> report.
// Every error ends every rank with status 2 and one line from rank 0 (comm.hpp's policy).
#include <cmath>
#include <string>

#include "mfrec/comm.hpp"
#include "mfrec/config.hpp"
#include "mfrec/csv.hpp"
#include "mfrec/log.hpp"
#include "mfrec/prepare.hpp"

namespace {

using namespace mfrec;

struct TypeOption {
  const char* name;
  int type;
};
constexpr TypeOption kTypeOptions[] = {{"weight-view", 0},
                                       {"weight-add-to-cart", 1},
                                       {"weight-view-cart", 2},
                                       {"weight-start-checkout", 3},
                                       {"weight-purchase", 4}};

// --delimiter and --columns (or their --items- / --users- forms) into a layout.
void read_layout(const Cli& cli, const char* delim_option, const std::string& delim, const char* columns_option,
                 const std::string& columns, prepare::CsvLayout& layout) {
  if (delim != "auto")
    require_option(csv::delimiter_from_name(delim, layout.delimiter), delim_option,
                   "'" + delim + "' is not one character nor tab, comma, semicolon, pipe, whitespace or ::");
  if (!cli.given(columns_option)) return;
  layout.columns.clear();
  std::size_t b = 0;
  while (true) {
    const std::size_t e = columns.find(',', b);
    std::string name = columns.substr(b, e == std::string::npos ? std::string::npos : e - b);
    while (!name.empty() && name.back() == ' ') name.pop_back();
    while (!name.empty() && name.front() == ' ') name.erase(0, 1);
    layout.columns.push_back(name);
    if (e == std::string::npos) break;
    b = e + 1;
  }
  require_option(layout.columns.size() >= 2, columns_option, "expected at least two comma-separated names, got '" + columns + "'");
}

struct Setup {
  prepare::Options opt;
  std::vector<PathArg> paths;
};

// Options: declared, parsed and checked the same way on every rank (ConfigError otherwise).
// False when --help, --version or --list-options was printed.
bool read_options(int argc, char** argv, const Comm& comm, Setup& setup) {
  prepare::Options& opt = setup.opt;
  std::string format = "auto", encoding = "utf-8", weights, delimiter = "auto", columns, comment = "#", split = "random", item_order = "source",
              user_order = "source";
  std::string items_delimiter = "auto", items_columns, users_delimiter = "auto", users_columns;
  double min_value = 0;
  std::int64_t seed = 42;
  float type_weight[5] = {0, 0, 0, 0, 0};
  bool verbose = false, quiet = false;
  opt.input = "retail.h5";

  Cli cli("mfrec_prep",
          "Turn events into training matrices: weights events into confidences, sums them per (user, item),\n"
          "holds out --test-fraction of the pairs (seeded hash) and writes /matrix/{train,train_by_item,test}.\n"
          "Input: an mfrec data set (HDF5), a CSV of events (user_id,item_id,event_type[,timestamp]) or a CSV\n"
          "of triplets (user_id,item_id,confidence[,timestamp]), with or without a header line, separated by\n"
          "commas, tabs, semicolons, pipes or blanks (e.g. MovieLens's u.data as it is).");
  cli.path("input,i", &opt.input, PathRole::InputFile, "the data set (HDF5 from mfrec_gen) or a CSV file")
     .path("output,o", &opt.output, PathRole::OutputFile, "the prepared file (default: <input stem>_prepared.h5 beside the input)")
     .option("format", &format, "input format: auto, hdf5, csv-events or csv-triplets")
     .option("encoding", &encoding, "text encoding of a CSV input and its catalogs: utf-8 (text must be valid UTF-8) or latin1 (converted to UTF-8)")
     .option("delimiter", &delimiter, "field separator of a CSV input: auto (comma, tab, semicolon, ::, pipe or blanks, from the first lines), or a character, tab, comma, semicolon, pipe, whitespace, ::")
     .optional("columns", &columns, "names of a headerless CSV's columns, e.g. user,item,rating,timestamp (- skips one); the first line is then data")
     .option("comment", &comment, "lines starting with this text are skipped (\"\" or none: no comment lines)")
     .optional("min-value", &min_value, "drop records whose value (a triplet's confidence, or an event's weight) is below this, before summing")
     .path("items", &opt.items.path, PathRole::InputFile, "item catalog of a CSV input: id plus any of name (title), category (genres), style, description, price")
     .option("items-delimiter", &items_delimiter, "field separator of --items (as --delimiter)")
     .optional("items-columns", &items_columns, "names of a headerless --items file's first columns, e.g. id,name (- skips one; later fields are ignored)")
     .path("users", &opt.users.path, PathRole::InputFile, "user catalog of a CSV input: id plus any columns, stored as /users/<column>")
     .option("users-delimiter", &users_delimiter, "field separator of --users (as --delimiter)")
     .optional("users-columns", &users_columns, "names of a headerless --users file's first columns, e.g. id,age,gender (- skips one)")
     .optional("weights", &weights, "confidence weights of View,AddToCart,ViewCart,StartCheckout,Purchase (default 1,2,3,4,5)");
  for (const auto& t : kTypeOptions)
    cli.optional(t.name, &type_weight[t.type], std::string("weight of ") + dataset::kEventTypes[t.type] + " events (overrides --weights)");
  cli.option("split", &split, "how test pairs are chosen: random (a seeded hash of each pair) or time (each user's latest pairs; needs timestamps)")
     .option("test-fraction", &opt.test_fraction,
      "share of the non-zero (user, item) pairs held out for testing, in (0, 1) (--split random)")
     .option("seed", &seed, "seed of the train/test split (>= 0) (--split random)")
     .optional("holdout-last", &opt.holdout_last, "--split time: hold out each user's last K pairs (by the time of their first event)")
     .optional("holdout-fraction", &opt.holdout_fraction, "--split time: hold out each user's latest share of pairs, in (0, 1) (default 0.2)")
     .option("item-order", &item_order,
      "order of the items in the prepared file: source (the input's) or category (grouped by category and style: "
      "fewer bytes exchanged per rank and better cache locality when training on many ranks)")
     .option("user-order", &user_order,
      "order of the users in the prepared file: source (the input's) or category (grouped by the category most of "
      "their items are in, then by their first item in it: better cache locality when training on large data)")
     .option("batch", &opt.batch_events, "events per rank per read-and-route round (bounds memory)")
     .path("export-csv", &opt.export_csv_dir, PathRole::OutputDir, "also write DIR/train.csv and DIR/test.csv (user_id,item_id,confidence with the original ids)")
     .flag("verbose,v", &verbose, "debug logging")
     .flag("quiet,q", &quiet, "warnings and errors only");
  if (!cli.parse(argc, argv, comm.is_root())) return false;
  init_logging(comm, "mfrec_prep", quiet ? "warn" : verbose ? "debug" : "info");

  opt.format = prepare::parse_format(format);
  opt.encoding = prepare::parse_encoding(encoding);
  opt.split = prepare::parse_split(split);
  opt.item_order = prepare::parse_order("item-order", item_order);
  opt.user_order = prepare::parse_order("user-order", user_order);
  read_layout(cli, "delimiter", delimiter, "columns", columns, opt.csv);
  read_layout(cli, "items-delimiter", items_delimiter, "items-columns", items_columns, opt.items.layout);
  read_layout(cli, "users-delimiter", users_delimiter, "users-columns", users_columns, opt.users.layout);
  opt.csv.comment = comment == "none" ? "" : comment;
  for (const char* name : {"items", "users"})
    for (const char* suffix : {"-delimiter", "-columns"})
      require_option(!cli.given(std::string(name) + suffix) || cli.given(name), std::string(name) + suffix,
                     std::string("only with --") + name);
  if (cli.given("min-value")) opt.min_value = min_value;
  if (opt.split == prepare::SplitMethod::kTime) {
    for (const char* name : {"test-fraction", "seed"})
      require_option(!cli.given(name), name, "is for --split random; with --split time give --holdout-fraction or --holdout-last");
    require_option(!(cli.given("holdout-last") && cli.given("holdout-fraction")), "holdout-last",
                   "give --holdout-last or --holdout-fraction, not both");
    require_option(!cli.given("holdout-last") || opt.holdout_last >= 1, "holdout-last",
                   "must be at least 1, got " + std::to_string(opt.holdout_last));
  } else {
    for (const char* name : {"holdout-last", "holdout-fraction"})
      require_option(!cli.given(name), name, "only with --split time");
  }
  if (cli.given("weights")) {
    const auto w = parse_list<float>("weights", weights);
    require_option(w.size() == opt.weights.size(), "weights",
                   "expected " + std::to_string(opt.weights.size()) +
                       " weights (View,AddToCart,ViewCart,StartCheckout,Purchase), got " + std::to_string(w.size()));
    for (std::size_t t = 0; t < w.size(); ++t) opt.weights[t] = w[t];
  }
  for (const auto& t : kTypeOptions) {
    if (!cli.given(t.name)) continue;
    const float w = type_weight[t.type];
    require_option(std::isfinite(w) && w >= 0, t.name, "must be finite and non-negative, got " + prepare::format_float(w));
    opt.weights[static_cast<std::size_t>(t.type)] = w;
  }
  require_option(seed >= 0, "seed", "must be >= 0, got " + std::to_string(seed));
  opt.seed = static_cast<std::uint64_t>(seed);
  opt.progress = !quiet;
  prepare::validate(opt);

  // The paths as they will be used: the default output, and the export's files.
  if (opt.output.empty()) opt.output = prepare::default_output(opt.input);
  setup.paths = cli.paths();
  for (auto& p : setup.paths)
    if (p.option == "output") p.path = opt.output;
  for (auto& p : prepare::export_paths(opt)) setup.paths.push_back(p);
  return true;
}

void report(const prepare::Options& opt, const prepare::Summary& s, const Comm& comm) {
  const auto phases = s.timer.summary(comm);
  if (!comm.is_root()) return;
  // What was used: triplets' confidences are taken as given (the event weights play no part).
  const std::string values = s.source_format == prepare::InputFormat::kCsvTriplets
                                 ? std::string("confidences as given")
                                 : "weights " + prepare::weights_string(opt.weights);
  std::string split;
  if (opt.split == prepare::SplitMethod::kTime)
    split = opt.holdout_last > 0 ? "time split, each user's last " + std::to_string(opt.holdout_last) + " pairs held out"
                                 : "time split, each user's latest " + prepare::format_double(opt.holdout_fraction) +
                                       " of pairs held out";
  else
    split = "test fraction " + prepare::format_double(opt.test_fraction) + ", seed " + std::to_string(opt.seed);
  spdlog::info("wrote {} ({} input, {}, {})", s.output, prepare::format_name(s.source_format), values, split);
  if (opt.min_value)
    spdlog::info("users {}, items {}, events read {}, {} below --min-value {} dropped", s.n_users, s.n_items, s.n_events,
                 s.n_dropped, prepare::format_double(*opt.min_value));
  else
    spdlog::info("users {}, items {}, events read {}", s.n_users, s.n_items, s.n_events);
  spdlog::info("non-zeros: train {}, test {} ({:.1f}% held out), density {:.4f}%", s.nnz_train, s.nnz_test,
               100.0 * double(s.nnz_test) / double(std::max<Index>(1, s.nnz_train + s.nnz_test)),
               100.0 * s.density());
  for (const auto& [name, st] : phases)
    spdlog::info("  {:<10} {:.3f}s (min {:.3f}s, max {:.3f}s over {} ranks)", name, st.mean, st.min, st.max,
                 comm.size());
  spdlog::info("prepared in {:.3f}s on {} rank{}", s.seconds, comm.size(), comm.size() > 1 ? "s" : "");
}

int body(Comm& comm, int argc, char** argv) {
  // 1. Set-up: options.
  Setup setup;
  if (!read_options(argc, argv, comm, setup)) return 0;
  // 2. Check paths: inputs exist, outputs can be written and overwrite no input.
  agree_on(comm, [&] { check_paths(setup.paths); });
  // 3. Load, aggregate, split, transpose and write (prepare::run's steps).
  const prepare::Summary s = prepare::run(setup.opt, comm);
  // 4. Report.
  report(setup.opt, s, comm);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return mfrec::run_program("mfrec_prep", argc, argv, [&](mfrec::Comm& comm) { return body(comm, argc, argv); });
}
