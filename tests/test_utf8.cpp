// UTF-8 validation (RFC 3629) and the Latin-1 conversion that import uses.
#include <gtest/gtest.h>

#include <string>

#include "mfrec/utf8.hpp"

using namespace mfrec;

TEST(Utf8, AcceptsWellFormedText) {
  for (const std::string s : {"", "plain ascii", "caf\xc3\xa9", "\xe2\x82\xac 5", "\xf0\x9f\x98\x80", "\xed\x9f\xbf",
                              "\xf4\x8f\xbf\xbf", "\xee\x80\x80"})
    EXPECT_TRUE(utf8::valid(s)) << s;
}

TEST(Utf8, FindsTheFirstBadByte) {
  EXPECT_EQ(utf8::invalid_at("caf\xe9"), 3u);                // Latin-1 é: a lead byte without its continuation
  EXPECT_EQ(utf8::invalid_at("ab\x80"), 2u);                 // a stray continuation byte
  EXPECT_EQ(utf8::invalid_at("\xc0\xaf"), 0u);               // overlong '/'
  EXPECT_EQ(utf8::invalid_at("\xe0\x80\xaf"), 0u);           // overlong, 3 bytes
  EXPECT_EQ(utf8::invalid_at("\xf0\x80\x80\xaf"), 0u);       // overlong, 4 bytes
  EXPECT_EQ(utf8::invalid_at("x\xed\xa0\x80"), 1u);          // a UTF-16 surrogate
  EXPECT_EQ(utf8::invalid_at("\xf4\x90\x80\x80"), 0u);       // above U+10FFFF
  EXPECT_EQ(utf8::invalid_at("\xf5\x80\x80\x80"), 0u);
  EXPECT_EQ(utf8::invalid_at("ok\xe2\x82"), 2u);             // truncated at the end
  EXPECT_EQ(utf8::invalid_at("\xe2\x28\xa1"), 0u);           // bad continuation
  EXPECT_EQ(utf8::describe_invalid("caf\xe9"), "is not valid UTF-8 (byte 0xE9 at byte 4)");
}

TEST(Utf8, ConvertsLatin1) {
  EXPECT_EQ(utf8::from_latin1("caf\xe9"), "caf\xc3\xa9");
  EXPECT_EQ(utf8::from_latin1("ascii"), "ascii");
  EXPECT_EQ(utf8::from_latin1("\xff\xa0"), "\xc3\xbf\xc2\xa0");
  std::string all;
  for (int c = 1; c < 256; ++c) all += static_cast<char>(c);
  EXPECT_TRUE(utf8::valid(utf8::from_latin1(all)));
}
