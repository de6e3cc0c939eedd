// The registry's index: index.json (authoritative) and INDEX.md (derived), read and written.
#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "mfrec/durable.hpp"
#include "mfrec/error.hpp"
#include "mfrec/log.hpp"
#include "registry_internal.hpp"

namespace mfrec {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

namespace registry_detail {

namespace {

[[noreturn]] void sys_fail(const std::string& what, const std::string& path) {
  const int err = errno;
  throw IoError(what + " " + path + ": " + std::strerror(err));
}

struct BadEntry : std::runtime_error {
  using std::runtime_error::runtime_error;
};

RegistryEntry entry_from_json(const nlohmann::json& j) {
  RegistryEntry e;
  e.name = j.at("name").get<std::string>();
  e.version = j.at("version").get<int>();
  e.file = j.at("file").get<std::string>();
  e.checksum = j.at("checksum").get<std::string>();
  e.bytes = j.value("bytes", std::int64_t{0});
  e.stages = j.value("stages", std::vector<std::string>{});
  e.created = j.value("created", std::string());
  e.source = j.value("source", std::string());
  e.meta = j.value("meta", nlohmann::json::object());
  if (j.contains("ann")) {
    const auto& a = j.at("ann");
    e.ann_file = a.at("file").get<std::string>();
    e.ann_checksum = a.at("checksum").get<std::string>();
    e.ann_bytes = a.value("bytes", std::int64_t{0});
    e.ann_metric = a.value("metric", std::string());
  }
  bool escapes = e.file.empty();
  for (const std::string& file : {e.file, e.ann_file}) {
    const fs::path f(file);
    escapes = escapes || f.is_absolute();
    for (const auto& part : f)
      if (part == "..") escapes = true;
  }
  if (!valid_name(e.name) || e.version < 1 || escapes)
    throw BadEntry("bad entry for '" + e.name + "' version " + std::to_string(e.version) +
                   " (invalid name or version, or a file outside the registry)");
  return e;
}

bool entry_less(const RegistryEntry& a, const RegistryEntry& b) {
  return a.name != b.name ? a.name < b.name : a.version < b.version;
}

}  // namespace

void fault_point(const char* point) {
  const char* env = std::getenv("MFREC_REGISTRY_FAULT");
  if (env == nullptr || *env == '\0') return;
  std::string s(env);
  const bool do_throw = s.rfind("throw:", 0) == 0;
  if (do_throw) s = s.substr(6);
  if (s != point) return;
  if (do_throw) throw IoError(std::string("injected fault at ") + point + " (MFREC_REGISTRY_FAULT)");
  std::fflush(nullptr);
  std::_Exit(70);
}

std::string format_crc(std::uint32_t crc) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "crc32:%08x", crc);
  return buf;
}

std::string hostname() {
  char buf[256] = {0};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "localhost";
  std::string h(buf);
  for (char& c : h)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-') c = '_';
  return h.empty() ? "localhost" : h;
}

// HOST-PID-RAND: unique over hosts, processes and calls.
std::string unique_suffix() {
  static std::atomic<unsigned> counter{0};
  static const unsigned seed = std::random_device{}();
  char buf[64];
  std::snprintf(buf, sizeof buf, "-%ld-%08x%04x", static_cast<long>(::getpid()), seed, counter++ & 0xffffu);
  return hostname() + buf;
}

std::vector<RegistryEntry> read_index(const std::string& dir) {
  const std::string path = dir + "/" + kIndexFile;
  std::ifstream in(path);
  if (!in) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0 && errno == ENOENT) return {};
    sys_fail("cannot read", path);
  }
  std::vector<RegistryEntry> entries;
  try {
    const nlohmann::json j = nlohmann::json::parse(in);
    if (!j.is_object() || j.value("format", std::string()) != kRegistryFormat)
      throw IoError(path + ": not a registry index (format is not \"" + kRegistryFormat + "\")");
    const int version = j.value("format_version", 0);
    if (version < 1 || version > kRegistryFormatVersion)
      throw IoError(path + ": registry index format_version " + std::to_string(version) +
                    " is not supported (this program reads 1 to " + std::to_string(kRegistryFormatVersion) + ")");
    for (const auto& m : j.at("models")) entries.push_back(entry_from_json(m));
  } catch (const nlohmann::json::exception& e) {
    throw IoError(path + ": not a valid registry index: " + e.what());
  } catch (const BadEntry& e) {
    throw IoError(path + ": not a valid registry index: " + e.what());
  }
  std::sort(entries.begin(), entries.end(), entry_less);
  return entries;
}

// Temp files of the index are only written under the lock, so any left over are from a crash;
// publish temps of a process on this host that no longer runs likewise.
void remove_stale_temps(const std::string& dir, const std::string& name_dir) {
  auto scan = [](const std::string& d, auto&& stale) {
    DIR* h = ::opendir(d.c_str());
    if (h == nullptr) return;
    std::vector<std::string> victims;
    while (const dirent* de = ::readdir(h)) {
      const std::string f = de->d_name;
      if (stale(f)) victims.push_back(d + "/" + f);
    }
    ::closedir(h);
    for (const auto& v : victims) ::unlink(v.c_str());
  };
  auto ends_with = [](const std::string& s, const std::string& t) {
    return s.size() >= t.size() && s.compare(s.size() - t.size(), t.size(), t) == 0;
  };
  // The index and its table are written as NAME.partial (durable.hpp); older versions wrote
  // .NAME.HOST-PID-RAND.tmp.
  scan(dir, [&](const std::string& f) {
    for (const char* name : {kIndexFile, kIndexTable})
      if (f == partial_path(name) || (ends_with(f, ".tmp") && f.rfind(std::string(".") + name + ".", 0) == 0))
        return true;
    return false;
  });
  if (name_dir.empty()) return;
  const std::string host = hostname();
  scan(name_dir, [&](const std::string& f) {
    // .publish-HOST-PID-RAND.tmp (an index being written: .publish-HOST-PID-RAND.tmp.partial)
    const std::string g = ends_with(f, ".tmp.partial") ? f.substr(0, f.size() - 8) : f;
    if (g.rfind(kPublishPrefix, 0) != 0 || !ends_with(g, ".tmp")) return false;
    const std::string core = g.substr(std::strlen(kPublishPrefix), g.size() - std::strlen(kPublishPrefix) - 4);
    const auto r = core.rfind('-');
    if (r == std::string::npos || r == 0) return false;
    const auto p = core.rfind('-', r - 1);
    if (p == std::string::npos) return false;
    if (core.substr(0, p) != host) return false;
    const std::string pid_text = core.substr(p + 1, r - p - 1);
    if (pid_text.empty() || !std::all_of(pid_text.begin(), pid_text.end(), ::isdigit)) return false;
    const long pid = std::strtol(pid_text.c_str(), nullptr, 10);
    if (pid <= 0 || pid == static_cast<long>(::getpid())) return false;
    return ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH;
  });
}

void write_index(const std::string& dir, std::vector<RegistryEntry> entries) {
  std::sort(entries.begin(), entries.end(), entry_less);
  ojson doc;
  doc["format"] = kRegistryFormat;
  doc["format_version"] = kRegistryFormatVersion;
  doc["updated"] = utc_now_iso();
  doc["models"] = ojson::array();
  for (const auto& e : entries) doc["models"].push_back(registry_entry_json(e));
  write_file_atomic(dir + "/" + kIndexFile, doc.dump(2) + "\n", [] { fault_point("before-index-rename"); });
  // The table is derived: a failure here leaves the (authoritative) index committed.
  try {
    std::string md = "# Model registry\n\nGenerated from `index.json` (the authoritative index) at " + utc_now_iso() +
                     ". Do not edit; use `mfrec_registry`.\n\n";
    md += entries.empty() ? std::string("No models registered.\n") : format_registry_table(entries, true);
    write_file_atomic(dir + "/" + kIndexTable, md);
  } catch (const std::exception& ex) {
    spdlog::warn("registry {}: index.json updated, but {} was not: {}", dir, kIndexTable, ex.what());
  }
}

}  // namespace registry_detail

nlohmann::ordered_json registry_entry_json(const RegistryEntry& e) {
  ojson j;
  j["name"] = e.name;
  j["version"] = e.version;
  j["file"] = e.file;
  j["checksum"] = e.checksum;
  j["bytes"] = e.bytes;
  j["stages"] = e.stages;
  j["created"] = e.created;
  j["source"] = e.source;
  j["beats_baseline"] = beats_baseline(e.meta);
  j["meta"] = e.meta.is_null() ? ojson::object() : ojson::parse(e.meta.dump());
  if (!e.ann_file.empty())
    j["ann"] = {{"file", e.ann_file}, {"checksum", e.ann_checksum}, {"bytes", e.ann_bytes}, {"metric", e.ann_metric}};
  return j;
}

}  // namespace mfrec
