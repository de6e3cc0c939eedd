#include "mfrec/utf8.hpp"

#include <cstdio>

namespace mfrec::utf8 {

std::size_t invalid_at(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  std::size_t i = 0;
  while (i < n) {
    const unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    int len;
    unsigned char lo = 0x80, hi = 0xBF;  // the allowed range of the second byte (RFC 3629)
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;         // overlong
      else if (c == 0xED) hi = 0x9F;    // surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;         // overlong
      else if (c == 0xF4) hi = 0x8F;    // above U+10FFFF
    } else {
      return i;
    }
    if (i + static_cast<std::size_t>(len) > n) return i;
    if (p[i + 1] < lo || p[i + 1] > hi) return i;
    for (int k = 2; k < len; ++k)
      if (p[i + k] < 0x80 || p[i + k] > 0xBF) return i;
    i += static_cast<std::size_t>(len);
  }
  return kValid;
}

std::string describe_invalid(std::string_view text) {
  const std::size_t at = invalid_at(text);
  if (at == kValid) return "is valid UTF-8";
  char buf[80];
  std::snprintf(buf, sizeof buf, "is not valid UTF-8 (byte 0x%02X at byte %zu)",
                static_cast<unsigned>(static_cast<unsigned char>(text[at])), at + 1);
  return buf;
}

void from_latin1(std::string_view text, std::string& out) {
  out.clear();
  out.reserve(text.size());
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x80) {
      out += ch;
    } else {
      out += static_cast<char>(0xC0 | (c >> 6));
      out += static_cast<char>(0x80 | (c & 0x3F));
    }
  }
}

std::string from_latin1(std::string_view text) {
  std::string out;
  from_latin1(text, out);
  return out;
}

}  // namespace mfrec::utf8
