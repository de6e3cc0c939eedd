// mfrec_prep --split time under 1, 2 and 4 ranks: each user's latest pairs (by the time of their
// first event, ties by item index) are test, as a naive computation says, whatever the rank
// count, the batch size or the input (an HDF5 data set or a CSV with timestamps).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <tuple>

#include "mfrec/comm.hpp"
#include "mfrec/dataset.hpp"
#include "mfrec/h5.hpp"
#include "mfrec/prepare.hpp"

using namespace mfrec;
namespace fs = std::filesystem;

namespace {

std::string scratch(const Comm& comm, const std::string& name) {
  const std::string path = comm.bcast("prep_time_split_" + std::to_string(comm.size()) + "_" + name);
  if (comm.is_root()) {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  comm.barrier();
  return path;
}

struct Event {
  std::int64_t user, time;
  std::int32_t item;
  std::uint8_t type;
};

// Events with repeated pairs and many equal times (so ties are decided by the item index).
std::vector<Event> random_events(Index n_users, Index n_items, std::size_t n) {
  std::vector<Event> out;
  std::uint64_t s = 987;
  auto next = [&] {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    return s >> 33;
  };
  for (std::size_t k = 0; k < n; ++k) {
    const auto u = static_cast<std::int64_t>(next() % static_cast<std::uint64_t>(n_users));
    const auto i = static_cast<std::int32_t>((u * 5 + static_cast<std::int64_t>(next() % 15)) % n_items);
    out.push_back({u, static_cast<std::int64_t>(next() % 50), i, static_cast<std::uint8_t>(next() % 5)});
  }
  return out;
}

void write_dataset(const Comm& comm, const std::string& path, Index n_users, Index n_items, const std::vector<Event>& ev) {
  h5::File f = h5::File::create(path, &comm);
  f.set_attr("/", "format", dataset::kDatasetFormat);
  std::vector<std::string> ids;
  for (Index u = 0; u < n_users; ++u) ids.push_back("u" + std::to_string(u));
  f.write_strings("/users/id", ids);
  dataset::ItemTable items;
  items.resize(static_cast<std::size_t>(n_items));
  for (Index i = 0; i < n_items; ++i) items.id[i] = "i" + std::to_string(i);
  dataset::write_items(f, items);
  std::vector<std::int64_t> user, ts;
  std::vector<std::int32_t> item;
  std::vector<std::uint8_t> type;
  for (const Event& e : ev) {
    user.push_back(e.user);
    item.push_back(e.item);
    type.push_back(e.type);
    ts.push_back(e.time);
  }
  f.write_vector("/events/user", user);
  f.write_vector("/events/item", item);
  f.write_vector("/events/type", type);
  f.write_vector("/events/timestamp", ts);
}

using Pairs = std::map<std::pair<std::int64_t, std::int32_t>, float>;

Pairs read_pairs(const std::string& path, const std::string& group) {
  h5::File f = h5::File::open(path);
  const auto info = dataset::matrix_info(f, group);
  const CsrBlock m = dataset::read_csr_rows(f, group, 0, info.n_rows);
  Pairs out;
  for (Index r = 0; r < m.n_rows(); ++r)
    for (std::int64_t k = m.indptr[r]; k < m.indptr[r + 1]; ++k) out[{r, m.indices[k]}] = m.data[k];
  return out;
}

// The naive time split: per user, pairs by (first time among positive-weight events, item).
void expected_split(const std::vector<Event>& ev, const prepare::Weights& w, std::int64_t last, double fraction,
                    double min_value, Pairs& train, Pairs& test) {
  std::map<std::pair<std::int64_t, std::int32_t>, std::pair<double, std::int64_t>> pair;  // sum, first time
  for (const Event& e : ev) {
    if (w[e.type] <= 0 || w[e.type] < min_value) continue;
    auto [it, fresh] = pair.try_emplace({e.user, e.item}, 0.0, e.time);
    it->second.first += w[e.type];
    it->second.second = std::min(it->second.second, e.time);
  }
  std::map<std::int64_t, std::vector<std::tuple<std::int64_t, std::int32_t, float>>> by_user;
  for (const auto& [k, v] : pair) by_user[k.first].emplace_back(v.second, k.second, static_cast<float>(v.first));
  for (auto& [u, list] : by_user) {
    std::sort(list.begin(), list.end());
    const auto n = static_cast<std::int64_t>(list.size());
    const std::int64_t h = prepare::holdout_count(n, last, fraction);
    for (std::int64_t k = 0; k < n; ++k)
      (k >= n - h ? test : train)[{u, std::get<1>(list[static_cast<std::size_t>(k)])}] = std::get<2>(list[static_cast<std::size_t>(k)]);
  }
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

prepare::Options time_options(const std::string& in, const std::string& out) {
  prepare::Options o;
  o.input = in;
  o.output = out;
  o.progress = false;
  o.split = prepare::SplitMethod::kTime;
  return o;
}

}  // namespace

TEST(TimeSplit, DataSetMatchesTheNaiveSplitOnAnyRankCount) {
  Comm world = Comm::world();
  const Index n_users = 701, n_items = 97;
  const std::vector<Event> ev = random_events(n_users, n_items, 20000);
  const std::string in = scratch(world, "ds.h5");
  write_dataset(world, in, n_users, n_items, ev);
  for (const auto& [last, fraction, min_value] :
       {std::tuple<std::int64_t, double, double>{3, 0.2, 0}, {0, 0.3, 0}, {2, 0.2, 2.5}}) {
    const std::string out = scratch(world, "ds_prepared.h5"), single = scratch(world, "ds_single.h5");
    auto opt = time_options(in, out);
    opt.holdout_last = last;
    opt.holdout_fraction = fraction;
    opt.weights = {0, 1, 2, 3, 4};  // views do not count, nor their times
    opt.batch_events = 333;
    if (min_value > 0) opt.min_value = min_value;  // also drops AddToCart (weight 1) and its times
    const prepare::Summary s = prepare::run(opt, world);
    Pairs train, test;
    expected_split(ev, opt.weights, last, fraction, min_value, train, test);
    EXPECT_EQ(read_pairs(out, "/matrix/train"), train);
    EXPECT_EQ(read_pairs(out, "/matrix/test"), test);
    EXPECT_EQ(s.nnz_test, static_cast<Index>(test.size()));
    EXPECT_GT(test.size(), 300u);
    if (min_value > 0) EXPECT_GT(s.n_dropped, 3000);
    Comm solo = world.split(world.rank(), 0);
    if (world.rank() == 0) {
      auto o1 = opt;
      o1.output = single;
      o1.batch_events = 1 << 20;
      prepare::run(o1, solo);
      EXPECT_TRUE(slurp(out) == slurp(single)) << "time split differs from the single-rank run";
    }
    world.barrier();
  }
}

TEST(TimeSplit, CsvWithTimestampsOnAnyRankCount) {
  Comm world = Comm::world();
  const std::vector<Event> ev = random_events(300, 40, 5000);
  const std::string csv = scratch(world, "ev.csv");
  if (world.is_root()) {
    std::ofstream f(csv);
    f << "# user item rating timestamp\n";
    for (const Event& e : ev) f << e.user << '\t' << e.item << '\t' << int(e.type) + 1 << '\t' << e.time << '\n';
  }
  world.barrier();
  const std::string out = scratch(world, "ev_prepared.h5"), single = scratch(world, "ev_single.h5");
  auto opt = time_options(csv, out);
  opt.holdout_last = 2;
  prepare::run(opt, world);
  Comm solo = world.split(world.rank(), 0);
  if (world.rank() == 0) {
    opt.output = single;
    prepare::run(opt, solo);
    EXPECT_TRUE(slurp(out) == slurp(single)) << "CSV time split differs from the single-rank run";
  }
  world.barrier();
  // Every user with n pairs has min(2, n - 1) of them in test.
  const Pairs train = read_pairs(out, "/matrix/train"), test = read_pairs(out, "/matrix/test");
  std::map<std::int64_t, std::int64_t> n_train, n_test;
  for (const auto& kv : train) ++n_train[kv.first.first];
  for (const auto& kv : test) ++n_test[kv.first.first];
  for (const auto& [u, n] : n_train) EXPECT_EQ(n_test[u], std::min<std::int64_t>(2, n + n_test[u] - 1)) << u;
}
