// Importing events or triplets from a CSV: layouts, format detection, weights, id tables.
#include "mfrec/prepare_csv.hpp"

#include <cerrno>
#include <climits>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <unordered_map>

#include "mfrec/csv.hpp"
#include "mfrec/error.hpp"
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

// dataset::event_type_code without allocating: case-insensitive.
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
      {"product", kItem}, {"productid", kItem}, {"event_type", kType}, {"type", kType}, {"event", kType},
      {"eventtype", kType}, {"confidence", kConfidence}, {"rating", kConfidence}, {"weight", kConfidence},
      {"value", kConfidence}, {"count", kConfidence}, {"score", kConfidence}, {"timestamp", kTimestamp},
      {"time", kTimestamp}, {"ts", kTimestamp}};
  for (const auto& [alias, col] : names)
    if (iequals(name, alias)) return col;
  return -1;
}

}  // namespace

CsvData parse_csv(std::istream& in, const std::string& name, InputFormat format, const Weights& weights,
                  Encoding encoding) {
  if (format == InputFormat::kHdf5) throw Error("parse_csv: not a CSV format");
  CsvData d;
  d.format = format;
  std::unordered_map<std::string, std::int64_t> users;
  std::unordered_map<std::string, std::int32_t> items;
  // Column positions: positional (user, item, type-or-confidence[, timestamp]) unless a header
  // names them; `n_fields` < 0: positional field-count rules.
  int col_user = 0, col_item = 1, col_value = 2;
  int n_fields = -1;
  bool first = true;
  std::string line, converted;
  std::vector<std::string> f;
  std::int64_t line_no = 0;
  auto where = [&] { return name + ":" + std::to_string(line_no) + ": "; };

  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line_no == 1 && line.compare(0, 3, "\xEF\xBB\xBF") == 0) line.erase(0, 3);  // UTF-8 byte-order mark
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    if (encoding == Encoding::kLatin1) {
      utf8::from_latin1(line, converted);
      line.swap(converted);
    }
    if (first) d.delimiter = csv::detect_delimiter(line);
    csv::split_line(line, d.delimiter, name, line_no, f);

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
        col_user = pos[kUser];
        col_item = pos[kItem];
        col_value = need;
        n_fields = static_cast<int>(f.size());
        continue;
      }
      if (unnamed_header) {
        d.header = true;
        continue;
      }
    }

    // A data line.
    const char* layout = d.format == InputFormat::kCsvTriplets ? "user_id,item_id,confidence"
                         : d.format == InputFormat::kCsvEvents ? "user_id,item_id,event_type[,timestamp]"
                                                               : "user_id,item_id,event_type[,timestamp] or user_id,item_id,confidence";
    if (n_fields >= 0) {
      if (static_cast<int>(f.size()) != n_fields)
        throw InputError(where() + "found " + std::to_string(f.size()) + " fields, the header has " +
                         std::to_string(n_fields));
    } else if (f.size() < 3) {
      throw InputError(where() + "expected 3 fields (" + layout + "), found " + std::to_string(f.size()));
    }
    const std::string& value = f[static_cast<std::size_t>(col_value)];
    if (d.format == InputFormat::kAuto) {
      double number;
      if (type_code(value) >= 0) d.format = InputFormat::kCsvEvents;
      else if (parse_number(value, number)) d.format = InputFormat::kCsvTriplets;
      else
        throw InputError(where() + "'" + value + "' is neither an event type (" + event_type_list() +
                         ") nor a confidence; give --format");
    }
    if (n_fields < 0) {
      const std::size_t most = d.format == InputFormat::kCsvEvents ? 4 : 3;
      if (f.size() > most)
        throw InputError(where() + "expected at most " + std::to_string(most) + " fields (" +
                         (d.format == InputFormat::kCsvEvents ? "user_id,item_id,event_type[,timestamp]"
                                                              : "user_id,item_id,confidence") +
                         "), found " + std::to_string(f.size()));
    }
    const std::string& user_id = f[static_cast<std::size_t>(col_user)];
    const std::string& item_id = f[static_cast<std::size_t>(col_item)];
    if (user_id.empty()) throw InputError(where() + "empty user id");
    if (item_id.empty()) throw InputError(where() + "empty item id");
    float v;
    if (d.format == InputFormat::kCsvEvents) {
      const int code = type_code(value);
      if (code < 0)
        throw InputError(where() + "unknown event type '" + value + "' (expected " + event_type_list() + ")");
      v = weights[static_cast<std::size_t>(code)];
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
  }
  if (in.bad()) throw InputError(name + ": read error after line " + std::to_string(line_no));
  d.lines = line_no;
  if (d.size() == 0)
    throw InputError(name + ": no events" + (line_no == 0 ? " (the file is empty)" : " (no data lines)"));
  return d;
}

CsvData read_csv(const std::string& path, InputFormat format, const Weights& weights, Encoding encoding) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path + ": cannot open: " + std::strerror(errno));
  return parse_csv(in, path, format, weights, encoding);
}

}  // namespace mfrec::prepare
