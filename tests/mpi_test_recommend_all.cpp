// The batch job (every user's top N, each rank writing its rows into one HDF5 file and a CSV)
// under 1, 2 and 4 ranks: the output must equal the serial Recommender's, user by user.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <fstream>
#include <sstream>

#include "mfrec/training_run.hpp"
#include "mfrec/model.hpp"
#include "mfrec/recommend.hpp"
#include "test_data.hpp"
#include "test_model.hpp"

using namespace mfrec;

namespace {

std::string scratch(const Comm& comm, const std::string& name) {
  return comm.bcast("recommend_all_" + std::to_string(comm.size()) + "_" + name);
}

// Trains a small model on every rank of comm and writes it (collective).
void make_model(const Comm& comm, const std::string& data, const std::string& model, Index users, Index items,
                std::vector<Index> cold) {
  testdata::write_random_prepared(data, comm, users, items, 9, 3, std::move(cold));
  AlsParams als;
  als.factors = 5;
  als.regularization = 0.5f;
  als.alpha = 3.0f;
  testdata::train_model(comm, data, model, als, 4);
}

std::vector<std::string> lines_of(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> out;
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

}  // namespace

TEST(RecommendAll, EveryRankWritesItsUsersRowsLikeTheSerialRecommender) {
  Comm world = Comm::world();
  const std::string data = scratch(world, "data.h5"), model = scratch(world, "model.h5");
  const std::string out = scratch(world, "recs.h5"), csv = scratch(world, "recs.csv");
  constexpr Index kUsers = 103, kItems = 31;
  constexpr int kN = 6;
  make_model(world, data, model, kUsers, kItems, {2, 60, 102});
  BatchResult res = recommend_all(world, model, out, csv, kN, 2);
  EXPECT_EQ(res.users, kUsers);
  EXPECT_EQ(res.fallback_users, 3);
  if (world.is_root()) {
    auto rec = Recommender::load(resolve_model(model, "", ""));
    h5::File f = h5::File::open(out);
    EXPECT_EQ(f.attr_string("/", "format"), "mfrec-recommendations");
    EXPECT_EQ(f.attr_int("/", "n"), kN);
    const auto items = f.read_all<std::int32_t>("/recommendations/items");
    const auto scores = f.read_all<float>("/recommendations/scores");
    const auto fallback = f.read_all<std::uint8_t>("/recommendations/fallback");
    const auto ids = f.read_strings("/users/id");
    ASSERT_EQ(f.shape("/recommendations/items"), (h5::Dims{kUsers, kN}));
    ASSERT_EQ(ids.size(), static_cast<std::size_t>(kUsers));
    EXPECT_EQ(f.read_strings("/items/id"), rec->model().items.id);
    for (Index u = 0; u < kUsers; ++u) {
      EXPECT_EQ(ids[static_cast<std::size_t>(u)], "u" + std::to_string(u));
      ItemList l = rec->for_user_row(u, kN);
      std::vector<std::int32_t> row(items.begin() + u * kN, items.begin() + (u + 1) * kN);
      EXPECT_EQ(row, l.items) << "user " << u;
      for (int k = 0; k < kN; ++k) EXPECT_FLOAT_EQ(scores[static_cast<std::size_t>(u * kN + k)], l.scores[k]);
      EXPECT_EQ(fallback[static_cast<std::size_t>(u)], l.source == "popular" ? 1 : 0);
    }
    // The CSV: a header, then kN lines per user in user order.
    const auto lines = lines_of(csv);
    ASSERT_EQ(lines.size(), static_cast<std::size_t>(1 + kUsers * kN));
    EXPECT_EQ(lines[0], "user_id,rank,item_id,item_name,category,score,source");
    const auto i0 = static_cast<std::size_t>(items[0]);
    EXPECT_EQ(lines[1].rfind("u0,1," + rec->model().items.id[i0] + "," + rec->model().items.name[i0] + ",", 0), 0u);
    EXPECT_NE(lines[2 * kN + 1].find(",popular"), std::string::npos);  // user 2: no history
    EXPECT_EQ(lines.back().rfind("u102,6,", 0), 0u);
    EXPECT_FALSE(std::ifstream(csv + ".part0").good());
  }
  world.barrier();
}

TEST(RecommendAll, PadsWhenFewerItemsAreLeftAndWorksWithIdleRanks) {
  Comm world = Comm::world();
  const std::string data = scratch(world, "tiny.h5"), model = scratch(world, "tiny_model.h5");
  const std::string out = scratch(world, "tiny_recs.h5");
  make_model(world, data, model, 3, 8, {});  // 3 users: with 4 ranks one has none
  BatchResult res = recommend_all(world, model, out, "", 8, 1);
  EXPECT_EQ(res.users, 3);
  if (world.is_root()) {
    h5::File f = h5::File::open(out);
    const auto items = f.read_all<std::int32_t>("/recommendations/items");
    const auto scores = f.read_all<float>("/recommendations/scores");
    auto rec = Recommender::load(resolve_model(model, "", ""));
    for (Index u = 0; u < 3; ++u) {
      const auto& s = rec->model().seen;
      const auto n_seen = static_cast<std::size_t>(s.indptr[u + 1] - s.indptr[u]);
      const std::size_t left = n_seen == 0 ? 8 : 8 - n_seen;
      for (std::size_t k = 0; k < 8; ++k) {
        const std::size_t off = static_cast<std::size_t>(u) * 8 + k;
        EXPECT_EQ(items[off] < 0, k >= left) << "user " << u << " rank " << k;
        EXPECT_EQ(std::isnan(scores[off]), k >= left);
      }
    }
  }
  world.barrier();
}

TEST(RecommendAll, BadModelIsAnInputErrorOnEveryRank) {
  Comm world = Comm::world();
  const std::string path = scratch(world, "not_a_model.h5");
  testdata::write_random_prepared(path, world, 10, 5);
  EXPECT_THROW(recommend_all(world, path, scratch(world, "never.h5"), "", 5, 1), AgreedError);
  EXPECT_THROW(recommend_all(world, path, scratch(world, "never.h5"), "", 0, 1), ConfigError);
}

namespace {

// A copy of `model` with one value changed by rank 0 (serial write), seen by every rank.
template <class T>
std::string corrupt_copy(const Comm& world, const std::string& model, const std::string& name,
                         const std::string& dataset, Index row, T value) {
  const std::string path = scratch(world, name);
  if (world.is_root()) {
    std::filesystem::copy_file(model, path, std::filesystem::copy_options::overwrite_existing);
    h5::File f = h5::File::open(path, nullptr, /*writable=*/true);
    const h5::Dims d = f.shape(dataset);
    std::vector<T> row_values(d.size() > 1 ? d[1] : 1, value);
    f.write_rows(dataset, row, 1, row_values.data());
    f.close();
  }
  world.barrier();
  return path;
}

// Every rank threw the same AgreedError naming `what`, and neither output exists.
void expect_refused(const Comm& world, const std::string& model, const std::string& csv, const std::string& what) {
  const std::string out = scratch(world, "refused.h5");
  std::string err;
  try {
    recommend_all(world, model, out, csv, 5, 1);
  } catch (const AgreedError& e) {
    err = e.what();
  }
  EXPECT_NE(err.find(what), std::string::npos) << "rank " << world.rank() << ": '" << err << "'";
  world.barrier();
  EXPECT_FALSE(std::filesystem::exists(out)) << out;
  EXPECT_FALSE(std::filesystem::exists(out + ".partial")) << out;
  if (!csv.empty()) {
    EXPECT_FALSE(std::filesystem::exists(csv)) << csv;
    EXPECT_FALSE(std::filesystem::exists(csv + ".partial")) << csv;
  }
  world.barrier();
}

}  // namespace

// The model is validated by the one reader, whichever rank's rows hold the fault; the verdict
// is agreed and nothing is written.
TEST(RecommendAll, RefusesAModelWithNonFiniteFactorsOrABadRanking) {
  Comm world = Comm::world();
  const std::string data = scratch(world, "bad_data.h5"), model = scratch(world, "bad_base.h5");
  make_model(world, data, model, 40, 12, {});
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  expect_refused(world, corrupt_copy(world, model, "nan_user.h5", "/user_factors", 39, nan), "",
                 "dataset /user_factors holds a non-finite value");
  expect_refused(world, corrupt_copy(world, model, "inf_item.h5", "/item_factors", 3, inf), "",
                 "dataset /item_factors holds a non-finite value");
  expect_refused(world, corrupt_copy(world, model, "bad_rank.h5", "/popularity/ranking", 0, std::int32_t{12}), "",
                 "/popularity/ranking[0] = 12 is outside [0, 12)");
  expect_refused(world, corrupt_copy(world, model, "neg_rank.h5", "/popularity/ranking", 1, std::int32_t{-1}), "",
                 "/popularity/ranking[1] = -1");
}

// Outputs are checked before any work, and a CSV that cannot be written takes the HDF5 file
// this run wrote with it.
TEST(RecommendAll, AnUnwritableOutputLeavesNothingBehind) {
  Comm world = Comm::world();
  const std::string data = scratch(world, "out_data.h5"), model = scratch(world, "out_model.h5");
  make_model(world, data, model, 30, 10, {});
  expect_refused(world, model, scratch(world, "no_such_dir/recs.csv"), "option --csv");
  expect_refused(world, model, "/proc/mfrec_cannot_write_here.csv", "/proc/mfrec_cannot_write_here.csv");
  // An output that is the input is refused before anything is read or written.
  std::string err;
  try {
    recommend_all(world, model, model, "", 5, 1);
  } catch (const AgreedError& e) {
    err = e.what();
  }
  EXPECT_NE(err.find("same file"), std::string::npos) << err;
  EXPECT_NO_THROW(Recommender::load(resolve_model(model, "", "")));  // the input is intact
  world.barrier();
}
