// The ANN index (ann.hpp): recall against exact search on a synthetic catalogue, seen items
// filtered, the file's checks (corrupt, truncated, built for another model), the Recommender's
// --ann policy, the registry's checksummed index, and the server's reloads as indexes appear.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>

#include "mfrec/ann.hpp"
#include "mfrec/ann_synthetic.hpp"
#include "mfrec/error.hpp"
#include "mfrec/metrics.hpp"
#include "mfrec/model.hpp"
#include "mfrec/recommend.hpp"
#include "mfrec/registry.hpp"
#include "mfrec/serve.hpp"
#include "test_data.hpp"
#include "test_errors.hpp"
#include "test_model.hpp"

using namespace mfrec;
namespace fs = std::filesystem;

namespace {

constexpr int kN = 20;

// The exact top n of x . y over `items`, leaving out `seen` (sorted).
std::vector<std::int32_t> exact_top(const FactorMatrix& items, const Real* x, const std::vector<std::int32_t>& seen,
                                    int n) {
  const Eigen::Map<const Vector> q(x, items.cols());
  Vector s = items * q;
  std::vector<std::int32_t> out;
  top_k_excluding(s.data(), items.rows(), seen.data(), static_cast<Index>(seen.size()), n, out);
  return out;
}

const SyntheticFactors& catalogue() {
  static const SyntheticFactors s = synthetic_factors(4000, 16, 150, 40, 11, 40);
  return s;
}

const AnnIndex& index() {
  static const AnnIndex idx = [] {
    AnnParams p;
    p.threads = 1;  // the same graph every run
    AnnIndex i = AnnIndex::build(catalogue().items, p);
    i.set_ef(64);
    return i;
  }();
  return idx;
}

std::string flip_byte(const std::string& from, const std::string& to, std::streamoff from_end) {
  if (from != to) fs::copy_file(from, to, fs::copy_options::overwrite_existing);
  std::fstream f(to, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(-from_end, std::ios::end);
  char c = 0;
  f.get(c);
  f.seekp(-from_end, std::ios::end);
  f.put(static_cast<char>(c ^ 0x5a));
  return to;
}

using testdata::error_of;

// A small trained model file (40 items), made once.
const std::string& model_path() {
  static const std::string path = [] {
    Comm world = Comm::world();
    const std::string data = "ann_unit_data.h5", model = "ann_unit_model.h5";
    testdata::write_random_prepared(data, world, 120, 40, 10, 5, {7});
    AlsParams als;
    als.factors = 6;
    testdata::train_model(world, data, model, als, 4);
    return model;
  }();
  return path;
}

}  // namespace

TEST(Ann, RecallOfTopNAgainstExactWithSeenItemsLeftOut) {
  const auto& s = catalogue();
  double hits = 0;
  for (Index u = 0; u < s.users.rows(); ++u) {
    const auto& seen = s.seen[static_cast<std::size_t>(u)];
    const Real* x = s.users.row(u).data();
    std::vector<std::int32_t> got;
    std::vector<Real> scores;
    rank_candidates(index().top_inner_product(x, kN + static_cast<int>(seen.size())), s.items, x, seen, kN, got,
                    scores);
    ASSERT_EQ(got.size(), static_cast<std::size_t>(kN));
    EXPECT_TRUE(std::is_sorted(scores.rbegin(), scores.rend()));
    for (auto i : got) ASSERT_FALSE(std::binary_search(seen.begin(), seen.end(), i)) << "seen item " << i << " returned";
    auto want = exact_top(s.items, x, seen, kN);
    std::sort(want.begin(), want.end());
    for (auto i : got) hits += std::binary_search(want.begin(), want.end(), i);
  }
  const double recall = hits / static_cast<double>(s.users.rows() * kN);
  EXPECT_GE(recall, 0.9) << "recall@20 of the inner-product graph";
}

TEST(Ann, RecallOfSimilarItemsAgainstExactCosine) {
  FactorMatrix unit = catalogue().items;
  for (Index i = 0; i < unit.rows(); ++i) unit.row(i).normalize();
  double hits = 0;
  const int queries = 100;
  for (int q = 0; q < queries; ++q) {
    const std::int32_t item = q * 37;
    const std::vector<std::int32_t> self{item};
    std::vector<std::int32_t> got;
    std::vector<Real> scores;
    rank_candidates(index().top_cosine(unit.row(item).data(), kN + 1), unit, unit.row(item).data(), self, kN, got, scores);
    EXPECT_EQ(std::count(got.begin(), got.end(), item), 0);
    auto want = exact_top(unit, unit.row(item).data(), self, kN);
    std::sort(want.begin(), want.end());
    for (auto i : got) hits += std::binary_search(want.begin(), want.end(), i);
  }
  EXPECT_GE(hits / (queries * kN), 0.9);
}

TEST(Ann, AUserWhoHasSeenTheBestItemsGetsTheNextOnes) {
  const auto& s = catalogue();
  const Real* x = s.users.row(3).data();
  std::vector<std::int32_t> seen = exact_top(s.items, x, {}, 200);  // the 200 best: all seen
  std::sort(seen.begin(), seen.end());
  std::vector<std::int32_t> got;
  std::vector<Real> scores;
  rank_candidates(index().top_inner_product(x, kN + 200), s.items, x, seen, kN, got, scores);
  ASSERT_EQ(got.size(), static_cast<std::size_t>(kN));
  for (auto i : got) EXPECT_FALSE(std::binary_search(seen.begin(), seen.end(), i));
}

TEST(Ann, FileRoundTripAndItsChecks) {
  const std::string path = "ann_unit_roundtrip.ann";
  index().save(path);
  const auto& s = catalogue();
  AnnIndex back = AnnIndex::load(path, s.items);
  back.set_ef(64);
  EXPECT_EQ(back.n_items(), 4000);
  EXPECT_EQ(back.params().metric, "ip");
  for (Index u = 0; u < 10; ++u) {
    auto a = index().top_inner_product(s.users.row(u).data(), kN), b = back.top_inner_product(s.users.row(u).data(), kN);
    EXPECT_EQ(a, b) << "the loaded graph answers as the saved one";
  }
  // A flipped byte in a graph: the section's checksum.
  EXPECT_NE(error_of([&] { AnnIndex::load(flip_byte(path, "ann_unit_bad.ann", 100), s.items); })
                .find("checksum mismatch"),
            std::string::npos);
  // Truncated.
  fs::copy_file(path, "ann_unit_short.ann", fs::copy_options::overwrite_existing);
  fs::resize_file("ann_unit_short.ann", fs::file_size(path) / 2);
  EXPECT_NE(error_of([&] { AnnIndex::load("ann_unit_short.ann", s.items); }).find("truncated"), std::string::npos);
  // Not an index at all.
  std::ofstream("ann_unit_text.ann") << "hello\n";
  EXPECT_NE(error_of([&] { AnnIndex::load("ann_unit_text.ann", s.items); }).find("not an mfrec ANN index"),
            std::string::npos);
  // Built for other item factors (same shape, one value changed): a mismatched index.
  FactorMatrix other = s.items;
  other(5, 3) += 0.25f;
  const std::string e = error_of([&] { AnnIndex::load(path, other); });
  EXPECT_NE(e.find("other item factors"), std::string::npos) << e;
  EXPECT_THROW(AnnIndex::load(path, FactorMatrix(s.items.topRows(100))), InputError);
}

TEST(Ann, RecommenderAnswersAsExactSearchOnASmallCatalogue) {
  // 40 items and ef 128: the graph search visits every item, so ANN must equal exact search.
  const ModelSource src = resolve_model(model_path(), "", "");
  auto exact = Recommender::load(src);
  auto index = std::make_shared<AnnIndex>(AnnIndex::build(exact->model().item_factors));
  index->set_ef(128);
  const Recommender ann(read_model(model_path()), src, index);
  ASSERT_NE(ann.ann(), nullptr);
  EXPECT_EQ(ann.model_json()["search"], "ann");
  EXPECT_EQ(exact->model_json()["search"], "exact");
  for (Index u : {0, 1, 33, 119}) {
    const ItemList a = ann.for_user_row(u, 10), b = exact->for_user_row(u, 10);
    EXPECT_EQ(a.items, b.items) << "user " << u;
    EXPECT_EQ(a.source, "model");
  }
  EXPECT_EQ(ann.for_user_row(7, 5).source, "popular");  // no history: the popular list either way
  for (Index i : {0, 17, 39}) EXPECT_EQ(ann.similar(i, 8).items, exact->similar(i, 8).items) << "item " << i;
  EXPECT_EQ(ann.fold_in({3, 5, 5, 9}, {}, 10).items, exact->fold_in({3, 5, 5, 9}, {}, 10).items);
  // An index of other factors is refused.
  FactorMatrix other = exact->model().item_factors;
  other(0, 0) += 1;
  EXPECT_THROW(Recommender(read_model(model_path()), src, std::make_shared<AnnIndex>(AnnIndex::build(other))),
               InputError);
}

TEST(Ann, LoadPolicyOffAutoOn) {
  const std::string model = "ann_unit_policy.h5";
  fs::copy_file(model_path(), model, fs::copy_options::overwrite_existing);
  const std::string index_file = ann_index_path(model);
  EXPECT_EQ(index_file, "ann_unit_policy.ann");
  fs::remove(index_file);
  const ModelSource src = resolve_model(model, "", "");
  AnnConfig on{AnnMode::kOn}, aut{AnnMode::kAuto}, low{AnnMode::kAuto, 10};
  EXPECT_EQ(Recommender::load(src, {AnnMode::kOff})->ann(), nullptr);
  EXPECT_EQ(Recommender::load(src, aut)->ann(), nullptr);  // 40 items: under the default threshold
  EXPECT_EQ(Recommender::load(src, low)->ann(), nullptr);  // over it, but no index: exact (warned)
  EXPECT_NE(error_of([&] { Recommender::load(src, on); }).find("no ANN index"), std::string::npos);

  const Model m = read_model(model);
  AnnIndex::build(m.item_factors).save(index_file);
  EXPECT_NE(Recommender::load(src, on)->ann(), nullptr);
  EXPECT_NE(Recommender::load(src, low)->ann(), nullptr);
  EXPECT_EQ(Recommender::load(src, aut)->ann(), nullptr);
  on.ef = 77;
  EXPECT_EQ(Recommender::load(src, on)->ann()->ef(), 77);
  // Corrupt: an error in auto mode too (a damaged file is not "no index").
  flip_byte(index_file, index_file, 10);
  EXPECT_NE(error_of([&] { Recommender::load(src, low); }).find("checksum mismatch"), std::string::npos);
  // Another model's index.
  FactorMatrix other = m.item_factors;
  other(1, 1) += 1;
  AnnIndex::build(other).save(index_file);
  EXPECT_NE(error_of([&] { Recommender::load(src, on); }).find("other item factors"), std::string::npos);
  EXPECT_THROW(parse_ann_mode("yes"), ConfigError);
  EXPECT_THROW(check_ann_config({AnnMode::kAuto, 0}), ConfigError);
  EXPECT_THROW(check_ann_config({AnnMode::kAuto, 10, 0}), ConfigError);
}

TEST(Ann, RegistryIndexIsPublishedWithTheModelAndChecksummed) {
  const std::string dir = "ann_unit_registry";
  fs::remove_all(dir);
  Registry reg(dir);
  AnnParams p;
  const RegistryEntry plain = reg.publish(model_path(), "m", {"candidate"});
  EXPECT_TRUE(plain.ann_file.empty());
  const RegistryEntry e = reg.publish(model_path(), "m", {"production"}, &p);
  EXPECT_EQ(e.ann_file, "m/v2.ann");
  EXPECT_EQ(e.ann_checksum, file_checksum(dir + "/m/v2.ann"));
  EXPECT_EQ(reg.find("m:2").ann_checksum, e.ann_checksum);  // recorded in index.json
  EXPECT_EQ(reg.verified_ann_path("m:2"), reg.dir() + "/m/v2.ann");
  EXPECT_THROW(reg.verified_ann_path("m:1"), InputError);

  const AnnConfig on{AnnMode::kOn};
  EXPECT_NE(Recommender::load(resolve_model("", dir, "m@production"), on)->ann(), nullptr);
  EXPECT_NE(error_of([&] { Recommender::load(resolve_model("", dir, "m:1"), on); }).find("has no ANN index"),
            std::string::npos);
  // A changed byte: the registry's checksum catches it before the file is read as an index.
  flip_byte(dir + "/m/v2.ann", dir + "/m/v2.ann", 10);
  EXPECT_NE(error_of([&] { Recommender::load(resolve_model("", dir, "m@production"), on); }).find("checksum mismatch"),
            std::string::npos);
  EXPECT_THROW(reg.verified_ann_path("m:2"), InputError);
  EXPECT_EQ(Recommender::load(resolve_model("", dir, "m@production"), {AnnMode::kOff})->ann(), nullptr);  // unread
  // build-index replaces it (and gives version 1 one).
  const RegistryEntry rebuilt = reg.build_index("m:2", p);
  EXPECT_EQ(rebuilt.ann_checksum, file_checksum(dir + "/m/v2.ann"));
  EXPECT_NE(Recommender::load(resolve_model("", dir, "m@production"), on)->ann(), nullptr);
  EXPECT_EQ(reg.build_index("m:1", p).ann_file, "m/v1.ann");
  EXPECT_NE(Recommender::load(resolve_model("", dir, "m:1"), on)->ann(), nullptr);
  EXPECT_EQ(reg.find("m:1").stages, std::vector<std::string>{"candidate"});  // the rest of the entry kept
}

TEST(Ann, TheServerReloadsWhenAnIndexIsBuiltAndRetriesAVersionOnceItHasOne) {
  using namespace mfrec::serve;
  const std::string dir = "ann_unit_reload_registry";
  fs::remove_all(dir);
  Registry reg(dir);
  reg.publish(model_path(), "m", {"production"});
  ModelHolder holder;
  Metrics metrics;
  // --ann on: a version without an index is not served.
  EXPECT_THROW(Reloader(holder, metrics, "", dir, "m@production", {AnnMode::kOn}), InputError);
  // --ann auto (threshold 10 items): exact search until the version gets its index.
  Reloader reloader(holder, metrics, "", dir, "m@production", {AnnMode::kAuto, 10});
  EXPECT_EQ(holder.get()->ann(), nullptr);
  reloader.poll();
  EXPECT_EQ(metrics.reloads(), 0u);
  reg.build_index("m:1", AnnParams{});
  reloader.poll();
  EXPECT_EQ(metrics.reloads(), 1u);
  ASSERT_NE(holder.get()->ann(), nullptr) << "the new index of the version served is picked up";

  ModelHolder strict_holder;
  Metrics strict_metrics;
  Reloader strict(strict_holder, strict_metrics, "", dir, "m@production", {AnnMode::kOn});
  reg.publish(model_path(), "m", {"production"});  // v2 without an index: refused, v1 kept
  strict.poll();
  strict.poll();  // not retried while nothing changes
  EXPECT_EQ(strict_holder.get()->source().version, 1);
  EXPECT_EQ(strict_metrics.reload_failures(), 1u);
  reg.build_index("m:2", AnnParams{});  // its index appears: retried
  strict.poll();
  EXPECT_EQ(strict_holder.get()->source().version, 2);
  EXPECT_NE(strict_holder.get()->ann(), nullptr);
}
