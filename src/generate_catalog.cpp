// The generator's items: the Retail Demo Store catalog read from YAML (every field checked,
// text included), and resized by stratified subsetting or seeded cloning.
#include "mfrec/generate_catalog.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <numeric>
#include <set>

#include "mfrec/error.hpp"
#include "mfrec/generate_random.hpp"
#include "mfrec/utf8.hpp"

namespace mfrec::gen {

dataset::ItemTable load_catalog(const std::string& path) {
  {
    std::ifstream probe(path);
    if (!probe) throw InputError(path + ": cannot read: " + std::strerror(errno));
  }
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::Exception& e) {
    throw InputError(path + ": not a valid YAML catalog: " + e.what());
  }
  if (!root.IsSequence() || root.size() == 0)
    throw InputError(path + ": expected a YAML list of products");
  dataset::ItemTable t;
  std::set<std::string> seen;
  for (std::size_t i = 0; i < root.size(); ++i) {
    const YAML::Node& p = root[i];
    auto text = [&](const char* key, bool required) -> std::string {
      const YAML::Node v = p[key];
      if (!v || v.IsNull()) {
        if (required) throw InputError(path + ": product " + std::to_string(i) + " has no " + key);
        return "";
      }
      if (!v.IsScalar()) throw InputError(path + ": product " + std::to_string(i) + ": " + key + " is not a scalar");
      std::string s = v.as<std::string>();
      // Names are stored and served as UTF-8: refuse other encodings here, where the line is known.
      if (!utf8::valid(s))
        throw InputError(path + ":" + std::to_string(v.Mark().line + 1) + ": product " + std::to_string(i) + ": " +
                         key + " " + utf8::describe_invalid(s) + "; convert the file to UTF-8 (e.g. iconv -f latin1 -t utf-8)");
      return s;
    };
    try {
      t.id.push_back(text("id", true));
      t.name.push_back(text("name", false));
      t.category.push_back(text("category", true));
      t.style.push_back(text("style", false));
      t.description.push_back(text("description", false));
      std::string g = text("gender_affinity", false);
      if (!g.empty() && g != "M" && g != "F")
        throw InputError(path + ": product " + t.id.back() + ": gender_affinity must be M, F or absent, not '" + g + "'");
      t.gender_affinity.push_back(g);
      const YAML::Node price = p["price"];
      const double v = price && price.IsScalar() ? price.as<double>() : -1.0;
      if (!std::isfinite(v) || v < 0) throw InputError(path + ": product " + t.id.back() + ": missing or bad price");
      t.price.push_back(static_cast<float>(v));
    } catch (const YAML::Exception& e) {
      throw InputError(path + ": product " + std::to_string(i) + ": " + e.what());
    }
    if (!seen.insert(t.id.back()).second) throw InputError(path + ": duplicate product id " + t.id.back());
  }
  return t;
}

namespace {

void append_item(dataset::ItemTable& out, const dataset::ItemTable& from, std::size_t i) {
  out.id.push_back(from.id[i]);
  out.name.push_back(from.name[i]);
  out.category.push_back(from.category[i]);
  out.style.push_back(from.style[i]);
  out.description.push_back(from.description[i]);
  out.gender_affinity.push_back(from.gender_affinity[i]);
  out.price.push_back(from.price[i]);
}

// Integer shares of n proportional to sizes (largest remainder; ties to the first), each at
// least `floor` and at most its size.
std::vector<std::int64_t> apportion(const std::vector<std::int64_t>& sizes, std::int64_t n, std::int64_t floor_each) {
  const double total = static_cast<double>(std::accumulate(sizes.begin(), sizes.end(), std::int64_t(0)));
  std::vector<std::int64_t> a(sizes.size());
  std::vector<double> quota(sizes.size());
  std::int64_t sum = 0;
  for (std::size_t c = 0; c < sizes.size(); ++c) {
    quota[c] = static_cast<double>(n) * static_cast<double>(sizes[c]) / total;
    a[c] = std::min(sizes[c], std::max(floor_each, static_cast<std::int64_t>(quota[c])));
    sum += a[c];
  }
  while (sum != n) {  // hand out (or take back) one at a time where the quota is furthest off
    std::size_t best = sizes.size();
    double best_gap = 0;
    for (std::size_t c = 0; c < sizes.size(); ++c) {
      const double gap = sum < n ? quota[c] - static_cast<double>(a[c]) : static_cast<double>(a[c]) - quota[c];
      const bool can = sum < n ? a[c] < sizes[c] : a[c] > floor_each;
      if (can && (best == sizes.size() || gap > best_gap)) {
        best = c;
        best_gap = gap;
      }
    }
    a[best] += sum < n ? 1 : -1;
    sum += sum < n ? 1 : -1;
  }
  return a;
}

}  // namespace

dataset::ItemTable resize_catalog(const dataset::ItemTable& catalog, std::int64_t n_items, std::uint64_t seed) {
  const auto size = static_cast<std::int64_t>(catalog.size());
  if (n_items <= 0 || size == 0) throw ConfigError("option --items: must be positive");
  dataset::ItemTable out;
  if (n_items <= size) {
    // Stratified: each category keeps its share (at least one item when there are enough), and
    // within a category the items are taken evenly over its (style, catalog order) listing.
    std::vector<std::string> cats;
    std::map<std::string, std::vector<std::size_t>> members;
    for (std::size_t i = 0; i < catalog.size(); ++i) {
      auto& m = members[catalog.category[i]];
      if (m.empty()) cats.push_back(catalog.category[i]);
      m.push_back(i);
    }
    std::vector<std::int64_t> sizes;
    for (const auto& c : cats) sizes.push_back(static_cast<std::int64_t>(members[c].size()));
    const auto share = apportion(sizes, n_items, n_items >= static_cast<std::int64_t>(cats.size()) ? 1 : 0);
    std::vector<std::size_t> keep;
    for (std::size_t c = 0; c < cats.size(); ++c) {
      auto m = members[cats[c]];
      std::stable_sort(m.begin(), m.end(), [&](std::size_t x, std::size_t y) { return catalog.style[x] < catalog.style[y]; });
      for (std::int64_t j = 0; j < share[c]; ++j)
        keep.push_back(m[static_cast<std::size_t>((2 * j + 1) * sizes[c] / (2 * share[c]))]);
    }
    std::sort(keep.begin(), keep.end());
    for (std::size_t i : keep) append_item(out, catalog, i);
    return out;
  }
  out = catalog;
  for (std::int64_t i = size; i < n_items; ++i) {
    const auto t = static_cast<std::size_t>(i % size);
    const std::string k = std::to_string(i / size);
    Rng rng(stream_seed(seed, kCloneStream, static_cast<std::uint64_t>(i)));
    const double price = std::max(0.01, std::round(catalog.price[t] * std::exp(0.15 * rng.normal()) * 100) / 100);
    append_item(out, catalog, t);
    out.id.back() += "-" + k;
    out.name.back() += " #" + k;
    out.price.back() = static_cast<float>(price);
  }
  return out;
}

}  // namespace mfrec::gen
