// Rank-aware logging (spdlog), timers and progress with ETA.
#pragma once
#include <spdlog/spdlog.h>

#include <map>
#include <string>

namespace mfrec {

class Comm;

// Rank 0 logs at `level` ("info" by default, "debug" with --verbose, "warn" with --quiet);
// other ranks only log warnings and errors. Messages go to stderr, prefixed with the time.
// `level`: trace, debug, info, warn, error or off; anything else is a ConfigError naming --log-level.
void init_logging(const Comm& comm, const std::string& program, const std::string& level = "info");
spdlog::level::level_enum parse_log_level(const std::string& text);

// Let this rank log at the configured level too (e.g. the leader of a grid group).
void enable_leader_logging();

// Wall-clock time per named phase on this rank (MPI_Wtime); `summary` reduces min/mean/max
// over the ranks of a communicator.
class PhaseTimer {
 public:
  class Scope {
   public:
    Scope(PhaseTimer& t, std::string name);
    ~Scope();
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    PhaseTimer& t_;
    std::string name_;
    double start_;
  };
  Scope scope(std::string name) { return Scope(*this, std::move(name)); }
  void add(const std::string& name, double seconds) { seconds_[name] += seconds; }
  double get(const std::string& name) const;
  const std::map<std::string, double>& all() const { return seconds_; }
  struct Stat { double min = 0, mean = 0, max = 0; };
  // Collective over comm: every rank must have the same phase names.
  std::map<std::string, Stat> summary(const Comm& comm) const;
  // Collective over comm: min/mean/max over the ranks of any per-rank values (the same names on
  // every rank).
  static std::map<std::string, Stat> summarize(const std::map<std::string, double>& values, const Comm& comm);

 private:
  std::map<std::string, double> seconds_;
};

// Progress of `total` units on rank 0: logs at most every `interval` seconds with rate and ETA.
class Progress {
 public:
  Progress(const Comm& comm, std::string what, double total, double interval = 5.0);
  void update(double done);  // local call, no communication
  void finish();

 private:
  bool root_;
  std::string what_;
  double total_, interval_, start_, last_;
};

std::string format_seconds(double s);

}  // namespace mfrec
