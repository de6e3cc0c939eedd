// mfrec_serve as a program: its options and their checks, the port file, logging, and the error
// policy of a main that never initialises MPI.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>

#include "mfrec/config.hpp"
#include "mfrec/durable.hpp"
#include "mfrec/log.hpp"
#include "mfrec/paths.hpp"
#include "mfrec/serve.hpp"

namespace mfrec::serve {

void declare_options(Cli& cli, Options& o) {
  cli.path("registry", &o.registry, PathRole::InputDir, "model registry directory")
      .option("spec", &o.spec, "registry spec to serve: NAME@STAGE, NAME:VERSION or NAME")
      .path("model,m", &o.model, PathRole::InputFile, "serve this model file instead of the registry's")
      .option("host", &o.host, "address to bind (0.0.0.0: every interface)")
      .option("port,p", &o.port, "TCP port (0: any free port; see --port-file)")
      .path("port-file", &o.port_file, PathRole::OutputFile, "write the bound port to this file once listening")
      .option("threads,t", &o.threads, "request worker threads (each serves one connection at a time)")
      .option("poll-seconds", &o.poll_seconds,
              "check the registry (or model file) for a new version this often; 0: only on SIGHUP")
      .option("max-body", &o.max_body, "largest request body in bytes (larger: 413)")
      .option("max-history", &o.max_history, "most items in a POST history (more: 400)")
      .option("default-n", &o.default_n, "items per response when n is not given")
      .flag("access-log", &o.access_log, "log one line per request (method, target, status, time)")
      .option("log-level", &o.log_level, "debug, info, warn or error");
  declare_ann_options(cli, o.ann);
}

void check_options(const Cli& cli, const Options& o) {
  require_option(o.port >= 0 && o.port <= 65535, "port", "must be from 0 to 65535");
  require_option(o.threads >= 1 && o.threads <= 1024, "threads", "must be from 1 to 1024");
  require_option(o.poll_seconds >= 0, "poll-seconds", "must not be negative");
  require_option(o.max_body >= 64, "max-body", "must be at least 64 bytes");
  require_option(o.max_history >= 1, "max-history", "must be at least 1");
  require_option(o.default_n >= 1 && o.default_n <= kMaxN, "default-n", "must be from 1 to " + std::to_string(kMaxN));
  require_option(!cli.given("model") || !o.model.empty(), "model", "empty path");
  parse_log_level(o.log_level);
  ann_config(o.ann);
  require_option(!cli.given("ann-index") || cli.given("model"), "ann-index",
                 "only with --model (a registry version's index is recorded in the registry)");
  if (cli.given("model"))
    for (const char* name : {"registry", "spec"})
      require_option(!cli.given(name), name, "give either --model or --registry/--spec, not both");
  std::vector<PathArg> paths = cli.paths();  // the model (or registry) exists; the port file's directory is writable
  if (cli.given("model"))  // --registry is not used
    paths.erase(std::remove_if(paths.begin(), paths.end(), [](const PathArg& p) { return p.option == "registry"; }),
                paths.end());
  check_paths(paths);
}

void write_port_file(const std::string& path, int port) { write_file_atomic(path, std::to_string(port) + "\n"); }

void init_logging(const std::string& program, const std::string& level) {
  auto logger = spdlog::stderr_color_mt(program);
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("[%H:%M:%S] [" + program + "] %^%v%$");
  spdlog::set_level(parse_log_level(level));
}

int run_program(const char* name, const std::function<int()>& body) {
  try {
    return body();
  } catch (const ConfigError& e) {
    std::fprintf(stderr, "%s: error: %s\n", name, e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: error: %s\n", name, e.what());
    return 1;
  }
}

}  // namespace mfrec::serve
