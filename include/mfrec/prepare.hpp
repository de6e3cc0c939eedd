// Events to training matrices (mfrec_prep): weights events into confidences, sums them per
// (user, item), holds out a seeded share of the pairs (or each user's latest pairs) for testing,
// and writes the prepared file. A CSV input may come with item and user catalogs.
//
// Distributed path (collective over the Comm):
//   1. each rank reads a contiguous slice of /events in bounded batches (a CSV is parsed on
//      rank 0, which then is the only sender);                              prepare_load.cpp
//   2. every event goes to the rank owning its user (partition_even over users) by alltoallv;
//   3. each rank sorts its (user, item, weight) records and sums them into its CSR rows
//      (summed in a fixed order, in double, so the result does not depend on the rank count);
//   4. a hash of (seed, user, item) sends each pair to test or train (--split random), or each
//      user's latest pairs by the time of their first event go to test (--split time: the
//      records carry their timestamps through the routing);
//   5. the train pairs are routed by item owner to build the transpose;    prepare_matrix.cpp
//   6. everything is written with parallel HDF5 to "<output>.partial"      prepare_write.cpp
//      (and the CSV export to DIR/{train,test}.csv.partial),               prepare_export.cpp
//      then renamed.
// The output file is byte-identical for any number of ranks. Errors follow comm.hpp's policy:
// bad input raises the same AgreedError on every rank, and nothing is left behind.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "mfrec/log.hpp"
#include "mfrec/paths.hpp"
#include "mfrec/prepare_csv.hpp"
#include "mfrec/prepare_matrix.hpp"

namespace mfrec {
class Comm;
}

namespace mfrec::prepare {

// "auto", "hdf5", "csv-events", "csv-triplets" (ConfigError naming --format otherwise).
InputFormat parse_format(const std::string& name);
const char* format_name(InputFormat f);
// "utf-8" or "latin1" (ConfigError naming --encoding otherwise).
Encoding parse_encoding(const std::string& name);
const char* encoding_name(Encoding e);
// The format of a file by its signature and extension: HDF5 signature -> kHdf5; anything else
// -> kAuto (a CSV whose kind, events or triplets, is told from its content).
InputFormat sniff_format(const std::string& path);

// How the test pairs are chosen: a seeded hash of (user, item) (docs/data-format.md), or each
// user's latest pairs by time.
enum class SplitMethod { kRandom, kTime };
SplitMethod parse_split(const std::string& name);  // "random" or "time" (ConfigError otherwise)

// The order of the prepared file's items (--item-order) or users (--user-order): the input's, or
// by category. Items grouped by (category, style): a block of consecutive items holds few
// categories and a user's items fall in few blocks (fewer ranks to send each user row to, and
// nearby item rows in the solver's gathers). Users grouped by their main category (the one most
// of their items are in), then by their first item in it: consecutive users read nearby items,
// and an item's users are nearby rows.
enum class Order { kSource, kCategory };
// "source" or "category"; otherwise a ConfigError naming --OPTION.
Order parse_order(const std::string& option, const std::string& name);

// An item or user catalog (--items / --users): a delimited file of id plus detail columns.
struct CatalogSource {
  std::string path;  // empty: none
  CsvLayout layout;  // delimiter and columns; the encoding and comment are the input's (Options)
};

struct Options {
  std::string input;
  std::string output;           // empty: default_output(input)
  InputFormat format = InputFormat::kAuto;
  Encoding encoding = Encoding::kUtf8;  // of a CSV input (and the catalogs)
  CsvLayout csv;                // of a CSV input: delimiter, --columns, comment (its encoding: `encoding`)
  std::optional<double> min_value;  // records (event weights or confidences) below it are dropped
  Weights weights = dataset::kDefaultWeights;
  SplitMethod split = SplitMethod::kRandom;
  Order item_order = Order::kSource;
  Order user_order = Order::kSource;
  double test_fraction = 0.2;   // --split random
  std::uint64_t seed = 42;      // --split random
  std::int64_t holdout_last = 0;     // --split time: each user's last K pairs (0: use holdout_fraction)
  double holdout_fraction = 0.2;     // --split time: each user's latest share of pairs
  CatalogSource items, users;
  std::int64_t batch_events = 1 << 20;  // events per rank per read-and-route round
  std::string export_csv_dir;   // empty: no CSV export
  bool progress = true;         // progress lines on rank 0
};

// Throws ConfigError naming the option when a value is out of range.
void validate(const Options& opt);
// "<dir>/<stem>_prepared.h5" for "<dir>/<stem>.<ext>".
std::string default_output(const std::string& input);
// The files a run writes besides its options' paths, for check_paths: the CSV export's
// DIR/train.csv and DIR/test.csv (option "export-csv") when DIR exists (else nothing in it can
// be an input or exist in the way).
std::vector<PathArg> export_paths(const Options& opt);
// "1,2,3,4,5" (shortest round-trip decimals).
std::string weights_string(const Weights& w);
std::string format_float(float v);    // shortest round-trip decimal
std::string format_double(double v);

// ---- the whole preparation ---------------------------------------------------------------------

struct Summary {
  std::string output;
  InputFormat source_format = InputFormat::kAuto;
  Index n_users = 0, n_items = 0, n_events = 0;
  Index n_dropped = 0;  // records below --min-value
  Index nnz_train = 0, nnz_test = 0;
  double seconds = 0;
  PhaseTimer timer;
  double density() const {
    return n_users > 0 && n_items > 0 ? double(nnz_train + nnz_test) / (double(n_users) * double(n_items)) : 0.0;
  }
};

// Collective over comm. A bad option raises ConfigError on every rank; bad input or a failed
// write raises the same AgreedError on every rank, and nothing (no output, no .partial, no CSV)
// is left behind.
Summary run(const Options& opt, const Comm& comm);

}  // namespace mfrec::prepare
