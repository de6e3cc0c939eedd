#include "mfrec/csv.hpp"

#include "mfrec/error.hpp"

namespace mfrec::csv {

// ---- writing ------------------------------------------------------------------------------------

void append_field(std::string& line, std::string_view field) {
  const bool blank_edge = !field.empty() && (field.front() == ' ' || field.front() == '\t' ||
                                             field.back() == ' ' || field.back() == '\t');
  if (!blank_edge && field.find_first_of(",\"\r\n") == std::string_view::npos) {
    line += field;
    return;
  }
  line += '"';
  for (char c : field) {
    if (c == '"') line += '"';
    line += c;
  }
  line += '"';
}

std::string quote(std::string_view field) {
  std::string out;
  out.reserve(field.size() + 2);
  append_field(out, field);
  return out;
}

void write_row(std::ostream& out, std::initializer_list<std::string_view> fields) {
  std::string line;
  bool first = true;
  for (std::string_view f : fields) {
    if (!first) line += ',';
    first = false;
    append_field(line, f);
  }
  line += '\n';
  out << line;
}

// ---- reading ------------------------------------------------------------------------------------

std::vector<std::string> split_line(const std::string& line, char delim, const std::string& file,
                                    std::int64_t line_no) {
  std::vector<std::string> out;
  split_line(line, delim, file, line_no, out);
  return out;
}

namespace {

void split_core(const std::string& line, char delim, const std::string& file, std::int64_t line_no,
                std::vector<std::string>& out) {
  std::size_t used = 0;  // fields of `out` in use: their strings keep their capacity between lines
  auto next_field = [&]() -> std::string& {
    if (used == out.size()) out.emplace_back();
    std::string& f = out[used++];
    f.clear();
    return f;
  };
  const std::size_t n = line.size();
  const bool blanks = delim == kBlanks;
  auto space = [delim, blanks](char c) { return (c == ' ' || c == '\t') && (blanks || c != delim); };
  auto is_delim = [delim, blanks](char c) { return blanks ? (c == ' ' || c == '\t') : c == delim; };
  std::size_t i = 0;
  while (true) {
    while (i < n && space(line[i])) ++i;
    if (blanks && i >= n && used > 0) break;  // trailing blanks end the line, not a field
    std::string& field = next_field();
    if (i < n && line[i] == '"') {
      ++i;
      bool closed = false;
      while (i < n) {
        const char c = line[i++];
        if (c != '"') {
          field += c;
        } else if (i < n && line[i] == '"') {
          field += '"';
          ++i;
        } else {
          closed = true;
          break;
        }
      }
      if (!closed)
        throw InputError(file + ":" + std::to_string(line_no) + ": unterminated quoted field " +
                         std::to_string(used));
      if (blanks) {
        if (i < n && !is_delim(line[i]))
          throw InputError(file + ":" + std::to_string(line_no) + ": text after the closing quote of field " +
                           std::to_string(used));
        if (i >= n) break;
        continue;  // the blanks after the quote are the delimiter
      }
      while (i < n && space(line[i])) ++i;
      if (i < n && !is_delim(line[i]))
        throw InputError(file + ":" + std::to_string(line_no) + ": text after the closing quote of field " +
                         std::to_string(used));
    } else {
      const std::size_t start = i;
      while (i < n && !is_delim(line[i])) ++i;
      std::size_t stop = i;
      while (stop > start && space(line[stop - 1])) --stop;
      field.assign(line, start, stop - start);
    }
    if (i >= n) break;
    ++i;  // the delimiter (in blanks mode the rest of the run is skipped at the loop's top)
  }
  out.resize(used);
}

}  // namespace

void split_line(const std::string& line, char delim, const std::string& file, std::int64_t line_no,
                std::vector<std::string>& out) {
  if (delim != kDoubleColon || line.find("::") == std::string::npos) return split_core(line, delim, file, line_no, out);
  // "::" (MovieLens-1M's .dat files) becomes the one-character delimiter kDoubleColon.
  thread_local std::string joined;
  joined.clear();
  for (std::size_t i = 0; i < line.size(); ++i) {
    if (line[i] == ':' && i + 1 < line.size() && line[i + 1] == ':') {
      joined += kDoubleColon;
      ++i;
    } else {
      joined += line[i];
    }
  }
  split_core(joined, delim, file, line_no, out);
}

char detect_delimiter(const std::vector<std::string>& lines) {
  std::vector<std::string> f;
  auto splits_all = [&](char d) {
    if (lines.empty()) return false;
    for (std::size_t k = 0; k < lines.size(); ++k) {
      try {
        split_line(lines[k], d, "", 0, f);
      } catch (const InputError&) {
        return false;
      }
      if (f.size() < 2) return false;
    }
    return true;
  };
  for (char d : {',', '\t', ';', kDoubleColon, '|', kBlanks})
    if (splits_all(d)) return d;
  return ',';
}

bool delimiter_from_name(const std::string& name, char& out) {
  static const std::pair<const char*, char> names[] = {
      {"tab", '\t'}, {"\\t", '\t'}, {"comma", ','}, {"semicolon", ';'}, {"pipe", '|'},
      {"space", kBlanks}, {"whitespace", kBlanks}, {"blank", kBlanks}, {"blanks", kBlanks},
      {"::", kDoubleColon}};
  for (const auto& [n, c] : names)
    if (name == n) {
      out = c;
      return true;
    }
  if (name.size() != 1 || name[0] == '"' || name[0] == '\n' || name[0] == '\r') return false;
  out = name[0] == '\t' ? '\t' : name[0];
  return true;
}

std::string delimiter_name(char delim) {
  switch (delim) {
    case ',': return "comma";
    case '\t': return "tab";
    case ';': return "semicolon";
    case '|': return "pipe";
    case kBlanks: return "whitespace";
    case kDoubleColon: return "'::'";
    default: return std::string("'") + delim + "'";
  }
}

}  // namespace mfrec::csv
