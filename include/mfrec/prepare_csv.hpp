// Events or triplets imported from a CSV file (pure, no MPI): the first step of mfrec_prep for
// CSV input. The line splitter is csv.hpp's; this adds the layouts (header or positional), the
// format detection (events or triplets), the weights and the id tables.
#pragma once
#include <array>
#include <cstdint>
#include <istream>
#include <string>
#include <vector>

#include "mfrec/dataset.hpp"

namespace mfrec::prepare {

enum class InputFormat { kAuto, kHdf5, kCsvEvents, kCsvTriplets };
using Weights = std::array<float, dataset::kNumEventTypes>;

// The encoding of a CSV's text. Ids are stored as UTF-8: a UTF-8 file is checked (an id that is
// not valid UTF-8 is an error naming the file and line); a Latin-1 file is converted.
enum class Encoding { kUtf8, kLatin1 };

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
// a negative or non-finite confidence, an id that is not valid UTF-8, and "<name>: no events"
// for an empty input.
CsvData parse_csv(std::istream& in, const std::string& name, InputFormat format, const Weights& weights,
                  Encoding encoding = Encoding::kUtf8);
CsvData read_csv(const std::string& path, InputFormat format, const Weights& weights,
                 Encoding encoding = Encoding::kUtf8);

}  // namespace mfrec::prepare
