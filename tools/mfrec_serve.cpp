// mfrec_serve: the recommender as a REST API (cpp-httplib), serving the registry's production
// model and following its label.
//   mfrec_serve --registry registry --spec retail-als@production --port 8080
//   mfrec_serve --model model.h5 --port 0 --port-file port.txt
// Endpoints (JSON): GET /recommendations?user_id=&n=, POST /recommendations (item history,
// fold-in), GET /items/{id}/similar?n=, GET /items/{id}, GET /popular?n=, GET /healthz,
// GET /metrics (Prometheus text; ?format=json). See docs/serving.md.
// This file is the HTTP wiring only; the logic is the serve module (mfrec/serve.hpp). It never
// initialises MPI, so the process listens on the HTTP port alone.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <thread>

#include "mfrec/config.hpp"
#include "mfrec/log.hpp"
#include "mfrec/recommend.hpp"
#include "mfrec/serve.hpp"
#include "mfrec/version.hpp"

// Last: httplib.h pulls in <resolv.h>, whose `_res` macro breaks Eigen's templates.
#include <httplib.h>

using namespace mfrec;
using namespace mfrec::serve;
using Clock = std::chrono::steady_clock;

namespace {

void send_json(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

void send_error(httplib::Response& res, int status, const std::string& message, const json& extra = json::object()) {
  send_json(res, status, error_body(status, message, extra));
}

int n_param(const httplib::Request& req, int default_n) {
  std::vector<std::string> values;
  for (std::size_t k = 0; k < req.get_param_value_count("n"); ++k) values.push_back(req.get_param_value("n", k));
  return parse_n(values, default_n);
}

void configure(httplib::Server& svr, const Options& o) {
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
}

void add_routes(httplib::Server& svr, const ModelHolder& holder, Metrics& metrics, const Options& o,
                const std::function<double()>& uptime) {
  using Handler = std::function<void(const httplib::Request&, httplib::Response&, const Recommender&)>;
  // Every route: timed, counted, and any exception turned into a JSON error.
  auto route = [&metrics, &holder, &o](std::string endpoint, Handler fn) {
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

  svr.Get("/recommendations", route("GET /recommendations", [&o, &metrics, uptime](const httplib::Request& req, httplib::Response& res,
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

  svr.Post("/recommendations", route("POST /recommendations", [&o, &metrics, uptime](const httplib::Request& req,
                                                                  httplib::Response& res, const Recommender& r) {
    const FoldInRequest in = parse_fold_in(req.body, n_param(req, o.default_n), o.max_history, r);
    res.status = 200;
    res.set_content(r.response_text(r.fold_in(in.rows, in.weights, in.n), {{"user_id", nullptr}, {"history", in.ids}}),
                    "application/json");
  }));

  svr.Get(R"(/items/([^/]+)/similar)", route("GET /items/{id}/similar", [&o, &metrics, uptime](const httplib::Request& req,
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

  svr.Get(R"(/items/([^/]+))", route("GET /items/{id}", [&o, &metrics, uptime](const httplib::Request& req, httplib::Response& res,
                                                           const Recommender& r) {
    const std::string id = req.matches[1];
    check_id(id, "item id");
    const Index i = r.item_row(id);
    if (i < 0) throw HttpError(404, "unknown item '" + id + "'");
    json body = r.item_json(i);
    body["popularity"] = r.model().popularity[static_cast<std::size_t>(i)];
    send_json(res, 200, body);
  }));

  svr.Get("/popular", route("GET /popular", [&o, &metrics, uptime](const httplib::Request& req, httplib::Response& res,
                                                const Recommender& r) {
    res.status = 200;
    res.set_content(r.response_text(r.popular(n_param(req, o.default_n))), "application/json");
  }));

  svr.Get("/healthz", route("GET /healthz", [&o, &metrics, uptime](const httplib::Request&, httplib::Response& res,
                                                const Recommender& r) {
    send_json(res, 200, {{"status", "ok"}, {"version", kVersion}, {"model", r.model_json()},
                         {"uptime_seconds", uptime()}});
  }));

  svr.Get("/metrics", route("GET /metrics", [&o, &metrics, uptime](const httplib::Request& req, httplib::Response& res,
                                                const Recommender& r) {
    if (req.has_param("format") && req.get_param_value("format") == "json") {
      send_json(res, 200, metrics.to_json(r, uptime()));
    } else {
      res.status = 200;
      res.set_content(metrics.prometheus(r, uptime()), "text/plain; version=0.0.4");
    }
  }));

  // Errors httplib answers itself (no route, 413, a malformed request line): a JSON body too.
  svr.set_error_handler(httplib::Server::HandlerWithResponse([&metrics, &o](const httplib::Request& req,
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
  svr.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
    send_error(res, 500, "internal error");
  });
}

int bind_port(httplib::Server& svr, const Options& o) {
  if (o.port == 0) {
    const int port = svr.bind_to_any_port(o.host);
    if (port <= 0) throw IoError("cannot bind " + o.host + " (any port)");
    return port;
  }
  if (!svr.bind_to_port(o.host, o.port))
    throw IoError("cannot bind " + o.host + ":" + std::to_string(o.port) + " (in use, or not an address of this host)");
  return o.port;
}

}  // namespace

int main(int argc, char** argv) {
  return serve::run_program("mfrec_serve", [&]() -> int {
    Options o;
    Cli cli("mfrec_serve",
            "The recommender as a REST API. Serves the model a registry spec names (by default the\n"
            "production model), or a model file, and reloads it when the registry's label moves (polled\n"
            "every --poll-seconds) or on SIGHUP, without dropping requests in flight. Binds 127.0.0.1\n"
            "unless --host says otherwise. Endpoints: GET /recommendations?user_id=ID&n=N,\n"
            "POST /recommendations {\"items\": [ID, ...]}, GET /items/ID/similar?n=N, GET /items/ID,\n"
            "GET /popular?n=N, GET /healthz, GET /metrics. SIGINT/SIGTERM: finish requests and exit.");
    declare_options(cli, o);
    if (!cli.parse(argc, argv, true)) return 0;
    check_options(cli, o);
    init_logging("mfrec_serve", o.log_level);

    // Set-up: the first model (a failure is fatal), then the server, bound before it is announced.
    ModelHolder holder;
    Metrics metrics;
    Reloader reloader(holder, metrics, o.model, cli.given("model") ? std::string() : o.registry, o.spec,
                      ann_config(o.ann));
    const auto started = Clock::now();
    const std::function<double()> uptime = [started] {
      return std::chrono::duration<double>(Clock::now() - started).count();
    };
    httplib::Server svr;
    configure(svr, o);
    add_routes(svr, holder, metrics, o, uptime);
    const int port = bind_port(svr, o);
    install_signal_handlers();
    if (!o.port_file.empty()) write_port_file(o.port_file, port);
    std::printf("mfrec_serve: listening on http://%s:%d (%d threads)\n", o.host.c_str(), port, o.threads);
    std::fflush(stdout);

    // Serve, with the watcher (signals, reloads) beside it.
    std::atomic<bool> done{false};
    std::thread watcher([&] { watch(reloader, o.poll_seconds, done, [&] { svr.stop(); }); });
    const bool ok = svr.listen_after_bind();
    done = true;
    watcher.join();
    spdlog::info("stopped after {}", format_seconds(uptime()));
    if (!ok && !stop_requested()) throw IoError("the server stopped unexpectedly");
    return 0;
  });
}
