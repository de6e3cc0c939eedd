// The synthetic Retail Demo Store data set (mfrec_gen): users with personas, the product
// catalog (or a stratified subset / cloned superset of it) and their events, written to one
// HDF5 file in the schema of dataset.hpp.
//
// The content does not depend on the number of ranks: every random choice comes from a stream
// keyed by (seed, what, index) -- a user, an item, or a node of the tree that splits the event
// total over users -- so any rank computes exactly the values that belong to it.
// docs/generator.md gives every number and what differs from the seed.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "mfrec/dataset.hpp"
#include "mfrec/hash.hpp"

namespace mfrec {
class Comm;
}

namespace mfrec::gen {

inline constexpr std::int64_t kDefaultEndTime = 1609459200;  // 2021-01-01T00:00:00Z
inline constexpr int kWindowDays = 90;
inline constexpr std::int64_t kWindowSeconds = std::int64_t(kWindowDays) * 86400;
inline constexpr std::int64_t kMaxUsers = std::int64_t(1) << 31;
inline constexpr std::int64_t kMaxItems = (std::int64_t(1) << 31) - 1;  // /events/item is int32

// ---- random numbers: own generators, so the output is the same with every standard library --

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

// ---- catalog ----------------------------------------------------------------------------------

// The Retail Demo Store product list (YAML). Throws InputError naming the file.
dataset::ItemTable load_catalog(const std::string& path);
// n_items items: the catalog itself; a stratified subset of it (every category keeps its share,
// at least one item each when n_items >= categories); or the catalog plus clones "<name> #k"
// with the category, style and gender affinity of catalog item (i mod size), a jittered price
// and the id "<catalog id>-k".
dataset::ItemTable resize_catalog(const dataset::ItemTable& catalog, std::int64_t n_items, std::uint64_t seed);

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

// ---- the whole data set -------------------------------------------------------------------------

struct Options {
  std::int64_t n_users = 100000;
  std::int64_t n_items = 2465;  // for resize_catalog; generate() writes the table it is given
  std::int64_t n_events = 800000;
  std::uint64_t seed = 42;
  std::int64_t end_time = kDefaultEndTime;
  std::string output = "retail.h5";
  std::int64_t batch_events = 1 << 20;  // events generated and written per collective write
  int deflate = 1;                      // gzip level of /users and /events (0: none)
};

struct Summary {
  std::int64_t n_users = 0, n_items = 0, n_events = 0;
  double seconds = 0;  // the slowest rank's
};

// Collective over comm: generate and write options.output atomically (through "<output>.partial").
// `items` must be the same on every rank (resize_catalog's result).
Summary generate(const Options& opt, const dataset::ItemTable& items, const Comm& comm);

// Collective over comm: rank 0 writes users.csv, items.csv and events.csv into `dir` from the
// committed data set (each through a temporary file and a rename).
void write_csv(const std::string& h5_path, const std::string& dir, const Comm& comm);

}  // namespace mfrec::gen
