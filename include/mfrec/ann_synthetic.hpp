// Synthetic factors for measuring the ANN index at a catalogue size no training run here reaches
// quickly (the 100x catalogue: 246,500 items): item and user factors with clustered directions (as
// items of a category, and the users who like them, point the same way) and log-normal norms (as
// popular items get longer vectors), plus each user's seen items. Deterministic in the seed.
#pragma once
#include <cstdint>
#include <vector>

#include "mfrec/types.hpp"

namespace mfrec {

struct SyntheticFactors {
  FactorMatrix items, users;
  std::vector<std::vector<std::int32_t>> seen;  // per user, distinct, mostly from its cluster
};

// `clusters` directions; each vector is its cluster's direction plus noise, scaled to a norm of
// exp(N(-1, 0.5)) (items) or exp(N(0, 0.3)) (users).
SyntheticFactors synthetic_factors(Index n_items, int factors, Index n_users, int seen_per_user, std::uint64_t seed,
                                   int clusters = 200);

}  // namespace mfrec
