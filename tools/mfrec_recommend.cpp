// mfrec_recommend: recommendations from a trained model (a file or a registry entry).
//   mfrec_recommend --model model.h5 --user U000123            top 20 for a user
//   mfrec_recommend --registry registry --spec retail-als@production --similar ITEM
//   mfrec_recommend --model model.h5 --history ID,ID,ID          fold-in for a new user
//   mfrec_recommend --model model.h5 --popular                   the most popular items
//   mfrec_recommend --model model.h5 --sample 3                  a few users and the popular list
//   mpirun -n 4 mfrec_recommend --model model.h5 --all --output recs.h5 [--csv recs.csv]
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <map>

#include "mfrec/comm.hpp"
#include "mfrec/config.hpp"
#include "mfrec/log.hpp"
#include "mfrec/paths.hpp"
#include "mfrec/recommend.hpp"
#include "mfrec/affinity.hpp"

using namespace mfrec;

namespace {

struct Options {
  std::string model = "model.h5", registry, spec = "retail-als@production";
  std::string user, similar, history, weights, output, csv, format = "text", log_level = "warn";
  std::string fallback = "fold-in";  // how a user without factors (--history) is answered
  bool popular = false, all = false;
  int n = 20, sample = 0, threads = 0;
  AnnOptions ann;  // single queries: --ann, --ann-threshold, --ann-ef, --ann-index
};

std::string clip(const std::string& s, std::size_t w) {
  return s.size() <= w ? s : s.substr(0, w - 3) + "...";
}

void print_list(const Recommender& r, const ItemList& list, const std::string& title) {
  std::printf("%s\n", title.c_str());
  std::printf("%4s  %-36s  %-38s  %-12s  %-14s  %8s  %9s\n", "rank", "item_id", "name", "category", "style", "price",
              list.source == "popular" ? "users" : "score");
  const auto& t = r.model().items;
  for (std::size_t k = 0; k < list.items.size(); ++k) {
    const auto i = static_cast<std::size_t>(list.items[k]);
    std::printf("%4zu  %-36s  %-38s  %-12s  %-14s  %8.2f  %9.4g\n", k + 1, clip(t.id[i], 36).c_str(),
                clip(t.name[i], 38).c_str(), clip(t.category[i], 12).c_str(), clip(t.style[i], 14).c_str(),
                static_cast<double>(t.price[i]), static_cast<double>(list.scores[k]));
  }
  std::printf("\n");
}

// "electronics 12, outdoors 5, footwear 3": the user's training items by category, most first.
std::string history_summary(const Recommender& r, Index row) {
  const Model& m = r.model();
  std::map<std::string, int> count;
  for (auto k = m.seen.indptr[row]; k < m.seen.indptr[row + 1]; ++k)
    ++count[m.items.category[static_cast<std::size_t>(m.seen.indices[static_cast<std::size_t>(k)])]];
  std::vector<std::pair<int, std::string>> v;
  for (const auto& [c, n] : count) v.emplace_back(-n, c);
  std::sort(v.begin(), v.end());
  std::string s;
  for (std::size_t k = 0; k < v.size() && k < 4; ++k) s += (k ? ", " : "") + v[k].second + " " + std::to_string(-v[k].first);
  return s.empty() ? "none" : s;
}

std::string category_summary(const Recommender& r, const ItemList& list) {
  std::map<std::string, int> count;
  for (auto i : list.items) ++count[r.model().items.category[static_cast<std::size_t>(i)]];
  std::vector<std::pair<int, std::string>> v;
  for (const auto& [c, n] : count) v.emplace_back(-n, c);
  std::sort(v.begin(), v.end());
  std::string s;
  for (std::size_t k = 0; k < v.size() && k < 4; ++k) s += (k ? ", " : "") + v[k].second + " " + std::to_string(-v[k].first);
  return s;
}

std::vector<std::int32_t> item_rows(const Recommender& r, const std::vector<std::string>& ids, const std::string& option) {
  std::vector<std::int32_t> rows;
  std::string unknown;
  for (const auto& id : ids) {
    const Index i = r.item_row(id);
    if (i < 0) unknown += (unknown.empty() ? "" : ", ") + id;
    rows.push_back(static_cast<std::int32_t>(i));
  }
  require_option(unknown.empty(), option, "unknown item(s): " + unknown);
  return rows;
}

void emit(const Recommender& r, const ItemList& list, const std::string& title, const std::string& format,
          nlohmann::ordered_json extra) {
  if (format == "json") {
    nlohmann::ordered_json j = r.response(list, std::move(extra));
    std::cout << j.dump(2) << "\n";
  } else {
    print_list(r, list, title);
  }
}

// ---- the phases of main ------------------------------------------------------------------

void declare_options(Cli& cli, Options& o) {
  cli.path("model,m", &o.model, PathRole::InputFile, "model file (HDF5)")
      .path("registry", &o.registry, PathRole::InputDir, "load from this model registry instead of --model")
      .option("spec", &o.spec, "registry spec: NAME (latest), NAME:VERSION or NAME@STAGE")
      .optional("user,u", &o.user, "top N for this user id")
      .optional("similar,s", &o.similar, "the N items most similar to this item id (cosine of item factors)")
      .optional("history", &o.history, "comma-separated item ids of a new user: fold-in recommendations")
      .optional("weights", &o.weights, "comma-separated observation weights for --history (default 1 each; 1 = a view, 5 = a purchase)")
      .option("fallback", &o.fallback, "--history (a user without factors): fold-in (ALS, the default) or knn (the item-kNN lists the model holds with mfrec_dist --knn-k > 0)")
      .flag("popular", &o.popular, "the N most popular items")
      .option("sample", &o.sample, "print the top N for this many sample users and the popular list")
      .flag("all", &o.all, "every user's top N (batch, MPI): needs --output")
      .path("output,o", &o.output, PathRole::OutputFile, "--all: HDF5 file to write")
      .path("csv", &o.csv, PathRole::OutputFile, "--all: also write this CSV file")
      .option("n,n", &o.n, "number of items (1 to 1000)")
      .option("format", &o.format, "text or json (single queries)")
      .option("threads", &o.threads, "--all: OpenMP threads per rank (0: automatic: the cores the rank is bound to / the ranks sharing them)")
      .option("log-level", &o.log_level, "debug, info, warn or error");
  declare_ann_options(cli, o.ann);
}

// The same answer on every rank: options only.
void check_options(const Cli& cli, const Options& o) {
  const int modes = cli.given("user") + cli.given("similar") + cli.given("history") + (o.popular ? 1 : 0) +
                    (o.sample > 0 ? 1 : 0) + (o.all ? 1 : 0);
  require_option(o.sample >= 0, "sample", "must not be negative");  // before the modes: it names one
  require_option(modes == 1, "user", "give exactly one of --user, --similar, --history, --popular, --sample, --all");
  require_option(o.n >= 1 && o.n <= kMaxN, "n", "must be between 1 and " + std::to_string(kMaxN));
  require_option(o.format == "text" || o.format == "json", "format", "must be text or json");
  require_option(o.threads >= 0, "threads", "must not be negative");
  require_option(!o.all || !o.output.empty(), "output", "--all needs an output file");
  require_option(!cli.given("weights") || cli.given("history"), "weights", "only with --history");
  require_option(o.fallback == "fold-in" || o.fallback == "knn", "fallback", "must be fold-in or knn");
  require_option(o.registry.empty() || !cli.given("model"), "model", "give either --model or --registry, not both");
  require_option(!cli.given("spec") || !o.registry.empty(), "spec", "only with --registry");
  for (const char* name : {"ann", "ann-threshold", "ann-ef", "ann-index"})
    require_option(!o.all || !cli.given(name), name, "only for single queries (--all searches exactly)");
  require_option(!cli.given("ann-index") || o.registry.empty(), "ann-index",
                 "only with --model (a registry version's index is recorded in the registry)");
  ann_config(o.ann);
}

// Runs f on rank 0. With more ranks the outcome is agreed, so none is left waiting: every rank
// goes on, or every rank stops with rank 0's error (exit 2). Alone, f's error is rank 0's own.
template <class F>
void on_root(const Comm& world, F&& f) {
  if (world.size() == 1) return f();
  agree_on(world, [&] {
    if (world.is_root()) f();
  });
}

// Rank 0 resolves (and verifies) the model; every rank gets its path.
ModelSource resolve_on_root(const Comm& world, const Options& o) {
  ModelSource src;
  on_root(world, [&] { src = resolve_model(o.model, o.registry, o.spec); });
  src.path = world.bcast(src.path);
  return src;
}

// Every path before any work: the model found, outputs in writable directories, no output the
// same file as the model or the other output. Agreed over the ranks. `model_path` is the
// registry's file when --registry is given (empty before it is resolved: not checked).
void check_files(const Comm& world, const Cli& cli, const std::string& model_path) {
  std::vector<PathArg> paths = cli.paths();
  for (auto& p : paths)
    if (p.option == "model") p.path = model_path;  // the registry's file when --registry is given
  agree_on(world, [&] { check_paths(paths); });
}

int run_batch(const Comm& world, const Options& o, const std::string& model_path) {
  const int threads = bind_threads(world, o.threads).threads;  // logs the binding
  BatchResult r = recommend_all(world, model_path, o.output, o.csv, o.n, threads);
  if (world.is_root()) {
    std::printf("top %d for %lld users (%lld without history got the popular list) written to %s%s%s in %.2f s "
                "on %d ranks\n",
                o.n, static_cast<long long>(r.users), static_cast<long long>(r.fallback_users), o.output.c_str(),
                o.csv.empty() ? "" : " and ", o.csv.c_str(), r.seconds, world.size());
  }
  return 0;
}

// One query, on the calling rank.
void run_query(const Cli& cli, const Options& o, const ModelSource& src) {
  auto rec = Recommender::load(src, ann_config(o.ann));
  const Recommender& r = *rec;
  const std::string from = " [model " + src.describe() + "]";

  if (cli.given("user")) {
    ItemList list = r.for_user(o.user, o.n);
    const Index row = r.user_row(o.user);
    std::string title = "Top " + std::to_string(list.items.size()) + " for user " + o.user;
    if (row < 0) title += ": unknown user, the most popular items instead";
    else if (list.source == "popular") title += ": no history, the most popular items instead";
    else title += " (history: " + history_summary(r, row) + ")";
    emit(r, list, title + from, o.format, {{"user_id", o.user}, {"known_user", row >= 0}});
  } else if (cli.given("similar")) {
    const Index i = r.item_row(o.similar);
    require_option(i >= 0, "similar", "unknown item '" + o.similar + "'");
    const auto idx = static_cast<std::size_t>(i);
    emit(r, r.similar(i, o.n),
         "Items most similar to " + o.similar + " (" + r.model().items.name[idx] + ", " +
             r.model().items.category[idx] + ")" + from,
         o.format, {{"item", r.item_json(i)}});
  } else if (cli.given("history")) {
    const auto ids = parse_list<std::string>("history", o.history);
    const auto rows = item_rows(r, ids, "history");
    std::vector<Real> w;
    if (cli.given("weights")) {
      for (float x : parse_list<float>("weights", o.weights)) w.push_back(x);
      require_option(w.size() == rows.size(), "weights", "needs one weight per --history item");
      for (Real x : w) require_option(std::isfinite(x) && x > 0, "weights", "must be positive");
    }
    if (o.fallback == "knn") require_option(r.has_knn(), "fallback", "the model has no item-kNN lists (train with --knn-k > 0)");
    emit(r, o.fallback == "knn" ? r.knn(rows, w, o.n) : r.fold_in(rows, w, o.n),
         "Top " + std::to_string(o.n) + " for a new user with " + std::to_string(ids.size()) + " items of history (" +
             o.fallback + ")" + from,
         o.format, {{"history", ids}});
  } else if (o.popular) {
    emit(r, r.popular(o.n), "The " + std::to_string(o.n) + " most popular items" + from, o.format, nlohmann::ordered_json::object());
  } else {
    // A few users with history, spread over the id list, then the popular list.
    std::vector<Index> users;
    const Index nu = r.n_users();
    const Index step = std::max<Index>(1, nu / std::max(1, o.sample));
    for (Index u = step / 2; u < nu && static_cast<int>(users.size()) < o.sample; u += step) {
      Index v = u;
      while (v < nu && !r.has_history(v)) ++v;
      if (v < nu) users.push_back(v);
    }
    nlohmann::ordered_json all = nlohmann::ordered_json::array();
    for (Index u : users) {
      const std::string& id = r.model().user_ids[static_cast<std::size_t>(u)];
      ItemList list = r.for_user_row(u, o.n);
      if (o.format == "json") {
        all.push_back(r.response(list, {{"user_id", id}}));
      } else {
        print_list(r, list,
                   "User " + id + " -- history: " + history_summary(r, u) + "\n  recommended: " +
                       category_summary(r, list));
      }
    }
    ItemList pop = r.popular(o.n);
    if (o.format == "json") {
      all.push_back(r.response(pop, {{"user_id", nullptr}}));
      std::cout << all.dump(2) << "\n";
    } else {
      print_list(r, pop, "The " + std::to_string(o.n) + " most popular items (for unknown users)" + from);
    }
  }
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  return run_program("mfrec_recommend", argc, argv, [&](Comm& world) {
    Options o;
    Cli cli("mfrec_recommend",
            "Recommendations from a trained ALS model (mfrec_dist --output, or a registry entry):\n"
            "the top N for a user (leaving out what they already interacted with; unknown users and\n"
            "users without history get the popular items), similar items, fold-in for a new user from\n"
            "an item history, the popular list, a sample of users, or every user's top N as a batch job\n"
            "under MPI (--all). Exactly one of --user, --similar, --history, --popular, --sample, --all.");
    declare_options(cli, o);
    if (!cli.parse(argc, argv, world.is_root())) return 0;
    check_options(cli, o);
    init_logging(world, "mfrec_recommend", o.log_level);

    // --all: what was named, before anything is read. (A query keeps its documented statuses:
    // a model that cannot be opened is exit 1.)
    if (o.all) check_files(world, cli, o.registry.empty() ? o.model : "");
    const ModelSource src = resolve_on_root(world, o);
    if (o.all) return run_batch(world, o, src.path);  // recommend_all checks the resolved model file too
    on_root(world, [&] { run_query(cli, o, src); });  // a single query runs on rank 0
    return 0;
  });
}
