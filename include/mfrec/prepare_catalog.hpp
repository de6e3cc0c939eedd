// Item and user catalogs imported beside a CSV of events (mfrec_prep --items / --users): a
// delimited file of one id column plus detail columns (an item's name, category, style,
// description, price and gender affinity, as mfrec_gen's items.csv has them; any columns of a
// user), matched to the events' ids. Pure (no MPI).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "mfrec/dataset.hpp"
#include "mfrec/prepare.hpp"

namespace mfrec::prepare {

enum class CatalogKind { kItems, kUsers };

struct Catalog {
  CatalogKind kind = CatalogKind::kItems;
  std::vector<std::string> columns;               // the detail columns kept, canonical names
  std::vector<std::vector<std::string>> values;   // values[c][index]: "" for an id without a row
  std::vector<std::string> ignored;               // header columns not used (items only)
  char delimiter = ',';
  bool header = false;
  std::int64_t rows = 0;       // data rows read
  std::int64_t matched = 0;    // rows whose id is among the events' ids
  std::int64_t lines = 0;
  std::int64_t column(const std::string& name) const;  // index in columns, or -1
};

// The canonical name of a catalog column named `name` in a header or --items-columns /
// --users-columns: "id" for the id column; for items one of name, category, style, description,
// price, gender_affinity ("" when unknown); for users the name lower-cased with other characters than [a-z0-9_]
// as '_'.
std::string catalog_column(CatalogKind kind, const std::string& name);
// Checks --items-columns / --users-columns (ConfigError naming the option): exactly one id
// column, item columns known, no column twice.
void check_catalog_columns(CatalogKind kind, const std::vector<std::string>& names);

// Reads the catalog; `ids` are the events' ids in index order. Throws InputError naming the file
// and line for a malformed line, an empty or repeated id, a price that is not a finite number
// >= 0, text that is not UTF-8, and a first line without an id column when no --X-columns.
Catalog read_catalog(const CatalogSource& src, CatalogKind kind, const std::vector<std::string>& ids);
Catalog parse_catalog(std::istream& in, const std::string& name, const CsvLayout& layout, CatalogKind kind,
                      const std::vector<std::string>& ids);

// An item table (every column, in index order) from the events' item ids and an item catalog.
dataset::ItemTable item_table(const std::vector<std::string>& ids, const Catalog& c);

}  // namespace mfrec::prepare
