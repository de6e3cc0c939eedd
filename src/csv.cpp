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

void split_line(const std::string& line, char delim, const std::string& file, std::int64_t line_no,
                std::vector<std::string>& out) {
  std::size_t used = 0;  // fields of `out` in use: their strings keep their capacity between lines
  auto next_field = [&]() -> std::string& {
    if (used == out.size()) out.emplace_back();
    std::string& f = out[used++];
    f.clear();
    return f;
  };
  const std::size_t n = line.size();
  auto space = [delim](char c) { return (c == ' ' || c == '\t') && c != delim; };
  std::size_t i = 0;
  while (true) {
    while (i < n && space(line[i])) ++i;
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
      while (i < n && space(line[i])) ++i;
      if (i < n && line[i] != delim)
        throw InputError(file + ":" + std::to_string(line_no) + ": text after the closing quote of field " +
                         std::to_string(used));
    } else {
      const std::size_t start = i;
      while (i < n && line[i] != delim) ++i;
      std::size_t stop = i;
      while (stop > start && space(line[stop - 1])) --stop;
      field.assign(line, start, stop - start);
    }
    if (i >= n) break;
    ++i;  // the delimiter
  }
  out.resize(used);
}

char detect_delimiter(const std::string& line) {
  if (line.find(',') != std::string::npos) return ',';
  if (line.find('\t') != std::string::npos) return '\t';
  if (line.find(';') != std::string::npos) return ';';
  return ',';
}

}  // namespace mfrec::csv
