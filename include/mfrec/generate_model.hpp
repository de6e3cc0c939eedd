// The generator's event process: users with personas (generate_personas.cpp builds the item
// pools, persona affinities and affinity cliques from the items) and each user's stream of view
// sets and funnel events (generate_events.cpp). docs/generator.md gives every number.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "mfrec/dataset.hpp"
#include "mfrec/generate_random.hpp"

namespace mfrec::gen {

inline constexpr std::int64_t kDefaultEndTime = 1609459200;  // 2021-01-01T00:00:00Z
inline constexpr int kWindowDays = 90;
inline constexpr std::int64_t kWindowSeconds = std::int64_t(kWindowDays) * 86400;
inline constexpr std::int64_t kMaxItems = (std::int64_t(1) << 31) - 1;  // /events/item is int32

// ---- personas -----------------------------------------------------------------------------------

// The 16 web personas (three categories, strongest affinity first) then the 9 c-store personas
// (three "category:style" pairs). Persona names are the seed's, e.g. "furniture_homedecor_housewares".
const std::vector<std::string>& persona_names();
inline constexpr int kNumWebPersonas = 16;
inline constexpr int kNumCstorePersonas = 9;
inline constexpr std::array<const char*, 3> kDiscountPersonas = {"discount_indifferent", "all_discounts",
                                                                 "lower_priced_products"};
inline constexpr std::array<double, 3> kCategoryAffinity = {0.6, 0.25, 0.15};
// After each View: AddToCart, ViewCart, StartCheckout, Purchase, each with this probability.
inline constexpr std::array<double, 4> kFunnel = {0.08, 0.05, 0.02, 0.01};
inline constexpr double kWebShare = 0.9;
inline constexpr double kDiscountBase = 0.2, kDiscountLiked = 0.5;

struct User {
  std::int64_t index = 0;
  char gender = 'M';      // 'M' or 'F'
  std::int16_t age = 0;   // [18, 100]
  bool cstore = false;    // channel: web (false) or c-store (true)
  int persona = 0;        // index in persona_names()
  int discount_persona = 0;  // index in kDiscountPersonas
};

// Events in columns (one entry per event), ordered by user, then time.
struct EventColumns {
  std::vector<std::int64_t> user, timestamp;
  std::vector<std::int32_t> item;
  std::vector<std::uint8_t> type, discount;
  std::size_t size() const { return user.size(); }
  void clear();
};

// What the event process needs to know about the items, derived from the item table and the
// seed alone (identical on every rank): selection pools, affinity cliques, price medians.
class Model {
 public:
  Model(const dataset::ItemTable& items, std::uint64_t seed);

  // A user's attributes and its event stream, truncated to `count` events, appended to `out`
  // (timestamps in [end_time - 90 days, end_time), increasing). Both come from the user's own
  // stream (seed, index), so they do not depend on which rank asks.
  User user_and_events(std::int64_t index, std::int64_t count, std::int64_t end_time, EventColumns& out) const;
  User make_user(std::int64_t index) const;  // the attributes alone (the same as above)

  std::int64_t n_items() const { return static_cast<std::int64_t>(category_of_.size()); }
  // The items an item's first view leads to later (its affinity clique).
  std::vector<std::int32_t> clique(std::int32_t item) const;
  bool under_represented(std::int32_t item) const { return under_[item] != 0; }

 private:
  struct Pool {
    std::vector<std::int32_t> items;
    std::array<std::vector<std::int32_t>, 2> by_gender;  // M- and F-compatible (or all)
  };
  struct PersonaPools {
    std::array<int, 3> pool{{-1, -1, -1}};
    std::array<double, 3> cumulative{{0, 0, 0}};  // re-weighted affinities, cumulative
  };
  User draw_user(std::int64_t index, Rng& rng) const;
  void draw_events(const User& u, Rng& rng, std::int64_t count, std::int64_t end_time, EventColumns& out) const;

  std::uint64_t seed_;
  std::vector<Pool> pools_;
  std::vector<PersonaPools> personas_;
  std::vector<int> category_of_;
  std::vector<std::int32_t> clique_;  // 4 per item
  std::vector<std::uint8_t> clique_n_, under_, low_price_;
};

}  // namespace mfrec::gen
