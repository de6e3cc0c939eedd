// Item and user catalogs (mfrec_prep --items / --users): header or --X-columns, rows matched to
// the events' ids, checked line by line.
#include "mfrec/prepare_catalog.hpp"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <unordered_map>

#include "mfrec/config.hpp"
#include "mfrec/csv.hpp"
#include "mfrec/error.hpp"
#include "mfrec/utf8.hpp"

namespace mfrec::prepare {
namespace {

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

const char* option_of(CatalogKind kind) { return kind == CatalogKind::kItems ? "items-columns" : "users-columns"; }
const char* what_of(CatalogKind kind) { return kind == CatalogKind::kItems ? "item" : "user"; }

bool skipped(const std::string& n) { return n.empty() || n == "-" || n == "skip"; }

}  // namespace

std::int64_t Catalog::column(const std::string& name) const {
  for (std::size_t c = 0; c < columns.size(); ++c)
    if (columns[c] == name) return static_cast<std::int64_t>(c);
  return -1;
}

std::string catalog_column(CatalogKind kind, const std::string& raw) {
  const std::string n = lower(raw);
  if (kind == CatalogKind::kItems) {
    static const std::vector<std::pair<const char*, const char*>> names = {
        {"id", "id"}, {"item_id", "id"}, {"item", "id"}, {"itemid", "id"}, {"product_id", "id"},
        {"productid", "id"}, {"product", "id"}, {"movie_id", "id"}, {"movieid", "id"}, {"sku", "id"},
        {"name", "name"}, {"title", "name"}, {"product_name", "name"}, {"item_name", "name"},
        {"movie_title", "name"}, {"category", "category"}, {"genre", "category"}, {"genres", "category"},
        {"product_category", "category"}, {"style", "style"}, {"subcategory", "style"},
        {"description", "description"}, {"desc", "description"}, {"price", "price"},
        {"gender_affinity", "gender_affinity"}};
    for (const auto& [alias, canon] : names)
      if (n == alias) return canon;
    return "";
  }
  for (const char* alias : {"id", "user_id", "user", "userid", "customer_id", "visitorid", "visitor_id"})
    if (n == alias) return "id";
  std::string out;
  for (char c : n) out += std::isalnum(static_cast<unsigned char>(c)) || c == '_' ? c : '_';
  return out;
}

void check_catalog_columns(CatalogKind kind, const std::vector<std::string>& names) {
  std::vector<std::string> seen;
  for (const auto& n : names) {
    if (skipped(n)) continue;
    const std::string c = catalog_column(kind, n);
    if (c.empty())
      throw ConfigError(std::string("option --") + option_of(kind) + ": unknown column '" + n +
                        "' (id, name, category, style, description, price, gender_affinity, or - to skip one)");
    for (const auto& s : seen)
      if (s == c) throw ConfigError(std::string("option --") + option_of(kind) + ": '" + n + "' names a column given already");
    seen.push_back(c);
  }
  bool id = false;
  for (const auto& s : seen) id = id || s == "id";
  if (!id) throw ConfigError(std::string("option --") + option_of(kind) + ": names no id column");
}

Catalog parse_catalog(std::istream& in, const std::string& name, const CsvLayout& layout, CatalogKind kind,
                      const std::vector<std::string>& ids) {
  Catalog cat;
  cat.kind = kind;
  std::unordered_map<std::string, std::size_t> index;
  for (std::size_t i = 0; i < ids.size(); ++i) index.emplace(ids[i], i);
  std::unordered_map<std::string, std::int64_t> first_line;  // of each id seen
  LineReader reader(in, layout);
  cat.delimiter = reader.delimiter();
  auto where = [&] { return name + ":" + std::to_string(reader.line_no()) + ": "; };

  // Field position -> detail column (-1: not kept); the id's position.
  std::vector<int> keep;
  int id_pos = -1;
  int n_fields = -1;   // with a header: every line has exactly this many
  int min_fields = 0;  // with --X-columns: at least this many (later fields are ignored)
  auto map = [&](const std::vector<std::string>& names, bool header) {
    keep.assign(names.size(), -1);
    for (std::size_t f = 0; f < names.size(); ++f) {
      if (!header && skipped(names[f])) continue;
      const std::string c = catalog_column(kind, names[f]);
      if (c == "id" && id_pos < 0) {
        id_pos = static_cast<int>(f);
      } else if (c.empty() || c == "id" || cat.column(c) >= 0) {
        cat.ignored.push_back(names[f]);
      } else {
        keep[f] = static_cast<int>(cat.columns.size());
        cat.columns.push_back(c);
      }
    }
  };
  if (!layout.columns.empty()) {
    map(layout.columns, false);
    min_fields = static_cast<int>(layout.columns.size());
  }

  std::string line;
  std::vector<std::string> f;
  bool first = layout.columns.empty();
  while (reader.next(line)) {
    csv::split_line(line, cat.delimiter, name, reader.line_no(), f);
    if (first) {
      first = false;
      bool has_id = false;
      for (const auto& x : f) has_id = has_id || catalog_column(kind, x) == "id";
      if (!has_id)
        throw InputError(where() + "the first line names no id column (e.g. " +
                         (kind == CatalogKind::kItems ? "item_id,name,category" : "user_id,age,gender") +
                         "); for a file without a header give --" + option_of(kind) + " (e.g. --" +
                         option_of(kind) + " id,name)");
      cat.header = true;
      map(f, true);
      n_fields = static_cast<int>(f.size());
      cat.values.assign(cat.columns.size(), std::vector<std::string>(ids.size()));
      continue;
    }
    if (cat.values.size() != cat.columns.size()) cat.values.assign(cat.columns.size(), std::vector<std::string>(ids.size()));
    const int nf = static_cast<int>(f.size());
    if (n_fields >= 0 && nf != n_fields)
      throw InputError(where() + "found " + std::to_string(nf) + " fields, the header has " + std::to_string(n_fields));
    if (n_fields < 0 && nf < min_fields)
      throw InputError(where() + "found " + std::to_string(nf) + " fields, --" + option_of(kind) + " names " +
                       std::to_string(min_fields));
    ++cat.rows;
    const std::string& id = f[static_cast<std::size_t>(id_pos)];
    if (id.empty()) throw InputError(where() + "empty " + what_of(kind) + " id");
    for (std::size_t k = 0; k < f.size() && k < keep.size(); ++k) {
      if (k != static_cast<std::size_t>(id_pos) && keep[k] < 0) continue;
      if (!utf8::valid(f[k]))
        throw InputError(where() + "field " + std::to_string(k + 1) + " " + utf8::describe_invalid(f[k]) +
                         "; convert the file to UTF-8 (e.g. iconv -f latin1 -t utf-8) or give --encoding latin1");
      if (keep[k] >= 0 && cat.columns[static_cast<std::size_t>(keep[k])] == "price" && !f[k].empty()) {
        char* end = nullptr;
        const double p = std::strtod(f[k].c_str(), &end);
        if (end != f[k].c_str() + f[k].size() || !std::isfinite(p) || p < 0 || p > 3.4e38)
          throw InputError(where() + "price '" + f[k] + "' is not a finite number >= 0");
      }
    }
    const auto seen = first_line.emplace(id, reader.line_no());
    if (!seen.second)
      throw InputError(where() + what_of(kind) + " id '" + id + "' appears again (first on line " +
                       std::to_string(seen.first->second) + ")");
    const auto at = index.find(id);
    if (at == index.end()) continue;  // no events: not in the matrices
    ++cat.matched;
    for (std::size_t k = 0; k < f.size() && k < keep.size(); ++k)
      if (keep[k] >= 0) cat.values[static_cast<std::size_t>(keep[k])][at->second] = f[k];
  }
  if (reader.bad()) throw InputError(name + ": read error after line " + std::to_string(reader.lines()));
  cat.lines = reader.lines();
  if (cat.values.size() != cat.columns.size()) cat.values.assign(cat.columns.size(), std::vector<std::string>(ids.size()));
  if (cat.rows == 0) throw InputError(name + ": no " + what_of(kind) + "s (no data lines)");
  return cat;
}

Catalog read_catalog(const CatalogSource& src, CatalogKind kind, const std::vector<std::string>& ids) {
  std::ifstream in(src.path, std::ios::binary);
  if (!in) throw InputError(src.path + ": cannot open: " + std::strerror(errno));
  return parse_catalog(in, src.path, src.layout, kind, ids);
}

dataset::ItemTable item_table(const std::vector<std::string>& ids, const Catalog& c) {
  dataset::ItemTable t;
  t.resize(ids.size());
  t.id = ids;
  const std::pair<const char*, std::vector<std::string>*> text[] = {
      {"name", &t.name}, {"category", &t.category}, {"style", &t.style}, {"description", &t.description},
      {"gender_affinity", &t.gender_affinity}};
  for (const auto& [col, out] : text)
    if (const auto k = c.column(col); k >= 0) *out = c.values[static_cast<std::size_t>(k)];
  if (const auto k = c.column("price"); k >= 0)
    for (std::size_t i = 0; i < ids.size(); ++i) {
      const std::string& p = c.values[static_cast<std::size_t>(k)][i];
      t.price[i] = p.empty() ? 0.0f : static_cast<float>(std::strtod(p.c_str(), nullptr));
    }
  return t;
}

}  // namespace mfrec::prepare
