#include "mfrec/dataset.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "mfrec/comm.hpp"
#include "mfrec/error.hpp"
#include "mfrec/hash.hpp"

namespace mfrec::dataset {

void ItemTable::resize(std::size_t n) {
  for (auto* v : {&id, &name, &category, &style, &description, &gender_affinity}) v->resize(n);
  price.resize(n);
}

void write_items(h5::File& f, const ItemTable& items) {
  f.write_strings("/items/id", items.id);
  f.write_strings("/items/name", items.name);
  f.write_strings("/items/category", items.category);
  f.write_strings("/items/style", items.style);
  f.write_strings("/items/description", items.description);
  f.write_strings("/items/gender_affinity", items.gender_affinity);
  f.write_vector("/items/price", items.price);
}

ItemTable read_items(const h5::File& f) {
  ItemTable t;
  f.require("/items/id", h5::TypeClass::kString, 1);
  t.id = f.read_strings("/items/id");
  auto opt = [&](const char* name, std::vector<std::string>& out) {
    if (f.exists(name)) out = f.read_strings(name);
    out.resize(t.id.size());
  };
  opt("/items/name", t.name);
  opt("/items/category", t.category);
  opt("/items/style", t.style);
  opt("/items/description", t.description);
  opt("/items/gender_affinity", t.gender_affinity);
  if (f.exists("/items/price")) {
    f.require<float>("/items/price", 1);
    t.price = f.read_all<float>("/items/price");
  }
  t.price.resize(t.id.size(), 0.0f);
  return t;
}

MatrixInfo matrix_info(const h5::File& f, const std::string& group) {
  if (!f.exists(group)) throw InputError(f.path() + ": missing matrix " + group + " (run mfrec_prep on the data set first)");
  auto ip = f.require<std::int64_t>(group + "/indptr", 1);
  auto ix = f.require<std::int32_t>(group + "/indices", 1);
  auto dt = f.require<float>(group + "/data", 1);
  MatrixInfo m;
  m.n_rows = static_cast<Index>(ip[0]) - 1;
  m.nnz = static_cast<Index>(ix[0]);
  m.n_cols = f.attr_int(group, "n_cols");
  if (m.n_rows < 0) throw InputError(f.path() + ": dataset " + group + "/indptr is empty");
  if (dt[0] != ix[0])
    throw InputError(f.path() + ": dataset " + group + "/data has " + std::to_string(dt[0]) + " values but " +
                     group + "/indices has " + std::to_string(ix[0]));
  if (f.has_attr(group, "n_rows") && f.attr_int(group, "n_rows") != m.n_rows)
    throw InputError(f.path() + ": " + group + ": attribute n_rows does not match indptr's length");
  return m;
}

std::vector<std::int64_t> read_indptr(const h5::File& f, const std::string& group) {
  MatrixInfo m = matrix_info(f, group);
  auto indptr = f.read_all<std::int64_t>(group + "/indptr");
  if (indptr.front() != 0 || indptr.back() != m.nnz)
    throw InputError(f.path() + ": dataset " + group + "/indptr must run from 0 to nnz (" + std::to_string(m.nnz) + ")");
  for (std::size_t i = 1; i < indptr.size(); ++i)
    if (indptr[i] < indptr[i - 1])
      throw InputError(f.path() + ": dataset " + group + "/indptr decreases at row " + std::to_string(i - 1));
  return indptr;
}

namespace {

// Sorts each row's column indices (with their values) where a row is not sorted already; a
// column repeated within a row is an InputError.
void sort_rows(const h5::File& f, const std::string& group, CsrBlock& b) {
  std::vector<std::pair<std::int32_t, float>> row;
  for (Index r = 0; r < b.n_rows(); ++r) {
    const std::int64_t lo = b.indptr[r], hi = b.indptr[r + 1];
    bool sorted = true;
    for (std::int64_t k = lo + 1; k < hi && sorted; ++k) sorted = b.indices[k - 1] < b.indices[k];
    if (sorted) continue;
    row.clear();
    for (std::int64_t k = lo; k < hi; ++k) row.emplace_back(b.indices[k], b.data[k]);
    std::sort(row.begin(), row.end(), [](const auto& x, const auto& y) { return x.first < y.first; });
    for (std::int64_t k = lo; k < hi; ++k) {
      b.indices[k] = row[static_cast<std::size_t>(k - lo)].first;
      b.data[k] = row[static_cast<std::size_t>(k - lo)].second;
      if (k > lo && b.indices[k] == b.indices[k - 1])
        throw InputError(f.path() + ": dataset " + group + "/indices: column " + std::to_string(b.indices[k]) +
                         " appears twice in row " + std::to_string(b.row_begin + r));
    }
  }
}

std::uint64_t triple_hash(std::int64_t row, std::int32_t col, float value) {
  std::uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  return splitmix64(splitmix64(static_cast<std::uint64_t>(row)) ^
                    splitmix64(static_cast<std::uint64_t>(static_cast<std::uint32_t>(col)) << 32 | bits));
}

}  // namespace

CsrBlock read_csr_rows(const h5::File& f, const std::string& group, Index row_begin, Index row_end) {
  MatrixInfo m = matrix_info(f, group);
  CsrBlock b;
  b.n_rows_global = m.n_rows;
  b.n_cols = m.n_cols;
  b.row_begin = row_begin;
  const Index n = row_end - row_begin;
  std::vector<std::int64_t> ptr(static_cast<std::size_t>(n) + 1);
  f.read_rows(group + "/indptr", static_cast<Index>(row_begin), static_cast<Index>(n + 1), ptr.data(), true);
  // A bad pointer must not skip the collective reads below (the other ranks would wait there):
  // read nothing, then throw.
  std::string bad;
  std::int64_t first = ptr.front(), count = ptr.back() - first;
  if (count < 0) bad = f.path() + ": dataset " + group + "/indptr decreases";
  b.indptr.resize(ptr.size());
  for (std::size_t i = 0; i < ptr.size() && bad.empty(); ++i) {
    b.indptr[i] = ptr[i] - first;
    if (i > 0 && b.indptr[i] < b.indptr[i - 1])
      bad = f.path() + ": dataset " + group + "/indptr decreases at row " + std::to_string(row_begin + Index(i) - 1);
  }
  if (!bad.empty()) first = count = 0;
  b.indices.resize(static_cast<std::size_t>(count));
  b.data.resize(static_cast<std::size_t>(count));
  f.read_rows(group + "/indices", static_cast<Index>(first), static_cast<Index>(count), b.indices.data());
  f.read_rows(group + "/data", static_cast<Index>(first), static_cast<Index>(count), b.data.data());
  if (!bad.empty()) throw InputError(bad);
  sort_rows(f, group, b);
  for (std::int64_t k = 0; k < count; ++k) {
    if (b.indices[k] < 0 || b.indices[k] >= m.n_cols)
      throw InputError(f.path() + ": dataset " + group + "/indices[" + std::to_string(first + k) + "] = " +
                       std::to_string(b.indices[k]) + " is outside [0, " + std::to_string(m.n_cols) + ")");
    if (!std::isfinite(b.data[k]) || b.data[k] < 0)
      throw InputError(f.path() + ": dataset " + group + "/data[" + std::to_string(first + k) + "] = " +
                       std::to_string(b.data[k]) + " is not a finite non-negative confidence");
  }
  return b;
}

void write_csr(h5::File& f, const std::string& group, const CsrBlock& local, const Comm& comm) {
  const std::int64_t rows_before = comm.exscan_sum<std::int64_t>(local.n_rows());
  const std::int64_t nnz_before = comm.exscan_sum<std::int64_t>(local.nnz());
  const std::int64_t n_rows = comm.sum<std::int64_t>(local.n_rows());
  const std::int64_t nnz = comm.sum<std::int64_t>(local.nnz());
  if (rows_before != local.row_begin) throw Error("write_csr: blocks are not consecutive in rank order");
  h5::DatasetOptions opt{1 << 20, 0};
  f.create_dataset<std::int64_t>(group + "/indptr", {static_cast<Index>(n_rows + 1)}, opt);
  f.create_dataset<std::int32_t>(group + "/indices", {static_cast<Index>(nnz)}, opt);
  f.create_dataset<float>(group + "/data", {static_cast<Index>(nnz)}, opt);
  // Each rank writes its rows' pointers shifted by the non-zeros before it; the last rank
  // also writes the closing entry.
  const bool last = comm.rank() == comm.size() - 1;
  std::vector<std::int64_t> ptr(local.indptr.begin(), local.indptr.end() - (last ? 0 : 1));
  for (auto& p : ptr) p += nnz_before;
  f.write_rows(group + "/indptr", static_cast<Index>(rows_before), ptr.size(), ptr.data());
  f.write_rows(group + "/indices", static_cast<Index>(nnz_before), local.indices.size(), local.indices.data());
  f.write_rows(group + "/data", static_cast<Index>(nnz_before), local.data.size(), local.data.data());
  f.set_attr(group, "n_rows", n_rows);
  f.set_attr(group, "n_cols", static_cast<std::int64_t>(local.n_cols));
  f.set_attr(group, "nnz", nnz);
}

std::uint64_t triples_checksum(const CsrBlock& local, bool transposed, const Comm& comm) {
  // A sum (mod 2^64) of a mixed hash of every triple: order-free, so it depends neither on how
  // the rows were partitioned over ranks nor on which side is the row.
  std::uint64_t h = 0;
  for (Index r = 0; r < local.n_rows(); ++r)
    for (std::int64_t k = local.indptr[r]; k < local.indptr[r + 1]; ++k) {
      const std::int64_t row = local.row_begin + r;
      const std::int32_t col = local.indices[k];
      h += transposed ? triple_hash(col, static_cast<std::int32_t>(row), local.data[k])
                      : triple_hash(row, col, local.data[k]);
    }
  return comm.sum<std::uint64_t>(h);
}

std::uint64_t fingerprint(const CsrBlock& local, const Comm& comm) {
  const std::uint64_t h = triples_checksum(local, false, comm);
  return splitmix64(h ^ static_cast<std::uint64_t>(local.n_rows_global) * 31 ^ static_cast<std::uint64_t>(local.n_cols));
}

}  // namespace mfrec::dataset

namespace mfrec {

namespace {

// The shapes of /matrix/train and its transpose, checked against each other and the format.
dataset::MatrixInfo checked_train_shape(const h5::File& f, const std::string& train, const std::string& by_item) {
  const dataset::MatrixInfo mu = dataset::matrix_info(f, train);  // first: its error says to run mfrec_prep
  const dataset::MatrixInfo mi = dataset::matrix_info(f, by_item);
  const std::string format = f.has_attr("/", "format") ? f.attr_string("/", "format") : "";
  if (format != dataset::kPreparedFormat)
    throw InputError(f.path() + ": root attribute format is " + (format.empty() ? "missing" : "'" + format + "'") +
                     ", expected '" + dataset::kPreparedFormat + "' (a file written by mfrec_prep)");
  if (mu.n_rows != mi.n_cols || mu.n_cols != mi.n_rows || mu.nnz != mi.nnz)
    throw InputError(f.path() + ": " + train + " (" + std::to_string(mu.n_rows) + " x " + std::to_string(mu.n_cols) +
                     ", " + std::to_string(mu.nnz) + " non-zeros) and " + by_item + " (" + std::to_string(mi.n_rows) +
                     " x " + std::to_string(mi.n_cols) + ", " + std::to_string(mi.nnz) + " non-zeros) are not transposes");
  if (mu.n_rows == 0) throw InputError(f.path() + ": dataset " + train + " has no users (rows)");
  if (mu.n_cols == 0) throw InputError(f.path() + ": dataset " + train + " has no items (columns)");
  if (mu.nnz == 0) throw InputError(f.path() + ": dataset " + train + " has no non-zeros");
  return mu;
}

}  // namespace

TrainData load_train_data(const h5::File& f, const Comm& comm) {
  TrainData d;
  const std::string train = "/matrix/train", by_item = "/matrix/train_by_item";
  // Each step ends in an agreement, so a rank that fails never leaves the others waiting in the
  // next collective read.
  dataset::MatrixInfo mu;
  agree_on(comm, [&] { mu = checked_train_shape(f, train, by_item); });
  d.n_users = mu.n_rows;
  d.n_items = mu.n_cols;
  d.nnz = mu.nnz;
  // Cost of a row: its non-zeros plus a fixed share for the dense f x f work every row does.
  agree_on(comm, [&] {
    d.user_bounds = partition_by_nnz(dataset::read_indptr(f, train), comm.size(), 8.0);
    d.item_bounds = partition_by_nnz(dataset::read_indptr(f, by_item), comm.size(), 8.0);
  });
  const int r = comm.rank();
  agree_on(comm, [&] { d.users = dataset::read_csr_rows(f, train, d.user_bounds[r], d.user_bounds[r + 1]); });
  agree_on(comm, [&] { d.items = dataset::read_csr_rows(f, by_item, d.item_bounds[r], d.item_bounds[r + 1]); });
  // Same shape and nnz but other content trains garbage silently: compare the triples.
  if (dataset::triples_checksum(d.users, false, comm) != dataset::triples_checksum(d.items, true, comm))
    throw AgreedError(f.path() + ": dataset " + by_item + " is not the transpose of " + train +
                      " (same shape and non-zeros, different entries): prepare the data again with mfrec_prep");
  return d;
}

}  // namespace mfrec
