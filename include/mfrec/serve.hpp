// The REST server's logic, without HTTP: its options and their checks, request validation,
// metrics, the model holder and the reload watcher, and a non-MPI program runner. mfrec_serve
// wires these to cpp-httplib and nothing else. Nothing here calls MPI: a server opens only the
// HTTP port it was asked for (MPI_Init would open more, and start a daemon).
#pragma once
#include <nlohmann/json.hpp>

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "mfrec/recommend.hpp"

namespace mfrec {

class Cli;

namespace serve {

using json = nlohmann::ordered_json;

// ---- options --------------------------------------------------------------------------------

struct Options {
  std::string model, registry = "registry", spec = "retail-als@production", host = "127.0.0.1", port_file;
  std::string log_level = "info";
  int port = 8080, threads = 8, default_n = 20, max_history = 1000;
  double poll_seconds = 5;
  std::size_t max_body = 64 * 1024;
  bool access_log = false;
  AnnOptions ann;  // --ann, --ann-threshold, --ann-ef, --ann-index
};

void declare_options(Cli& cli, Options& o);
// ConfigError naming the option for a bad value, a missing --model, or a --port-file whose
// directory is missing or not writable (check_paths), before anything is loaded or bound.
void check_options(const Cli& cli, const Options& o);

// Writes the bound port to `path` (atomically: a reader never sees an empty file). IoError
// naming the file when it cannot.
void write_port_file(const std::string& path, int port);

// ---- requests -------------------------------------------------------------------------------

// An answer other than 200: the status, a message and extra fields for the JSON body.
class HttpError : public std::runtime_error {
 public:
  HttpError(int status, const std::string& message, json extra = json::object())
      : std::runtime_error(message), status(status), extra(std::move(extra)) {}
  int status;
  json extra;
};

// The JSON body of an error: {"error": message, "status": status, ...extra}.
json error_body(int status, const std::string& message, const json& extra = json::object());

// n from a query parameter: its values (none: `default_n`). HttpError 400 unless exactly one
// integer from 1 to kMaxN (digits only: no sign, no blanks).
int parse_n(const std::vector<std::string>& values, int default_n);
// An id from a path or parameter: HttpError 400 when empty or over 256 bytes.
void check_id(const std::string& id, const char* what);

// A POST /recommendations body: {"items": [ID | {"id": ID, "weight": W}, ...], "n": N}.
struct FoldInRequest {
  std::vector<std::int32_t> rows;  // item rows, in the order given
  std::vector<Real> weights;       // one per row
  std::vector<std::string> ids;
  int n = 20;
};
// HttpError 400 for malformed JSON, a missing or empty items array, more than `max_history`
// entries, a bad entry, weight or n; 404 (with "unknown_items", at most 20) for unknown ids.
// `n` is the query's n (or the default), overridden by the body's.
FoldInRequest parse_fold_in(const std::string& body, int n, int max_history, const Recommender& r);

// ---- metrics --------------------------------------------------------------------------------

// Request counts by endpoint and status, latency histograms, reload counts. Thread-safe.
class Metrics {
 public:
  static constexpr std::array<double, 14> kBuckets = {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                                      0.01,    0.025,  0.05,    0.1,    0.25,   1.0,   5.0};
  // Counts the request; with seconds >= 0 also its latency.
  void record(const std::string& endpoint, int status, double seconds);
  void reloaded(bool ok) { (ok ? reloads_ : reload_failures_)++; }
  std::uint64_t reloads() const { return reloads_.load(); }
  std::uint64_t reload_failures() const { return reload_failures_.load(); }

  std::string prometheus(const Recommender& r, double uptime) const;  // text format 0.0.4
  json to_json(const Recommender& r, double uptime) const;

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

// ---- the model and its reloading ------------------------------------------------------------

// The model being served, swapped atomically; a request keeps the one it took.
class ModelHolder {
 public:
  std::shared_ptr<const Recommender> get() const { return std::atomic_load(&rec_); }
  void set(std::shared_ptr<const Recommender> r) { std::atomic_store(&rec_, std::move(r)); }

 private:
  std::shared_ptr<const Recommender> rec_;
};

// What identifies a file's version: modification time, size and inode (size -1: missing).
struct FileStamp {
  long long mtime_ns = 0, size = -1, inode = 0;
  bool operator!=(const FileStamp& o) const { return mtime_ns != o.mtime_ns || size != o.size || inode != o.inode; }
};
FileStamp stamp_of(const std::string& path);

// Loads the first model and follows the source: with a registry, the version the spec points
// to (a version that failed to load is not retried until the spec moves, its ANN index changes,
// or reload() is called); with a model file, the file when it changes. Each load applies `ann`
// (Recommender::load): a missing index with --ann on, or a corrupt or mismatched one, fails the
// load like a corrupt model (at start: no server; on reload: the current model stays).
class Reloader {
 public:
  // Loads the first model (errors propagate: a server without a model does not start).
  Reloader(ModelHolder& holder, Metrics& metrics, std::string model, std::string registry, std::string spec,
           AnnConfig ann = {AnnMode::kOff});
  // Loads the source again and swaps it in; on failure keeps the current model. Returns success.
  bool reload(const std::string& why);
  // One poll: reloads when the registry's spec or the model file changed. Errors reading the
  // registry are logged once each, and the current model is kept.
  void poll();

 private:
  ModelHolder& holder_;
  Metrics& metrics_;
  std::string model_, registry_, spec_;
  AnnConfig ann_;
  FileStamp stamp_;
  std::string failed_key_, last_error_;
};

// ---- signals and the watcher ----------------------------------------------------------------

// SIGHUP asks for a reload, SIGINT/SIGTERM for a stop; SIGPIPE is ignored (a client that hangs up
// must not kill the server). The handlers only set flags.
void install_signal_handlers();
bool take_reload_request();  // true once per SIGHUP
bool stop_requested();

// Until `done`: every 100 ms acts on the signal flags (a stop calls `stop`) and polls the
// reloader every `poll_seconds` (0: never).
void watch(Reloader& reloader, double poll_seconds, const std::atomic<bool>& done, const std::function<void()>& stop);

// ---- the program ----------------------------------------------------------------------------

// Logging to stderr at `level` for a single process (no MPI rank in the prefix).
void init_logging(const std::string& program, const std::string& level);

// The error policy of a non-MPI program's main: a ConfigError prints one line
// "NAME: error: ..." and exits 2, any other exception one line and exits 1.
int run_program(const char* name, const std::function<int()>& body);

}  // namespace serve
}  // namespace mfrec
