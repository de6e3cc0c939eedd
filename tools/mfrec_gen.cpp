// mfrec_gen: the synthetic Retail Demo Store data set (users, items, events) as one HDF5 file.
//   mpirun -n 4 mfrec_gen --users 100000 --events 800000 -o retail.h5 [--csv DIR]
// The file is the same whatever the number of ranks. See docs/generator.md.
//
// Phases: options -> check paths -> load the catalog -> generate (HDF5) -> CSV -> report.
// Every error ends every rank with status 2 and one line from rank 0 (comm.hpp's policy).
#include <cstdio>
#include <string>

#include "mfrec/comm.hpp"
#include "mfrec/config.hpp"
#include "mfrec/generate.hpp"
#include "mfrec/log.hpp"
#include "mfrec/version.hpp"

namespace {

using namespace mfrec;

struct Setup {
  gen::Options opt;
  std::string catalog = std::string(kSourceDir) + "/data/retail-demo-store-products.yaml";
  std::string csv;            // empty: no CSV
  bool items_given = false;   // else --items is the catalog's size
  std::vector<PathArg> paths;
};

// Options: declared, parsed and checked the same way on every rank (ConfigError otherwise).
// False when --help, --version or --list-options was printed.
bool read_options(int argc, char** argv, const Comm& comm, Setup& setup) {
  gen::Options& opt = setup.opt;
  std::int64_t seed = 42;
  bool verbose = false, quiet = false;

  Cli cli("mfrec_gen",
          "Generate the synthetic Retail Demo Store data set (users with personas, the product catalog,\n"
          "and View/AddToCart/ViewCart/StartCheckout/Purchase events) as one HDF5 file, in parallel.\n"
          "The output is identical for any number of ranks. See docs/generator.md.");
  cli
      .option("users", &opt.n_users, "number of users, 1 .. 2^31")
      .option("items", &opt.n_items, "number of items (default: the catalog's size): fewer takes a stratified subset of the catalog, "
       "more adds clones \"<name> #k\" of catalog items")
      .option("events", &opt.n_events, "number of events (exactly)")
      .option("seed", &seed, "random seed, >= 0")
      .option("end-time", &opt.end_time, "unix time (s) that closes the 90-day window of the events (default 2021-01-01T00:00:00Z)")
      .path("output,o", &opt.output, PathRole::OutputFile, "output HDF5 file (written atomically)")
      .path("catalog", &setup.catalog, PathRole::InputFile, "product catalog (Retail Demo Store YAML, UTF-8)")
      .path("csv", &setup.csv, PathRole::OutputDir,
       "also write users.csv, items.csv and events.csv into this directory (empty: no CSV)")
      .option("batch-events", &opt.batch_events, "events generated and written per batch (bounds memory)")
      .option("deflate", &opt.deflate, "gzip level of /users and /events, 0 .. 9")
      .flag("verbose,v", &verbose, "log debug messages")
      .flag("quiet,q", &quiet, "log warnings only");
  if (!cli.parse(argc, argv, comm.is_root())) return false;
  init_logging(comm, "mfrec_gen", verbose ? "debug" : quiet ? "warn" : "info");

  require_option(opt.n_users >= 1 && opt.n_users <= gen::kMaxUsers, "users",
                 "must be in [1, 2147483648], not " + std::to_string(opt.n_users));
  require_option(opt.n_items >= 1 && opt.n_items <= gen::kMaxItems, "items",
                 "must be in [1, 2147483647], not " + std::to_string(opt.n_items));
  require_option(opt.n_events >= 1, "events", "must be positive, not " + std::to_string(opt.n_events));
  require_option(seed >= 0, "seed", "must be >= 0, not " + std::to_string(seed));
  require_option(opt.end_time >= gen::kWindowSeconds, "end-time", "must be at least 90 days after 1970");
  require_option(opt.batch_events >= 1, "batch-events", "must be positive");
  require_option(opt.deflate >= 0 && opt.deflate <= 9, "deflate", "must be in [0, 9]");
  require_option(!opt.output.empty(), "output", "must not be empty");
  opt.seed = static_cast<std::uint64_t>(seed);
  setup.items_given = cli.given("items");

  setup.paths = cli.paths();
  for (auto& p : gen::csv_paths(setup.csv)) setup.paths.push_back(p);
  return true;
}

// The catalog, resized to --items. Read on every rank; any rank's failure stops them all.
dataset::ItemTable load_items(Setup& setup, const Comm& comm) {
  dataset::ItemTable items;
  agree_on(comm, [&] {
    try {
      const dataset::ItemTable products = gen::load_catalog(setup.catalog);
      if (!setup.items_given) setup.opt.n_items = static_cast<std::int64_t>(products.size());
      items = gen::resize_catalog(products, setup.opt.n_items, setup.opt.seed);
    } catch (const InputError& e) {
      throw InputError(std::string("option --catalog: ") + e.what());
    }
  });
  return items;
}

// The CSV copy of the committed data set; on failure the data set goes too (nothing half done).
double write_csv(const Setup& setup, const Comm& comm) {
  const double t = Comm::wtime();
  try {
    gen::write_csv(setup.opt.output, setup.csv, comm);
  } catch (const AgreedError&) {
    if (comm.is_root()) std::remove(setup.opt.output.c_str());
    throw;
  }
  return Comm::wtime() - t;
}

void report(const Setup& setup, const gen::Summary& s, double csv_seconds, const Comm& comm) {
  if (!setup.csv.empty()) spdlog::info("CSV written to {} in {}", setup.csv, format_seconds(csv_seconds));
  if (!comm.is_root()) return;
  std::printf("mfrec_gen: %lld users, %lld items, %lld events in %.2f s (%.0f events/s) on %d ranks -> %s\n",
              static_cast<long long>(s.n_users), static_cast<long long>(s.n_items),
              static_cast<long long>(s.n_events), s.seconds, static_cast<double>(s.n_events) / s.seconds,
              comm.size(), setup.opt.output.c_str());
  std::fflush(stdout);
}

int body(Comm& comm, int argc, char** argv) {
  // 1. Set-up: options.
  Setup setup;
  if (!read_options(argc, argv, comm, setup)) return 0;
  // 2. Check paths: the catalog exists, the outputs can be written and overwrite no input.
  agree_on(comm, [&] { check_paths(setup.paths); });
  // 3. Load: the catalog, resized.
  const dataset::ItemTable items = load_items(setup, comm);
  spdlog::info("{} ranks: {} users, {} items, {} events, seed {} -> {}", comm.size(), setup.opt.n_users, items.size(),
               setup.opt.n_events, setup.opt.seed, setup.opt.output);
  // 4. Generate and write the data set.
  const gen::Summary s = gen::generate(setup.opt, items, comm);
  // 5. Write the CSV copy.
  const double csv_seconds = setup.csv.empty() ? 0.0 : write_csv(setup, comm);
  // 6. Report.
  report(setup, s, csv_seconds, comm);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return mfrec::run_program("mfrec_gen", argc, argv, [&](mfrec::Comm& comm) { return body(comm, argc, argv); });
}
