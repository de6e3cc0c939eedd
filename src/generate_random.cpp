// The generator's random streams: xoshiro256** seeded through splitmix64, exact binomial
// variates, and the split of the event total over users by a seeded binary tree.
#include "mfrec/generate_random.hpp"

#include <algorithm>
#include <cmath>

#include "mfrec/error.hpp"
#include "mfrec/hash.hpp"

namespace mfrec::gen {

std::uint64_t stream_seed(std::uint64_t seed, std::uint64_t domain, std::uint64_t index) {
  // splitmix64 is a bijection: distinct (domain, index) under one seed give distinct seeds.
  return splitmix64(splitmix64(seed + domain * 0xd1b54a32d192ed03ULL) ^ index);
}

Rng::Rng(std::uint64_t seed) {
  for (std::uint64_t i = 0; i < 4; ++i) s_[i] = splitmix64(seed + i * 0x9e3779b97f4a7c15ULL);  // the authors' seeding
}

std::uint64_t Rng::next() {
  auto rotl = [](std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); };
  const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const std::uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

double Rng::uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
double Rng::uniform_open() { return (static_cast<double>(next() >> 11) + 0.5) * 0x1.0p-53; }

std::uint64_t Rng::below(std::uint64_t n) {
  __extension__ using u128 = unsigned __int128;
  u128 m = static_cast<u128>(next()) * n;
  auto low = static_cast<std::uint64_t>(m);
  if (low < n) {
    const std::uint64_t threshold = (0 - n) % n;
    while (low < threshold) {
      m = static_cast<u128>(next()) * n;
      low = static_cast<std::uint64_t>(m);
    }
  }
  return static_cast<std::uint64_t>(m >> 64);
}

double Rng::normal() {
  double u, v, s;
  do {
    u = 2 * uniform() - 1;
    v = 2 * uniform() - 1;
    s = u * u + v * v;
  } while (s >= 1 || s == 0);
  return u * std::sqrt(-2 * std::log(s) / s);
}

namespace {

// log(k!) - [(k + 1/2) log(k + 1) - (k + 1) + log(2 pi) / 2], Stirling's tail.
double stirling_tail(double k) {
  static const double tail[] = {0.0810614667953272,  0.0413406959554092,  0.0276779256849983, 0.02079067210376509,
                                0.0166446911898211,  0.0138761288230707,  0.0118967099458917, 0.0104112652619720,
                                0.00925546218271273, 0.00833056343336287};
  if (k <= 9) return tail[static_cast<int>(k)];
  const double kp1sq = (k + 1) * (k + 1);
  return (1.0 / 12 - (1.0 / 360 - 1.0 / 1260 / kp1sq) / kp1sq) / (k + 1);
}

// Sum of geometric waiting times: exact, O(n p) draws. For n p < 10.
std::int64_t binomial_inversion(Rng& rng, std::int64_t n, double p) {
  const double log_q = std::log1p(-p);
  std::int64_t x = 0;
  double sum = 0;
  while (true) {
    sum += std::ceil(std::log(rng.uniform_open()) / log_q);
    if (sum > static_cast<double>(n)) return x;
    ++x;
  }
}

// Hormann (1993), "The generation of binomial random variates", algorithm BTRS: transformed
// rejection with a squeeze; O(1) expected draws. For n p >= 10 and p <= 1/2.
std::int64_t binomial_btrs(Rng& rng, std::int64_t n, double p) {
  const double count = static_cast<double>(n);
  const double stddev = std::sqrt(count * p * (1 - p));
  const double b = 1.15 + 2.53 * stddev;
  const double a = -0.0873 + 0.0248 * b + 0.01 * p;
  const double c = count * p + 0.5;
  const double v_r = 0.92 - 4.2 / b;
  const double r = p / (1 - p);
  const double alpha = (2.83 + 5.1 / b) * stddev;
  const double m = std::floor((count + 1) * p);
  while (true) {
    const double u = rng.uniform() - 0.5;
    double v = rng.uniform();
    const double us = 0.5 - std::fabs(u);
    const double k = std::floor((2 * a / us + b) * u + c);
    if (k < 0 || k > count) continue;
    if (us >= 0.07 && v <= v_r) return static_cast<std::int64_t>(k);
    v = std::log(v * alpha / (a / (us * us) + b));
    const double bound = (m + 0.5) * std::log((m + 1) / (r * (count - m + 1))) +
                         (count + 1) * std::log((count - m + 1) / (count - k + 1)) +
                         (k + 0.5) * std::log(r * (count - k + 1) / (k + 1)) + stirling_tail(m) +
                         stirling_tail(count - m) - stirling_tail(k) - stirling_tail(count - k);
    if (v <= bound) return static_cast<std::int64_t>(k);
  }
}

}  // namespace

std::int64_t binomial(Rng& rng, std::int64_t n, double p) {
  if (n <= 0 || p <= 0) return 0;
  if (p >= 1) return n;
  if (p > 0.5) return n - binomial(rng, n, 1 - p);
  return static_cast<double>(n) * p < 10 ? binomial_inversion(rng, n, p) : binomial_btrs(rng, n, p);
}

namespace {

// Node `node` (heap numbering: root 1, children 2k and 2k+1) covers users [lo, hi) and holds
// n events; its left half gets Binomial(n, |left| / |node|) of them, drawn from the node's own
// stream. Only nodes that meet [begin, end) are visited.
void split_events(std::uint64_t seed, std::uint64_t node, std::int64_t lo, std::int64_t hi, std::int64_t n,
                  std::int64_t begin, std::int64_t end, std::int64_t* out) {
  if (hi - lo == 1) {
    out[lo - begin] = n;
    return;
  }
  if (n == 0) {
    for (std::int64_t u = std::max(lo, begin); u < std::min(hi, end); ++u) out[u - begin] = 0;
    return;
  }
  const std::int64_t mid = lo + (hi - lo) / 2;
  Rng rng(stream_seed(seed, kTreeStream, node));
  const std::int64_t left = binomial(rng, n, static_cast<double>(mid - lo) / static_cast<double>(hi - lo));
  if (begin < mid) split_events(seed, 2 * node, lo, mid, left, begin, end, out);
  if (end > mid) split_events(seed, 2 * node + 1, mid, hi, n - left, begin, end, out);
}

}  // namespace

std::vector<std::int64_t> user_event_counts(std::int64_t n_events, std::int64_t n_users, std::uint64_t seed,
                                            std::int64_t begin, std::int64_t end) {
  if (begin < 0 || end > n_users || begin > end) throw Error("user_event_counts: bad user range");
  std::vector<std::int64_t> out(static_cast<std::size_t>(end - begin), 0);
  if (begin < end) split_events(seed, 1, 0, n_users, n_events, begin, end, out.data());
  return out;
}

}  // namespace mfrec::gen
