// Events to training matrices (mfrec_prep): weights events into confidences, sums them per
// (user, item), holds out a seeded share of the pairs for testing, and writes the prepared file.
//
// Distributed path (collective over the Comm):
//   1. each rank reads a contiguous slice of /events in bounded batches (a CSV is parsed on
//      rank 0, which then is the only sender);
//   2. every event goes to the rank owning its user (partition_even over users) by alltoallv;
//   3. each rank sorts its (user, item, weight) records and sums them into its CSR rows
//      (summed in a fixed order, in double, so the result does not depend on the rank count);
//   4. a hash of (seed, user, item) sends each pair to test or train;
//   5. the train pairs are routed by item owner to build the transpose (item x user);
//   6. everything is written with parallel HDF5 to "<output>.partial", then renamed.
// The output file is byte-identical for any number of ranks.
#pragma once
#include <array>
#include <cstdint>
#include <istream>
#include <string>
#include <vector>

#include "mfrec/dataset.hpp"
#include "mfrec/error.hpp"
#include "mfrec/log.hpp"
#include "mfrec/partition.hpp"
#include "mfrec/types.hpp"

namespace mfrec {
class Comm;
}

namespace mfrec::prepare {

// Bad input that every rank of the communicator knows about (the same message everywhere), so
// a program can print it once and exit without MPI_Abort.
class SharedInputError : public InputError {
 public:
  using InputError::InputError;
};
// The same for a failed write that every rank knows about (the CSV export).
class SharedIoError : public IoError {
 public:
  using IoError::IoError;
};

enum class InputFormat { kAuto, kHdf5, kCsvEvents, kCsvTriplets };
// "auto", "hdf5", "csv-events", "csv-triplets" (ConfigError naming --format otherwise).
InputFormat parse_format(const std::string& name);
const char* format_name(InputFormat f);
// The format of a file by its signature and extension: HDF5 signature -> kHdf5; anything else
// -> kAuto (a CSV whose kind, events or triplets, is told from its content).
InputFormat sniff_format(const std::string& path);

using Weights = std::array<float, dataset::kNumEventTypes>;

struct Options {
  std::string input;
  std::string output;           // empty: default_output(input)
  InputFormat format = InputFormat::kAuto;
  Weights weights = dataset::kDefaultWeights;
  double test_fraction = 0.2;
  std::uint64_t seed = 42;
  std::int64_t batch_events = 1 << 20;  // events per rank per read-and-route round
  std::string export_csv_dir;   // empty: no CSV export
  bool progress = true;         // progress lines on rank 0
};

// Throws ConfigError naming the option when a value is out of range.
void validate(const Options& opt);
// "<dir>/<stem>_prepared.h5" for "<dir>/<stem>.<ext>".
std::string default_output(const std::string& input);
// "1,2,3,4,5" (shortest round-trip decimals).
std::string weights_string(const Weights& w);
std::string format_float(float v);    // shortest round-trip decimal
std::string format_double(double v);

// The held-out test: a pure function of (seed, user, item), so it never depends on the ranks.
double split_hash(std::uint64_t seed, Index user, Index item);  // uniform in [0, 1)
inline bool is_test(std::uint64_t seed, Index user, Index item, double fraction) {
  return split_hash(seed, user, item) < fraction;
}

// ---- CSV (pure, no MPI) ------------------------------------------------------------------------

namespace csv {
// One line split into fields: the delimiter separates; a field may be quoted ("a,b", with ""
// for a quote inside); unquoted fields are trimmed of spaces and tabs. Throws InputError
// "<file>:<line>: ..." for an unterminated quote or text after a closing quote.
std::vector<std::string> split_line(const std::string& line, char delim, const std::string& file,
                                    std::int64_t line_no);
// The same into `out`, whose strings are reused (no allocation per field once warm).
void split_line(const std::string& line, char delim, const std::string& file, std::int64_t line_no,
                std::vector<std::string>& out);
// ',' unless the line has no comma and has a tab (then '\t') or a semicolon (then ';').
char detect_delimiter(const std::string& line);
// A field quoted for CSV output when it holds the delimiter, a quote, spaces at its ends or a
// line break.
std::string quote(const std::string& field, char delim = ',');
}  // namespace csv

// Events or triplets parsed from a CSV, with string ids mapped to indices in order of first
// appearance (so the mapping is deterministic).
struct CsvData {
  InputFormat format = InputFormat::kAuto;  // kCsvEvents or kCsvTriplets, as detected
  bool header = false;
  char delimiter = ',';
  std::int64_t lines = 0;  // lines read, header and blank lines included
  std::vector<std::string> user_ids, item_ids;
  std::vector<std::int64_t> user;
  std::vector<std::int32_t> item;
  std::vector<float> value;  // the event's weight, or the triplet's confidence
  std::size_t size() const { return user.size(); }
};
// Throws InputError "<name>:<line>: ..." for a malformed or short line, an unknown event type,
// a negative or non-finite confidence, and "<name>: no events" for an empty input.
CsvData parse_csv(std::istream& in, const std::string& name, InputFormat format, const Weights& weights);
CsvData read_csv(const std::string& path, InputFormat format, const Weights& weights);

// ---- distributed building blocks (collective over comm) ---------------------------------------

// (row, col, value) records; the row is global.
struct Triplets {
  std::vector<std::int64_t> row;
  std::vector<std::int32_t> col;
  std::vector<float> value;
  std::size_t size() const { return row.size(); }
  void clear() { row.clear(); col.clear(); value.clear(); }
};
// Sends each record to the rank that owns its row under `rows` (one bound per rank) and appends
// what this rank receives to `out`. Collective.
void route(const Triplets& local, const Bounds& rows, Triplets& out, const Comm& comm);
// Sums the records of this rank's rows [rows[rank], rows[rank+1]) into a CSR block, summing
// duplicates in a fixed order (by value, in double) and dropping pairs whose sum is zero.
// Local; `records` is consumed.
CsrBlock to_csr(Triplets&& records, Index row_begin, Index row_end, Index n_rows_global, Index n_cols);
// The transpose of a distributed CSR matrix, partitioned evenly over its columns. Collective.
CsrBlock transpose(const CsrBlock& local, const Comm& comm);
// Splits a block into (train, test) by is_test. Local.
void split(const CsrBlock& all, std::uint64_t seed, double fraction, CsrBlock& train, CsrBlock& test);

// ---- the whole preparation ---------------------------------------------------------------------

struct Summary {
  std::string output;
  InputFormat source_format = InputFormat::kAuto;
  Index n_users = 0, n_items = 0, n_events = 0;
  Index nnz_train = 0, nnz_test = 0;
  double seconds = 0;
  PhaseTimer timer;
  double density() const {
    return n_users > 0 && n_items > 0 ? double(nnz_train + nnz_test) / (double(n_users) * double(n_items)) : 0.0;
  }
};

// Collective over comm. Bad input raises SharedInputError on every rank (nothing is written);
// a bad option raises ConfigError on every rank; a failed CSV export raises SharedIoError.
Summary run(const Options& opt, const Comm& comm);

}  // namespace mfrec::prepare
