// Synthetic factors for the ANN benchmarks and tests (ann_synthetic.hpp).
#include "mfrec/ann_synthetic.hpp"

#include <algorithm>
#include <cmath>

#include "mfrec/hash.hpp"

namespace mfrec {

namespace {

// A counter-based stream: uniform (0, 1) and standard normal (Box-Muller) draws.
struct Stream {
  std::uint64_t state;
  double uniform() { return (static_cast<double>(splitmix64(state++) >> 11) + 0.5) * 0x1.0p-53; }
  double normal() { return std::sqrt(-2.0 * std::log(uniform())) * std::cos(6.283185307179586 * uniform()); }
};

void fill(FactorMatrix& m, const FactorMatrix& centres, std::vector<int>& cluster_of, Stream& s, double mu,
          double sigma) {
  const Index f = m.cols();
  cluster_of.resize(static_cast<std::size_t>(m.rows()));
  for (Index r = 0; r < m.rows(); ++r) {
    const int c = static_cast<int>(s.uniform() * static_cast<double>(centres.rows()));
    cluster_of[static_cast<std::size_t>(r)] = c;
    for (Index k = 0; k < f; ++k) m(r, k) = centres(c, k) + static_cast<Real>(0.6 * s.normal() / std::sqrt(double(f)));
    const Real norm = m.row(r).norm();
    m.row(r) *= static_cast<Real>(std::exp(mu + sigma * s.normal())) / norm;
  }
}

}  // namespace

SyntheticFactors synthetic_factors(Index n_items, int factors, Index n_users, int seen_per_user, std::uint64_t seed,
                                   int clusters) {
  Stream s{splitmix64(seed)};
  FactorMatrix centres(clusters, factors);
  for (Index c = 0; c < centres.rows(); ++c) {
    for (Index k = 0; k < factors; ++k) centres(c, k) = static_cast<Real>(s.normal());
    centres.row(c).normalize();
  }
  SyntheticFactors out;
  out.items.resize(n_items, factors);
  out.users.resize(n_users, factors);
  std::vector<int> item_cluster, user_cluster;
  fill(out.items, centres, item_cluster, s, -1.0, 0.5);
  fill(out.users, centres, user_cluster, s, 0.0, 0.3);
  std::vector<std::vector<std::int32_t>> by_cluster(static_cast<std::size_t>(clusters));
  for (Index i = 0; i < n_items; ++i)
    by_cluster[static_cast<std::size_t>(item_cluster[static_cast<std::size_t>(i)])].push_back(static_cast<std::int32_t>(i));
  out.seen.resize(static_cast<std::size_t>(n_users));
  for (Index u = 0; u < n_users; ++u) {
    auto& v = out.seen[static_cast<std::size_t>(u)];
    const auto& own = by_cluster[static_cast<std::size_t>(user_cluster[u])];
    for (int k = 0; k < seen_per_user * 4 && static_cast<int>(v.size()) < seen_per_user; ++k) {
      // Three in four from the user's own cluster (what it would have been shown), the rest anywhere.
      const bool own_pick = !own.empty() && s.uniform() < 0.75;
      const auto i = own_pick ? own[static_cast<std::size_t>(s.uniform() * static_cast<double>(own.size()))]
                              : static_cast<std::int32_t>(s.uniform() * static_cast<double>(n_items));
      if (std::find(v.begin(), v.end(), i) == v.end()) v.push_back(i);
    }
    std::sort(v.begin(), v.end());
  }
  return out;
}

}  // namespace mfrec
