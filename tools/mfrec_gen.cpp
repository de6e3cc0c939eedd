// mfrec_gen: the synthetic Retail Demo Store data set (users, items, events) as one HDF5 file.
//   mpirun -n 4 mfrec_gen --users 100000 --events 800000 -o retail.h5 [--csv DIR]
// The file is the same whatever the number of ranks. See docs/generator.md.
#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "mfrec/comm.hpp"
#include "mfrec/config.hpp"
#include "mfrec/generate.hpp"
#include "mfrec/log.hpp"
#include "mfrec/version.hpp"

namespace {

// A directory we can create files in ("" is the working directory).
bool writable_dir(const std::string& dir) {
  const std::string d = dir.empty() ? "." : dir;
  std::error_code ec;
  return std::filesystem::is_directory(d, ec) && ::access(d.c_str(), W_OK | X_OK) == 0;
}

}  // namespace

int main(int argc, char** argv) {
  return mfrec::run_program("mfrec_gen", argc, argv, [&](mfrec::Comm& comm) -> int {
    using namespace mfrec;
    gen::Options opt;
    std::int64_t seed = 42;
    std::string catalog = std::string(kSourceDir) + "/data/retail-demo-store-products.yaml";
    std::string csv;
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
        .path("catalog", &catalog, PathRole::InputFile, "product catalog (Retail Demo Store YAML)")
        .path("csv", &csv, PathRole::OutputDir,
         "also write users.csv, items.csv and events.csv into this directory (empty: no CSV)")
        .option("batch-events", &opt.batch_events, "events generated and written per batch (bounds memory)")
        .option("deflate", &opt.deflate, "gzip level of /users and /events, 0 .. 9")
        .flag("verbose,v", &verbose, "log debug messages")
        .flag("quiet,q", &quiet, "log warnings only");
    if (!cli.parse(argc, argv, comm.is_root())) return 0;
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

    // Checked on rank 0 and shared, so every rank stops with the same one-line error.
    int ok_out = 1, ok_csv = 1;
    if (comm.is_root()) {
      ok_out = writable_dir(std::filesystem::path(opt.output).parent_path().string()) &&
               !std::filesystem::is_directory(opt.output);
      if (!csv.empty()) {
        std::error_code ec;
        std::filesystem::create_directories(csv, ec);
        ok_csv = writable_dir(csv);
      }
    }
    comm.bcast(&ok_out, 1);
    comm.bcast(&ok_csv, 1);
    require_option(ok_out != 0, "output", "cannot write " + opt.output + " (no such directory, or not writable)");
    require_option(ok_csv != 0, "csv", "cannot create or write directory " + csv);

    dataset::ItemTable items;
    try {
      const dataset::ItemTable products = gen::load_catalog(catalog);
      if (!cli.given("items")) opt.n_items = static_cast<std::int64_t>(products.size());
      items = gen::resize_catalog(products, opt.n_items, opt.seed);
    } catch (const InputError& e) {
      throw ConfigError(std::string("option --catalog: ") + e.what());
    }
    spdlog::info("{} ranks: {} users, {} items, {} events, seed {} -> {}", comm.size(), opt.n_users, items.size(),
                 opt.n_events, opt.seed, opt.output);

    const gen::Summary s = gen::generate(opt, items, comm);
    double csv_seconds = 0;
    if (!csv.empty()) {
      const double t = Comm::wtime();
      gen::write_csv(opt.output, csv, comm);
      csv_seconds = Comm::wtime() - t;
      spdlog::info("CSV written to {} in {}", csv, format_seconds(csv_seconds));
    }
    if (comm.is_root()) {
      std::printf("mfrec_gen: %lld users, %lld items, %lld events in %.2f s (%.0f events/s) on %d ranks -> %s\n",
                  static_cast<long long>(s.n_users), static_cast<long long>(s.n_items),
                  static_cast<long long>(s.n_events), s.seconds, static_cast<double>(s.n_events) / s.seconds,
                  comm.size(), opt.output.c_str());
      std::fflush(stdout);
    }
    return 0;
  });
}
