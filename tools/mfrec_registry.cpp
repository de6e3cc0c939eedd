// mfrec_registry: list, show, compare, promote, locate and publish models in a model registry directory
// (see docs/registry.md). A serial program: run it without mpirun (under mpirun only rank 0
// acts).
#include <cstdio>
#include <iostream>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "mfrec/ann.hpp"
#include "mfrec/comm.hpp"
#include "mfrec/config.hpp"
#include "mfrec/log.hpp"
#include "mfrec/paths.hpp"
#include "mfrec/registry.hpp"

namespace {

constexpr const char* kSummary =
    "       mfrec_registry COMMAND [ARGS] [options]\n"
    "\n"
    "Manage the model registry: versioned model files with their metadata, an index and stage labels.\n"
    "\n"
    "Commands:\n"
    "  list                    every registered version: name, version, stages, MAP@K, baseline MAP@K,\n"
    "                          registration time, file (--json: the index entries as JSON)\n"
    "  show SPEC               one version's index entry (file, checksum, stages, parameters, metrics,\n"
    "                          data set fingerprint, program version) as JSON, with its absolute path\n"
    "  compare SPEC SPEC       two versions side by side: parameters, metrics and the baseline's, data\n"
    "                          set fingerprint, sizes, times, and which is better (--json: as JSON)\n"
    "  promote SPEC STAGE      give STAGE to that version; the version that held it loses it (warns when\n"
    "                          a production version does not beat the baseline or the version it replaces)\n"
    "  path SPEC               print the model file's absolute path after verifying its checksum\n"
    "  publish MODEL NAME      copy the model file MODEL in as the next version of NAME, labelled with\n"
    "                          --stage (default candidate; 'none' for no label); with --ann, also its\n"
    "                          ANN index, published with it\n"
    "  build-index SPEC        build that version's ANN index (for mfrec_serve/mfrec_recommend --ann) as\n"
    "                          NAME/vN.ann beside its model, checksummed in the index as the model is\n"
    "  build-index --model FILE  the same for a model file outside a registry: writes FILE's .ann\n"
    "                          (model.h5 -> model.ann; --output to choose)\n"
    "\n"
    "SPEC: NAME (the latest version), NAME:VERSION (e.g. retail-als:3) or NAME@STAGE (e.g.\n"
    "retail-als@production). STAGE: candidate, staging or production; each is held by at most one\n"
    "version of a name. Names: letters, digits, '.', '_', '-'.\n"
    "Publishing and promoting are atomic and safe with concurrent writers; list, show, compare and path never\n"
    "modify the registry and never create it.\n"
    "Exit status: 0 on success, 1 for an unknown model, version or stage, a checksum mismatch or a bad\n"
    "model file, 2 for a bad option or command line.";

std::string join(const std::vector<std::string>& v, const char* sep) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : sep) + x;
  return s;
}

void expect_args(const std::vector<std::string>& pos, std::size_t n, const char* usage) {
  if (pos.size() != n + 1)
    throw mfrec::ConfigError("command '" + pos[0] + "' takes " + std::to_string(n) + " argument" +
                             (n == 1 ? "" : "s") + " (" + usage + "), got " + std::to_string(pos.size() - 1));
}

int body(mfrec::Comm& comm, int argc, char** argv) {
  using namespace mfrec;
  // Boost.ProgramOptions sees the options; the command and its arguments are taken out first.
  static const std::set<std::string> kValued = {"--registry", "--stage",  "--config",
                                                "--model",    "--output", "--ann-m",
                                                "--ann-ef-construction", "--threads"};
  std::vector<char*> opts{argv[0]};
  std::vector<std::string> pos;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--") {
      for (++i; i < argc; ++i) pos.emplace_back(argv[i]);
      break;
    }
    if (a.size() > 1 && a[0] == '-') {
      opts.push_back(argv[i]);
      if (kValued.count(a) && i + 1 < argc) opts.push_back(argv[++i]);
    } else {
      pos.push_back(a);
    }
  }

  std::string dir, stage_text, model, output;
  bool as_json = false, verbose = false, quiet = false, ann = false;
  AnnParams ap;
  Cli cli("mfrec_registry", kSummary);
  dir = "registry";
  stage_text = "candidate";
  cli.option("registry", &dir, "the registry directory")
      .option("stage", &stage_text,
       "publish: comma-separated stage labels for the new version (candidate, staging, production; none)")
      .flag("json", &as_json, "list, compare: print JSON")
      .flag("ann", &ann, "publish: also build the version's ANN index")
      .path("model", &model, PathRole::InputFile, "build-index: a model file outside the registry")
      .path("output", &output, PathRole::OutputFile, "build-index --model: the index file (default: FILE's .ann)")
      .option("ann-m", &ap.m, "publish --ann, build-index: graph degree (hnswlib M, 2 to 100)")
      .option("ann-ef-construction", &ap.ef_construction,
              "publish --ann, build-index: candidate list while building (1 to 10000)")
      .option("threads", &ap.threads, "publish --ann, build-index: build threads (0: OpenMP's default)")
      .flag("verbose,v", &verbose, "debug logging")
      .flag("quiet,q", &quiet, "warnings and errors only");
  if (!cli.parse(static_cast<int>(opts.size()), opts.data(), comm.is_root())) return 0;
  init_logging(comm, "mfrec_registry", quiet ? "warn" : verbose ? "debug" : "info");

  if (pos.empty())
    throw ConfigError("no command given: list, show SPEC, compare SPEC SPEC, promote SPEC STAGE, path SPEC, "
                      "publish MODEL NAME or build-index SPEC "
                      "(see --help)");
  const std::string& cmd = pos[0];
  static const std::set<std::string> kCommands = {"list", "show", "compare", "promote", "path", "publish", "build-index"};
  if (!kCommands.count(cmd))
    throw ConfigError("unknown command '" + cmd +
                      "' (list, show, compare, promote, path, publish, build-index; see --help)");
  const bool builds = (cmd == "publish" && ann) || cmd == "build-index";
  require_option(!ann || cmd == "publish", "ann", "only applies to publish (build-index always builds one)");
  for (const char* name : {"ann-m", "ann-ef-construction", "threads"})
    require_option(!cli.given(name) || builds, name, "only applies to publish --ann and build-index");
  require_option(!cli.given("model") || cmd == "build-index", "model", "only applies to build-index");
  require_option(!cli.given("output") || cli.given("model"), "output", "only applies to build-index --model");
  require_option(ap.m >= 2 && ap.m <= 100, "ann-m", "must be from 2 to 100");
  require_option(ap.ef_construction >= 1 && ap.ef_construction <= 10000, "ann-ef-construction",
                 "must be from 1 to 10000");
  require_option(ap.threads >= 0, "threads", "must not be negative");
  require_option(!cli.given("stage") || cmd == "publish", "stage", "only applies to publish");
  require_option(!as_json || cmd == "list" || cmd == "compare", "json", "only applies to list and compare");
  if (cmd == "list") expect_args(pos, 0, "");
  if (cmd == "show" || cmd == "path") expect_args(pos, 1, "SPEC");
  if (cmd == "compare") expect_args(pos, 2, "SPEC SPEC");
  if (cmd == "promote") expect_args(pos, 2, "SPEC STAGE");
  if (cmd == "publish") expect_args(pos, 2, "MODEL NAME");
  if (cmd == "build-index") expect_args(pos, cli.given("model") ? 0 : 1, cli.given("model") ? "--model FILE" : "SPEC");
  std::vector<std::string> stages;
  if (cmd == "publish" && stage_text != "none") stages = parse_list<std::string>("stage", stage_text);
  if (!comm.is_root()) return 0;  // serial: one rank does the work

  if (cmd == "build-index" && cli.given("model")) {  // a model file outside any registry
    if (output.empty()) output = ann_index_path(model);
    std::vector<PathArg> paths = cli.paths();
    for (auto& p : paths)
      if (p.option == "output") p.path = output;  // the default too
    check_paths(paths);
    const Model m = read_model(model);
    const AnnIndex index = AnnIndex::build(m.item_factors, ap);
    index.save(output);
    std::cout << "ANN index of " << model << " (" << m.item_factors.rows() << " items) written to " << output << "\n";
    return 0;
  }

  Registry reg(dir, /*create=*/cmd == "publish");
  if (cmd == "list") {
    const auto entries = reg.list();
    if (as_json) {
      nlohmann::ordered_json j = nlohmann::ordered_json::array();
      for (const auto& e : entries) j.push_back(registry_entry_json(e));
      std::cout << j.dump(2) << "\n";
    } else if (entries.empty()) {
      std::cout << "no models in registry " << reg.dir() << "\n";
    } else {
      std::cout << format_registry_table(entries);
    }
  } else if (cmd == "show") {
    const RegistryEntry e = reg.find(pos[1]);
    nlohmann::ordered_json j = registry_entry_json(e);
    j["path"] = reg.dir() + "/" + e.file;
    std::cout << j.dump(2) << "\n";
  } else if (cmd == "compare") {
    const RegistryEntry a = reg.find(pos[1]), b = reg.find(pos[2]);
    if (as_json)
      std::cout << compare_json(a, b).dump(2) << "\n";
    else
      std::cout << format_comparison(a, b);
  } else if (cmd == "path") {
    std::cout << reg.verified_path(pos[1]) << "\n";
  } else if (cmd == "promote") {
    const std::string& stage = pos[2];
    const RegistryEntry target = reg.find(pos[1]);
    std::optional<RegistryEntry> holder;  // of the stage before
    for (const auto& x : reg.list())
      if (x.name == target.name && x.has_stage(stage)) holder = x;
    const std::string before = holder ? holder->spec() : "";
    const RegistryEntry e = reg.promote(pos[1], stage);
    if (stage == "production" && before != e.spec()) {  // a person may overrule auto-promotion's rule: say so
      const PromotionDecision d = decide_promotion(e, holder ? &*holder : nullptr);
      if (!d.promote) spdlog::warn("{}: {}; promoted to production as asked", e.spec(), d.reason);
    }
    if (before == e.spec())
      std::cout << e.spec() << " already has the stage " << stage << "\n";
    else
      std::cout << e.spec() << " is now " << stage << (before.empty() ? "" : " (was " + before + ")") << "\n";
  } else if (cmd == "build-index") {
    const RegistryEntry e = reg.build_index(pos[1], ap);
    std::cout << "ANN index of " << e.spec() << " written to " << reg.dir() << "/" << e.ann_file << " ("
              << e.ann_checksum << ")\n";
  } else {  // publish
    std::optional<RegistryEntry> holder;  // of production before, to warn as promote does
    for (const auto& x : reg.list())
      if (x.name == pos[2] && x.has_stage("production")) holder = x;
    const RegistryEntry e = reg.publish(pos[1], pos[2], stages, ann ? &ap : nullptr);
    if (e.has_stage("production")) {
      const PromotionDecision d = decide_promotion(e, holder ? &*holder : nullptr);
      if (!d.promote) spdlog::warn("{}: {}; labelled production as asked", e.spec(), d.reason);
    }
    std::cout << "published " << e.spec() << " as " << reg.dir() << "/" << e.file << " (" << e.checksum
              << ", stages: " << (e.stages.empty() ? "none" : join(e.stages, ","))
              << (e.ann_file.empty() ? std::string() : ", ANN index " + e.ann_file) << ")\n";
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return mfrec::run_program("mfrec_registry", argc, argv,
                            [&](mfrec::Comm& comm) { return body(comm, argc, argv); });
}
