// The synthetic Retail Demo Store data set (mfrec_gen): users with personas, the product
// catalog (or a stratified subset / cloned superset of it) and their events, written to one
// HDF5 file in the schema of dataset.hpp, and optionally as CSV.
//
// The content does not depend on the number of ranks: every random choice comes from a stream
// keyed by (seed, what, index) -- a user, an item, or a node of the tree that splits the event
// total over users -- so any rank computes exactly the values that belong to it.
// docs/generator.md gives every number and what differs from the seed.
//
//   generate_random.hpp   random streams, binomial, the event split over users
//   generate_catalog.hpp  the YAML catalog and its resizing
//   generate_model.hpp    personas, item pools, the event process
//   this header           the whole data set: HDF5 (generate.cpp) and CSV (generate_csv.cpp)
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "mfrec/dataset.hpp"
#include "mfrec/generate_catalog.hpp"
#include "mfrec/generate_model.hpp"
#include "mfrec/generate_random.hpp"
#include "mfrec/paths.hpp"

namespace mfrec {
class Comm;
}

namespace mfrec::gen {

inline constexpr std::int64_t kMaxUsers = std::int64_t(1) << 31;

struct Options {
  std::int64_t n_users = 100000;
  std::int64_t n_items = 2465;  // for resize_catalog; generate() writes the table it is given
  std::int64_t n_events = 800000;
  std::uint64_t seed = 42;
  std::int64_t end_time = kDefaultEndTime;
  std::string output = "retail.h5";
  std::int64_t batch_events = 1 << 20;  // events generated and written per collective write
  int deflate = 1;                      // gzip level of /users and /events (0: none)
};

struct Summary {
  std::int64_t n_users = 0, n_items = 0, n_events = 0;
  double seconds = 0;  // the slowest rank's
};

// Collective over comm: generate and write options.output atomically (through "<output>.partial").
// `items` must be the same on every rank (resize_catalog's result).
Summary generate(const Options& opt, const dataset::ItemTable& items, const Comm& comm);

// The CSV files write_csv writes into `dir`.
inline constexpr const char* kCsvFiles[] = {"items.csv", "users.csv", "events.csv"};
// Those files as outputs of option --csv, for check_paths (when `dir` exists; else nothing in it
// can be an input or exist in the way).
std::vector<PathArg> csv_paths(const std::string& dir);

// Collective over comm: rank 0 writes users.csv, items.csv and events.csv into `dir` (created
// when missing) from the committed data set, each through AtomicFile, and renames them only when
// all three are complete. A failure is the same AgreedError on every rank and leaves none of
// them (nor `dir`, when this created it).
void write_csv(const std::string& h5_path, const std::string& dir, const Comm& comm);

}  // namespace mfrec::gen
