// The serve module without HTTP: option checks, request validation, metrics, and the reloader
// following a model file and a registry label (a model that fails to load is not swapped in).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>

#include "mfrec/config.hpp"
#include "mfrec/durable.hpp"
#include "mfrec/training_run.hpp"
#include "mfrec/h5.hpp"
#include "mfrec/model.hpp"
#include "mfrec/registry.hpp"
#include "mfrec/serve.hpp"
#include "test_data.hpp"
#include "test_model.hpp"

using namespace mfrec;
using namespace mfrec::serve;
namespace fs = std::filesystem;

namespace {

// A small trained model, written once, with a different seed per name.
std::string make_model(const std::string& name, std::uint64_t seed) {
  Comm world = Comm::world();
  const std::string data = "serve_unit_data.h5";
  if (!fs::exists(data)) testdata::write_random_prepared(data, world, 60, 25, 8, 3, {4});
  AlsParams als;
  als.factors = 4;
  testdata::train_model(world, data, name, als, 3, seed);
  return name;
}

const std::string& model_a() {
  static const std::string p = make_model("serve_unit_a.h5", 1);
  return p;
}
const std::string& model_b() {
  static const std::string p = make_model("serve_unit_b.h5", 2);
  return p;
}

// A copy of model_a with a NaN factor: it passes the registry's metadata check, but not loading.
std::string broken_model() {
  const std::string p = "serve_unit_nan.h5";
  fs::copy_file(model_a(), p, fs::copy_options::overwrite_existing);
  h5::File f = h5::File::open(p, nullptr, true);
  std::vector<float> row(4, std::numeric_limits<float>::quiet_NaN());
  f.write_rows("/item_factors", 2, 1, row.data());
  f.close();
  return p;
}

std::string config_error(std::vector<std::string> args) {
  args.insert(args.begin(), "mfrec_serve");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  Options o;
  Cli cli("mfrec_serve", "test");
  declare_options(cli, o);
  try {
    cli.parse(static_cast<int>(argv.size()), argv.data(), false);
    check_options(cli, o);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

int status_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const HttpError& e) {
    return e.status;
  }
  return 200;
}

}  // namespace

TEST(ServeOptions, BadValuesAreConfigErrorsNamingTheOption) {
  EXPECT_NE(config_error({"--max-body", "-1"}).find("option --max-body"), std::string::npos);  // once: no limit
  EXPECT_NE(config_error({"--max-body", "10"}).find("option --max-body"), std::string::npos);
  EXPECT_NE(config_error({"--port", "70000"}).find("option --port"), std::string::npos);
  EXPECT_NE(config_error({"--threads", "0"}).find("option --threads"), std::string::npos);
  EXPECT_NE(config_error({"--poll-seconds", "-1"}).find("option --poll-seconds"), std::string::npos);
  // Once ignored: a port file nobody can write is an error before the server starts.
  EXPECT_NE(config_error({"--registry", ".", "--port-file", "serve_no_such_dir/port"}).find("option --port-file"),
            std::string::npos);
  EXPECT_NE(config_error({"--registry", "serve_no_such_registry"}).find("option --registry"), std::string::npos);
  EXPECT_NE(config_error({"--model", "m.h5", "--spec", "x@production"}).find("option --spec"), std::string::npos);
  EXPECT_NE(config_error({"--model", "serve_no_such_model.h5"}).find("option --model"), std::string::npos);
  EXPECT_EQ(config_error({"--registry", ".", "--max-body", "4096", "--port-file", "serve_port.txt"}), "");
}

TEST(ServeOptions, ThePortFileIsWrittenWholeOrNotAtAll) {
  write_port_file("serve_port.txt", 8123);
  std::ifstream in("serve_port.txt");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, "8123\n");
  EXPECT_FALSE(fs::exists(partial_path("serve_port.txt")));
  EXPECT_THROW(write_port_file("serve_no_such_dir/port", 1), IoError);
}

TEST(ServeRequests, NAndIdsAreValidated) {
  EXPECT_EQ(parse_n({}, 20), 20);
  EXPECT_EQ(parse_n({"7"}, 20), 7);
  EXPECT_EQ(parse_n({"1000"}, 20), 1000);
  for (const char* bad : {"0", "1001", "-3", "+3", " 3", "3x", "", "99999999999"})
    EXPECT_EQ(status_of([&] { parse_n({bad}, 20); }), 400) << bad;
  EXPECT_EQ(status_of([] { parse_n({"1", "2"}, 20); }), 400);
  EXPECT_EQ(status_of([] { check_id("", "item id"); }), 400);
  EXPECT_EQ(status_of([] { check_id(std::string(257, 'x'), "item id"); }), 400);
  EXPECT_EQ(status_of([] { check_id("abc", "item id"); }), 200);
  const json body = error_body(404, "gone", {{"unknown_items", {"a"}}});
  EXPECT_EQ(body.dump(), R"({"error":"gone","status":404,"unknown_items":["a"]})");
}

TEST(ServeRequests, TheFoldInBodyIsValidated) {
  auto rec = Recommender::load(resolve_model(model_a(), "", ""));
  const Recommender& r = *rec;
  const std::string a = r.model().items.id[0], b = r.model().items.id[3];
  const FoldInRequest ok =
      parse_fold_in(R"({"items": [")" + a + R"(", {"id": ")" + b + R"(", "weight": 5}], "n": 4})", 20, 10, r);
  EXPECT_EQ(ok.rows, (std::vector<std::int32_t>{0, 3}));
  EXPECT_EQ(ok.weights, (std::vector<Real>{1, 5}));
  EXPECT_EQ(ok.ids, (std::vector<std::string>{a, b}));
  EXPECT_EQ(ok.n, 4);
  EXPECT_EQ(parse_fold_in(R"({"items": [")" + a + R"("]})", 9, 10, r).n, 9);  // the query's n
  for (const std::string bad : {"not json", "[1]", "{}", R"({"items": []})", R"({"items": "x"})",
                                R"({"items": [1]})", R"({"items": ["a"], "n": 0})", R"({"items": ["a"], "n": 1.5})",
                                R"({"items": [{"id": "a", "weight": -1}]})", R"({"items": [""]})"})
    EXPECT_EQ(status_of([&] { parse_fold_in(bad, 20, 10, r); }), 400) << bad;
  EXPECT_EQ(status_of([&] { parse_fold_in(R"({"items": [")" + a + R"(", ")" + a + R"("]})", 20, 1, r); }), 400);
  try {
    parse_fold_in(R"({"items": ["no-such-item", ")" + a + R"("]})", 20, 10, r);
    ADD_FAILURE() << "an unknown item was accepted";
  } catch (const HttpError& e) {
    EXPECT_EQ(e.status, 404);
    EXPECT_EQ(e.extra["unknown_items"], json({"no-such-item"}));
  }
}

TEST(ServeMetrics, CountsAndHistograms) {
  auto rec = Recommender::load(resolve_model(model_a(), "", ""));
  Metrics m;
  m.record("GET /popular", 200, 0.0002);
  m.record("GET /popular", 200, 0.003);
  m.record("GET /popular", 400, 0.00001);
  m.record("other", 404, -1);
  m.reloaded(true);
  m.reloaded(false);
  const json j = m.to_json(*rec, 1.5);
  EXPECT_EQ(j["requests"]["GET /popular"]["200"], 2);
  EXPECT_EQ(j["requests"]["other"]["404"], 1);
  EXPECT_EQ(j["latency_seconds"]["GET /popular"]["count"], 3);
  EXPECT_FALSE(j["latency_seconds"].contains("other"));
  EXPECT_EQ(j["reloads"], 1);
  EXPECT_EQ(j["reload_failures"], 1);
  const std::string text = m.prometheus(*rec, 1.5);
  EXPECT_NE(text.find("mfrec_requests_total{endpoint=\"GET /popular\",status=\"200\"} 2"), std::string::npos);
  EXPECT_NE(text.find("mfrec_request_seconds_bucket{endpoint=\"GET /popular\",le=\"+Inf\"} 3"), std::string::npos);
  EXPECT_NE(text.find("mfrec_model_reload_failures_total 1"), std::string::npos);
}

TEST(ServeReload, FollowsAReplacedModelFile) {
  const std::string served = "serve_unit_served.h5";
  fs::copy_file(model_a(), served, fs::copy_options::overwrite_existing);
  ModelHolder holder;
  Metrics metrics;
  Reloader reloader(holder, metrics, served, "", "");
  const auto first = holder.get();
  reloader.poll();
  EXPECT_EQ(holder.get(), first);  // unchanged: not reloaded
  // Replaced the way a deployment replaces it: a new file renamed over the old one.
  fs::copy_file(model_b(), served + ".tmp", fs::copy_options::overwrite_existing);
  fs::rename(served + ".tmp", served);
  reloader.poll();
  EXPECT_NE(holder.get(), first);
  EXPECT_EQ(metrics.reloads(), 1u);
  EXPECT_EQ(first->model().user_ids, holder.get()->model().user_ids);  // same data, new model
  // A broken replacement is refused and the current model kept.
  const auto second = holder.get();
  fs::copy_file(broken_model(), served + ".tmp", fs::copy_options::overwrite_existing);
  fs::rename(served + ".tmp", served);
  reloader.poll();
  EXPECT_EQ(holder.get(), second);
  EXPECT_EQ(metrics.reload_failures(), 1u);
}

TEST(ServeReload, FollowsTheRegistryLabelAndSkipsAVersionThatFailsToLoad) {
  const std::string dir = "serve_unit_registry";
  fs::remove_all(dir);
  Registry reg(dir);
  reg.publish(model_a(), "m", {"production"});
  ModelHolder holder;
  Metrics metrics;
  Reloader reloader(holder, metrics, "", dir, "m@production");
  EXPECT_EQ(holder.get()->source().version, 1);
  reloader.poll();
  EXPECT_EQ(metrics.reloads(), 0u);
  reg.publish(model_b(), "m", {"production"});
  reloader.poll();
  EXPECT_EQ(holder.get()->source().version, 2);
  EXPECT_EQ(metrics.reloads(), 1u);
  reg.publish(broken_model(), "m", {"production"});  // v3 cannot be loaded
  reloader.poll();
  reloader.poll();  // not retried while the label stays on v3
  EXPECT_EQ(holder.get()->source().version, 2);
  EXPECT_EQ(metrics.reload_failures(), 1u);
  EXPECT_FALSE(reloader.reload("explicit"));  // SIGHUP retries, and fails again
  EXPECT_EQ(metrics.reload_failures(), 2u);
  reg.promote("m:1", "production");
  reloader.poll();
  EXPECT_EQ(holder.get()->source().version, 1);
}

TEST(ServeReload, TheFirstModelMustLoad) {
  ModelHolder holder;
  Metrics metrics;
  EXPECT_THROW(Reloader(holder, metrics, broken_model(), "", ""), InputError);
  EXPECT_THROW(Reloader(holder, metrics, "", "serve_unit_no_registry", "m@production"), ConfigError);
}
