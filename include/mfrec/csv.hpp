// Writing CSV (RFC 4180): the one quoting rule of every CSV file mfrec writes. A field is quoted
// when it holds a comma, a double quote, a line break or leading/trailing blanks; quotes inside
// are doubled. Numbers are written by the caller (std::to_string, format_float...).
#pragma once
#include <initializer_list>
#include <ostream>
#include <string>
#include <string_view>

namespace mfrec::csv {

// `field` as it must appear in a CSV line.
std::string quote(std::string_view field);

// Writes one line: the fields quoted as needed, separated by commas, ended by '\n'.
void write_row(std::ostream& out, std::initializer_list<std::string_view> fields);

}  // namespace mfrec::csv
