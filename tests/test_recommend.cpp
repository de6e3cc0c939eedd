// The Recommender over a small trained model: top N for users (seen items left out, the popular
// fallback), popular, similar, fold-in against the exact solution, JSON, and the block top N.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <set>

#include "mfrec/training_run.hpp"
#include "mfrec/model.hpp"
#include "mfrec/recommend.hpp"
#include "mfrec/registry.hpp"
#include "test_data.hpp"
#include "test_model.hpp"

using namespace mfrec;

namespace {

constexpr Index kUsers = 120, kItems = 40;

// A prepared file and a model trained on it (one rank), made once for every test.
const std::string& model_path() {
  static const std::string path = [] {
    Comm world = Comm::world();
    const std::string data = "recommend_unit_data.h5", model = "recommend_unit_model.h5";
    testdata::write_random_prepared(data, world, kUsers, kItems, 10, 5, {7, 50});  // users 7, 50: no history
    AlsParams als;
    als.factors = 6;
    als.regularization = 0.5f;
    als.alpha = 4.0f;
    testdata::train_model(world, data, model, als, 8);
    return model;
  }();
  return path;
}

const Recommender& rec() {
  static const std::shared_ptr<const Recommender> r = Recommender::load(resolve_model(model_path(), "", ""));
  return *r;
}

std::vector<std::int32_t> seen_of(const Recommender& r, Index u) {
  const auto& s = r.model().seen;
  return {s.indices.begin() + s.indptr[u], s.indices.begin() + s.indptr[u + 1]};
}

}  // namespace

TEST(Recommender, LooksUpUsersAndItems) {
  const Recommender& r = rec();
  EXPECT_EQ(r.n_users(), kUsers);
  EXPECT_EQ(r.n_items(), kItems);
  EXPECT_EQ(r.user_row("u0"), 0);
  EXPECT_EQ(r.user_row("u119"), 119);
  EXPECT_EQ(r.user_row("nobody"), -1);
  EXPECT_EQ(r.item_row("i39"), 39);
  EXPECT_EQ(r.item_row("i40"), -1);
  EXPECT_FALSE(r.has_history(7));
  EXPECT_TRUE(r.has_history(0));
}

TEST(Recommender, TopNLeavesOutSeenItemsAndRanksByScore) {
  const Recommender& r = rec();
  for (Index u : {0, 1, 33, 119}) {
    ItemList l = r.for_user_row(u, 10);
    ASSERT_EQ(l.items.size(), 10u);
    EXPECT_EQ(l.source, "model");
    const auto seen = seen_of(r, u);
    ASSERT_FALSE(seen.empty());
    // The brute-force ranking of the unseen items.
    std::vector<std::pair<float, int>> all;
    for (int i = 0; i < kItems; ++i) {
      if (std::find(seen.begin(), seen.end(), i) != seen.end()) continue;
      all.emplace_back(-r.model().item_factors.row(i).dot(r.model().user_factors.row(u)), i);
    }
    std::sort(all.begin(), all.end());
    for (std::size_t k = 0; k < l.items.size(); ++k) {
      EXPECT_EQ(std::count(seen.begin(), seen.end(), l.items[k]), 0);
      EXPECT_NEAR(l.scores[k], -all[k].first, 1e-5);
      if (k) EXPECT_GE(l.scores[k - 1], l.scores[k]);
    }
  }
  // By id: the same list.
  EXPECT_EQ(r.for_user("u33", 5).items, r.for_user_row(33, 5).items);
  // More than there is: every unseen item, once.
  ItemList l = r.for_user_row(0, 1000);
  EXPECT_EQ(l.items.size(), static_cast<std::size_t>(kItems) - seen_of(r, 0).size());
  EXPECT_EQ(std::set<std::int32_t>(l.items.begin(), l.items.end()).size(), l.items.size());
}

TEST(Recommender, UnknownUsersAndUsersWithoutHistoryGetThePopularList) {
  const Recommender& r = rec();
  ItemList p = r.popular(5);
  EXPECT_EQ(p.source, "popular");
  ASSERT_EQ(p.items.size(), 5u);
  for (std::size_t k = 0; k < 5; ++k) {
    EXPECT_EQ(p.items[k], r.model().popular[k]);
    EXPECT_EQ(p.scores[k], static_cast<float>(r.model().popularity[static_cast<std::size_t>(p.items[k])]));
  }
  EXPECT_EQ(r.for_user("nobody", 5).items, p.items);
  EXPECT_EQ(r.for_user("nobody", 5).source, "popular");
  EXPECT_EQ(r.for_user_row(7, 5).source, "popular");
  EXPECT_EQ(r.for_user_row(50, 5).items, p.items);
  // Excluding items keeps the order of the rest.
  ItemList q = r.popular(4, {p.items[0], p.items[2]});
  EXPECT_EQ(q.items, (std::vector<std::int32_t>{p.items[1], p.items[3], p.items[4], r.model().popular[5]}));
}

TEST(Recommender, SimilarIsCosineWithoutTheItemItself) {
  const Recommender& r = rec();
  const auto& Y = r.model().item_factors;
  for (Index i : {0, 17, 39}) {
    ItemList l = r.similar(i, 6);
    EXPECT_EQ(l.source, "similar");
    ASSERT_EQ(l.items.size(), 6u);
    std::vector<std::pair<double, int>> all;
    for (int j = 0; j < kItems; ++j)
      if (j != i) all.emplace_back(-Y.row(i).dot(Y.row(j)) / (Y.row(i).norm() * Y.row(j).norm()), j);
    std::sort(all.begin(), all.end());
    for (std::size_t k = 0; k < 6; ++k) {
      EXPECT_NE(l.items[k], i);
      EXPECT_NEAR(l.scores[k], -all[k].first, 1e-5);
      EXPECT_LE(l.scores[k], 1.0f + 1e-5f);
    }
  }
  EXPECT_EQ(r.similar(3, 1000).items.size(), static_cast<std::size_t>(kItems - 1));
}

TEST(Recommender, FoldInSolvesTheUsersRowExactly) {
  const Recommender& r = rec();
  for (Index u : {0, 5, 88}) {
    const auto& s = r.model().seen;
    std::vector<std::int32_t> items = seen_of(r, u);
    std::vector<Real> w(s.data.begin() + s.indptr[u], s.data.begin() + s.indptr[u + 1]);
    Vector x = r.fold_in_factors(items, w);
    // The same row as a one-row matrix, solved densely in double.
    CsrBlock one;
    one.n_rows_global = 1;
    one.n_cols = kItems;
    one.indptr = {0, static_cast<std::int64_t>(items.size())};
    one.indices = items;
    one.data = w;
    Eigen::VectorXd oracle = solve_row_dense_oracle(one, 0, r.model().item_factors, r.model().meta.als);
    EXPECT_LE((x.cast<double>() - oracle).norm(), 1e-4 * std::max(1.0, oracle.norm())) << "user " << u;
    // And close to the trained factors (the last user half-step was against nearly this Y).
    const double rel = (x - r.model().user_factors.row(u).transpose()).norm() /
                       std::max(1e-6f, r.model().user_factors.row(u).norm());
    EXPECT_LT(rel, 0.5) << "user " << u;
    // Recommendations leave out the history.
    ItemList l = r.fold_in(items, w, 8);
    EXPECT_EQ(l.source, "fold-in");
    for (auto i : l.items) EXPECT_EQ(std::count(items.begin(), items.end(), i), 0);
  }
}

TEST(Recommender, FoldInMergesDuplicatesAndChecksItsInput) {
  const Recommender& r = rec();
  Vector a = r.fold_in_factors({3, 3, 9});
  Vector b = r.fold_in_factors({9, 3}, {1, 2});
  EXPECT_LE((a - b).norm(), 1e-6 * std::max<Real>(1, b.norm()));
  EXPECT_THROW(r.fold_in_factors({}), InputError);
  EXPECT_THROW(r.fold_in_factors({kItems}), InputError);
  EXPECT_THROW(r.fold_in_factors({-1}), InputError);
  EXPECT_THROW(r.fold_in_factors({1, 2}, {1}), InputError);
  EXPECT_THROW(r.fold_in_factors({1}, {0}), InputError);
  EXPECT_THROW(r.fold_in_factors({1}, {std::nanf("")}), InputError);
  EXPECT_THROW(r.for_user_row(0, 0), ConfigError);
  EXPECT_THROW(r.popular(0), ConfigError);
  EXPECT_THROW(r.similar(kItems, 3), InputError);
  EXPECT_THROW(r.for_user_row(kUsers, 3), InputError);
}

TEST(Recommender, RendersItemsWithTheirDetails) {
  const Recommender& r = rec();
  ItemList l = r.for_user_row(1, 3);
  nlohmann::ordered_json j = r.response(l);
  EXPECT_EQ(j["source"], "model");
  EXPECT_EQ(j["count"], 3);
  ASSERT_EQ(j["items"].size(), 3u);
  const auto& first = j["items"][0];
  const auto i = static_cast<std::size_t>(l.items[0]);
  EXPECT_EQ(first["rank"], 1);
  EXPECT_EQ(first["id"], r.model().items.id[i]);
  EXPECT_EQ(first["name"], r.model().items.name[i]);
  EXPECT_EQ(first["category"], r.model().items.category[i]);
  EXPECT_TRUE(first.contains("style"));
  EXPECT_TRUE(first.contains("description"));
  EXPECT_NEAR(first["price"].get<double>(), r.model().items.price[i], 0.006);
  EXPECT_NEAR(first["score"].get<double>(), l.scores[0], 1e-5);
  // The fast path renders the same text.
  EXPECT_EQ(r.response_text(l), j.dump());
  nlohmann::ordered_json head = {{"user_id", "u1"}, {"known_user", true}};
  EXPECT_EQ(r.response_text(l, head), r.response(l, head).dump());
  EXPECT_EQ(r.response_text(r.popular(4), nlohmann::ordered_json::object()), r.response(r.popular(4)).dump());
  ItemList none;
  none.source = "popular";
  EXPECT_EQ(r.response_text(none), r.response(none).dump());
  // Invalid UTF-8 from a request does not throw.
  EXPECT_NE(r.response_text(l, {{"user_id", std::string("\xff")}}).find("\"user_id\":\""), std::string::npos);
  nlohmann::ordered_json m = r.model_json();
  EXPECT_EQ(m["users"], kUsers);
  EXPECT_EQ(m["factors"], 6);
}

TEST(Recommender, BlockTopNMatchesSingleUsersForAnyThreadCount) {
  const Recommender& r = rec();
  const Model& m = r.model();
  auto counts = m.popularity;
  std::vector<Real> pop(counts.begin(), counts.end());
  TopNBlock one = top_n_rows(m.user_factors, m.item_factors, m.seen, 7, m.popular, pop, 1);
  TopNBlock three = top_n_rows(m.user_factors, m.item_factors, m.seen, 7, m.popular, pop, 3);
  EXPECT_EQ(one.items, three.items);
  for (Index u = 0; u < kUsers; ++u) {
    ItemList l = r.for_user_row(u, 7);
    std::vector<std::int32_t> row(one.items.begin() + u * 7, one.items.begin() + u * 7 + 7);
    EXPECT_EQ(row, l.items) << "user " << u;
    EXPECT_EQ(one.fallback[static_cast<std::size_t>(u)], l.source == "popular" ? 1 : 0);
  }
  // Wider than the unseen items: padded with -1 and NaN.
  TopNBlock wide = top_n_rows(m.user_factors, m.item_factors, m.seen, kItems, m.popular, pop, 2);
  const std::size_t n_seen = seen_of(r, 0).size();
  EXPECT_EQ(wide.items[kItems - 1], -1);
  EXPECT_TRUE(std::isnan(wide.scores[kItems - 1]));
  EXPECT_NE(wide.items[kItems - 1 - n_seen], -1);
}

TEST(Recommender, ModelSourcesAndCsvFields) {
  EXPECT_THROW(resolve_model("", "", ""), ConfigError);
  EXPECT_EQ(resolve_model("m.h5", "", "").describe(), "m.h5");
  EXPECT_THROW(resolve_model("", "no_such_registry_dir", "x@production"), ConfigError);
  EXPECT_THROW(Recommender::load(resolve_model("no_such_model.h5", "", "")), Error);
}

TEST(Recommender, LoadsFromTheRegistryByNameVersionAndStage) {
  namespace fs = std::filesystem;
  const std::string dir = "recommend_unit_registry";
  fs::remove_all(dir);
  Registry reg(dir, /*create=*/true);
  reg.publish(model_path(), "retail-als", {"production"});
  reg.publish(model_path(), "retail-als", {"candidate"});
  ModelSource s = resolve_model("", dir, "retail-als@production");
  EXPECT_EQ(s.name, "retail-als");
  EXPECT_EQ(s.version, 1);
  EXPECT_FALSE(s.checksum.empty());
  EXPECT_EQ(s.describe().rfind("retail-als:1 (", 0), 0u);
  EXPECT_EQ(resolve_model("", dir, "retail-als").version, 2);
  EXPECT_EQ(resolve_model("", dir, "retail-als:2").version, 2);
  auto r = Recommender::load(s);
  EXPECT_EQ(r->n_users(), kUsers);
  EXPECT_EQ(r->model_json()["version"], 1);
  EXPECT_EQ(r->response(r->popular(2))["model"], "retail-als:1");
  // Polling sees the label move without verifying the file.
  reg.promote("retail-als:2", "production");
  ModelSource p = peek_registry(dir, "retail-als@production");
  EXPECT_EQ(p.version, 2);
  EXPECT_TRUE(fs::exists(p.path));
  EXPECT_THROW(resolve_model("", dir, "retail-als@staging"), InputError);
  EXPECT_THROW(resolve_model("", dir, "other"), InputError);
}

namespace {

// A copy of the unit model with row `row` of `dataset` set to `value` throughout.
template <class T>
std::string corrupted(const std::string& name, const std::string& dataset, Index row, T value) {
  std::filesystem::copy_file(model_path(), name, std::filesystem::copy_options::overwrite_existing);
  h5::File f = h5::File::open(name, nullptr, /*writable=*/true);
  const h5::Dims d = f.shape(dataset);
  std::vector<T> values(d.size() > 1 ? d[1] : 1, value);
  f.write_rows(dataset, row, 1, values.data());
  f.close();
  return name;
}

std::string load_error(const std::string& path) {
  try {
    Recommender::load(resolve_model(path, "", ""));
  } catch (const InputError& e) {
    return e.what();
  }
  return "(loaded)";
}

}  // namespace

// One reader validates every model (batch, single queries and the server): faults are refused at
// load, naming the file and the dataset.
TEST(Recommender, RefusesNonFiniteFactorsAndABadPopularityRanking) {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  const std::string a = corrupted("recommend_nan.h5", "/user_factors", 3, nan);
  EXPECT_NE(load_error(a).find(a + ": dataset /user_factors holds a non-finite value (nan) at row 3"), std::string::npos)
      << load_error(a);
  const std::string b = corrupted("recommend_inf.h5", "/item_factors", 0, -inf);
  EXPECT_NE(load_error(b).find("dataset /item_factors holds a non-finite value"), std::string::npos) << load_error(b);
  const std::string c = corrupted("recommend_rank.h5", "/popularity/ranking", 5, std::int32_t{kItems});
  EXPECT_NE(load_error(c).find("/popularity/ranking[5] = 40 is outside [0, 40)"), std::string::npos) << load_error(c);
  const std::int32_t first = rec().model().popular[0];
  const std::string d = corrupted("recommend_dup.h5", "/popularity/ranking", 1, first);
  EXPECT_NE(load_error(d).find("lists item " + std::to_string(first) + " twice"), std::string::npos) << load_error(d);
  const std::string e = corrupted("recommend_count.h5", "/popularity/count", 2, std::int64_t{-4});
  EXPECT_NE(load_error(e).find("/popularity/count[2] = -4 is negative"), std::string::npos) << load_error(e);
  EXPECT_EQ(load_error(model_path()), "(loaded)");
}

// A model assembled in memory goes through the same checks.
TEST(Recommender, ChecksAModelMadeInMemory) {
  Model m = rec().model();
  m.user_ids.pop_back();  // one id fewer than factor rows
  EXPECT_THROW(Recommender r(m), InputError);
  Model w = rec().model();
  w.popular[0] = -1;
  EXPECT_THROW(Recommender r(w), InputError);
}
