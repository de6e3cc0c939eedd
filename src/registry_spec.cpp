// Registry names, stage labels and specs ("NAME", "NAME:3", "NAME@production").
#include <algorithm>
#include <cctype>
#include <set>

#include "mfrec/error.hpp"
#include "registry_internal.hpp"

namespace mfrec {
namespace registry_detail {

namespace {

std::string stage_list() {
  std::string s;
  for (const auto& st : registry_stages()) s += (s.empty() ? "" : ", ") + st;
  return s;
}

}  // namespace

bool valid_name(const std::string& s) {
  if (s.empty() || s.size() > 100) return false;
  if (!std::isalnum(static_cast<unsigned char>(s[0]))) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
  });
}

void check_name(const std::string& name) {
  if (!valid_name(name))
    throw InputError("invalid model name '" + name +
                     "': use letters, digits, '.', '_' and '-', starting with a letter or digit");
}

void check_stage(const std::string& stage) {
  const auto& all = registry_stages();
  if (std::find(all.begin(), all.end(), stage) == all.end())
    throw InputError("unknown stage '" + stage + "' (stages: " + stage_list() + ")");
}

Spec parse_spec(const std::string& text) {
  Spec s;
  const auto bad = [&]() {
    return InputError("bad model spec '" + text + "': expected NAME, NAME:VERSION or NAME@STAGE");
  };
  const auto colon = text.find(':'), at = text.find('@');
  if (colon != std::string::npos && at != std::string::npos) throw bad();
  if (colon != std::string::npos) {
    s.name = text.substr(0, colon);
    const std::string v = text.substr(colon + 1);
    if (v.empty() || v.size() > 9 || !std::all_of(v.begin(), v.end(), ::isdigit)) throw bad();
    s.version = std::stoi(v);
    if (s.version < 1) throw bad();
  } else if (at != std::string::npos) {
    s.name = text.substr(0, at);
    s.stage = text.substr(at + 1);
    if (s.stage.empty()) throw bad();
  } else {
    s.name = text;
  }
  if (s.name.empty()) throw bad();
  check_name(s.name);
  if (!s.stage.empty()) check_stage(s.stage);
  return s;
}

// Index into `entries` of the version `spec` names.
std::size_t resolve(const std::vector<RegistryEntry>& entries, const std::string& text, const std::string& dir) {
  const Spec s = parse_spec(text);
  std::vector<std::size_t> versions;
  std::set<std::string> names;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    names.insert(entries[i].name);
    if (entries[i].name == s.name) versions.push_back(i);
  }
  if (versions.empty()) {
    std::string known;
    int shown = 0;
    for (const auto& n : names) {
      if (shown++ == 10) {
        known += ", ...";
        break;
      }
      known += (known.empty() ? "" : ", ") + n;
    }
    throw InputError("unknown model '" + s.name + "' in registry " + dir +
                     (known.empty() ? std::string(" (the registry is empty)") : " (models: " + known + ")"));
  }
  if (s.version > 0) {
    for (auto i : versions)
      if (entries[i].version == s.version) return i;
    throw InputError("model '" + s.name + "' has no version " + std::to_string(s.version) + " (versions " +
                     std::to_string(entries[versions.front()].version) + " to " +
                     std::to_string(entries[versions.back()].version) + ")");
  }
  if (!s.stage.empty()) {
    for (auto i : versions)
      if (entries[i].has_stage(s.stage)) return i;
    throw InputError("no version of model '" + s.name + "' has the stage '" + s.stage + "'");
  }
  std::size_t best = versions.front();
  for (auto i : versions)
    if (entries[i].version > entries[best].version) best = i;
  return best;
}

// Give `stage` to entries[target], taking it from the other versions of the same name.
bool move_stage(std::vector<RegistryEntry>& entries, std::size_t target, const std::string& stage) {
  bool changed = false;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    if (i == target || entries[i].name != entries[target].name) continue;
    auto& st = entries[i].stages;
    const auto it = std::remove(st.begin(), st.end(), stage);
    if (it != st.end()) {
      st.erase(it, st.end());
      changed = true;
    }
  }
  if (!entries[target].has_stage(stage)) {
    entries[target].stages.push_back(stage);
    changed = true;
  }
  return changed;
}

}  // namespace registry_detail

const std::vector<std::string>& registry_stages() {
  static const std::vector<std::string> stages{"candidate", "staging", "production"};
  return stages;
}

bool RegistryEntry::has_stage(const std::string& stage) const {
  return std::find(stages.begin(), stages.end(), stage) != stages.end();
}

}  // namespace mfrec
