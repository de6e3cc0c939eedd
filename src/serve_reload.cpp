// mfrec_serve's model reloading: the registry's spec (or the model file) polled, SIGHUP, and
// the swap that leaves requests in flight with the model they started with.
#include <signal.h>
#include <sys/stat.h>

#include <chrono>
#include <csignal>
#include <thread>

#include <spdlog/spdlog.h>

#include "mfrec/serve.hpp"

namespace mfrec::serve {

namespace {

volatile std::sig_atomic_t g_reload = 0;
volatile std::sig_atomic_t g_stop = 0;
extern "C" void on_hup(int) { g_reload = 1; }
extern "C" void on_term(int) { g_stop = 1; }

}  // namespace

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

Reloader::Reloader(ModelHolder& holder, Metrics& metrics, std::string model, std::string registry, std::string spec,
                   AnnConfig ann)
    : holder_(holder), metrics_(metrics), model_(std::move(model)), registry_(std::move(registry)),
      spec_(std::move(spec)), ann_(std::move(ann)) {
  if (registry_.empty()) stamp_ = stamp_of(model_);  // before loading: a change meanwhile is seen
  const ModelSource src = resolve_model(model_, registry_, spec_);
  holder_.set(Recommender::load(src, ann_));
  const auto r = holder_.get();
  spdlog::info("serving {}: {} users, {} items, {} factors, {} search", src.describe(), r->n_users(), r->n_items(),
               r->model().meta.als.factors, r->search_name());
}

bool Reloader::reload(const std::string& why) {
  try {
    const FileStamp stamp = registry_.empty() ? stamp_of(model_) : FileStamp{};
    const ModelSource src = resolve_model(model_, registry_, spec_);
    holder_.set(Recommender::load(src, ann_));  // requests in flight keep the one they hold
    metrics_.reloaded(true);
    stamp_ = stamp;
    spdlog::info("reloaded ({}): now serving {}, {} search", why, src.describe(), holder_.get()->search_name());
    failed_key_.clear();
    return true;
  } catch (const std::exception& e) {
    metrics_.reloaded(false);
    spdlog::error("reload ({}) failed, still serving {}: {}", why, holder_.get()->source().describe(), e.what());
    return false;
  }
}

void Reloader::poll() {
  try {
    if (!registry_.empty()) {
      const ModelSource now = peek_registry(registry_, spec_);
      const ModelSource& cur = holder_.get()->source();
      const std::string key = now.name + ":" + std::to_string(now.version) + ":" + now.checksum + ":" + now.ann_checksum;
      // A version that failed to load is not retried until the label moves, its ANN index is
      // (re)built, or SIGHUP. A new index of the version served is picked up as a new version is.
      if ((now.name != cur.name || now.version != cur.version || now.checksum != cur.checksum ||
           now.ann_checksum != cur.ann_checksum) &&
          key != failed_key_) {
        if (!reload("registry: " + spec_ + " is now version " + std::to_string(now.version))) failed_key_ = key;
      }
    } else {
      const FileStamp now = stamp_of(model_);
      if (now != stamp_ && now.size >= 0) reload("model file changed");
    }
    last_error_.clear();
  } catch (const std::exception& e) {
    if (e.what() != last_error_) spdlog::warn("registry poll: {}", e.what());
    last_error_ = e.what();
  }
}

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
  sigaction(SIGPIPE, &sa, nullptr);
}

bool take_reload_request() {
  if (!g_reload) return false;
  g_reload = 0;
  return true;
}

bool stop_requested() { return g_stop != 0; }

void watch(Reloader& reloader, double poll_seconds, const std::atomic<bool>& done, const std::function<void()>& stop) {
  using Clock = std::chrono::steady_clock;
  auto last_poll = Clock::now();
  while (!done.load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (stop_requested()) {
      spdlog::info("stopping: finishing requests in flight");
      stop();
      break;
    }
    if (take_reload_request()) {
      reloader.reload("SIGHUP");
      last_poll = Clock::now();
    }
    if (poll_seconds > 0 && std::chrono::duration<double>(Clock::now() - last_poll).count() >= poll_seconds) {
      last_poll = Clock::now();
      reloader.poll();
    }
  }
}

}  // namespace mfrec::serve
