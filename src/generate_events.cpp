// The generator's event process: a user's attributes and stream of view sets (a View and its
// funnel steps), items picked by persona affinity then affinity clique, and timestamps spread
// over the 90-day window. Everything comes from the user's own random stream.
#include <algorithm>
#include <cmath>

#include "mfrec/generate_model.hpp"

namespace mfrec::gen {

void EventColumns::clear() {
  user.clear();
  timestamp.clear();
  item.clear();
  type.clear();
  discount.clear();
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

}  // namespace mfrec::gen
