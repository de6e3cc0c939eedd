// splitmix64 (Steele, Lea & Flood 2014; Vigna's public-domain reference): the one integer hash
// behind every seeded stream, split and fingerprint in mfrec. A bijection on 64-bit words.
#pragma once
#include <cstdint>

namespace mfrec {

constexpr std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace mfrec
