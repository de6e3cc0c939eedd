// The synthetic data set generator under 1, 2 and 4 ranks: the file is the same as a
// single-rank reference (content compared dataset by dataset), and it has the seed's shape.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <set>

#include "mfrec/comm.hpp"
#include "mfrec/generate.hpp"
#include "mfrec/h5.hpp"
#include "mfrec/version.hpp"

using namespace mfrec;

namespace {

const std::string& catalog_path() {
  static const std::string p = std::string(kSourceDir) + "/data/retail-demo-store-products.yaml";
  return p;
}

const dataset::ItemTable& catalog() {
  static const dataset::ItemTable t = gen::load_catalog(catalog_path());
  return t;
}

std::string scratch(const Comm& comm, const std::string& name) {
  return comm.bcast("generate_np" + std::to_string(comm.size()) + "_" + name);
}

gen::Options small_options(const std::string& output) {
  gen::Options opt;
  opt.n_users = 3000;
  opt.n_events = 30000;
  opt.n_items = 2465;
  opt.seed = 7;
  opt.output = output;
  opt.batch_events = 4000;  // several batches, and different counts per rank
  return opt;
}

// The data set every statistical test reads: generated once, collectively, with the world.
const std::string& world_file() {
  static std::string path;
  if (path.empty()) {
    Comm world = Comm::world();
    path = scratch(world, "world.h5");
    gen::generate(small_options(path), catalog(), world);
  }
  return path;
}

template <class T>
void expect_same(const h5::File& a, const h5::File& b, const std::string& name) {
  auto x = a.read_all<T>(name), y = b.read_all<T>(name);
  ASSERT_EQ(x.size(), y.size()) << name;
  EXPECT_TRUE(x == y) << name << " differs";
}

void expect_same_strings(const h5::File& a, const h5::File& b, const std::string& name) {
  EXPECT_EQ(a.shape(name), b.shape(name)) << name;
  EXPECT_TRUE(a.read_strings(name) == b.read_strings(name)) << name << " differs";
}

// Every dataset and root attribute of two data sets, compared value by value.
void expect_same_dataset(const std::string& pa, const std::string& pb) {
  const h5::File a = h5::File::open(pa), b = h5::File::open(pb);
  for (const char* g : {"/", "/users", "/items", "/events"}) EXPECT_EQ(a.list(g), b.list(g)) << g;
  for (const char* s : {"/users/id", "/users/gender", "/users/persona", "/users/discount_persona", "/users/channel",
                        "/items/id", "/items/name", "/items/category", "/items/style", "/items/description",
                        "/items/gender_affinity"})
    expect_same_strings(a, b, s);
  expect_same<std::int16_t>(a, b, "/users/age");
  expect_same<float>(a, b, "/items/price");
  expect_same<std::int64_t>(a, b, "/events/user");
  expect_same<std::int32_t>(a, b, "/events/item");
  expect_same<std::uint8_t>(a, b, "/events/type");
  expect_same<std::int64_t>(a, b, "/events/timestamp");
  expect_same<std::uint8_t>(a, b, "/events/discount");
  for (const char* k : {"n_users", "n_items", "n_events", "seed", "end_time", "format_version"})
    EXPECT_EQ(a.attr_int("/", k), b.attr_int("/", k)) << k;
  EXPECT_EQ(a.attr_string("/", "format"), b.attr_string("/", "format"));
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::size_t start = 0, pos;
  while ((pos = s.find(sep, start)) != std::string::npos) {
    out.push_back(s.substr(start, pos - start));
    start = pos + 1;
  }
  out.push_back(s.substr(start));
  return out;
}

// Chi-square statistic of samples against the exact binomial pmf (cells with expectation >= 5).
double binomial_chi2(std::int64_t n, double p, int samples, std::uint64_t seed, int* dof) {
  gen::Rng rng(seed);
  std::vector<double> observed(n + 1, 0);
  for (int s = 0; s < samples; ++s) {
    const std::int64_t k = gen::binomial(rng, n, p);
    EXPECT_GE(k, 0);
    EXPECT_LE(k, n);
    observed[k] += 1;
  }
  double chi2 = 0, rest_o = 0, rest_e = 0;
  *dof = -1;
  for (std::int64_t k = 0; k <= n; ++k) {
    const double logpmf = std::lgamma(n + 1.0) - std::lgamma(k + 1.0) - std::lgamma(n - k + 1.0) + k * std::log(p) +
                          (n - k) * std::log1p(-p);
    const double e = samples * std::exp(logpmf);
    if (e >= 5) {
      chi2 += (observed[k] - e) * (observed[k] - e) / e;
      ++*dof;
    } else {
      rest_o += observed[k];
      rest_e += e;
    }
  }
  if (rest_e >= 5) {
    chi2 += (rest_o - rest_e) * (rest_o - rest_e) / rest_e;
    ++*dof;
  }
  return chi2;
}

}  // namespace

// ---- pure pieces ----------------------------------------------------------------------------------

TEST(GenerateRandom, StreamsAreReproducibleAndDistinct) {
  gen::Rng a(gen::stream_seed(42, gen::kUserStream, 5)), b(gen::stream_seed(42, gen::kUserStream, 5));
  gen::Rng c(gen::stream_seed(42, gen::kUserStream, 6)), d(gen::stream_seed(42, gen::kItemStream, 5));
  for (int i = 0; i < 100; ++i) {
    const auto x = a.next();
    EXPECT_EQ(x, b.next());
    EXPECT_NE(x, c.next());
    EXPECT_NE(x, d.next());
  }
  gen::Rng r(1);
  double sum = 0, sum2 = 0;
  std::vector<int> hist(7, 0);
  const int n = 200000;
  for (int i = 0; i < n; ++i) {
    const double z = r.normal();
    sum += z;
    sum2 += z * z;
    ++hist[r.below(7)];
    const double u = r.uniform_open();
    EXPECT_GT(u, 0.0);
    EXPECT_LT(u, 1.0);
  }
  EXPECT_NEAR(sum / n, 0.0, 0.01);
  EXPECT_NEAR(sum2 / n, 1.0, 0.02);
  for (int h : hist) EXPECT_NEAR(h / double(n), 1.0 / 7, 0.005);
}

TEST(GenerateRandom, BinomialMatchesItsDistribution) {
  // Inversion (n p < 10), BTRS (n p >= 10), and p > 1/2 through symmetry.
  struct Case { std::int64_t n; double p; };
  for (Case c : {Case{20, 0.2}, Case{7, 0.5}, Case{40, 0.3}, Case{1000, 0.5}, Case{100, 0.9}, Case{3, 0.999}}) {
    int dof = 0;
    const double chi2 = binomial_chi2(c.n, c.p, 100000, 12345 + c.n, &dof);
    ASSERT_GT(dof, 0);
    // Mean dof, sd sqrt(2 dof): 5 sd above the mean fails (about 3e-7 by chance).
    EXPECT_LT(chi2, dof + 5 * std::sqrt(2.0 * dof)) << "n=" << c.n << " p=" << c.p;
  }
  gen::Rng r(3);
  const std::int64_t big = std::int64_t(1) << 40;
  double sum = 0, sum2 = 0;
  for (int i = 0; i < 2000; ++i) {
    const double z = (gen::binomial(r, big, 0.25) - big * 0.25) / std::sqrt(big * 0.25 * 0.75);
    sum += z;
    sum2 += z * z;
  }
  EXPECT_NEAR(sum / 2000, 0.0, 0.1);
  EXPECT_NEAR(sum2 / 2000, 1.0, 0.1);
  EXPECT_EQ(gen::binomial(r, 10, 0.0), 0);
  EXPECT_EQ(gen::binomial(r, 10, 1.0), 10);
  EXPECT_EQ(gen::binomial(r, 0, 0.5), 0);
}

TEST(GenerateRandom, EventCountsAreAMultinomialAnyRankCanSlice) {
  const std::int64_t users = 1001, events = 10000;
  const auto all = gen::user_event_counts(events, users, 42, 0, users);
  EXPECT_EQ(std::accumulate(all.begin(), all.end(), std::int64_t(0)), events);
  for (std::int64_t cut : {0, 1, 17, 500, 1000, 1001}) {
    auto left = gen::user_event_counts(events, users, 42, 0, cut);
    auto right = gen::user_event_counts(events, users, 42, cut, users);
    left.insert(left.end(), right.begin(), right.end());
    EXPECT_EQ(left, all) << "cut at " << cut;
  }
  EXPECT_EQ(gen::user_event_counts(events, users, 42, 300, 301)[0], all[300]);
  // Multinomial with equal cells: mean events/users, variance n p (1 - p).
  double mean = double(events) / users, var = 0;
  for (auto c : all) var += (c - mean) * (c - mean);
  var /= users;
  EXPECT_NEAR(var, events * (1.0 / users) * (1 - 1.0 / users), 0.15 * mean);
  EXPECT_NE(gen::user_event_counts(events, users, 43, 0, users), all);
  EXPECT_EQ(gen::user_event_counts(5, 1, 42, 0, 1), std::vector<std::int64_t>{5});
}

// ---- catalog and model ----------------------------------------------------------------------------

TEST(GenerateCatalog, LoadsTheRetailDemoStoreProducts) {
  const auto& c = catalog();
  ASSERT_EQ(c.size(), 2465u);
  std::map<std::string, int> cats, gender;
  for (std::size_t i = 0; i < c.size(); ++i) {
    ++cats[c.category[i]];
    ++gender[c.gender_affinity[i]];
  }
  EXPECT_EQ(cats.size(), 20u);
  EXPECT_EQ(cats["furniture"], 245);
  EXPECT_EQ(cats["hot dispensed"], 1);
  EXPECT_EQ(gender["F"], 431);
  EXPECT_EQ(gender["M"], 318);
  EXPECT_EQ(gender[""], 1716);
  EXPECT_THROW(gen::load_catalog(catalog_path() + ".missing"), InputError);
}

TEST(GenerateCatalog, SubsetIsStratifiedAndClonesAreUnique) {
  const auto& c = catalog();
  const auto same = gen::resize_catalog(c, 2465, 42);
  EXPECT_EQ(same.id, c.id);

  const auto sub = gen::resize_catalog(c, 300, 42);
  ASSERT_EQ(sub.size(), 300u);
  std::map<std::string, int> cats;
  for (const auto& x : sub.category) ++cats[x];
  EXPECT_EQ(cats.size(), 20u);  // every category keeps at least one item
  EXPECT_NEAR(cats["furniture"], 300.0 * 245 / 2465, 1.0);
  EXPECT_EQ(gen::resize_catalog(c, 5, 42).size(), 5u);

  const auto big = gen::resize_catalog(c, 6000, 42);
  ASSERT_EQ(big.size(), 6000u);
  EXPECT_EQ(std::set<std::string>(big.id.begin(), big.id.end()).size(), 6000u);
  EXPECT_EQ(big.name[2465], c.name[0] + " #1");
  EXPECT_EQ(big.name[5999], c.name[5999 % 2465] + " #2");
  EXPECT_EQ(big.category[5999], c.category[5999 % 2465]);
  EXPECT_EQ(big.gender_affinity[5999], c.gender_affinity[5999 % 2465]);
  EXPECT_NEAR(big.price[5999], c.price[5999 % 2465], 0.8 * c.price[5999 % 2465]);
  const auto again = gen::resize_catalog(c, 6000, 42);
  EXPECT_EQ(again.price, big.price);
}

TEST(GenerateModel, CliquesStayInTheCategory) {
  const auto& c = catalog();
  gen::Model m(c, 42);
  int under = 0;
  for (std::int32_t i = 0; i < m.n_items(); ++i) {
    const auto q = m.clique(i);
    ASSERT_FALSE(q.empty());
    std::set<std::int32_t> distinct(q.begin(), q.end());
    EXPECT_EQ(distinct.size(), q.size());
    for (auto j : q) {
      EXPECT_EQ(c.category[j], c.category[i]);
      if (q.size() > 1 || j != i) EXPECT_NE(j, i);
    }
    if (c.category[i] == "furniture") EXPECT_EQ(q.size(), 4u);
    under += m.under_represented(i);
  }
  // About P(Poisson(4) <= 1) = 9% of the items in the big pools.
  EXPECT_GT(under, 0.04 * c.size());
  EXPECT_LT(under, 0.16 * c.size());
  EXPECT_EQ(gen::Model(c, 42).clique(100), m.clique(100));
  EXPECT_NE(gen::Model(c, 43).clique(100), m.clique(100));
}

// ---- the data set ---------------------------------------------------------------------------------

TEST(Generate, SameDataSetForAnyRankCount) {
  Comm world = Comm::world();
  const std::string path = world_file();
  const std::string ref = scratch(world, "reference.h5");
  Comm self = world.split(world.rank(), 0);
  if (world.is_root()) {
    gen::Options opt = small_options(ref);
    opt.batch_events = 1 << 20;  // one batch: the batch size must not matter either
    EXPECT_NO_THROW(gen::generate(opt, catalog(), self));
    expect_same_dataset(path, ref);
    std::remove(ref.c_str());
  }
  world.barrier();
}

TEST(Generate, SubsetAndClonesAreRankIndependentToo) {
  Comm world = Comm::world();
  Comm self = world.split(world.rank(), 0);
  for (std::int64_t n_items : {300, 3000}) {
    const std::string path = scratch(world, "items" + std::to_string(n_items) + ".h5");
    gen::Options opt = small_options(path);
    opt.n_users = 777;
    opt.n_events = 5000;
    opt.n_items = n_items;
    opt.batch_events = 700;
    opt.deflate = 0;
    const auto items = gen::resize_catalog(catalog(), n_items, opt.seed);
    gen::generate(opt, items, world);
    if (world.is_root()) {
      opt.output = path + ".ref.h5";
      opt.batch_events = 1 << 20;
      EXPECT_NO_THROW(gen::generate(opt, items, self));
      expect_same_dataset(path, opt.output);
      std::remove(opt.output.c_str());
      std::remove(path.c_str());
    }
    world.barrier();
  }
}

TEST(Generate, CountsTypesAndAttributes) {
  Comm world = Comm::world();
  const std::string path = world_file();
  if (world.is_root()) {
    const h5::File f = h5::File::open(path);
    EXPECT_EQ(f.attr_string("/", "format"), dataset::kDatasetFormat);
    EXPECT_EQ(f.attr_int("/", "n_events"), 30000);
    EXPECT_EQ(f.attr_int("/", "n_users"), 3000);
    EXPECT_EQ(f.attr_int("/", "n_items"), 2465);
    EXPECT_EQ(f.attr_int("/", "seed"), 7);
    EXPECT_EQ(f.attr_string("/events/type", "names"), "View,AddToCart,ViewCart,StartCheckout,Purchase");
    const auto type = f.read_all<std::uint8_t>("/events/type");
    const auto item = f.read_all<std::int32_t>("/events/item");
    const auto disc = f.read_all<std::uint8_t>("/events/discount");
    ASSERT_EQ(type.size(), 30000u);  // exactly --events
    EXPECT_EQ(f.read_strings("/users/id").size(), 3000u);
    EXPECT_EQ(f.read_strings("/users/id")[2999], "2999");
    std::vector<double> share(5, 0);
    for (auto t : type) {
      ASSERT_LT(t, 5);
      share[t] += 1.0 / type.size();
    }
    // The funnel: 1 : 0.08 : 0.05 : 0.02 : 0.01 per View, so View 86.2%, Purchase 0.86%.
    EXPECT_NEAR(share[0], 1 / 1.16, 0.01);
    EXPECT_NEAR(share[1], 0.08 / 1.16, 0.006);
    EXPECT_NEAR(share[2], 0.05 / 1.16, 0.005);
    EXPECT_NEAR(share[3], 0.02 / 1.16, 0.003);
    EXPECT_NEAR(share[4], 0.01 / 1.16, 0.0025);
    double discounted = 0;
    for (auto d : disc) {
      ASSERT_LE(d, 1);
      discounted += d;
    }
    EXPECT_GT(discounted / disc.size(), 0.2);
    EXPECT_LT(discounted / disc.size(), 0.5);
    for (auto i : item) ASSERT_TRUE(i >= 0 && i < 2465);
  }
  world.barrier();
}

TEST(Generate, UsersHaveTheSeedsDemographics) {
  Comm world = Comm::world();
  const std::string path = world_file();
  if (world.is_root()) {
    const h5::File f = h5::File::open(path);
    const auto age = f.read_all<std::int16_t>("/users/age");
    const auto gender = f.read_strings("/users/gender");
    const auto channel = f.read_strings("/users/channel");
    const auto persona = f.read_strings("/users/persona");
    const auto discount = f.read_strings("/users/discount_persona");
    const double n = static_cast<double>(age.size());
    double mean_age = 0, web = 0, female = 0;
    for (std::size_t u = 0; u < age.size(); ++u) {
      ASSERT_TRUE(age[u] >= 18 && age[u] <= 100) << age[u];
      mean_age += age[u] / n;
      web += (channel[u] == "web") / n;
      female += (gender[u] == "F") / n;
      ASSERT_TRUE(gender[u] == "M" || gender[u] == "F");
      ASSERT_TRUE(channel[u] == "web" || channel[u] == "c-store");
      const auto& names = gen::persona_names();
      const auto it = std::find(names.begin(), names.end(), persona[u]);
      ASSERT_NE(it, names.end()) << persona[u];
      EXPECT_EQ(it - names.begin() >= gen::kNumWebPersonas, channel[u] == "c-store");
      ASSERT_TRUE(discount[u] == "discount_indifferent" || discount[u] == "all_discounts" ||
                  discount[u] == "lower_priced_products");
    }
    // normal(32, 15) truncated below at 18 has mean 32 + 15 phi(z) / (1 - Phi(z)), z = -0.933: 36.7.
    EXPECT_NEAR(mean_age, 36.7, 1.0);
    EXPECT_NEAR(web, 0.9, 0.03);
    EXPECT_NEAR(female, 0.5, 0.04);
  }
  world.barrier();
}

TEST(Generate, EventsFollowPersonasCountsAndTime) {
  Comm world = Comm::world();
  const std::string path = world_file();
  if (world.is_root()) {
    const h5::File f = h5::File::open(path);
    const auto user = f.read_all<std::int64_t>("/events/user");
    const auto item = f.read_all<std::int32_t>("/events/item");
    const auto ts = f.read_all<std::int64_t>("/events/timestamp");
    const auto disc = f.read_all<std::uint8_t>("/events/discount");
    const auto persona = f.read_strings("/users/persona");
    const auto channel = f.read_strings("/users/channel");
    const auto discount_persona = f.read_strings("/users/discount_persona");
    const auto category = f.read_strings("/items/category");
    const auto style = f.read_strings("/items/style");
    const std::int64_t end = f.attr_int("/", "end_time");
    const std::int64_t n_users = 3000;

    std::vector<std::int64_t> per_user(n_users, 0);
    double web_in = 0, web_all = 0, cstore_in = 0, cstore_all = 0, all_disc = 0, all_disc_n = 0;
    for (std::size_t e = 0; e < user.size(); ++e) {
      const std::int64_t u = user[e];
      ASSERT_TRUE(u >= 0 && u < n_users);
      ++per_user[u];
      ASSERT_GE(ts[e], end - gen::kWindowSeconds);
      ASSERT_LT(ts[e], end);
      if (e > 0) {
        ASSERT_GE(u, user[e - 1]) << "events are ordered by user";
        if (u == user[e - 1]) ASSERT_GT(ts[e], ts[e - 1]) << "timestamps increase within a user";
      }
      bool in = false;
      for (const auto& part : split(persona[u], '_')) {
        const auto cs = split(part, ':');
        in |= cs[0] == category[item[e]] && (cs.size() == 1 || cs[1] == style[item[e]]);
      }
      if (channel[u] == "web") {
        web_in += in;
        web_all += 1;
      } else {
        cstore_in += in;
        cstore_all += 1;
      }
      if (discount_persona[u] == "all_discounts") {
        all_disc += disc[e];
        all_disc_n += 1;
      }
    }
    EXPECT_GT(web_in / web_all, 0.8);
    EXPECT_GT(cstore_in / cstore_all, 0.8);
    EXPECT_NEAR(all_disc / all_disc_n, 0.5, 0.03);
    // Multinomial counts: mean 10 events per user, variance about n p (1 - p) = 10.
    EXPECT_EQ(std::accumulate(per_user.begin(), per_user.end(), std::int64_t(0)), 10 * n_users);
    const double mean = 10.0;
    double var = 0;
    for (auto c : per_user) var += (c - mean) * (c - mean) / double(n_users);
    EXPECT_NEAR(var, 10.0, 1.5);
    // The whole window is used.
    EXPECT_LT(*std::min_element(ts.begin(), ts.end()), end - gen::kWindowSeconds + 86400);
    EXPECT_GT(*std::max_element(ts.begin(), ts.end()), end - 86400);
  }
  world.barrier();
}

// A CSV file that cannot be put in place (a directory is in the way of events.csv, found only
// when it is renamed, after items.csv and users.csv are complete): the same AgreedError on every
// rank, and none of the three files nor a partial one is left.
TEST(Generate, CsvFailureIsAgreedAndLeavesNoFile) {
  Comm world = Comm::world();
  const std::string path = world_file();
  const std::string dir = scratch(world, "csv_blocked");
  if (world.is_root()) {
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir + "/events.csv");
  }
  world.barrier();
  try {
    gen::write_csv(path, dir, world);
    ADD_FAILURE() << "a directory in the way of events.csv was not noticed";
  } catch (const AgreedError& e) {
    EXPECT_NE(std::string(e.what()).find("events.csv"), std::string::npos) << e.what();
  }
  if (world.is_root()) {
    std::vector<std::string> left;
    for (const auto& entry : std::filesystem::directory_iterator(dir)) left.push_back(entry.path().filename().string());
    EXPECT_EQ(left, std::vector<std::string>{"events.csv"});  // only the directory that was there
    std::filesystem::remove_all(dir);
  }
  world.barrier();
}

// Catalog text must be UTF-8: a Latin-1 name is refused with the file, the line and the product.
TEST(GenerateCatalog, TextThatIsNotUtf8IsRefused) {
  Comm world = Comm::world();
  const std::string path = scratch(world, "latin1.yaml");
  if (world.is_root()) {
    std::ofstream f(path, std::ios::binary);
    f << "- id: p1\n  name: Chair\n  category: furniture\n  price: 10\n"
      << "- id: p2\n  category: homedecor\n  description: Caf\xe9 table\n  price: 20\n";
  }
  world.barrier();
  try {
    gen::load_catalog(path);
    ADD_FAILURE() << "a Latin-1 description was accepted";
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()).substr(0, path.size() + 60),
              (path + ":7: product 1: description is not valid UTF-8 (byte 0xE9 at byte 4)").substr(0, path.size() + 60));
  }
  world.barrier();
  if (world.is_root()) std::remove(path.c_str());
}

TEST(Generate, CsvHasOneLinePerRow) {
  Comm world = Comm::world();
  const std::string path = world_file();
  const std::string dir = scratch(world, "csv");
  gen::write_csv(path, dir, world);
  if (world.is_root()) {
    auto lines = [](const std::string& p) {
      std::FILE* f = std::fopen(p.c_str(), "rb");
      if (!f) return std::int64_t(-1);
      std::int64_t n = 0;
      for (int c; (c = std::fgetc(f)) != EOF;) n += c == '\n';
      std::fclose(f);
      return n;
    };
    EXPECT_EQ(lines(dir + "/users.csv"), 3001);
    EXPECT_EQ(lines(dir + "/items.csv"), 2466);
    EXPECT_EQ(lines(dir + "/events.csv"), 30001);
    for (const char* n : {"users.csv", "items.csv", "events.csv"}) std::remove((dir + "/" + n).c_str());
    std::remove(dir.c_str());
    std::remove(path.c_str());  // the last test that reads it
  }
  world.barrier();
}
