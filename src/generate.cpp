#include "mfrec/generate.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <numeric>
#include <set>

#include "mfrec/comm.hpp"
#include "mfrec/error.hpp"
#include "mfrec/h5.hpp"
#include "mfrec/log.hpp"
#include "mfrec/partition.hpp"
#include "mfrec/version.hpp"

namespace mfrec::gen {

// ---- random numbers -----------------------------------------------------------------------------


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

// ---- catalog ------------------------------------------------------------------------------------

dataset::ItemTable load_catalog(const std::string& path) {
  {
    std::ifstream probe(path);
    if (!probe) throw InputError(path + ": cannot read: " + std::strerror(errno));
  }
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::Exception& e) {
    throw InputError(path + ": not a valid YAML catalog: " + e.what());
  }
  if (!root.IsSequence() || root.size() == 0)
    throw InputError(path + ": expected a YAML list of products");
  dataset::ItemTable t;
  std::set<std::string> seen;
  for (std::size_t i = 0; i < root.size(); ++i) {
    const YAML::Node& p = root[i];
    auto text = [&](const char* key, bool required) -> std::string {
      const YAML::Node v = p[key];
      if (!v || v.IsNull()) {
        if (required) throw InputError(path + ": product " + std::to_string(i) + " has no " + key);
        return "";
      }
      if (!v.IsScalar()) throw InputError(path + ": product " + std::to_string(i) + ": " + key + " is not a scalar");
      return v.as<std::string>();
    };
    try {
      t.id.push_back(text("id", true));
      t.name.push_back(text("name", false));
      t.category.push_back(text("category", true));
      t.style.push_back(text("style", false));
      t.description.push_back(text("description", false));
      std::string g = text("gender_affinity", false);
      if (!g.empty() && g != "M" && g != "F")
        throw InputError(path + ": product " + t.id.back() + ": gender_affinity must be M, F or absent, not '" + g + "'");
      t.gender_affinity.push_back(g);
      const YAML::Node price = p["price"];
      const double v = price && price.IsScalar() ? price.as<double>() : -1.0;
      if (!std::isfinite(v) || v < 0) throw InputError(path + ": product " + t.id.back() + ": missing or bad price");
      t.price.push_back(static_cast<float>(v));
    } catch (const YAML::Exception& e) {
      throw InputError(path + ": product " + std::to_string(i) + ": " + e.what());
    }
    if (!seen.insert(t.id.back()).second) throw InputError(path + ": duplicate product id " + t.id.back());
  }
  return t;
}

namespace {

void append_item(dataset::ItemTable& out, const dataset::ItemTable& from, std::size_t i) {
  out.id.push_back(from.id[i]);
  out.name.push_back(from.name[i]);
  out.category.push_back(from.category[i]);
  out.style.push_back(from.style[i]);
  out.description.push_back(from.description[i]);
  out.gender_affinity.push_back(from.gender_affinity[i]);
  out.price.push_back(from.price[i]);
}

// Integer shares of n proportional to sizes (largest remainder; ties to the first), each at
// least `floor` and at most its size.
std::vector<std::int64_t> apportion(const std::vector<std::int64_t>& sizes, std::int64_t n, std::int64_t floor_each) {
  const double total = static_cast<double>(std::accumulate(sizes.begin(), sizes.end(), std::int64_t(0)));
  std::vector<std::int64_t> a(sizes.size());
  std::vector<double> quota(sizes.size());
  std::int64_t sum = 0;
  for (std::size_t c = 0; c < sizes.size(); ++c) {
    quota[c] = static_cast<double>(n) * static_cast<double>(sizes[c]) / total;
    a[c] = std::min(sizes[c], std::max(floor_each, static_cast<std::int64_t>(quota[c])));
    sum += a[c];
  }
  while (sum != n) {  // hand out (or take back) one at a time where the quota is furthest off
    std::size_t best = sizes.size();
    double best_gap = 0;
    for (std::size_t c = 0; c < sizes.size(); ++c) {
      const double gap = sum < n ? quota[c] - static_cast<double>(a[c]) : static_cast<double>(a[c]) - quota[c];
      const bool can = sum < n ? a[c] < sizes[c] : a[c] > floor_each;
      if (can && (best == sizes.size() || gap > best_gap)) {
        best = c;
        best_gap = gap;
      }
    }
    a[best] += sum < n ? 1 : -1;
    sum += sum < n ? 1 : -1;
  }
  return a;
}

}  // namespace

dataset::ItemTable resize_catalog(const dataset::ItemTable& catalog, std::int64_t n_items, std::uint64_t seed) {
  const auto size = static_cast<std::int64_t>(catalog.size());
  if (n_items <= 0 || size == 0) throw ConfigError("option --items: must be positive");
  dataset::ItemTable out;
  if (n_items <= size) {
    // Stratified: each category keeps its share (at least one item when there are enough), and
    // within a category the items are taken evenly over its (style, catalog order) listing.
    std::vector<std::string> cats;
    std::map<std::string, std::vector<std::size_t>> members;
    for (std::size_t i = 0; i < catalog.size(); ++i) {
      auto& m = members[catalog.category[i]];
      if (m.empty()) cats.push_back(catalog.category[i]);
      m.push_back(i);
    }
    std::vector<std::int64_t> sizes;
    for (const auto& c : cats) sizes.push_back(static_cast<std::int64_t>(members[c].size()));
    const auto share = apportion(sizes, n_items, n_items >= static_cast<std::int64_t>(cats.size()) ? 1 : 0);
    std::vector<std::size_t> keep;
    for (std::size_t c = 0; c < cats.size(); ++c) {
      auto m = members[cats[c]];
      std::stable_sort(m.begin(), m.end(), [&](std::size_t x, std::size_t y) { return catalog.style[x] < catalog.style[y]; });
      for (std::int64_t j = 0; j < share[c]; ++j)
        keep.push_back(m[static_cast<std::size_t>((2 * j + 1) * sizes[c] / (2 * share[c]))]);
    }
    std::sort(keep.begin(), keep.end());
    for (std::size_t i : keep) append_item(out, catalog, i);
    return out;
  }
  out = catalog;
  for (std::int64_t i = size; i < n_items; ++i) {
    const auto t = static_cast<std::size_t>(i % size);
    const std::string k = std::to_string(i / size);
    Rng rng(stream_seed(seed, kCloneStream, static_cast<std::uint64_t>(i)));
    const double price = std::max(0.01, std::round(catalog.price[t] * std::exp(0.15 * rng.normal()) * 100) / 100);
    append_item(out, catalog, t);
    out.id.back() += "-" + k;
    out.name.back() += " #" + k;
    out.price.back() = static_cast<float>(price);
  }
  return out;
}

// ---- personas -------------------------------------------------------------------------------

const std::vector<std::string>& persona_names() {
  static const std::vector<std::string> names = {
      // web: the seed's 16
      "furniture_homedecor_housewares", "apparel_footwear_accessories", "instruments_books_electronics",
      "floral_beauty_jewelry", "groceries_seasonal_tools", "outdoors_instruments_groceries",
      "housewares_floral_seasonal", "tools_housewares_apparel", "electronics_outdoors_footwear",
      "seasonal_furniture_floral", "homedecor_electronics_outdoors", "accessories_groceries_books",
      "footwear_jewelry_furniture", "books_apparel_homedecor", "beauty_accessories_instruments",
      "housewares_tools_beauty",
      // c-store: 9 built from the c-store categories' styles; every style appears at least once
      "food service:pizza_cold dispensed:fountain-carbonated_salty snacks:nuts/seeds",
      "food service:nachos_cold dispensed:fountain-non-carbonated_salty snacks:potato chips",
      "food service:sandwiches/wraps_hot dispensed:hot chocolate_salty snacks:nuts/seeds",
      "food service:soup and salad_cold dispensed:fountain-carbonated_salty snacks:potato chips",
      "food service:seafood_cold dispensed:fountain-non-carbonated_salty snacks:nuts/seeds",
      "food service:other cuisine_hot dispensed:hot chocolate_salty snacks:potato chips",
      "cold dispensed:fountain-carbonated_salty snacks:potato chips_food service:nachos",
      "hot dispensed:hot chocolate_food service:soup and salad_salty snacks:nuts/seeds",
      "salty snacks:nuts/seeds_cold dispensed:fountain-non-carbonated_food service:sandwiches/wraps"};
  return names;
}

namespace {

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (true) {
    std::size_t pos = s.find(sep, start);
    out.push_back(s.substr(start, pos - start));
    if (pos == std::string::npos) return out;
    start = pos + 1;
  }
}

}  // namespace

// ---- the event model ------------------------------------------------------------------------------

void EventColumns::clear() {
  user.clear();
  timestamp.clear();
  item.clear();
  type.clear();
  discount.clear();
}

Model::Model(const dataset::ItemTable& items, std::uint64_t seed) : seed_(seed) {
  const std::size_t n = items.size();
  if (n == 0 || n > static_cast<std::size_t>(kMaxItems)) throw Error("Model: bad number of items");
  // C-store categories are picked by (category, style), web categories by category.
  std::set<std::string> cstore_categories;
  for (int p = kNumWebPersonas; p < kNumWebPersonas + kNumCstorePersonas; ++p)
    for (const auto& pair : split(persona_names()[p], '_')) cstore_categories.insert(split(pair, ':')[0]);

  std::map<std::string, int> pool_of_key;
  auto pool = [&](const std::string& key) -> int {
    auto [it, fresh] = pool_of_key.emplace(key, static_cast<int>(pools_.size()));
    if (fresh) pools_.emplace_back();
    return it->second;
  };
  std::map<std::string, int> category_index;
  std::vector<int> home(n);
  category_of_.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::string& cat = items.category[i];
    category_of_[i] = category_index.emplace(cat, static_cast<int>(category_index.size())).first->second;
    const int cp = pool(cat);  // every category has a pool (a c-store persona's fallback)
    pools_[cp].items.push_back(static_cast<std::int32_t>(i));
    home[i] = cp;
    if (cstore_categories.count(cat)) {
      const int sp = pool(cat + ":" + items.style[i]);
      pools_[sp].items.push_back(static_cast<std::int32_t>(i));
      home[i] = sp;
    }
  }
  for (auto& p : pools_)
    for (int g = 0; g < 2; ++g) {
      const char want = g == 0 ? 'M' : 'F';
      for (std::int32_t i : p.items) {
        const std::string& a = items.gender_affinity[i];
        if (a.empty() || a[0] == want) p.by_gender[g].push_back(i);
      }
      if (p.by_gender[g].empty()) p.by_gender[g] = p.items;
    }

  // Personas: each slot's pool (a c-store pair falls back to its category when the items have
  // no such style) and the affinities 0.6/0.25/0.15 re-weighted by pool size.
  for (const auto& name : persona_names()) {
    PersonaPools pp;
    double w[3] = {0, 0, 0}, total = 0;
    const auto parts = split(name, '_');
    for (int k = 0; k < 3; ++k) {
      const auto cs = split(parts[k], ':');
      auto it = pool_of_key.find(parts[k]);
      if (it == pool_of_key.end() && cs.size() > 1) it = pool_of_key.find(cs[0]);
      if (it == pool_of_key.end()) continue;
      pp.pool[k] = it->second;
      w[k] = kCategoryAffinity[k] * static_cast<double>(pools_[it->second].items.size());
      total += w[k];
    }
    if (total == 0) {  // none of its categories is among the items: any item will do
      std::vector<std::int32_t> all(n);
      for (std::size_t i = 0; i < n; ++i) all[i] = static_cast<std::int32_t>(i);
      pp.pool[0] = pool("*all*");
      if (pools_[pp.pool[0]].items.empty()) {
        pools_[pp.pool[0]].items = all;
        pools_[pp.pool[0]].by_gender = {all, all};
      }
      w[0] = total = 1;
    }
    double acc = 0;
    int last = 0;
    for (int k = 0; k < 3; ++k) {
      acc += w[k];
      pp.cumulative[k] = acc / total;
      if (w[k] > 0) last = k;
    }
    for (int k = last; k < 3; ++k) pp.cumulative[k] = 1.0;  // no rounding gap at the top
    personas_.push_back(pp);
  }

  // Affinity cliques: 4 distinct other items of the item's own pool, from the item's stream
  // (all of them when the pool has 5 or fewer; the item itself when it is alone).
  clique_.assign(4 * n, 0);
  clique_n_.assign(n, 0);
  std::vector<std::int64_t> in_degree(n, 0);
  for (std::size_t i = 0; i < n; ++i) {
    const auto& p = pools_[home[i]].items;
    std::int32_t* c = &clique_[4 * i];
    int k = 0;
    if (p.size() == 1) {
      c[k++] = static_cast<std::int32_t>(i);
    } else if (p.size() <= 5) {
      for (std::int32_t j : p)
        if (j != static_cast<std::int32_t>(i)) c[k++] = j;
    } else {
      Rng rng(stream_seed(seed, kItemStream, i));
      while (k < 4) {
        const std::int32_t j = p[rng.below(p.size())];
        if (j != static_cast<std::int32_t>(i) && std::find(c, c + k, j) == c + k) c[k++] = j;
      }
    }
    clique_n_[i] = static_cast<std::uint8_t>(k);
    for (int q = 0; q < k; ++q)
      if (c[q] != static_cast<std::int32_t>(i)) ++in_degree[c[q]];
  }
  // Under-represented: fewer cliques lead to it than half the average of its pool (in pools of
  // 6 or more, where cliques are a choice: at most one other item leads there).
  under_.assign(n, 0);
  for (std::size_t i = 0; i < n; ++i) {
    const auto s = static_cast<std::int64_t>(pools_[home[i]].items.size());
    under_[i] = s > 5 && 2 * in_degree[i] < 4;
  }
  // Discounts: "lower priced" means below the median price of the item's category.
  std::vector<std::vector<float>> prices(category_index.size());
  for (std::size_t i = 0; i < n; ++i) prices[category_of_[i]].push_back(items.price[i]);
  std::vector<double> median(prices.size());
  for (std::size_t c = 0; c < prices.size(); ++c) {
    auto& v = prices[c];
    std::sort(v.begin(), v.end());
    const std::size_t h = v.size() / 2;
    median[c] = v.size() % 2 ? v[h] : 0.5 * (static_cast<double>(v[h - 1]) + v[h]);
  }
  low_price_.resize(n);
  for (std::size_t i = 0; i < n; ++i) low_price_[i] = items.price[i] < median[category_of_[i]];
}

std::vector<std::int32_t> Model::clique(std::int32_t item) const {
  return {clique_.begin() + 4 * item, clique_.begin() + 4 * item + clique_n_[item]};
}

User Model::draw_user(std::int64_t index, Rng& rng) const {
  User u;
  u.index = index;
  u.gender = rng.below(2) ? 'F' : 'M';
  double age;
  do {  // normal(32, 15), rounded, truncated to [18, 100] by rejection
    age = std::floor(32 + 15 * rng.normal() + 0.5);
  } while (age < 18 || age > 100);
  u.age = static_cast<std::int16_t>(age);
  u.cstore = !(rng.uniform() < kWebShare);
  u.persona = u.cstore ? kNumWebPersonas + static_cast<int>(rng.below(kNumCstorePersonas))
                       : static_cast<int>(rng.below(kNumWebPersonas));
  u.discount_persona = static_cast<int>(rng.below(kDiscountPersonas.size()));
  return u;
}

User Model::make_user(std::int64_t index) const {
  Rng rng(stream_seed(seed_, kUserStream, static_cast<std::uint64_t>(index)));
  return draw_user(index, rng);
}

User Model::user_and_events(std::int64_t index, std::int64_t count, std::int64_t end_time, EventColumns& out) const {
  Rng rng(stream_seed(seed_, kUserStream, static_cast<std::uint64_t>(index)));
  User u = draw_user(index, rng);
  draw_events(u, rng, count, end_time, out);
  return u;
}

void Model::draw_events(const User& u, Rng& rng, std::int64_t count, std::int64_t end_time, EventColumns& out) const {
  if (count <= 0) return;
  const std::size_t start = out.size();
  const PersonaPools& pp = personas_[u.persona];
  const int g = u.gender == 'F' ? 1 : 0;
  std::int32_t first[3] = {-1, -1, -1};  // the first item seen in each persona slot
  std::int64_t left = count;
  auto emit = [&](std::int32_t item, int type, bool discount) {
    out.user.push_back(u.index);
    out.item.push_back(item);
    out.type.push_back(static_cast<std::uint8_t>(type));
    out.discount.push_back(discount ? 1 : 0);
    out.timestamp.push_back(0);
    return --left > 0;
  };
  bool more = true;
  int entry = -1;  // where the first set was entered (-1: not yet)
  while (more) {
    const double x = rng.uniform();
    int k = 0;
    while (x >= pp.cumulative[k]) ++k;
    std::int32_t item;
    if (first[k] < 0) {
      const auto& candidates = pools_[pp.pool[k]].by_gender[g];
      item = candidates[rng.below(candidates.size())];
      first[k] = item;
    } else {
      item = clique_[4 * first[k] + rng.below(clique_n_[first[k]])];
    }
    const double p_discount =
        (u.discount_persona == 1 || (u.discount_persona == 2 && low_price_[item])) ? kDiscountLiked : kDiscountBase;
    const int sets = under_[item] ? 2 + static_cast<int>(rng.below(4)) : 1;  // 1-4 extra sets
    for (int s = 0; s < sets && more; ++s) {
      const bool discount = rng.bernoulli(p_discount);
      int types[5] = {0}, size;
      do {  // a view set: the View, then each funnel step with its own probability
        size = 1;
        for (int t = 0; t < 4; ++t)
          if (rng.bernoulli(kFunnel[t])) types[size++] = t + 1;
        // The first set is drawn size-biased and entered at a uniform position: the user's
        // events are a window onto a stationary stream of sets, so every position (the first
        // included) has the type shares 1 : 0.08 : 0.05 : 0.02 : 0.01 of the whole.
      } while (entry < 0 && static_cast<int>(rng.below(5)) >= size);
      int from = 0;
      if (entry < 0) from = entry = static_cast<int>(rng.below(static_cast<std::uint64_t>(size)));
      for (int q = from; q < size && more; ++q) more = emit(item, types[q], discount);
    }
  }

  // Timestamps: each view set at a uniform time in the window (sorted), its funnel events 1-60 s
  // apart after it (the first event starts a set even when it is not a View). Room is reserved
  // so that times strictly increase; only a user with millions of events (more than half the
  // window's seconds) gets equal times within a set instead.
  const std::size_t end = out.size();
  std::int64_t sets = 0, gaps = 0;
  for (std::size_t e = start; e < end; ++e) {
    if (out.type[e] == 0 || e == start) {  // a set begins (the first may begin after its View)
      ++sets;
    } else {
      out.timestamp[e] = 1 + static_cast<std::int64_t>(rng.below(60));
      gaps += out.timestamp[e];
    }
  }
  const bool strict = sets + gaps <= kWindowSeconds / 2;
  const std::int64_t range = strict ? kWindowSeconds - sets - gaps : kWindowSeconds;
  std::vector<std::int64_t> t(static_cast<std::size_t>(sets));
  for (auto& v : t) v = static_cast<std::int64_t>(rng.below(static_cast<std::uint64_t>(range)));
  std::sort(t.begin(), t.end());
  const std::int64_t base = end_time - kWindowSeconds;
  std::int64_t j = -1, shift = 0, now = 0;
  for (std::size_t e = start; e < end; ++e) {
    if (out.type[e] == 0 || e == start) {
      ++j;
      now = t[j] + (strict ? j + shift : 0);
    } else if (strict) {
      now += out.timestamp[e];
      shift += out.timestamp[e];
    }
    out.timestamp[e] = base + now;
  }
}

// ---- the whole data set -------------------------------------------------------------------------

namespace {

std::size_t digits(std::int64_t v) { return std::to_string(std::max<std::int64_t>(v, 0)).size(); }

constexpr hsize_t kEventChunk = hsize_t(1) << 17;
constexpr hsize_t kUserChunk = hsize_t(1) << 16;
constexpr std::int64_t kMaxUsersPerBatch = std::int64_t(1) << 18;

}  // namespace

Summary generate(const Options& opt, const dataset::ItemTable& items, const Comm& comm) {
  const double t0 = Comm::wtime();
  if (opt.n_users < 1 || opt.n_users > kMaxUsers) throw ConfigError("option --users: must be in [1, 2^31]");
  if (opt.n_events < 1) throw ConfigError("option --events: must be positive");
  if (opt.batch_events < 1) throw ConfigError("option --batch-events: must be positive");
  if (opt.deflate < 0 || opt.deflate > 9) throw ConfigError("option --deflate: must be in [0, 9]");
  if (items.size() == 0) throw ConfigError("option --items: must be positive");

  PhaseTimer timer;
  auto model_scope = std::make_unique<PhaseTimer::Scope>(timer, "model");
  const Model model(items, opt.seed);
  const Bounds bounds = partition_even(opt.n_users, comm.size());
  const std::int64_t u_begin = bounds[comm.rank()], u_end = bounds[comm.rank() + 1];
  const auto counts = user_event_counts(opt.n_events, opt.n_users, opt.seed, u_begin, u_end);
  std::int64_t local_events = 0;
  for (auto c : counts) local_events += c;
  const std::int64_t event_begin = comm.exscan_sum(local_events);

  // Batches of consecutive users with about batch_events events; every rank makes as many
  // collective writes as the rank with the most batches (the others write nothing).
  std::vector<std::int64_t> cut{0};
  std::int64_t acc = 0;
  for (std::size_t i = 0; i < counts.size(); ++i) {
    acc += counts[i];
    if (acc >= opt.batch_events || static_cast<std::int64_t>(i + 1) - cut.back() >= kMaxUsersPerBatch) {
      cut.push_back(static_cast<std::int64_t>(i + 1));
      acc = 0;
    }
  }
  if (cut.back() != static_cast<std::int64_t>(counts.size())) cut.push_back(static_cast<std::int64_t>(counts.size()));
  const auto local_batches = static_cast<std::int64_t>(cut.size()) - 1;
  const std::int64_t n_batches = comm.max(local_batches);

  model_scope.reset();
  auto create_scope = std::make_unique<PhaseTimer::Scope>(timer, "create");
  h5::File f = h5::File::create_atomic(opt.output, &comm);
  const h5::DatasetOptions user_opt{kUserChunk, opt.deflate}, event_opt{kEventChunk, opt.deflate};
  const auto n_users = static_cast<hsize_t>(opt.n_users), n_events = static_cast<hsize_t>(opt.n_events);
  std::size_t persona_width = 1;
  for (const auto& p : persona_names()) persona_width = std::max(persona_width, p.size());
  f.create_string_dataset("/users/id", n_users, digits(opt.n_users - 1), user_opt);
  f.create_string_dataset("/users/gender", n_users, 1, user_opt);
  f.create_dataset<std::int16_t>("/users/age", {n_users}, user_opt);
  f.create_string_dataset("/users/persona", n_users, persona_width, user_opt);
  f.create_string_dataset("/users/discount_persona", n_users, std::strlen(kDiscountPersonas[2]), user_opt);
  f.create_string_dataset("/users/channel", n_users, 7, user_opt);
  f.create_dataset<std::int64_t>("/events/user", {n_events}, event_opt);
  f.create_dataset<std::int32_t>("/events/item", {n_events}, event_opt);
  f.create_dataset<std::uint8_t>("/events/type", {n_events}, event_opt);
  f.create_dataset<std::int64_t>("/events/timestamp", {n_events}, event_opt);
  f.create_dataset<std::uint8_t>("/events/discount", {n_events}, event_opt);
  dataset::write_items(f, items);
  create_scope.reset();

  Progress progress(comm, "events (rank 0's share)", static_cast<double>(local_events), 2.0);
  EventColumns ev;
  std::vector<std::string> ids, gender, persona, discount, channel;
  std::vector<std::int16_t> age;
  std::int64_t written = 0;
  for (std::int64_t b = 0; b < n_batches; ++b) {
    ev.clear();
    for (auto* v : {&ids, &gender, &persona, &discount, &channel}) v->clear();
    age.clear();
    const std::int64_t lo = b < local_batches ? cut[b] : 0, hi = b < local_batches ? cut[b + 1] : 0;
    std::int64_t batch_events = 0;
    for (std::int64_t i = lo; i < hi; ++i) batch_events += counts[i];
    auto gen_scope = std::make_unique<PhaseTimer::Scope>(timer, "generate");
    ev.user.reserve(batch_events);
    ev.item.reserve(batch_events);
    ev.type.reserve(batch_events);
    ev.timestamp.reserve(batch_events);
    ev.discount.reserve(batch_events);
    for (std::int64_t i = lo; i < hi; ++i) {
      const User u = model.user_and_events(u_begin + i, counts[i], opt.end_time, ev);
      ids.push_back(std::to_string(u.index));
      gender.emplace_back(1, u.gender);
      age.push_back(u.age);
      persona.push_back(persona_names()[u.persona]);
      discount.emplace_back(kDiscountPersonas[u.discount_persona]);
      channel.emplace_back(u.cstore ? "c-store" : "web");
    }
    gen_scope.reset();
    auto write_scope = std::make_unique<PhaseTimer::Scope>(timer, "write");
    const auto user_row = static_cast<hsize_t>(u_begin + lo);
    f.write_string_rows("/users/id", user_row, ids);
    f.write_string_rows("/users/gender", user_row, gender);
    f.write_rows("/users/age", user_row, age.size(), age.data());
    f.write_string_rows("/users/persona", user_row, persona);
    f.write_string_rows("/users/discount_persona", user_row, discount);
    f.write_string_rows("/users/channel", user_row, channel);
    const auto event_row = static_cast<hsize_t>(event_begin + written);
    f.write_rows("/events/user", event_row, ev.size(), ev.user.data());
    f.write_rows("/events/item", event_row, ev.size(), ev.item.data());
    f.write_rows("/events/type", event_row, ev.size(), ev.type.data());
    f.write_rows("/events/timestamp", event_row, ev.size(), ev.timestamp.data());
    f.write_rows("/events/discount", event_row, ev.size(), ev.discount.data());
    written += static_cast<std::int64_t>(ev.size());
    progress.update(static_cast<double>(written));
  }
  if (written != local_events) throw Error("generate: wrote " + std::to_string(written) + " events, expected " +
                                           std::to_string(local_events));
  progress.finish();

  auto commit_scope = std::make_unique<PhaseTimer::Scope>(timer, "commit");
  std::string type_names;
  for (const char* t : dataset::kEventTypes) type_names += (type_names.empty() ? "" : ",") + std::string(t);
  f.set_attr("/events/type", "names", type_names);
  f.set_attr("/", "format", dataset::kDatasetFormat);
  f.set_attr("/", "format_version", dataset::kFormatVersion);
  f.set_attr("/", "generator", "mfrec_gen");
  f.set_attr("/", "generator_version", kVersion);
  f.set_attr("/", "seed", static_cast<std::int64_t>(opt.seed));
  f.set_attr("/", "n_users", opt.n_users);
  f.set_attr("/", "n_items", static_cast<std::int64_t>(items.size()));
  f.set_attr("/", "n_events", opt.n_events);
  f.set_attr("/", "end_time", opt.end_time);
  f.set_attr("/", "window_days", static_cast<std::int64_t>(kWindowDays));
  f.commit();
  commit_scope.reset();
  for (const auto& [phase, st] : timer.summary(comm))
    spdlog::debug("phase {}: min {:.3f} s, mean {:.3f} s, max {:.3f} s", phase, st.min, st.mean, st.max);

  Summary s;
  s.n_users = opt.n_users;
  s.n_items = static_cast<std::int64_t>(items.size());
  s.n_events = opt.n_events;
  s.seconds = comm.max(Comm::wtime() - t0);
  return s;
}

// ---- CSV --------------------------------------------------------------------------------------------

namespace {

// A CSV file written through "<path>.partial" and renamed on close.
class CsvWriter {
 public:
  explicit CsvWriter(std::string path) : path_(std::move(path)), tmp_(path_ + ".partial") {
    file_ = std::fopen(tmp_.c_str(), "wb");
    if (!file_) throw IoError(tmp_ + ": cannot create: " + std::strerror(errno));
    buf_.reserve(kFlush + 4096);
  }
  ~CsvWriter() {
    if (file_) {
      std::fclose(file_);
      std::remove(tmp_.c_str());
    }
  }
  CsvWriter(const CsvWriter&) = delete;
  CsvWriter& operator=(const CsvWriter&) = delete;

  CsvWriter& field(const std::string& s) {
    sep();
    if (s.find_first_of(",\"\r\n") == std::string::npos) {
      buf_ += s;
    } else {
      buf_ += '"';
      for (char c : s) {
        if (c == '"') buf_ += '"';
        buf_ += c;
      }
      buf_ += '"';
    }
    return *this;
  }
  CsvWriter& field(std::int64_t v) {
    sep();
    char tmp[24];
    auto r = std::to_chars(tmp, tmp + sizeof tmp, v);
    buf_.append(tmp, r.ptr);
    return *this;
  }
  CsvWriter& price(float v) {
    sep();
    char tmp[32];
    int n = std::snprintf(tmp, sizeof tmp, "%.2f", static_cast<double>(v));
    buf_.append(tmp, static_cast<std::size_t>(n));
    return *this;
  }
  void end_line() {
    buf_ += '\n';
    first_ = true;
    if (buf_.size() >= kFlush) flush();
  }
  void commit() {
    flush();
    const bool ok = std::fclose(file_) == 0;
    file_ = nullptr;
    if (!ok) throw IoError(tmp_ + ": write failed: " + std::strerror(errno));
    if (std::rename(tmp_.c_str(), path_.c_str()) != 0)
      throw IoError(path_ + ": cannot rename " + tmp_ + ": " + std::strerror(errno));
  }

 private:
  static constexpr std::size_t kFlush = 1 << 20;
  void sep() {
    if (!first_) buf_ += ',';
    first_ = false;
  }
  void flush() {
    if (!buf_.empty() && std::fwrite(buf_.data(), 1, buf_.size(), file_) != buf_.size())
      throw IoError(tmp_ + ": write failed: " + std::strerror(errno));
    buf_.clear();
  }
  std::string path_, tmp_;
  std::FILE* file_ = nullptr;
  std::string buf_;
  bool first_ = true;
};

void write_csv_files(const std::string& h5_path, const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw IoError(dir + ": cannot create directory: " + ec.message());
  const h5::File f = h5::File::open(h5_path);
  const dataset::ItemTable items = dataset::read_items(f);
  {
    CsvWriter w(dir + "/items.csv");
    w.field("id").field("name").field("category").field("style").field("description").field("price").field("gender_affinity");
    w.end_line();
    for (std::size_t i = 0; i < items.size(); ++i) {
      w.field(items.id[i]).field(items.name[i]).field(items.category[i]).field(items.style[i]).field(items.description[i]);
      w.price(items.price[i]).field(items.gender_affinity[i]);
      w.end_line();
    }
    w.commit();
  }
  {
    CsvWriter w(dir + "/users.csv");
    w.field("id").field("gender").field("age").field("persona").field("discount_persona").field("channel");
    w.end_line();
    const hsize_t n = f.shape("/users/id")[0], step = hsize_t(1) << 16;
    std::vector<std::int16_t> age;
    for (hsize_t lo = 0; lo < n; lo += step) {
      const hsize_t m = std::min(step, n - lo);
      const auto id = f.read_string_rows("/users/id", lo, m), gender = f.read_string_rows("/users/gender", lo, m),
                 persona = f.read_string_rows("/users/persona", lo, m),
                 discount = f.read_string_rows("/users/discount_persona", lo, m),
                 channel = f.read_string_rows("/users/channel", lo, m);
      age.resize(m);
      f.read_rows("/users/age", lo, m, age.data());
      for (hsize_t i = 0; i < m; ++i) {
        w.field(id[i]).field(gender[i]).field(std::int64_t(age[i])).field(persona[i]).field(discount[i]).field(channel[i]);
        w.end_line();
      }
    }
    w.commit();
  }
  {
    CsvWriter w(dir + "/events.csv");
    w.field("user_id").field("item_id").field("event_type").field("timestamp").field("discount");
    w.end_line();
    const hsize_t n = f.shape("/events/user")[0], step = hsize_t(1) << 20;
    std::vector<std::int64_t> user, ts;
    std::vector<std::int32_t> item;
    std::vector<std::uint8_t> type, disc;
    const std::vector<std::string> type_names(dataset::kEventTypes.begin(), dataset::kEventTypes.end());
    for (hsize_t lo = 0; lo < n; lo += step) {
      const hsize_t m = std::min(step, n - lo);
      user.resize(m);
      ts.resize(m);
      item.resize(m);
      type.resize(m);
      disc.resize(m);
      f.read_rows("/events/user", lo, m, user.data());
      f.read_rows("/events/item", lo, m, item.data());
      f.read_rows("/events/type", lo, m, type.data());
      f.read_rows("/events/timestamp", lo, m, ts.data());
      f.read_rows("/events/discount", lo, m, disc.data());
      for (hsize_t i = 0; i < m; ++i) {
        if (item[i] < 0 || static_cast<std::size_t>(item[i]) >= items.size() || type[i] >= type_names.size())
          throw InputError(h5_path + ": /events row " + std::to_string(lo + i) + " has a bad item or type");
        w.field(user[i]).field(items.id[item[i]]).field(type_names[type[i]]).field(ts[i]).field(std::int64_t(disc[i]));
        w.end_line();
      }
    }
    w.commit();
  }
}

}  // namespace

void write_csv(const std::string& h5_path, const std::string& dir, const Comm& comm) {
  std::string error;
  if (comm.is_root()) {
    try {
      write_csv_files(h5_path, dir);
    } catch (const std::exception& e) {
      error = e.what();
    }
  }
  error = comm.bcast(error);  // every rank fails together, none is left waiting
  if (!error.empty()) throw IoError(error);
}

}  // namespace mfrec::gen
