// Events or triplets imported from a CSV file (pure, no MPI): the first step of mfrec_prep for
// CSV input. The line splitter is csv.hpp's; this adds the layouts (header or positional), the
// format detection (events or triplets), the weights and the id tables.
#pragma once
#include <array>
#include <cstdint>
#include <istream>
#include <optional>
#include <string>
#include <vector>

#include "mfrec/dataset.hpp"

namespace mfrec::prepare {

enum class InputFormat { kAuto, kHdf5, kCsvEvents, kCsvTriplets };
using Weights = std::array<float, dataset::kNumEventTypes>;

// The encoding of a CSV's text. Ids are stored as UTF-8: a UTF-8 file is checked (an id that is
// not valid UTF-8 is an error naming the file and line); a Latin-1 file is converted.
enum class Encoding { kUtf8, kLatin1 };

// How a delimited text file is laid out (the events file, and the item and user catalogs).
struct CsvLayout {
  char delimiter = 0;                // 0: detected from the first lines (csv::detect_delimiter)
  std::vector<std::string> columns;  // names of a headerless file's columns ("" or "-" skips one)
  std::string comment = "#";         // lines starting with it (after blanks) are skipped; "": none
  Encoding encoding = Encoding::kUtf8;
};

// What to read from an events file besides its layout.
struct CsvImport {
  InputFormat format = InputFormat::kAuto;
  Weights weights = dataset::kDefaultWeights;
  CsvLayout layout;
  std::optional<double> min_value;  // rows whose value (weight or confidence) is below it are dropped
  bool need_time = false;           // every row's timestamp is read (--split time)
};

// The columns of an events file named by --columns: positions of user, item, value (event type
// or confidence) and timestamp (-1: none), the format they imply and the field count. Throws
// ConfigError naming --columns for an unknown name, a repeated one or a missing user, item or
// value column.
struct ColumnMap {
  int user = -1, item = -1, value = -1, time = -1, n_fields = 0;
  InputFormat format = InputFormat::kAuto;
};
ColumnMap map_columns(const std::vector<std::string>& names);

// A timestamp field: an integer (unix seconds, or any integer clock), or an ISO 8601 date
// "YYYY-MM-DD" or date-time "YYYY-MM-DD[T ]HH:MM[:SS][Z]" read as UTC seconds. False otherwise.
bool parse_timestamp(const std::string& text, std::int64_t& out);

// Events or triplets parsed from a CSV, with string ids mapped to indices in order of first
// appearance (so the mapping is deterministic).
struct CsvData {
  InputFormat format = InputFormat::kAuto;  // kCsvEvents or kCsvTriplets, as detected
  bool header = false;
  char delimiter = ',';
  std::int64_t lines = 0;     // lines read, header, comment and blank lines included
  std::int64_t rows = 0;      // data rows read, dropped ones included
  std::int64_t dropped = 0;   // rows below --min-value
  std::int64_t comments = 0;  // comment lines skipped
  std::vector<std::string> user_ids, item_ids;
  std::vector<std::int64_t> user;
  std::vector<std::int32_t> item;
  std::vector<float> value;         // the event's weight, or the triplet's confidence
  std::vector<std::int64_t> time;   // the row's timestamp (only when need_time)
  std::size_t size() const { return user.size(); }
};

// Throws InputError "<name>:<line>: ..." for a malformed or short line, an unknown event type,
// a negative or non-finite confidence, an id that is not valid UTF-8, and "<name>: no events"
// for an empty input.
CsvData parse_csv(std::istream& in, const std::string& name, const CsvImport& how);
CsvData read_csv(const std::string& path, const CsvImport& how);
// The same with the default layout (delimiter detected, '#' comments, no --columns).
CsvData parse_csv(std::istream& in, const std::string& name, InputFormat format, const Weights& weights,
                  Encoding encoding = Encoding::kUtf8);
CsvData read_csv(const std::string& path, InputFormat format, const Weights& weights,
                 Encoding encoding = Encoding::kUtf8);

// Reads the lines of a delimited text file: strips CR and a UTF-8 byte-order mark, skips blank
// and comment lines, converts Latin-1, and detects the delimiter from the first lines.
class LineReader {
 public:
  LineReader(std::istream& in, const CsvLayout& layout);
  // The next data line (converted to UTF-8 when Latin-1), or false at the end.
  bool next(std::string& line);
  char delimiter() const { return delimiter_; }
  std::int64_t line_no() const { return line_no_; }    // of the line last returned
  std::int64_t lines() const { return read_; }         // lines read so far
  std::int64_t comments() const { return comments_; }  // comment lines skipped
  bool bad() const { return in_.bad(); }

 private:
  bool raw(std::string& line, std::int64_t& no);  // the next non-blank, non-comment line

  std::istream& in_;
  const CsvLayout& layout_;
  char delimiter_ = ',';
  std::int64_t line_no_ = 0, read_ = 0, comments_ = 0;
  std::vector<std::pair<std::int64_t, std::string>> pending_;  // lines read for the detection
  std::size_t next_pending_ = 0;
  std::string converted_;
};

}  // namespace mfrec::prepare
