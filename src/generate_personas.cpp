// The generator's personas and what the event process derives from the items: selection pools
// per category (and per c-store style), persona affinities re-weighted by pool size, affinity
// cliques, under-represented items and price medians. The same on every rank.
#include <algorithm>
#include <map>
#include <set>

#include "mfrec/error.hpp"
#include "mfrec/generate_model.hpp"

namespace mfrec::gen {

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

}  // namespace mfrec::gen
