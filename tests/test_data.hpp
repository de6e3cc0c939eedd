// Small prepared data sets for tests, written through the library's own writers.
#pragma once
#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "mfrec/comm.hpp"
#include "mfrec/dataset.hpp"
#include "mfrec/partition.hpp"

namespace mfrec::testdata {

struct Triplet {
  Index row, col;
  float value;
};

// Rows [b, e) of the global matrix given as triplets sorted by (row, col).
inline CsrBlock block_of(const std::vector<Triplet>& t, Index n_rows, Index n_cols, Index b, Index e) {
  CsrBlock blk;
  blk.n_rows_global = n_rows;
  blk.n_cols = n_cols;
  blk.row_begin = b;
  blk.indptr.assign(1, 0);
  std::size_t k = 0;
  while (k < t.size() && t[k].row < b) ++k;
  for (Index r = b; r < e; ++r) {
    while (k < t.size() && t[k].row == r) {
      blk.indices.push_back(static_cast<std::int32_t>(t[k].col));
      blk.data.push_back(t[k].value);
      ++k;
    }
    blk.indptr.push_back(static_cast<std::int64_t>(blk.indices.size()));
  }
  return blk;
}

// Writes a prepared file (collective over comm) from train and test triplets (user, item, value).
inline void write_prepared(const std::string& path, const Comm& comm, Index n_users, Index n_items,
                           std::vector<Triplet> train, std::vector<Triplet> test) {
  auto by_row = [](const Triplet& a, const Triplet& b) { return a.row != b.row ? a.row < b.row : a.col < b.col; };
  std::sort(train.begin(), train.end(), by_row);
  std::sort(test.begin(), test.end(), by_row);
  std::vector<Triplet> tr;
  for (const auto& t : train) tr.push_back({t.col, t.row, t.value});
  std::sort(tr.begin(), tr.end(), by_row);

  h5::File f = h5::File::create_atomic(path, &comm);
  Bounds ub = partition_even(n_users, comm.size()), ib = partition_even(n_items, comm.size());
  const int r = comm.rank();
  dataset::write_csr(f, "/matrix/train", block_of(train, n_users, n_items, ub[r], ub[r + 1]), comm);
  dataset::write_csr(f, "/matrix/test", block_of(test, n_users, n_items, ub[r], ub[r + 1]), comm);
  dataset::write_csr(f, "/matrix/train_by_item", block_of(tr, n_items, n_users, ib[r], ib[r + 1]), comm);
  std::vector<std::string> ids;
  for (Index u = 0; u < n_users; ++u) ids.push_back("u" + std::to_string(u));
  f.write_strings("/users/id", ids);
  dataset::ItemTable items;
  items.resize(static_cast<std::size_t>(n_items));
  for (Index i = 0; i < n_items; ++i) {
    items.id[i] = "i" + std::to_string(i);
    items.name[i] = "Item " + std::to_string(i);
    items.category[i] = "cat" + std::to_string(i * 4 / n_items);
    items.price[i] = 1.0f + static_cast<float>(i);
  }
  dataset::write_items(f, items);
  f.set_attr("/", "format", dataset::kPreparedFormat);
  f.commit();
}

// A random user x item matrix with skewed item popularity and persona-like structure, split
// 80/20 into train and test, written as a prepared file (collective over comm).
// Users listed in `cold` get no training entries (only test entries).
inline void write_random_prepared(const std::string& path, const Comm& comm, Index n_users, Index n_items,
                                  int per_user = 8, std::uint64_t seed = 7, std::vector<Index> cold = {}) {
  std::mt19937_64 rng(seed);
  std::vector<Triplet> train, test;
  for (Index u = 0; u < n_users; ++u) {
    const Index group = u % 4;  // users of a group like the same quarter of the items
    std::vector<char> used(static_cast<std::size_t>(n_items), 0);
    const bool is_cold = std::find(cold.begin(), cold.end(), u) != cold.end();
    for (int j = 0; j < per_user; ++j) {
      Index i = (group * n_items / 4 + static_cast<Index>(rng() % static_cast<std::uint64_t>(std::max<Index>(1, n_items / 4)))) % n_items;
      if (rng() % 5 == 0) i = static_cast<Index>(rng() % static_cast<std::uint64_t>(n_items));
      if (used[i]) continue;
      used[i] = 1;
      const float c = static_cast<float>(1 + rng() % 5);
      (rng() % 5 == 0 || is_cold ? test : train).push_back({u, i, c});
    }
  }
  write_prepared(path, comm, n_users, n_items, std::move(train), std::move(test));
}

}  // namespace mfrec::testdata
