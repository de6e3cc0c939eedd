// The model registry: publish, find, promote, list, checksums, bad input and crash atomicity.
// Concurrent publishers (several processes) are tested in tests/cli_registry.sh.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <string>
#include <vector>

#include "mfrec/h5.hpp"
#include "mfrec/registry.hpp"
#include "test_errors.hpp"

namespace fs = std::filesystem;
using namespace mfrec;

namespace {

// A small file that read_model_meta accepts: the root attributes and metric groups of
// src/model.cpp's schema, and a dataset so the file has some bytes to checksum.
// `fingerprint`: the data set's; `select_metric`: written when not empty (older files have none).
void write_tiny_model(const std::string& path, double map, double baseline, int seed,
                      const std::string& fingerprint = "00112233aabbccdd", const std::string& select_metric = "") {
  h5::File f = h5::File::create(path);
  f.write_vector("/user_factors", std::vector<float>{0.5f, 1.5f, static_cast<float>(seed)});
  f.set_attr("/", "format", kModelFormat);
  f.set_attr("/", "format_version", 1);
  f.set_attr("/", "program_version", "0.1.0-test");
  f.set_attr("/", "created", "2024-01-02T03:04:05Z");
  f.set_attr("/", "factors", 8);
  f.set_attr("/", "regularization", static_cast<double>(0.1f));
  f.set_attr("/", "alpha", 40.0);
  f.set_attr("/", "confidence", "hu");
  f.set_attr("/", "scale_regularization", 0);
  f.set_attr("/", "solver", "cg");
  f.set_attr("/", "cg_steps", 3);
  f.set_attr("/", "iterations", 15);
  f.set_attr("/", "seed", static_cast<std::int64_t>(seed));
  f.set_attr("/", "k", 20);
  f.set_attr("/", "dataset", "retail_prepared.h5");
  f.set_attr("/", "dataset_fingerprint", fingerprint);
  if (!select_metric.empty()) f.set_attr("/", "select_metric", select_metric);
  f.create_group("/metrics");
  f.set_attr("/metrics", "map_at_k", map);
  f.create_group("/metrics/system");
  f.set_attr("/metrics/system", "seconds", 1.0);
  f.create_group("/metrics/baseline");
  f.set_attr("/metrics/baseline", "map_at_k", baseline);
  f.close();
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::vector<std::string> files_under(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) out.push_back(fs::relative(e.path(), dir).string());
  std::sort(out.begin(), out.end());
  return out;
}

using testdata::error_of;

class RegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static int counter = 0;
    root_ = fs::temp_directory_path() /
            ("mfrec_test_registry_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(root_);
    fs::create_directories(root_);
    dir_ = (root_ / "registry").string();
    good_ = (root_ / "good.h5").string();
    good2_ = (root_ / "good2.h5").string();
    weak_ = (root_ / "weak.h5").string();
    write_tiny_model(good_, 0.12, 0.05, 1);
    write_tiny_model(good2_, 0.13, 0.05, 2);
    write_tiny_model(weak_, 0.04, 0.05, 3);
    unsetenv("MFREC_REGISTRY_FAULT");
  }
  void TearDown() override {
    unsetenv("MFREC_REGISTRY_FAULT");
    fs::remove_all(root_);
  }
  fs::path root_;
  std::string dir_, good_, good2_, weak_;
};

TEST_F(RegistryTest, PublishFindPromoteList) {
  Registry reg(dir_);
  EXPECT_TRUE(fs::is_directory(dir_));
  EXPECT_TRUE(reg.list().empty());

  const RegistryEntry a = reg.publish(good_, "retail-als");
  EXPECT_EQ(a.version, 1);
  EXPECT_EQ(a.file, "retail-als/v1.h5");
  EXPECT_EQ(a.stages, std::vector<std::string>{"candidate"});
  EXPECT_EQ(a.checksum, file_checksum(good_));
  EXPECT_EQ(a.checksum.rfind("crc32:", 0), 0u);
  EXPECT_EQ(a.bytes, static_cast<std::int64_t>(fs::file_size(good_)));
  EXPECT_EQ(slurp(dir_ + "/" + a.file), slurp(good_));
  EXPECT_EQ(a.meta["parameters"]["factors"], 8);
  EXPECT_EQ(a.meta["parameters"]["regularization"], 0.1);  // the float tidied for people
  EXPECT_EQ(a.meta["parameters"]["solver"], "cg");
  EXPECT_EQ(a.meta["metrics"]["map_at_k"], 0.12);
  EXPECT_EQ(a.meta["baseline_metrics"]["map_at_k"], 0.05);
  EXPECT_EQ(a.meta["dataset_fingerprint"], "00112233aabbccdd");
  EXPECT_EQ(a.meta["program_version"], "0.1.0-test");
  EXPECT_FALSE(a.created.empty());
  EXPECT_TRUE(beats_baseline(a.meta));

  const RegistryEntry b = reg.publish(good2_, "retail-als");
  EXPECT_EQ(b.version, 2);
  EXPECT_EQ(reg.find("retail-als").version, 2);
  EXPECT_EQ(reg.find("retail-als:1").version, 1);
  EXPECT_EQ(reg.find("retail-als@candidate").version, 2);  // the label moved to the new version
  EXPECT_TRUE(reg.find("retail-als:1").stages.empty());

  EXPECT_EQ(reg.promote("retail-als:1", "production").version, 1);
  EXPECT_EQ(reg.find("retail-als@production").version, 1);
  const RegistryEntry p = reg.promote("retail-als@candidate", "production");
  EXPECT_EQ(p.version, 2);
  EXPECT_EQ(reg.find("retail-als@production").version, 2);
  EXPECT_FALSE(reg.find("retail-als:1").has_stage("production"));
  EXPECT_TRUE(reg.find("retail-als:2").has_stage("candidate"));  // labels are independent
  EXPECT_EQ(reg.promote("retail-als:2", "production").version, 2);  // idempotent

  reg.publish(weak_, "aaa-baseline", {"staging", "staging"});
  const auto all = Registry(dir_, false).list();  // a second handle sees the same index
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].spec(), "aaa-baseline:1");
  EXPECT_EQ(all[0].stages, std::vector<std::string>{"staging"});
  EXPECT_FALSE(beats_baseline(all[0].meta));
  EXPECT_EQ(all[1].spec(), "retail-als:1");
  EXPECT_EQ(all[2].spec(), "retail-als:2");

  // The index is readable JSON with every field; INDEX.md is the table.
  const auto index = nlohmann::json::parse(slurp(dir_ + "/index.json"));
  EXPECT_EQ(index["format"], kRegistryFormat);
  ASSERT_EQ(index["models"].size(), 3u);
  EXPECT_EQ(index["models"][2]["file"], "retail-als/v2.h5");
  EXPECT_EQ(index["models"][2]["checksum"], b.checksum);
  EXPECT_TRUE(index["models"][2]["meta"]["parameters"].is_object());
  const std::string md = slurp(dir_ + "/INDEX.md");
  EXPECT_NE(md.find("| retail-als | 2 | candidate,production | 0.1300 | 0.0500 |"), std::string::npos) << md;
  EXPECT_NE(format_registry_table(all).find("MAP@K"), std::string::npos);

  // verified_path: absolute, and the bytes of the published model.
  const std::string path = reg.verified_path("retail-als@production");
  EXPECT_TRUE(fs::path(path).is_absolute());
  EXPECT_EQ(slurp(path), slurp(good2_));
}

TEST_F(RegistryTest, CorruptedModelIsRefused) {
  Registry reg(dir_);
  const RegistryEntry e = reg.publish(good_, "m");
  const std::string path = reg.verified_path("m:1");
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(100);
    char c = 0;
    f.read(&c, 1);
    c = static_cast<char>(c ^ 0x01);
    f.seekp(100);
    f.write(&c, 1);
  }
  const std::string err = error_of([&] { reg.verified_path("m"); });
  EXPECT_NE(err.find("checksum mismatch"), std::string::npos) << err;
  EXPECT_THROW(reg.verified_path("m@candidate"), InputError);
  EXPECT_EQ(reg.find("m").checksum, e.checksum);  // the index is untouched

  fs::remove(path);
  EXPECT_NE(error_of([&] { reg.verified_path("m"); }).find("missing"), std::string::npos);
}

TEST_F(RegistryTest, RegistryPathThatIsAFileErrors) {
  const std::string file = (root_ / "plain.txt").string();
  { std::ofstream(file) << "not a directory\n"; }
  const std::string err = error_of([&] { Registry r(file); });
  EXPECT_NE(err.find("option --registry: "), std::string::npos) << err;
  EXPECT_NE(err.find("is a file"), std::string::npos) << err;
  EXPECT_THROW(Registry(file, false), ConfigError);
  EXPECT_THROW(Registry(file + "/sub"), ConfigError);
  EXPECT_EQ(slurp(file), "not a directory\n");  // nothing lost

  EXPECT_THROW(Registry((root_ / "missing").string(), false), ConfigError);
  EXPECT_FALSE(fs::exists(root_ / "missing"));

  fs::create_directories(root_ / "badindex");
  { std::ofstream(root_ / "badindex" / "index.json") << "{ not json"; }
  EXPECT_THROW(Registry((root_ / "badindex").string()), IoError);
}

TEST_F(RegistryTest, UnknownModelVersionStageAndBadInput) {
  Registry reg(dir_);
  EXPECT_NE(error_of([&] { reg.find("retail"); }).find("the registry is empty"), std::string::npos);
  reg.publish(good_, "retail");
  const std::string before = slurp(dir_ + "/index.json");

  EXPECT_NE(error_of([&] { reg.find("nope"); }).find("unknown model 'nope'"), std::string::npos);
  EXPECT_NE(error_of([&] { reg.find("retail:9"); }).find("no version 9"), std::string::npos);
  EXPECT_NE(error_of([&] { reg.find("retail@production"); }).find("stage 'production'"), std::string::npos);
  EXPECT_NE(error_of([&] { reg.find("retail@prod"); }).find("unknown stage 'prod'"), std::string::npos);
  EXPECT_NE(error_of([&] { reg.promote("retail", "golden"); }).find("unknown stage"), std::string::npos);
  EXPECT_NE(error_of([&] { reg.promote("nope", "production"); }).find("unknown model"), std::string::npos);
  for (const char* bad : {"retail:x", "retail:0", ":1", "retail@", "a:1@b", "", "../x", "a/b"}) {
    EXPECT_THROW(reg.find(bad), InputError) << bad;
  }
  EXPECT_THROW(reg.publish(good_, "../escape"), InputError);
  EXPECT_THROW(reg.publish(good_, "retail", {"golden"}), InputError);
  EXPECT_THROW(reg.publish((root_ / "absent.h5").string(), "retail"), InputError);
  const std::string junk = (root_ / "junk.h5").string();
  { std::ofstream(junk) << "not hdf5"; }
  EXPECT_THROW(reg.publish(junk, "retail"), Error);

  EXPECT_EQ(slurp(dir_ + "/index.json"), before);  // nothing changed, nothing lost
  EXPECT_EQ(files_under(dir_), (std::vector<std::string>{".lock", "INDEX.md", "index.json", "retail/v1.h5"}));
}

TEST_F(RegistryTest, InterruptedPublishLeavesIndexAsItWas) {
  Registry reg(dir_);
  reg.publish(good_, "retail");
  const std::string before = slurp(dir_ + "/index.json");
  const auto files_before = files_under(dir_);

  for (const char* point : {"after-copy", "after-model-rename", "before-index-rename"}) {
    setenv("MFREC_REGISTRY_FAULT", (std::string("throw:") + point).c_str(), 1);
    const std::string err = error_of([&] { reg.publish(good2_, "retail", {"production"}); });
    EXPECT_NE(err.find("injected fault"), std::string::npos) << point << ": " << err;
    EXPECT_EQ(slurp(dir_ + "/index.json"), before) << point;
    EXPECT_EQ(files_under(dir_), files_before) << point;  // copies and temp files removed
  }
  unsetenv("MFREC_REGISTRY_FAULT");

  // Leftovers of publishes that crashed: a copy from a process that is gone (removed), one from
  // another host (left alone: it may still be running), an index temp file, and a model file
  // renamed into place whose index update never happened (its number is not reused).
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  const std::string dead = dir_ + "/retail/.publish-" + std::string(host) + "-999999999-0badf00d0001.tmp";
  const std::string foreign = dir_ + "/retail/.publish-some-other-host-123-0badf00d0002.tmp";
  const std::string index_tmp = dir_ + "/.index.json.x-1-2.tmp";
  for (const auto& p : {dead, foreign, index_tmp}) std::ofstream(p) << "partial";
  fs::copy_file(good_, dir_ + "/retail/v2.h5");

  const RegistryEntry e = reg.publish(good2_, "retail");
  EXPECT_EQ(e.version, 3);
  const auto all = reg.list();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].version, 1);
  EXPECT_EQ(all[1].version, 3);
  EXPECT_FALSE(fs::exists(dead));
  EXPECT_TRUE(fs::exists(foreign));
  EXPECT_FALSE(fs::exists(index_tmp));
  EXPECT_EQ(slurp(reg.verified_path("retail")), slurp(good2_));
  EXPECT_THROW(reg.find("retail:2"), InputError);
}

TEST(RegistryMeta, JsonAndBaseline) {
  ModelMeta m;
  m.als.factors = 16;
  m.als.regularization = 0.1f;
  m.als.alpha = 15.0f;
  m.iterations = 20;
  m.seed = 42;
  m.dataset_fingerprint = "ff";
  const auto j0 = model_meta_json(m);
  EXPECT_EQ(j0["parameters"]["regularization"], 0.1);
  EXPECT_EQ(j0["parameters"]["alpha"], 15.0);
  EXPECT_EQ(j0["parameters"]["seed"], 42);
  EXPECT_FALSE(beats_baseline(m));  // no metrics: never "beats"
  EXPECT_FALSE(beats_baseline(j0));
  m.metrics["map_at_k"] = 0.1;
  m.baseline_metrics["map_at_k"] = 0.1;
  EXPECT_FALSE(beats_baseline(m));  // a tie does not beat it
  EXPECT_FALSE(beats_baseline(model_meta_json(m)));
  m.metrics["map_at_k"] = 0.11;
  EXPECT_TRUE(beats_baseline(m));
  EXPECT_TRUE(beats_baseline(model_meta_json(m)));
  EXPECT_EQ(registry_stages(), (std::vector<std::string>{"candidate", "staging", "production"}));
}

// ---- Champion/challenger promotion and compare ----

// Publishes `path` as the next version of "retail" (candidate) and auto-promotes it.
PromotionDecision publish_auto(Registry& reg, const std::string& path) {
  const RegistryEntry e = reg.publish(path, "retail");
  return reg.promote_if_better(e.spec());
}

TEST_F(RegistryTest, WorseLaterModelDoesNotDemoteTheProductionModel) {
  // The issue's case: 0.172 in production; a later model at 0.097 beats the baseline (0.05) but
  // not production. It stays a candidate, and production keeps the better model.
  const std::string best = (root_ / "best.h5").string(), later = (root_ / "later.h5").string();
  write_tiny_model(best, 0.172, 0.05, 4);
  write_tiny_model(later, 0.097, 0.05, 5);
  Registry reg(dir_);
  const PromotionDecision first = publish_auto(reg, best);
  EXPECT_TRUE(first.promote) << first.reason;
  EXPECT_EQ(first.champion, "");
  EXPECT_EQ(reg.find("retail@production").version, 1);

  const PromotionDecision d = publish_auto(reg, later);
  EXPECT_FALSE(d.promote);
  EXPECT_EQ(d.metric, "map_at_k");
  EXPECT_EQ(d.champion, "retail:1");
  EXPECT_EQ(d.reason, "map_at_k 0.0970 does not beat production retail:1's 0.1720");
  EXPECT_EQ(reg.find("retail@production").version, 1);
  EXPECT_EQ(reg.find("retail@candidate").version, 2);
  EXPECT_TRUE(beats_baseline(reg.find("retail:2").meta));  // it does beat the baseline
  // A tie does not promote either.
  const PromotionDecision tie = publish_auto(reg, best);
  EXPECT_FALSE(tie.promote);
  EXPECT_EQ(reg.find("retail@production").version, 1);
}

TEST_F(RegistryTest, BetterModelIsPromoted) {
  Registry reg(dir_);
  ASSERT_TRUE(publish_auto(reg, good_).promote);  // 0.12
  const PromotionDecision d = publish_auto(reg, good2_);  // 0.13
  EXPECT_TRUE(d.promote) << d.reason;
  EXPECT_EQ(d.reason, "map_at_k 0.1300 beats production retail:1's 0.1200 and the popularity baseline's 0.0500");
  EXPECT_EQ(reg.find("retail@production").version, 2);
  EXPECT_FALSE(reg.find("retail:1").has_stage("production"));
  const auto j = promotion_json(d);
  EXPECT_EQ(j["promoted"], true);
  EXPECT_EQ(j["champion"], "retail:1");
  EXPECT_EQ(j["metric"], "map_at_k");
}

TEST_F(RegistryTest, BaselineBeatenFirstModelOnlyWhenItBeatsTheBaseline) {
  Registry reg(dir_);
  const PromotionDecision d = publish_auto(reg, weak_);  // 0.04 vs baseline 0.05
  EXPECT_FALSE(d.promote);
  EXPECT_EQ(d.reason, "map_at_k 0.0400 does not beat the popularity baseline's 0.0500");
  EXPECT_THROW(reg.find("retail@production"), InputError);
}

TEST_F(RegistryTest, DifferentDataSetIsNotPromoted) {
  const std::string other = (root_ / "other.h5").string();
  write_tiny_model(other, 0.5, 0.05, 6, "ffffffffffffffff");  // far better, but on other data
  Registry reg(dir_);
  ASSERT_TRUE(publish_auto(reg, good_).promote);
  const PromotionDecision d = publish_auto(reg, other);
  EXPECT_FALSE(d.promote);
  EXPECT_NE(d.reason.find("another data set than production retail:1"), std::string::npos) << d.reason;
  EXPECT_NE(d.reason.find("ffffffffffffffff vs 00112233aabbccdd"), std::string::npos) << d.reason;
  EXPECT_EQ(reg.find("retail@production").version, 1);
}

TEST_F(RegistryTest, MissingMetricIsNotPromoted) {
  // The challenger was selected by NDCG but stores no NDCG: no evidence, no promotion.
  const std::string no_ndcg = (root_ / "no_ndcg.h5").string();
  write_tiny_model(no_ndcg, 0.5, 0.05, 7, "00112233aabbccdd", "ndcg_at_k");
  Registry reg(dir_);
  const PromotionDecision d = publish_auto(reg, no_ndcg);
  EXPECT_FALSE(d.promote);
  EXPECT_EQ(d.metric, "ndcg_at_k");
  EXPECT_EQ(d.reason, "retail:1 has no ndcg_at_k in its metadata");
  EXPECT_FALSE(beats_baseline(reg.find("retail:1").meta));  // the rule follows select_metric
  // The production model lacks the challenger's metric: not comparable, not promoted.
  RegistryEntry champion = reg.find("retail:1"), challenger = champion;
  challenger.version = 2;
  challenger.meta["select_metric"] = "auc";
  challenger.meta["metrics"]["auc"] = 0.9;
  challenger.meta["baseline_metrics"]["auc"] = 0.8;
  const PromotionDecision e = decide_promotion(challenger, &champion);
  EXPECT_FALSE(e.promote);
  EXPECT_EQ(e.reason, "production retail:1 has no auc to compare with");
  champion.meta["metrics"]["auc"] = nullptr;  // a NaN, as JSON stores it
  EXPECT_FALSE(decide_promotion(challenger, &champion).promote);
  champion.meta["metrics"]["auc"] = 0.85;
  EXPECT_TRUE(decide_promotion(challenger, &champion).promote);
}

TEST_F(RegistryTest, SelectMetricIsStoredAndRead) {
  const std::string by_auc = (root_ / "by_auc.h5").string(), bad = (root_ / "bad.h5").string();
  write_tiny_model(by_auc, 0.12, 0.05, 8, "00112233aabbccdd", "auc");
  write_tiny_model(bad, 0.12, 0.05, 9, "00112233aabbccdd", "accuracy");
  EXPECT_EQ(read_model_meta(good_).select_metric, "map_at_k");  // older files: the default
  EXPECT_EQ(read_model_meta(by_auc).select_metric, "auc");
  EXPECT_NE(error_of([&] { read_model_meta(bad); }).find("select_metric = 'accuracy' is not a metric"),
            std::string::npos);
  Registry reg(dir_);
  EXPECT_EQ(selection_metric(reg.publish(by_auc, "m").meta), "auc");
  EXPECT_EQ(selection_metric(nlohmann::json::object()), "map_at_k");  // an index entry of an older model
}

TEST_F(RegistryTest, CompareSideBySide) {
  const std::string other = (root_ / "other.h5").string();
  write_tiny_model(other, 0.5, 0.05, 6, "ffffffffffffffff");
  Registry reg(dir_);
  const RegistryEntry a = reg.publish(good_, "retail"), b = reg.publish(good2_, "retail");
  const RegistryEntry c = reg.publish(other, "retail");
  const std::string text = format_comparison(a, b);  // columns as wide as the registration time
  EXPECT_NE(text.find("version               retail:1              retail:2              *\n"), std::string::npos) << text;
  EXPECT_NE(text.find("map_at_k              0.1200                0.1300                *\n"), std::string::npos) << text;
  EXPECT_NE(text.find("baseline map_at_k     0.0500                0.0500\n"), std::string::npos) << text;
  EXPECT_NE(text.find("seed                  1                     2                     *\n"), std::string::npos) << text;
  EXPECT_NE(text.find("dataset_fingerprint   00112233aabbccdd      00112233aabbccdd\n"), std::string::npos) << text;
  EXPECT_NE(text.find("same data set; on map_at_k: retail:1 0.1200, retail:2 0.1300: retail:2 is better\n"),
            std::string::npos) << text;
  const auto j = compare_json(a, b);
  EXPECT_EQ(j["better"], "retail:2");
  EXPECT_EQ(j["same_dataset"], true);
  bool saw_factors = false;
  for (const auto& r : j["rows"])
    if (r["field"] == "factors") {
      saw_factors = true;
      EXPECT_EQ(r["a"], 8);
      EXPECT_EQ(r["differs"], false);
    }
  EXPECT_TRUE(saw_factors);
  const auto jc = compare_json(a, c);
  EXPECT_EQ(jc["same_dataset"], false);
  EXPECT_TRUE(jc["better"].is_null());
  EXPECT_NE(format_comparison(a, c).find("different data sets"), std::string::npos);
}

}  // namespace
