// Text checks for names that come from outside (CSV ids, catalog fields): mfrec stores and
// serves names as UTF-8 (HDF5 strings, JSON), so text in another encoding is refused where it
// enters, with the file and line named, rather than failing later in a JSON library.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

namespace mfrec::utf8 {

inline constexpr std::size_t kValid = std::string_view::npos;

// The offset of the first byte that is not part of a well-formed UTF-8 sequence (overlong
// forms, surrogates and code points above U+10FFFF are not); kValid when the text is valid.
std::size_t invalid_at(std::string_view text);
inline bool valid(std::string_view text) { return invalid_at(text) == kValid; }

// "is not valid UTF-8 (byte 0xE9 at byte 4)" for the first bad byte of `text` (1-based).
std::string describe_invalid(std::string_view text);

// Latin-1 (ISO 8859-1) text as UTF-8: every byte is its own code point.
std::string from_latin1(std::string_view text);
// The same into `out` (reused).
void from_latin1(std::string_view text, std::string& out);

}  // namespace mfrec::utf8
