// mfrec_serve: the recommender as a REST API (cpp-httplib), serving the registry's production
// model and following its label.
//   mfrec_serve --registry registry --spec retail-als@production --port 8080
//   mfrec_serve --model model.h5 --port 0 --port-file port.txt
// Endpoints (JSON): GET /recommendations?user_id=&n=, POST /recommendations (item history,
// fold-in), GET /items/{id}/similar?n=, GET /items/{id}, GET /popular?n=, GET /healthz,
// GET /metrics (Prometheus text; ?format=json). See docs/serving.md.
#include <signal.h>
#include <sys/stat.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>

#include "mfrec/comm.hpp"
#include "mfrec/config.hpp"
#include "mfrec/log.hpp"
#include "mfrec/recommend.hpp"
#include "mfrec/version.hpp"

// Last: httplib.h pulls in <resolv.h>, whose `_res` macro breaks Eigen's templates.
#include <httplib.h>

using namespace mfrec;
using json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  std::string model, registry = "registry", spec = "retail-als@production", host = "127.0.0.1", port_file;
  std::string log_level = "info";
  int port = 8080, threads = 8, default_n = 20, max_history = 1000;
  double poll_seconds = 5;
  std::size_t max_body = 64 * 1024;
  bool access_log = false;
};

// ---- signals: the handlers only set flags; the watcher thread acts on them ------------------

volatile std::sig_atomic_t g_reload = 0;
volatile std::sig_atomic_t g_stop = 0;
extern "C" void on_hup(int) { g_reload = 1; }
extern "C" void on_term(int) { g_stop = 1; }

void install_signal_handlers() {
  struct sigaction sa {};
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sa.sa_handler = on_hup;
  sigaction(SIGHUP, &sa, nullptr);
  sa.sa_handler = on_term;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  sa.sa_handler = SIG_IGN;
  sigaction(SIGPIPE, &sa, nullptr);  // a client that hangs up must not kill the server
}

// ---- errors ---------------------------------------------------------------------------------

class HttpError : public std::runtime_error {
 public:
  HttpError(int status, const std::string& message, json extra = json::object())
      : std::runtime_error(message), status(status), extra(std::move(extra)) {}
  int status;
  json extra;
};

void send_json(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

void send_error(httplib::Response& res, int status, const std::string& message, const json& extra = json::object()) {
  json j = {{"error", message}, {"status", status}};
  for (auto it = extra.begin(); it != extra.end(); ++it) j[it.key()] = it.value();
  send_json(res, status, j);
}

// ---- metrics --------------------------------------------------------------------------------

class Metrics {
 public:
  static constexpr std::array<double, 14> kBuckets = {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                                      0.01,    0.025,  0.05,    0.1,    0.25,   1.0,   5.0};
  // Counts the request; with seconds >= 0 also its latency.
  void record(const std::string& endpoint, int status, double seconds) {
    std::lock_guard<std::mutex> lock(mu_);
    ++counts_[{endpoint, status}];
    if (seconds < 0) return;
    Hist& h = latency_[endpoint];
    std::size_t b = 0;
    while (b < kBuckets.size() && seconds > kBuckets[b]) ++b;
    ++h.buckets[b];
    h.sum += seconds;
    ++h.count;
  }
  void reloaded(bool ok) { (ok ? reloads_ : reload_failures_)++; }

  std::string prometheus(const Recommender& r, double uptime) const {
    std::lock_guard<std::mutex> lock(mu_);
    std::ostringstream o;
    o << "# HELP mfrec_requests_total HTTP requests by endpoint and status.\n# TYPE mfrec_requests_total counter\n";
    for (const auto& [k, n] : counts_)
      o << "mfrec_requests_total{endpoint=\"" << k.first << "\",status=\"" << k.second << "\"} " << n << "\n";
    o << "# HELP mfrec_request_seconds Time spent in the handler.\n# TYPE mfrec_request_seconds histogram\n";
    for (const auto& [e, h] : latency_) {
      std::uint64_t cum = 0;
      for (std::size_t b = 0; b <= kBuckets.size(); ++b) {
        cum += h.buckets[b];
        o << "mfrec_request_seconds_bucket{endpoint=\"" << e << "\",le=\"";
        if (b < kBuckets.size()) o << kBuckets[b]; else o << "+Inf";
        o << "\"} " << cum << "\n";
      }
      o << "mfrec_request_seconds_sum{endpoint=\"" << e << "\"} " << h.sum << "\n";
      o << "mfrec_request_seconds_count{endpoint=\"" << e << "\"} " << h.count << "\n";
    }
    o << "# TYPE mfrec_model_version gauge\nmfrec_model_version " << r.source().version << "\n";
    o << "# TYPE mfrec_model_reloads_total counter\nmfrec_model_reloads_total " << reloads_.load() << "\n";
    o << "# TYPE mfrec_model_reload_failures_total counter\nmfrec_model_reload_failures_total "
      << reload_failures_.load() << "\n";
    o << "# TYPE mfrec_uptime_seconds gauge\nmfrec_uptime_seconds " << uptime << "\n";
    return o.str();
  }

  json to_json(const Recommender& r, double uptime) const {
    std::lock_guard<std::mutex> lock(mu_);
    json req = json::object(), lat = json::object();
    for (const auto& [k, n] : counts_) req[k.first][std::to_string(k.second)] = n;
    for (const auto& [e, h] : latency_) {
      auto quantile = [&](double q) -> json {  // upper bound of the bucket holding quantile q
        const auto target = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(h.count)));
        std::uint64_t cum = 0;
        for (std::size_t b = 0; b < kBuckets.size(); ++b) {
          cum += h.buckets[b];
          if (cum >= target) return kBuckets[b];
        }
        return "+Inf";
      };
      lat[e] = {{"count", h.count}, {"mean", h.count ? h.sum / static_cast<double>(h.count) : 0.0},
                {"p50_le", quantile(0.5)}, {"p99_le", quantile(0.99)}};
    }
    return {{"requests", req}, {"latency_seconds", lat}, {"model", r.model_json()},
            {"reloads", reloads_.load()}, {"reload_failures", reload_failures_.load()}, {"uptime_seconds", uptime}};
  }

 private:
  struct Hist {
    std::array<std::uint64_t, kBuckets.size() + 1> buckets{};
    double sum = 0;
    std::uint64_t count = 0;
  };
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, std::uint64_t> counts_;
  std::map<std::string, Hist> latency_;
  std::atomic<std::uint64_t> reloads_{0}, reload_failures_{0};
};

// ---- the model, swapped atomically on reload -----------------------------------------------

class ModelHolder {
 public:
  std::shared_ptr<const Recommender> get() const { return std::atomic_load(&rec_); }
  void set(std::shared_ptr<const Recommender> r) { std::atomic_store(&rec_, std::move(r)); }

 private:
  std::shared_ptr<const Recommender> rec_;
};

struct FileStamp {
  long long mtime_ns = 0, size = -1, inode = 0;
  bool operator!=(const FileStamp& o) const { return mtime_ns != o.mtime_ns || size != o.size || inode != o.inode; }
};
FileStamp stamp_of(const std::string& path) {
  struct stat st {};
  FileStamp s;
  if (::stat(path.c_str(), &st) == 0) {
    s.mtime_ns = static_cast<long long>(st.st_mtim.tv_sec) * 1000000000LL + st.st_mtim.tv_nsec;
    s.size = static_cast<long long>(st.st_size);
    s.inode = static_cast<long long>(st.st_ino);
  }
  return s;
}

// ---- request parsing ------------------------------------------------------------------------

int parse_n(const std::string& text, const char* what) {
  const std::string msg = std::string("parameter ") + what + " must be an integer from 1 to " + std::to_string(kMaxN);
  if (text.empty() || text.size() > 5) throw HttpError(400, msg);
  int v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') throw HttpError(400, msg);
    v = v * 10 + (c - '0');
  }
  if (v < 1 || v > kMaxN) throw HttpError(400, msg);
  return v;
}

int n_param(const httplib::Request& req, int default_n) {
  if (!req.has_param("n")) return default_n;
  if (req.get_param_value_count("n") > 1) throw HttpError(400, "parameter n given more than once");
  return parse_n(req.get_param_value("n"), "n");
}

void check_id(const std::string& id, const char* what) {
  if (id.empty()) throw HttpError(400, std::string(what) + " must not be empty");
  if (id.size() > 256) throw HttpError(400, std::string(what) + " is too long (over 256 bytes)");
}

}  // namespace

int main(int argc, char** argv) {
  return run_program("mfrec_serve", argc, argv, [&](Comm& world) {
    Options o;
    Cli cli("mfrec_serve",
            "The recommender as a REST API. Serves the model a registry spec names (by default the\n"
            "production model), or a model file, and reloads it when the registry's label moves (polled\n"
            "every --poll-seconds) or on SIGHUP, without dropping requests in flight. Binds 127.0.0.1\n"
            "unless --host says otherwise. Endpoints: GET /recommendations?user_id=ID&n=N,\n"
            "POST /recommendations {\"items\": [ID, ...]}, GET /items/ID/similar?n=N, GET /items/ID,\n"
            "GET /popular?n=N, GET /healthz, GET /metrics. SIGINT/SIGTERM: finish requests and exit.");
    cli
        .option("registry", &o.registry, "model registry directory")
        .option("spec", &o.spec, "registry spec to serve: NAME@STAGE, NAME:VERSION or NAME")
        .path("model,m", &o.model, PathRole::InputFile, "serve this model file instead of the registry's")
        .option("host", &o.host, "address to bind (0.0.0.0: every interface)")
        .option("port,p", &o.port, "TCP port (0: any free port; see --port-file)")
        .path("port-file", &o.port_file, PathRole::OutputFile, "write the bound port to this file once listening")
        .option("threads,t", &o.threads, "request worker threads (each serves one connection at a time)")
        .option("poll-seconds", &o.poll_seconds, "check the registry (or model file) for a new version this often; 0: only on SIGHUP")
        .option("max-body", &o.max_body, "largest request body in bytes (larger: 413)")
        .option("max-history", &o.max_history, "most items in a POST history (more: 400)")
        .option("default-n", &o.default_n, "items per response when n is not given")
        .flag("access-log", &o.access_log, "log one line per request (method, target, status, time)")
        .option("log-level", &o.log_level, "debug, info, warn or error");
    if (!cli.parse(argc, argv, world.is_root())) return 0;
    require_option(world.size() == 1, "threads", "mfrec_serve runs as one process (use --threads for parallelism)");
    require_option(o.port >= 0 && o.port <= 65535, "port", "must be from 0 to 65535");
    require_option(o.threads >= 1 && o.threads <= 1024, "threads", "must be from 1 to 1024");
    require_option(o.poll_seconds >= 0, "poll-seconds", "must not be negative");
    require_option(o.max_body >= 64, "max-body", "must be at least 64 bytes");
    require_option(o.max_history >= 1, "max-history", "must be at least 1");
    require_option(o.default_n >= 1 && o.default_n <= kMaxN, "default-n", "must be from 1 to " + std::to_string(kMaxN));
    init_logging(world, "mfrec_serve", o.log_level);
    const bool from_registry = !cli.given("model");
    const std::string registry = from_registry ? o.registry : std::string();

    // The first model: a failure here is fatal.
    ModelHolder holder;
    Metrics metrics;
    {
      ModelSource src = resolve_model(o.model, registry, o.spec);
      holder.set(Recommender::load(src));
      spdlog::info("serving {}: {} users, {} items, {} factors", src.describe(), holder.get()->n_users(),
                   holder.get()->n_items(), holder.get()->model().meta.als.factors);
    }
    FileStamp stamp = from_registry ? FileStamp{} : stamp_of(o.model);
    const auto started = Clock::now();
    auto uptime = [&] { return std::chrono::duration<double>(Clock::now() - started).count(); };

    httplib::Server svr;
    const auto threads = static_cast<std::size_t>(o.threads);
    svr.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
    svr.set_payload_max_length(o.max_body);
    svr.set_read_timeout(5, 0);
    svr.set_write_timeout(5, 0);
    svr.set_keep_alive_timeout(2);
    svr.set_keep_alive_max_count(1000);
    svr.set_tcp_nodelay(true);
    // SO_REUSEADDR only: httplib's default adds SO_REUSEPORT, which would let a second server
    // bind the same port silently instead of failing.
    svr.set_socket_options([](socket_t sock) {
      int yes = 1;
      ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    });

    // Every route: timed, counted, and any exception turned into a JSON error.
    auto route = [&](std::string endpoint, std::function<void(const httplib::Request&, httplib::Response&,
                                                               const Recommender&)> fn) {
      return [&metrics, &holder, &o, endpoint = std::move(endpoint), fn = std::move(fn)](const httplib::Request& req,
                                                                                        httplib::Response& res) {
        const auto t0 = Clock::now();
        try {
          std::shared_ptr<const Recommender> rec = holder.get();  // kept for the whole request
          fn(req, res, *rec);
        } catch (const HttpError& e) {
          send_error(res, e.status, e.what(), e.extra);
        } catch (const std::exception& e) {
          spdlog::error("{} {}: {}", req.method, req.path, e.what());
          send_error(res, 500, "internal error");
        }
        const double s = std::chrono::duration<double>(Clock::now() - t0).count();
        metrics.record(endpoint, res.status, s);
        if (o.access_log) spdlog::info("{} {} -> {} ({:.3f} ms)", req.method, req.target, res.status, s * 1e3);
      };
    };

    svr.Get("/recommendations", route("GET /recommendations", [&](const httplib::Request& req, httplib::Response& res,
                                                                  const Recommender& r) {
      const int n = n_param(req, o.default_n);
      std::string body;
      if (req.has_param("user_id")) {
        if (req.get_param_value_count("user_id") > 1) throw HttpError(400, "parameter user_id given more than once");
        const std::string id = req.get_param_value("user_id");
        check_id(id, "parameter user_id");
        const Index row = r.user_row(id);
        body = r.response_text(row < 0 ? r.popular(n) : r.for_user_row(row, n),
                               {{"user_id", id}, {"known_user", row >= 0}});
      } else {
        body = r.response_text(r.popular(n), {{"user_id", nullptr}});
      }
      res.status = 200;
      res.set_content(body, "application/json");
    }));

    svr.Post("/recommendations", route("POST /recommendations", [&](const httplib::Request& req,
                                                                    httplib::Response& res, const Recommender& r) {
      json in = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
      if (in.is_discarded()) throw HttpError(400, "body is not valid JSON");
      if (!in.is_object()) throw HttpError(400, "body must be a JSON object like {\"items\": [\"ID\", ...], \"n\": 20}");
      int n = n_param(req, o.default_n);
      if (in.contains("n")) {
        const json& jn = in["n"];
        if (!jn.is_number_integer() || jn.get<long long>() < 1 || jn.get<long long>() > kMaxN)
          throw HttpError(400, "field n must be an integer from 1 to " + std::to_string(kMaxN));
        n = jn.get<int>();
      }
      if (!in.contains("items") || !in["items"].is_array())
        throw HttpError(400, "field items must be an array of item ids or {\"id\": ID, \"weight\": W} objects");
      const json& items = in["items"];
      if (items.empty()) throw HttpError(400, "field items is empty");
      if (items.size() > static_cast<std::size_t>(o.max_history))
        throw HttpError(400, "field items has more than " + std::to_string(o.max_history) + " entries");
      std::vector<std::int32_t> rows;
      std::vector<Real> weights;
      std::vector<std::string> ids;
      json unknown = json::array();
      for (const json& e : items) {
        std::string id;
        double w = 1;
        if (e.is_string()) {
          id = e.get<std::string>();
        } else if (e.is_object() && e.contains("id") && e["id"].is_string()) {
          id = e["id"].get<std::string>();
          if (e.contains("weight")) {
            if (!e["weight"].is_number()) throw HttpError(400, "weight of item " + id + " must be a number");
            w = e["weight"].get<double>();
            if (!std::isfinite(w) || w <= 0 || w > 1e6)
              throw HttpError(400, "weight of item " + id + " must be positive (at most 1e6)");
          }
        } else {
          throw HttpError(400, "each entry of items must be an id string or an object with a string id");
        }
        check_id(id, "item id");
        const Index i = r.item_row(id);
        if (i < 0) {
          if (unknown.size() < 20) unknown.push_back(id);
          continue;
        }
        rows.push_back(static_cast<std::int32_t>(i));
        weights.push_back(static_cast<Real>(w));
        ids.push_back(std::move(id));
      }
      if (!unknown.empty()) throw HttpError(404, "unknown item(s) in the history", {{"unknown_items", unknown}});
      res.status = 200;
      res.set_content(r.response_text(r.fold_in(rows, weights, n), {{"user_id", nullptr}, {"history", ids}}),
                      "application/json");
    }));

    svr.Get(R"(/items/([^/]+)/similar)", route("GET /items/{id}/similar", [&](const httplib::Request& req,
                                                                             httplib::Response& res,
                                                                             const Recommender& r) {
      const std::string id = req.matches[1];
      check_id(id, "item id");
      const int n = n_param(req, o.default_n);
      const Index i = r.item_row(id);
      if (i < 0) throw HttpError(404, "unknown item '" + id + "'");
      res.status = 200;
      res.set_content(r.response_text(r.similar(i, n), {{"item", r.item_json(i)}}), "application/json");
    }));

    svr.Get(R"(/items/([^/]+))", route("GET /items/{id}", [&](const httplib::Request& req, httplib::Response& res,
                                                             const Recommender& r) {
      const std::string id = req.matches[1];
      check_id(id, "item id");
      const Index i = r.item_row(id);
      if (i < 0) throw HttpError(404, "unknown item '" + id + "'");
      json body = r.item_json(i);
      body["popularity"] = r.model().popularity[static_cast<std::size_t>(i)];
      send_json(res, 200, body);
    }));

    svr.Get("/popular", route("GET /popular", [&](const httplib::Request& req, httplib::Response& res,
                                                  const Recommender& r) {
      res.status = 200;
      res.set_content(r.response_text(r.popular(n_param(req, o.default_n))), "application/json");
    }));

    svr.Get("/healthz", route("GET /healthz", [&](const httplib::Request&, httplib::Response& res,
                                                  const Recommender& r) {
      send_json(res, 200, {{"status", "ok"}, {"version", kVersion}, {"model", r.model_json()},
                           {"uptime_seconds", uptime()}});
    }));

    svr.Get("/metrics", route("GET /metrics", [&](const httplib::Request& req, httplib::Response& res,
                                                  const Recommender& r) {
      if (req.has_param("format") && req.get_param_value("format") == "json") {
        send_json(res, 200, metrics.to_json(r, uptime()));
      } else {
        res.status = 200;
        res.set_content(metrics.prometheus(r, uptime()), "text/plain; version=0.0.4");
      }
    }));

    // Errors httplib answers itself (no route, 413, a malformed request line): a JSON body too.
    svr.set_error_handler(httplib::Server::HandlerWithResponse([&](const httplib::Request& req,
                                                                   httplib::Response& res) {
      if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;  // ours already
      const char* what = res.status == 404   ? "no such endpoint"
                         : res.status == 413 ? "request body too large"
                         : res.status == 414 ? "request URI too long"
                                             : "bad request";
      std::string msg = what;
      if (res.status == 404) msg += ": " + req.method + " " + req.path;
      if (res.status == 413) msg += " (limit " + std::to_string(o.max_body) + " bytes)";
      send_error(res, res.status, msg);
      metrics.record("other", res.status, -1);
      return httplib::Server::HandlerResponse::Handled;
    }));
    svr.set_exception_handler([&](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
      send_error(res, 500, "internal error");
    });

    int port = o.port;
    if (port == 0) {
      port = svr.bind_to_any_port(o.host);
      if (port <= 0) throw IoError("cannot bind " + o.host + " (any port)");
    } else if (!svr.bind_to_port(o.host, port)) {
      throw IoError("cannot bind " + o.host + ":" + std::to_string(port) + " (in use, or not an address of this host)");
    }
    install_signal_handlers();
    if (!o.port_file.empty()) {
      const std::string tmp = o.port_file + ".tmp";
      std::ofstream(tmp) << port << "\n";
      std::rename(tmp.c_str(), o.port_file.c_str());
    }
    std::printf("mfrec_serve: listening on http://%s:%d (%d threads)\n", o.host.c_str(), port, o.threads);
    std::fflush(stdout);

    // The watcher: signals, and polling the registry (or the model file) for a new version.
    std::atomic<bool> done{false};
    std::thread watcher([&] {
      auto last_poll = Clock::now();
      std::string last_error, failed_key;
      auto reload = [&](const char* why) -> bool {
        try {
          ModelSource src = resolve_model(o.model, registry, o.spec);
          auto fresh = Recommender::load(src);
          holder.set(fresh);  // requests in flight keep the one they hold
          metrics.reloaded(true);
          if (!from_registry) stamp = stamp_of(o.model);
          spdlog::info("reloaded ({}): now serving {}", why, src.describe());
          failed_key.clear();
          return true;
        } catch (const std::exception& e) {
          metrics.reloaded(false);
          spdlog::error("reload ({}) failed, still serving {}: {}", why, holder.get()->source().describe(), e.what());
          return false;
        }
      };
      while (!done.load()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        if (g_stop) {
          spdlog::info("stopping: finishing requests in flight");
          svr.stop();
          break;
        }
        if (g_reload) {
          g_reload = 0;
          reload("SIGHUP");
          last_poll = Clock::now();
        }
        if (o.poll_seconds > 0 && std::chrono::duration<double>(Clock::now() - last_poll).count() >= o.poll_seconds) {
          last_poll = Clock::now();
          try {
            if (from_registry) {
              const ModelSource now = peek_registry(registry, o.spec);
              const ModelSource& cur = holder.get()->source();
              const std::string key = now.name + ":" + std::to_string(now.version) + ":" + now.checksum;
              if ((now.name != cur.name || now.version != cur.version || now.checksum != cur.checksum) &&
                  key != failed_key) {
                // A version that failed to load is not retried until the label moves (or SIGHUP).
                if (!reload(("registry: " + o.spec + " is now version " + std::to_string(now.version)).c_str()))
                  failed_key = key;
              }
            } else if (stamp_of(o.model) != stamp && stamp_of(o.model).size >= 0) {
              reload("model file changed");
            }
            last_error.clear();
          } catch (const std::exception& e) {
            if (e.what() != last_error) spdlog::warn("registry poll: {}", e.what());
            last_error = e.what();
          }
        }
      }
    });

    const bool ok = svr.listen_after_bind();
    done = true;
    watcher.join();
    spdlog::info("stopped after {}", format_seconds(uptime()));
    if (!ok && !g_stop) throw IoError("the server stopped unexpectedly");
    return 0;
  });
}
