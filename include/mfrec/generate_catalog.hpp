// The generator's items: the Retail Demo Store product list (YAML), and that list resized to the
// requested number of items.
#pragma once
#include <cstdint>
#include <string>

#include "mfrec/dataset.hpp"

namespace mfrec::gen {

// The Retail Demo Store product list (YAML). Throws InputError naming the file (and the line of
// a product): unreadable, not a list, a missing or bad field, a duplicate id, or text that is
// not valid UTF-8.
dataset::ItemTable load_catalog(const std::string& path);
// n_items items: the catalog itself; a stratified subset of it (every category keeps its share,
// at least one item each when n_items >= categories); or the catalog plus clones "<name> #k"
// with the category, style and gender affinity of catalog item (i mod size), a jittered price
// and the id "<catalog id>-k".
dataset::ItemTable resize_catalog(const dataset::ItemTable& catalog, std::int64_t n_items, std::uint64_t seed);

}  // namespace mfrec::gen
