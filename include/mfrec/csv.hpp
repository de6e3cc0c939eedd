// CSV (RFC 4180), both ways: the one quoting rule of every CSV file mfrec writes, and the line
// splitter of every CSV file it reads.
//
// Writing: a field is quoted when it holds a comma, a double quote, a line break or
// leading/trailing blanks; quotes inside are doubled. Numbers are written by the caller
// (std::to_string, format_float...).
// Reading: the delimiter separates fields; a field may be quoted ("a,b", with "" for a quote
// inside); unquoted fields are trimmed of spaces and tabs, so a quoted field keeps its blanks
// and whatever write_row wrote reads back the same. The delimiter kBlanks splits at runs of
// spaces and tabs (whitespace-separated files: no empty fields, quotes still honoured);
// kDoubleColon splits at "::".
#pragma once
#include <cstdint>
#include <initializer_list>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace mfrec::csv {

// `field` as it must appear in a CSV line.
std::string quote(std::string_view field);

// Appends quote(field) to `line` (without a temporary string: for writers of millions of rows).
void append_field(std::string& line, std::string_view field);

// Writes one line: the fields quoted as needed, separated by commas, ended by '\n'.
void write_row(std::ostream& out, std::initializer_list<std::string_view> fields);

// One line split into fields. Throws InputError "<file>:<line>: ..." for an unterminated quote
// or text after a closing quote.
std::vector<std::string> split_line(const std::string& line, char delim, const std::string& file,
                                    std::int64_t line_no);
// The same into `out`, whose strings are reused (no allocation per field once warm).
void split_line(const std::string& line, char delim, const std::string& file, std::int64_t line_no,
                std::vector<std::string>& out);

inline constexpr char kBlanks = ' ';
// The delimiter "::" (MovieLens-1M's ratings.dat, movies.dat), as one character.
inline constexpr char kDoubleColon = '\x1f';

// The delimiter of a file from its first lines: the first of ',', '\t', ';', "::", '|' that splits
// every sampled line into at least two fields, else kBlanks when blanks do, else ','. (A file
// whose first line has a comma and that parses gets ',', as before delimiters were detected.)
char detect_delimiter(const std::vector<std::string>& lines);
// A --delimiter value: one character, or tab, comma, semicolon, pipe, space / whitespace
// (kBlanks), "\t", "::" (kDoubleColon). False when it names none.
bool delimiter_from_name(const std::string& name, char& out);
// A printable name of a delimiter: "comma", "tab", "semicolon", "pipe", "whitespace" or "'c'".
std::string delimiter_name(char delim);

}  // namespace mfrec::csv
