// mfrec_prep's library under 1, 2 and 4 ranks: exact confidences, the train/test split, the
// transpose, byte-identical output whatever the rank count, CSV import and export, bad input.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "mfrec/comm.hpp"
#include "mfrec/dataset.hpp"
#include "mfrec/h5.hpp"
#include "mfrec/prepare.hpp"

using namespace mfrec;
namespace fs = std::filesystem;

namespace {


// A file name in the working directory, the same on every rank, with nothing left there from an
// earlier run (collective).
std::string scratch(const Comm& comm, const std::string& name) {
  const std::string path = comm.bcast("prepare_" + std::to_string(comm.size()) + "_" + name);
  if (comm.is_root()) {
    std::error_code ec;
    fs::remove_all(path, ec);
    fs::remove(path + ".partial", ec);
  }
  comm.barrier();
  return path;
}

struct Event {
  std::int64_t user;
  std::int32_t item;
  std::uint8_t type;
};

// What to spoil in a hand-made data set.
enum class Flaw { kNone, kItemAsFloat, kUserLonger, kItemOutOfRange, kNoType, kTypeOutOfRange, kNoUsers };

// A data set in mfrec_gen's layout, written through the h5 facade (collective; every rank
// passes the same events).
void write_dataset(const Comm& comm, const std::string& path, Index n_users, Index n_items,
                   const std::vector<Event>& events, Flaw flaw = Flaw::kNone) {
  h5::File f = h5::File::create(path, &comm);
  f.set_attr("/", "format", dataset::kDatasetFormat);
  if (flaw != Flaw::kNoUsers) {
    std::vector<std::string> ids;
    for (Index u = 0; u < n_users; ++u) ids.push_back("user-" + std::to_string(u));
    f.write_strings("/users/id", ids);
  }
  dataset::ItemTable items;
  items.resize(static_cast<std::size_t>(n_items));
  for (Index i = 0; i < n_items; ++i) {
    items.id[i] = "item-" + std::to_string(i);
    items.name[i] = "Item " + std::to_string(i);
    items.category[i] = i % 2 ? "books" : "tools";
    items.price[i] = 1.5f + float(i);
  }
  dataset::write_items(f, items);
  std::vector<std::int64_t> user, ts;
  std::vector<std::int32_t> item;
  std::vector<std::uint8_t> type, discount;
  for (std::size_t k = 0; k < events.size(); ++k) {
    user.push_back(events[k].user);
    item.push_back(events[k].item);
    type.push_back(events[k].type);
    ts.push_back(1600000000 + std::int64_t(k));
    discount.push_back(0);
  }
  if (flaw == Flaw::kUserLonger) user.push_back(0);
  if (flaw == Flaw::kItemOutOfRange) item[item.size() / 2] = static_cast<std::int32_t>(n_items);
  if (flaw == Flaw::kTypeOutOfRange) type.back() = 7;
  f.write_vector("/events/user", user);
  if (flaw == Flaw::kItemAsFloat) {
    f.write_vector("/events/item", std::vector<float>(item.begin(), item.end()));
  } else {
    f.write_vector("/events/item", item);
  }
  if (flaw != Flaw::kNoType) f.write_vector("/events/type", type);
  f.write_vector("/events/timestamp", ts);
  f.write_vector("/events/discount", discount);
}

// A reproducible event stream with repeats, so that many pairs are summed over several events.
std::vector<Event> random_events(Index n_users, Index n_items, std::size_t n) {
  std::vector<Event> out;
  std::uint64_t s = 12345;
  auto next = [&] {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    return s >> 33;
  };
  for (std::size_t k = 0; k < n; ++k) {
    const std::int64_t u = static_cast<std::int64_t>(next() % static_cast<std::uint64_t>(n_users));
    // Users stick to a small window of items: repeated pairs.
    const auto i = static_cast<std::int32_t>((u * 7 + static_cast<std::int64_t>(next() % 12)) % n_items);
    out.push_back({u, i, static_cast<std::uint8_t>(next() % 5)});
  }
  return out;
}

CsrBlock read_matrix(const std::string& path, const std::string& group) {
  h5::File f = h5::File::open(path);
  const auto info = dataset::matrix_info(f, group);
  return dataset::read_csr_rows(f, group, 0, info.n_rows);
}

using PairMap = std::map<std::pair<std::int64_t, std::int32_t>, float>;
PairMap pairs_of(const CsrBlock& m) {
  PairMap out;
  for (Index r = 0; r < m.n_rows(); ++r)
    for (std::int64_t k = m.indptr[r]; k < m.indptr[r + 1]; ++k) out[{m.row_begin + r, m.indices[k]}] = m.data[k];
  return out;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool exists(const std::string& path) { return std::ifstream(path).good(); }

prepare::Options options(const std::string& in, const std::string& out) {
  prepare::Options o;
  o.input = in;
  o.output = out;
  o.progress = false;
  return o;
}

}  // namespace

TEST(Prepare, KnownEventsGiveExactConfidences) {
  Comm world = Comm::world();
  const std::string in = scratch(world, "known.h5"), out = scratch(world, "known_prepared.h5");
  // View 1, AddToCart 2, ViewCart 3, StartCheckout 4, Purchase 5.
  const std::vector<Event> events = {{0, 0, 0}, {5, 1, 0}, {0, 1, 1}, {1, 2, 2}, {0, 0, 0}, {3, 0, 4},
                                     {2, 3, 0}, {5, 2, 0}, {1, 2, 3}, {0, 0, 4}, {3, 0, 4}, {5, 3, 1}};
  const PairMap expected = {{{0, 0}, 7.f}, {{0, 1}, 2.f}, {{1, 2}, 7.f}, {{2, 3}, 1.f},
                            {{3, 0}, 10.f}, {{5, 1}, 1.f}, {{5, 2}, 1.f}, {{5, 3}, 2.f}};
  write_dataset(world, in, 6, 4, events);
  auto opt = options(in, out);
  opt.test_fraction = 0.5;
  const prepare::Summary s = prepare::run(opt, world);
  EXPECT_EQ(s.n_users, 6);
  EXPECT_EQ(s.n_items, 4);
  EXPECT_EQ(s.n_events, 12);
  EXPECT_EQ(s.nnz_train + s.nnz_test, 8);

  const CsrBlock train = read_matrix(out, "/matrix/train"), test = read_matrix(out, "/matrix/test");
  EXPECT_EQ(train.n_rows_global, 6);
  EXPECT_EQ(train.n_cols, 4);
  PairMap all;
  for (const auto& [key, v] : pairs_of(train)) {
    EXPECT_FALSE(prepare::is_test(42, key.first, key.second, 0.5));
    all[key] = v;
  }
  for (const auto& [key, v] : pairs_of(test)) {
    EXPECT_TRUE(prepare::is_test(42, key.first, key.second, 0.5));
    EXPECT_EQ(all.count(key), 0u) << "pair in both train and test";
    all[key] = v;
  }
  EXPECT_EQ(all, expected);
  EXPECT_EQ(s.nnz_train, train.nnz());
  EXPECT_EQ(s.nnz_test, test.nnz());

  h5::File f = h5::File::open(out);
  EXPECT_EQ(f.attr_string("/", "format"), dataset::kPreparedFormat);
  EXPECT_EQ(f.attr_int("/", "format_version"), dataset::kFormatVersion);
  EXPECT_EQ(f.attr_string("/", "source"), in);
  EXPECT_EQ(f.attr_string("/", "source_format"), "hdf5");
  EXPECT_EQ(f.attr_string("/", "weights"), "1,2,3,4,5");
  EXPECT_EQ(f.attr_double("/", "test_fraction"), 0.5);
  EXPECT_EQ(f.attr_int("/", "seed"), 42);
  EXPECT_EQ(f.attr_int("/", "n_users"), 6);
  EXPECT_EQ(f.attr_int("/", "n_items"), 4);
  EXPECT_EQ(f.attr_int("/", "nnz_train"), train.nnz());
  EXPECT_EQ(f.attr_int("/", "nnz_test"), test.nnz());
  EXPECT_EQ(f.attr_int("/matrix/train_by_item", "nnz"), train.nnz());
  EXPECT_EQ(f.read_strings("/users/id"),
            (std::vector<std::string>{"user-0", "user-1", "user-2", "user-3", "user-4", "user-5"}));
  const dataset::ItemTable items = dataset::read_items(f);
  EXPECT_EQ(items.id, (std::vector<std::string>{"item-0", "item-1", "item-2", "item-3"}));
  EXPECT_EQ(items.category[1], "books");
  EXPECT_EQ(items.price[3], 4.5f);
  world.barrier();
}

TEST(Prepare, WeightsAreConfigurable) {
  Comm world = Comm::world();
  const std::string in = scratch(world, "weights.h5"), out = scratch(world, "weights_prepared.h5");
  write_dataset(world, in, 3, 2, {{0, 0, 0}, {0, 0, 4}, {1, 1, 0}, {2, 1, 2}, {2, 1, 0}});
  auto opt = options(in, out);
  opt.weights = {0, 0.5f, 2, 0, 10};  // Views count for nothing: (1,1) disappears
  prepare::run(opt, world);
  PairMap all = pairs_of(read_matrix(out, "/matrix/train"));
  for (const auto& kv : pairs_of(read_matrix(out, "/matrix/test"))) all.insert(kv);
  EXPECT_EQ(all, (PairMap{{{0, 0}, 10.f}, {{2, 1}, 2.f}}));
  EXPECT_EQ(h5::File::open(out).attr_string("/", "weights"), "0,0.5,2,0,10");
  world.barrier();
}

TEST(Prepare, SplitTransposeAndRankCountInvariance) {
  Comm world = Comm::world();
  const Index n_users = 3001, n_items = 503;
  const std::string in = scratch(world, "big.h5"), out = scratch(world, "big_prepared.h5");
  const std::vector<Event> events = random_events(n_users, n_items, 60000);
  write_dataset(world, in, n_users, n_items, events);
  auto opt = options(in, out);
  opt.batch_events = 777;  // many read-and-route rounds
  const prepare::Summary s = prepare::run(opt, world);

  // The expected confidences, computed naively.
  PairMap expected;
  for (const Event& e : events) expected[{e.user, e.item}] += dataset::kDefaultWeights[e.type];
  const CsrBlock train = read_matrix(out, "/matrix/train"), test = read_matrix(out, "/matrix/test");
  const CsrBlock by_item = read_matrix(out, "/matrix/train_by_item");
  const PairMap tr = pairs_of(train), te = pairs_of(test);
  EXPECT_EQ(tr.size() + te.size(), expected.size());
  for (const auto& [key, v] : expected) {
    const bool held = prepare::is_test(42, key.first, key.second, 0.2);
    const PairMap& m = held ? te : tr;
    auto it = m.find(key);
    ASSERT_NE(it, m.end()) << key.first << "," << key.second;
    EXPECT_EQ(it->second, v);
    EXPECT_EQ((held ? tr : te).count(key), 0u);
  }
  const double share = double(te.size()) / double(expected.size());
  EXPECT_NEAR(share, 0.2, 0.02) << expected.size() << " pairs";

  // train_by_item is exactly the transpose of train.
  EXPECT_EQ(by_item.n_rows_global, n_items);
  EXPECT_EQ(by_item.n_cols, n_users);
  PairMap transposed;
  for (const auto& [key, v] : pairs_of(by_item)) transposed[{key.second, static_cast<std::int32_t>(key.first)}] = v;
  EXPECT_EQ(transposed, tr);
  for (Index r = 0; r < by_item.n_rows(); ++r)  // columns sorted within each row
    for (std::int64_t k = by_item.indptr[r] + 1; k < by_item.indptr[r + 1]; ++k)
      EXPECT_LT(by_item.indices[k - 1], by_item.indices[k]);

  // A single-rank run writes the same bytes; so does another batch size.
  const std::string single = scratch(world, "big_single.h5");
  Comm solo = world.split(world.rank(), 0);
  if (world.rank() == 0) {
    auto o1 = options(in, single);
    const prepare::Summary s1 = prepare::run(o1, solo);
    EXPECT_EQ(s1.nnz_train, s.nnz_train);
    EXPECT_EQ(s1.nnz_test, s.nnz_test);
    const std::string a = slurp(out), b = slurp(single);
    EXPECT_GT(a.size(), 0u);
    EXPECT_TRUE(a == b) << "output differs from the single-rank run";
  }
  world.barrier();
  const std::string rebatched = scratch(world, "big_rebatched.h5");
  auto o2 = options(in, rebatched);
  o2.batch_events = 1 << 20;
  prepare::run(o2, world);
  if (world.rank() == 0) EXPECT_TRUE(slurp(out) == slurp(rebatched));
  // Another seed, another split of the same pairs.
  const std::string reseeded = scratch(world, "big_seed7.h5");
  auto o3 = options(in, reseeded);
  o3.seed = 7;
  prepare::run(o3, world);
  const PairMap te7 = pairs_of(read_matrix(reseeded, "/matrix/test"));
  EXPECT_NE(te7, te);
  for (const auto& kv : te7) EXPECT_TRUE(prepare::is_test(7, kv.first.first, kv.first.second, 0.2));
  world.barrier();
}

TEST(Prepare, CsvImportAndExportRoundTrip) {
  Comm world = Comm::world();
  const std::string csv = scratch(world, "events.csv"), out = scratch(world, "events_prepared.h5");
  const std::string dir = scratch(world, "export");
  if (world.is_root()) {
    std::ofstream f(csv);
    f << "user_id,item_id,event_type,timestamp\r\n"
      << "alice,sku-1,View,1\r\n"
      << "\"bob, jr\",sku-2,Purchase,2\r\n"
      << "alice,sku-1,AddToCart,3\r\n"
      << "  carol ,sku-3,viewcart,4\r\n"
      << "\r\n"
      << "bob, jr,sku-1,View,5\r\n";  // unquoted: the header has 4 fields, this line has 5
  }
  world.barrier();
  try {
    prepare::run(options(csv, out), world);
    FAIL() << "a line with too many fields was accepted";
  } catch (const AgreedError& e) {
    EXPECT_EQ(std::string(e.what()), csv + ":7: found 5 fields, the header has 4");
  }
  EXPECT_FALSE(exists(out));
  EXPECT_FALSE(exists(out + ".partial"));
  world.barrier();
  if (world.is_root()) {
    std::ofstream f(csv);
    f << "user_id,item_id,event_type,timestamp\n"
      << "alice,sku-1,View,1\n"
      << "\"bob, jr\",sku-2,Purchase,2\n"
      << "alice,sku-1,AddToCart,3\n"
      << "  carol ,sku-3,viewcart,4\n"
      << "\"bob, jr\",sku-1,View,5\n"
      << "dave,sku-2,StartCheckout,6\n"
      << "erin,sku-4,View,7\n";
  }
  world.barrier();
  auto opt = options(csv, out);
  opt.export_csv_dir = dir;
  opt.test_fraction = 0.4;
  const prepare::Summary s = prepare::run(opt, world);
  EXPECT_EQ(s.source_format, prepare::InputFormat::kCsvEvents);
  EXPECT_EQ(s.n_events, 7);

  h5::File f = h5::File::open(out);
  const auto users = f.read_strings("/users/id"), items = f.read_strings("/items/id");
  EXPECT_EQ(users, (std::vector<std::string>{"alice", "bob, jr", "carol", "dave", "erin"}));
  EXPECT_EQ(items, (std::vector<std::string>{"sku-1", "sku-2", "sku-3", "sku-4"}));
  EXPECT_FALSE(f.exists("/items/name"));  // imported data: ids only
  EXPECT_EQ(f.attr_string("/", "source_format"), "csv-events");

  using Named = std::map<std::pair<std::string, std::string>, float>;
  auto named = [&](const CsrBlock& m) {
    Named out;
    for (const auto& [key, v] : pairs_of(m)) out[{users[key.first], items[key.second]}] = v;
    return out;
  };
  const Named train = named(read_matrix(out, "/matrix/train")), test = named(read_matrix(out, "/matrix/test"));
  Named all = train;
  all.insert(test.begin(), test.end());
  EXPECT_EQ(all, (Named{{{"alice", "sku-1"}, 3.f}, {{"bob, jr", "sku-2"}, 5.f}, {{"carol", "sku-3"}, 3.f},
                        {{"bob, jr", "sku-1"}, 1.f}, {{"dave", "sku-2"}, 4.f}, {{"erin", "sku-4"}, 1.f}}));

  // The export holds the same pairs under the original ids.
  auto read_export = [&](const std::string& name) {
    const auto d = prepare::read_csv(dir + "/" + name, prepare::InputFormat::kCsvTriplets, dataset::kDefaultWeights);
    EXPECT_TRUE(d.header);
    Named out;
    for (std::size_t k = 0; k < d.size(); ++k) out[{d.user_ids[d.user[k]], d.item_ids[d.item[k]]}] = d.value[k];
    return out;
  };
  EXPECT_EQ(read_export("train.csv"), train);
  if (!test.empty()) EXPECT_EQ(read_export("test.csv"), test);
  EXPECT_FALSE(exists(dir + "/train.csv.partial"));

  // Importing the exported train.csv as triplets gives back the train pairs (split anew).
  const std::string again = scratch(world, "reimport_prepared.h5");
  const prepare::Summary s2 = prepare::run(options(dir + "/train.csv", again), world);
  EXPECT_EQ(s2.source_format, prepare::InputFormat::kCsvTriplets);
  h5::File g = h5::File::open(again);
  const auto users2 = g.read_strings("/users/id"), items2 = g.read_strings("/items/id");
  Named back;
  for (const char* m : {"/matrix/train", "/matrix/test"})
    for (const auto& [key, v] : pairs_of(read_matrix(again, m))) back[{users2[key.first], items2[key.second]}] = v;
  EXPECT_EQ(back, train);
  world.barrier();
}

// The CSV export cannot be put in place (a directory is in the way of test.csv, found only when
// it is renamed, after the HDF5 file and train.csv): the same AgreedError on every rank, and no
// output is left -- neither the HDF5 file nor train.csv nor a partial file.
TEST(Prepare, ExportFailureIsAgreedAndLeavesNoOutput) {
  Comm world = Comm::world();
  const std::string csv = scratch(world, "export_fail.csv"), out = scratch(world, "export_fail.h5");
  const std::string dir = scratch(world, "export_fail");
  if (world.is_root()) {
    std::ofstream(csv) << "u1,i1,View\nu2,i2,Purchase\nu1,i2,AddToCart\nu3,i1,View\nu4,i3,View\n";
    fs::create_directories(dir + "/test.csv");
  }
  world.barrier();
  auto opt = options(csv, out);
  opt.export_csv_dir = dir;
  try {
    prepare::run(opt, world);
    ADD_FAILURE() << "a directory in the way of test.csv was not noticed";
  } catch (const AgreedError& e) {
    EXPECT_NE(std::string(e.what()).find("test.csv"), std::string::npos) << e.what();
  }
  world.barrier();
  EXPECT_FALSE(exists(out));
  EXPECT_FALSE(exists(out + ".partial"));
  if (world.is_root()) {
    std::vector<std::string> left;
    for (const auto& entry : fs::directory_iterator(dir)) left.push_back(entry.path().filename().string());
    EXPECT_EQ(left, std::vector<std::string>{"test.csv"});  // only the directory that was there
  }
  world.barrier();
}

// Ids that are not UTF-8 are refused on every rank with the file and line; --encoding latin1
// converts them.
TEST(Prepare, Latin1IdsAreRefusedOrConverted) {
  Comm world = Comm::world();
  const std::string csv = scratch(world, "latin1.csv"), out = scratch(world, "latin1.h5");
  if (world.is_root()) std::ofstream(csv, std::ios::binary) << "u1,i1,View\nj\xf6rg,i2,Purchase\nu3,i1,View\n";
  world.barrier();
  try {
    prepare::run(options(csv, out), world);
    ADD_FAILURE() << "a Latin-1 user id was accepted";
  } catch (const AgreedError& e) {
    EXPECT_EQ(std::string(e.what()).substr(0, csv.size() + 50),
              (csv + ":2: user id is not valid UTF-8 (byte 0xF6 at byte 2)").substr(0, csv.size() + 50));
  }
  world.barrier();
  EXPECT_FALSE(exists(out));
  auto opt = options(csv, out);
  opt.encoding = prepare::Encoding::kLatin1;
  prepare::run(opt, world);
  h5::File f = h5::File::open(out);
  EXPECT_EQ(f.read_strings("/users/id"), (std::vector<std::string>{"u1", "j\xc3\xb6rg", "u3"}));
  world.barrier();
}

TEST(Prepare, CsvRankCountInvariance) {
  Comm world = Comm::world();
  const std::string csv = scratch(world, "many.csv");
  if (world.is_root()) {
    std::ofstream f(csv);
    for (const Event& e : random_events(700, 90, 9000))
      f << "u" << (e.user * 7919 % 700) << "," << "i" << e.item << "," << dataset::kEventTypes[e.type] << "\n";
  }
  world.barrier();
  const std::string out = scratch(world, "many_prepared.h5"), single = scratch(world, "many_single.h5");
  prepare::run(options(csv, out), world);
  Comm solo = world.split(world.rank(), 0);
  if (world.rank() == 0) {
    prepare::run(options(csv, single), solo);
    EXPECT_TRUE(slurp(out) == slurp(single)) << "CSV import differs from the single-rank run";
  }
  world.barrier();
}

TEST(Prepare, BadDataSetsFailOnEveryRankWithoutOutput) {
  Comm world = Comm::world();
  const std::vector<Event> events = random_events(50, 20, 400);
  const std::pair<Flaw, std::string> cases[] = {
      {Flaw::kItemAsFloat, "dataset /events/item has type float, expected integer"},
      {Flaw::kUserLonger, "dataset /events/user has 401 rows but /events/item has 400"},
      {Flaw::kItemOutOfRange, "dataset /events/item[200] = 20 is outside [0, 20)"},
      {Flaw::kNoType, "missing dataset /events/type"},
      {Flaw::kTypeOutOfRange, "dataset /events/type[399] = 7 is outside [0, 5)"},
      {Flaw::kNoUsers, "missing dataset /users/id"},
  };
  for (const auto& [flaw, message] : cases) {
    const std::string in = scratch(world, "flawed.h5"), out = scratch(world, "flawed_prepared.h5");
    write_dataset(world, in, 50, 20, events, flaw);
    for (std::int64_t batch : {std::int64_t(64), std::int64_t(1) << 20}) {
      auto opt = options(in, out);
      opt.batch_events = batch;
      try {
        prepare::run(opt, world);
        ADD_FAILURE() << "accepted: " << message;
      } catch (const AgreedError& e) {
        EXPECT_EQ(std::string(e.what()), in + ": " + message);
      }
      world.barrier();
      EXPECT_FALSE(exists(out));
      EXPECT_FALSE(exists(out + ".partial"));
    }
  }
  // Not an HDF5 file; a missing file; options out of range.
  const std::string junk = scratch(world, "junk.h5");
  if (world.is_root()) std::ofstream(junk) << "this is not HDF5\n";
  world.barrier();
  EXPECT_THROW(prepare::run(options(junk, junk + ".out"), world), AgreedError);
  EXPECT_THROW(prepare::run(options(junk + ".missing", junk + ".out"), world), AgreedError);
  auto bad = options(junk, junk + ".out");
  bad.test_fraction = 1;
  EXPECT_THROW(prepare::run(bad, world), ConfigError);
  world.barrier();
}

TEST(Prepare, RouteAndTransposeDirectly) {
  Comm world = Comm::world();
  // Each rank sends records for every row; the owners receive exactly their rows.
  const Bounds rows = partition_even(10, world.size());
  prepare::Triplets local, mine;
  for (std::int64_t r = 0; r < 10; ++r) {
    local.row.push_back(r);
    local.col.push_back(world.rank());
    local.value.push_back(float(r) + 0.5f);
  }
  prepare::route(local, rows, mine, world);
  EXPECT_EQ(std::int64_t(mine.size()), (rows[world.rank() + 1] - rows[world.rank()]) * world.size());
  for (std::size_t k = 0; k < mine.size(); ++k) {
    EXPECT_EQ(owner_of(rows, mine.row[k]), world.rank());
    EXPECT_EQ(mine.value[k], float(mine.row[k]) + 0.5f);
  }
  CsrBlock block = prepare::to_csr(std::move(mine), rows[world.rank()], rows[world.rank() + 1], 10, world.size());
  EXPECT_EQ(block.nnz(), (rows[world.rank() + 1] - rows[world.rank()]) * world.size());
  CsrBlock t = prepare::transpose(block, world);
  EXPECT_EQ(t.n_rows_global, world.size());
  EXPECT_EQ(t.n_cols, 10);
  const std::int64_t total = world.sum<std::int64_t>(t.nnz());
  EXPECT_EQ(total, 10 * world.size());
  for (Index r = 0; r < t.n_rows(); ++r)
    for (std::int64_t k = t.indptr[r]; k < t.indptr[r + 1]; ++k) EXPECT_EQ(t.data[k], float(t.indices[k]) + 0.5f);
}
