// Importing events or triplets from a CSV: layouts, format detection, weights, id tables.
#include "mfrec/prepare_csv.hpp"

#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <unordered_map>

#include "mfrec/config.hpp"
#include "mfrec/csv.hpp"
#include "mfrec/error.hpp"
#include "mfrec/prepare.hpp"
#include "mfrec/utf8.hpp"

namespace mfrec::prepare {
namespace {

// Case-insensitive equality of ASCII names, without allocating.
bool iequals(const std::string& a, const char* b) {
  std::size_t i = 0;
  for (; i < a.size() && b[i]; ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
  return i == a.size() && !b[i];
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

// The event type's code (index in dataset::kEventTypes), or -1 when unknown; case-insensitive.
int type_code(const std::string& name) {
  for (int t = 0; t < dataset::kNumEventTypes; ++t)
    if (iequals(name, dataset::kEventTypes[t])) return t;
  return -1;
}

enum Column { kUser, kItem, kType, kConfidence, kTimestamp, kNumColumns };

int column_of(const std::string& name) {
  static const std::vector<std::pair<const char*, Column>> names = {
      {"user_id", kUser}, {"user", kUser}, {"userid", kUser}, {"visitorid", kUser}, {"visitor_id", kUser},
      {"customer_id", kUser}, {"item_id", kItem}, {"item", kItem}, {"itemid", kItem}, {"product_id", kItem},
      {"product", kItem}, {"productid", kItem}, {"movie_id", kItem}, {"movieid", kItem}, {"event_type", kType}, {"type", kType}, {"event", kType},
      {"eventtype", kType}, {"confidence", kConfidence}, {"rating", kConfidence}, {"weight", kConfidence},
      {"value", kConfidence}, {"count", kConfidence}, {"score", kConfidence}, {"timestamp", kTimestamp},
      {"time", kTimestamp}, {"ts", kTimestamp}};
  for (const auto& [alias, col] : names)
    if (iequals(name, alias)) return col;
  return -1;
}

constexpr std::size_t kDetectLines = 20;  // lines sampled for the delimiter

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

}  // namespace

bool parse_timestamp(const std::string& s, std::int64_t& out) {
  if (s.empty()) return false;
  const char* end = s.c_str() + s.size();
  char* stop = nullptr;
  errno = 0;
  const long long v = std::strtoll(s.c_str(), &stop, 10);
  if (stop == end && errno == 0) {
    out = v;
    return true;
  }
  int y, mo, d, h = 0, mi = 0, sec = 0, n = 0;
  char sep = 0;
  if (std::sscanf(s.c_str(), "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3 || n != 10) return false;
  std::size_t at = 10;
  if (at < s.size()) {
    sep = s[at];
    if (sep != 'T' && sep != ' ') return false;
    int m = 0;
    if (std::sscanf(s.c_str() + at + 1, "%2d:%2d%n", &h, &mi, &m) != 2 || m != 5) return false;
    at += 1 + 5;
    if (at < s.size() && s[at] == ':') {
      if (std::sscanf(s.c_str() + at + 1, "%2d%n", &sec, &m) != 1 || m != 2) return false;
      at += 3;
    }
    if (at < s.size() && s[at] == 'Z') ++at;
    if (at != s.size()) return false;
  }
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60 || h < 0 || mi < 0 || sec < 0)
    return false;
  out = days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d)) * 86400 + h * 3600 + mi * 60 + sec;
  return true;
}

ColumnMap map_columns(const std::vector<std::string>& names) {
  ColumnMap m;
  int pos[kNumColumns] = {-1, -1, -1, -1, -1};
  for (std::size_t c = 0; c < names.size(); ++c) {
    const std::string& n = names[c];
    if (n.empty() || n == "-" || n == "skip") continue;
    const int col = column_of(n);
    if (col < 0)
      throw ConfigError("option --columns: unknown column '" + n +
                        "' (user_id, item_id, event_type, confidence/rating/value, timestamp, or - to skip one)");
    if (pos[col] >= 0) throw ConfigError("option --columns: '" + n + "' names a column given already");
    pos[col] = static_cast<int>(c);
  }
  if (pos[kUser] < 0 || pos[kItem] < 0)
    throw ConfigError(std::string("option --columns: names no ") + (pos[kUser] < 0 ? "user" : "item") + " column");
  if ((pos[kType] < 0) == (pos[kConfidence] < 0))
    throw ConfigError("option --columns: must name one value column: event_type, or confidence (rating, value...)");
  m.user = pos[kUser];
  m.item = pos[kItem];
  m.value = pos[kType] >= 0 ? pos[kType] : pos[kConfidence];
  m.time = pos[kTimestamp];
  m.format = pos[kType] >= 0 ? InputFormat::kCsvEvents : InputFormat::kCsvTriplets;
  m.n_fields = static_cast<int>(names.size());
  return m;
}

// ---- lines --------------------------------------------------------------------------------------

LineReader::LineReader(std::istream& in, const CsvLayout& layout) : in_(in), layout_(layout) {
  // The delimiter: given, or told from the first data lines (read now, returned first by next()).
  std::string line;
  std::int64_t no;
  while (pending_.size() < kDetectLines && raw(line, no)) pending_.emplace_back(no, line);
  if (layout.delimiter) {
    delimiter_ = layout.delimiter;
  } else {
    std::vector<std::string> sample;
    for (const auto& p : pending_) sample.push_back(p.second);
    delimiter_ = csv::detect_delimiter(sample);
  }
}

bool LineReader::raw(std::string& line, std::int64_t& no) {
  while (std::getline(in_, line)) {
    no = ++read_;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (no == 1 && line.compare(0, 3, "\xEF\xBB\xBF") == 0) line.erase(0, 3);  // UTF-8 byte-order mark
    const std::size_t first = line.find_first_not_of(" \t");
    if (first == std::string::npos) continue;
    if (!layout_.comment.empty() && line.compare(first, layout_.comment.size(), layout_.comment) == 0) {
      ++comments_;
      continue;
    }
    return true;
  }
  return false;
}

bool LineReader::next(std::string& line) {
  if (next_pending_ < pending_.size()) {
    line.swap(pending_[next_pending_].second);
    line_no_ = pending_[next_pending_++].first;
  } else if (!raw(line, line_no_)) {
    return false;
  }
  if (layout_.encoding == Encoding::kLatin1) {
    utf8::from_latin1(line, converted_);
    line.swap(converted_);
  }
  return true;
}

// ---- events -------------------------------------------------------------------------------------

CsvData parse_csv(std::istream& in, const std::string& name, const CsvImport& how) {
  if (how.format == InputFormat::kHdf5) throw Error("parse_csv: not a CSV format");
  CsvData d;
  d.format = how.format;
  std::unordered_map<std::string, std::int64_t> users;
  std::unordered_map<std::string, std::int32_t> items;
  // Column positions: positional (user, item, type-or-confidence[, timestamp]) unless a header
  // or --columns names them; `n_fields` < 0: positional field-count rules.
  int col_user = 0, col_item = 1, col_value = 2, col_time = 3;
  int n_fields = -1;
  bool first = true;
  if (!how.layout.columns.empty()) {
    const ColumnMap m = map_columns(how.layout.columns);
    if (d.format == InputFormat::kAuto) d.format = m.format;
    if (d.format != m.format)
      throw ConfigError(std::string("option --columns: names ") + (m.format == InputFormat::kCsvEvents ? "an event_type" : "a confidence") +
                        " column but --format is " + format_name(d.format));
    col_user = m.user, col_item = m.item, col_value = m.value, col_time = m.time, n_fields = m.n_fields;
    first = false;
    if (how.need_time && col_time < 0)
      throw ConfigError("option --columns: names no timestamp column, which --split time needs");
  }
  std::string line;
  std::vector<std::string> f;
  LineReader reader(in, how.layout);
  d.delimiter = reader.delimiter();
  auto where = [&] { return name + ":" + std::to_string(reader.line_no()) + ": "; };

  while (reader.next(line)) {
    csv::split_line(line, d.delimiter, name, reader.line_no(), f);

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
        if (how.need_time && pos[kTimestamp] < 0)
          throw InputError(where() + "the header names no timestamp column, which --split time needs");
        col_user = pos[kUser];
        col_item = pos[kItem];
        col_value = need;
        col_time = pos[kTimestamp];
        n_fields = static_cast<int>(f.size());
        continue;
      }
      if (unnamed_header) {
        d.header = true;
        if (how.need_time && f.size() < 4)
          throw InputError(where() + "the header has no fourth (timestamp) column, which --split time needs");
        continue;
      }
    }

    // A data line.
    const char* layout = d.format == InputFormat::kCsvTriplets ? "user_id,item_id,confidence[,timestamp]"
                         : d.format == InputFormat::kCsvEvents ? "user_id,item_id,event_type[,timestamp]"
                                                               : "user_id,item_id,event_type[,timestamp] or user_id,item_id,confidence[,timestamp]";
    if (n_fields >= 0) {
      if (static_cast<int>(f.size()) != n_fields)
        throw InputError(where() + "found " + std::to_string(f.size()) + " fields, " +
                         (how.layout.columns.empty() ? "the header has " : "--columns names ") + std::to_string(n_fields));
    } else if (f.size() < 3) {
      throw InputError(where() + "expected 3 fields (" + layout + "), found " + std::to_string(f.size()));
    }
    ++d.rows;
    const std::string& value = f[static_cast<std::size_t>(col_value)];
    if (d.format == InputFormat::kAuto) {
      double number;
      if (type_code(value) >= 0) d.format = InputFormat::kCsvEvents;
      else if (parse_number(value, number)) d.format = InputFormat::kCsvTriplets;
      else
        throw InputError(where() + "'" + value + "' is neither an event type (" + event_type_list() +
                         ") nor a confidence; give --format");
    }
    if (n_fields < 0 && f.size() > 4)
      throw InputError(where() + "expected at most 4 fields (" +
                       (d.format == InputFormat::kCsvEvents ? "user_id,item_id,event_type[,timestamp]"
                                                            : "user_id,item_id,confidence[,timestamp]") +
                       "), found " + std::to_string(f.size()));
    const std::string& user_id = f[static_cast<std::size_t>(col_user)];
    const std::string& item_id = f[static_cast<std::size_t>(col_item)];
    if (user_id.empty()) throw InputError(where() + "empty user id");
    if (item_id.empty()) throw InputError(where() + "empty item id");
    float v;
    if (d.format == InputFormat::kCsvEvents) {
      const int code = type_code(value);
      if (code < 0)
        throw InputError(where() + "unknown event type '" + value + "' (expected " + event_type_list() + ")");
      v = how.weights[static_cast<std::size_t>(code)];
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
    std::int64_t t = 0;
    if (how.need_time) {
      if (col_time < 0 || static_cast<std::size_t>(col_time) >= f.size())
        throw InputError(where() + "no timestamp (a fourth field), which --split time needs on every line");
      const std::string& ts = f[static_cast<std::size_t>(col_time)];
      if (!parse_timestamp(ts, t))
        throw InputError(where() + "timestamp '" + ts + "' is neither an integer nor a date (YYYY-MM-DD[ HH:MM:SS])");
    }
    if (how.min_value && static_cast<double>(v) < *how.min_value) {
      ++d.dropped;  // before its ids are seen: a user or item with only weak signals is left out
      continue;
    }
    // Ids are stored and served as UTF-8: each new one is checked here, where the line is known.
    auto check_text = [&](const std::string& id, const char* what) {
      if (!utf8::valid(id))
        throw InputError(where() + what + " " + utf8::describe_invalid(id) +
                         "; convert the file to UTF-8 (e.g. iconv -f latin1 -t utf-8) or give --encoding latin1");
    };
    auto u = users.try_emplace(user_id, static_cast<std::int64_t>(users.size()));
    if (u.second) {
      check_text(user_id, "user id");
      d.user_ids.push_back(user_id);
    }
    if (items.size() >= static_cast<std::size_t>(INT32_MAX) && !items.count(item_id))
      throw InputError(where() + "more than 2^31-1 distinct items");
    auto it = items.try_emplace(item_id, static_cast<std::int32_t>(items.size()));
    if (it.second) {
      check_text(item_id, "item id");
      d.item_ids.push_back(item_id);
    }
    d.user.push_back(u.first->second);
    d.item.push_back(it.first->second);
    d.value.push_back(v);
    if (how.need_time) d.time.push_back(t);
  }
  if (reader.bad()) throw InputError(name + ": read error after line " + std::to_string(reader.lines()));
  d.lines = reader.lines();
  d.comments = reader.comments();
  if (d.size() == 0) {
    if (d.dropped > 0)
      throw InputError(name + ": no events left: all " + std::to_string(d.dropped) + " rows are below --min-value " +
                       format_double(*how.min_value));
    throw InputError(name + ": no events" + (d.lines == 0 ? " (the file is empty)" : " (no data lines)"));
  }
  return d;
}

CsvData read_csv(const std::string& path, const CsvImport& how) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path + ": cannot open: " + std::strerror(errno));
  return parse_csv(in, path, how);
}

CsvData parse_csv(std::istream& in, const std::string& name, InputFormat format, const Weights& weights,
                  Encoding encoding) {
  CsvImport how;
  how.format = format;
  how.weights = weights;
  how.layout.encoding = encoding;
  return parse_csv(in, name, how);
}

CsvData read_csv(const std::string& path, InputFormat format, const Weights& weights, Encoding encoding) {
  CsvImport how;
  how.format = format;
  how.weights = weights;
  how.layout.encoding = encoding;
  return read_csv(path, how);
}

}  // namespace mfrec::prepare
