#include "mfrec/log.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <cstdio>
#include <vector>

#include "mfrec/comm.hpp"
#include "mfrec/error.hpp"

namespace mfrec {

namespace {
spdlog::level::level_enum g_level = spdlog::level::info;
}

void enable_leader_logging() { spdlog::set_level(g_level); }

spdlog::level::level_enum parse_log_level(const std::string& text) {
  // spdlog maps any unknown text to "off": a typo would silence the program.
  const auto lvl = spdlog::level::from_str(text);
  if (lvl == spdlog::level::off && text != "off")
    throw ConfigError("option --log-level: must be trace, debug, info, warn, error or off, not '" + text + "'");
  return lvl;
}

void init_logging(const Comm& comm, const std::string& program, const std::string& level) {
  const auto lvl = parse_log_level(level);  // first: a bad level is a ConfigError before any logger exists
  auto logger = spdlog::stderr_color_mt(program + "." + std::to_string(comm.rank()));
  spdlog::set_default_logger(logger);
  std::string pattern = comm.size() > 1 ? "[%H:%M:%S] [" + program + " " + std::to_string(comm.rank()) + "] %^%v%$"
                                        : "[%H:%M:%S] [" + program + "] %^%v%$";
  spdlog::set_pattern(pattern);
  g_level = lvl;
  spdlog::set_level(comm.is_root() ? lvl : std::max(lvl, spdlog::level::warn));
}

PhaseTimer::Scope::Scope(PhaseTimer& t, std::string name) : t_(t), name_(std::move(name)), start_(Comm::wtime()) {}
PhaseTimer::Scope::~Scope() { t_.add(name_, Comm::wtime() - start_); }

double PhaseTimer::get(const std::string& name) const {
  auto it = seconds_.find(name);
  return it == seconds_.end() ? 0.0 : it->second;
}

std::map<std::string, PhaseTimer::Stat> PhaseTimer::summary(const Comm& comm) const {
  return summarize(seconds_, comm);
}

std::map<std::string, PhaseTimer::Stat> PhaseTimer::summarize(const std::map<std::string, double>& values,
                                                              const Comm& comm) {
  std::vector<double> mn, mx, sum;
  for (const auto& [name, s] : values) {
    mn.push_back(s);
    mx.push_back(s);
    sum.push_back(s);
  }
  comm.allreduce_min(mn.data(), mn.size());
  comm.allreduce_max(mx.data(), mx.size());
  comm.allreduce_sum(sum.data(), sum.size());
  std::map<std::string, Stat> out;
  std::size_t i = 0;
  for (const auto& kv : values) {
    out[kv.first] = Stat{mn[i], sum[i] / comm.size(), mx[i]};
    ++i;
  }
  return out;
}

std::string format_seconds(double s) {
  char buf[32];
  if (s < 60) std::snprintf(buf, sizeof buf, "%.1fs", s);
  else if (s < 3600) std::snprintf(buf, sizeof buf, "%dm%02ds", static_cast<int>(s) / 60, static_cast<int>(s) % 60);
  else std::snprintf(buf, sizeof buf, "%dh%02dm", static_cast<int>(s) / 3600, static_cast<int>(s) % 3600 / 60);
  return buf;
}

Progress::Progress(const Comm& comm, std::string what, double total, double interval)
    : root_(comm.is_root()), what_(std::move(what)), total_(total), interval_(interval),
      start_(Comm::wtime()), last_(start_) {}

void Progress::update(double done) {
  if (!root_) return;
  double now = Comm::wtime();
  if (now - last_ < interval_) return;
  last_ = now;
  double elapsed = now - start_;
  double eta = done > 0 ? elapsed * (total_ - done) / done : 0;
  spdlog::info("{}: {:.0f}/{:.0f} ({:.0f}%), {} elapsed, ETA {}", what_, done, total_,
               total_ > 0 ? 100.0 * done / total_ : 100.0, format_seconds(elapsed), format_seconds(eta));
}

void Progress::finish() {
  if (root_) spdlog::info("{}: done in {}", what_, format_seconds(Comm::wtime() - start_));
}

}  // namespace mfrec
