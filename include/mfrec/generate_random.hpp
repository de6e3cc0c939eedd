// The generator's random numbers: its own generators, so the output is the same with every
// standard library, and independent streams keyed by (seed, what, index), so any rank computes
// exactly the values that belong to it.
#pragma once
#include <cstdint>
#include <vector>

namespace mfrec::gen {

// The seed of an independent stream: (seed, domain, index) -> 64 bits.
std::uint64_t stream_seed(std::uint64_t seed, std::uint64_t domain, std::uint64_t index);
enum Domain : std::uint64_t { kUserStream = 1, kItemStream = 2, kTreeStream = 3, kCloneStream = 4 };

// xoshiro256** (Blackman & Vigna), seeded through splitmix64.
class Rng {
 public:
  explicit Rng(std::uint64_t seed);
  std::uint64_t next();
  double uniform();                     // [0, 1), 53 bits
  double uniform_open();                // (0, 1)
  std::uint64_t below(std::uint64_t n);  // [0, n), unbiased (Lemire), n > 0
  bool bernoulli(double p) { return uniform() < p; }
  double normal();  // standard normal (Marsaglia's polar method)

 private:
  std::uint64_t s_[4];
};

// Binomial(n, p): inversion by geometric jumps for n*min(p,1-p) < 10, else Hormann's BTRS.
std::int64_t binomial(Rng& rng, std::int64_t n, double p);

// The events of users [begin, end) out of n_users, when n_events events each pick a user
// uniformly (a multinomial), computed by binomial splits over a fixed binary tree of user
// ranges (each node seeded by its own id): O(log n_users + (end - begin)) work, no communication.
std::vector<std::int64_t> user_event_counts(std::int64_t n_events, std::int64_t n_users, std::uint64_t seed,
                                            std::int64_t begin, std::int64_t end);

}  // namespace mfrec::gen
