// The HDF5 schema of mfrec's data files, and reading/writing CSR row blocks in parallel.
//
// Data set (mfrec_gen):   /users/{id,gender,age,persona,discount_persona,channel}
//                         /items/{id,name,category,style,description,price,gender_affinity}
//                         /events/{user,item,type,timestamp,discount}
// Prepared (mfrec_prep):  /users/id, /items/* (copied), and three CSR matrices
//                         /matrix/train, /matrix/train_by_item (its transpose), /matrix/test,
//                         each a group {indptr int64 [rows+1], indices int32 [nnz], data float32 [nnz]}
//                         with attributes n_rows, n_cols, nnz.
// The full layout is documented in docs/data-format.md.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "mfrec/h5.hpp"
#include "mfrec/partition.hpp"
#include "mfrec/types.hpp"

namespace mfrec {
class Comm;
}

namespace mfrec::dataset {

inline constexpr const char* kDatasetFormat = "mfrec-dataset";
inline constexpr const char* kPreparedFormat = "mfrec-prepared";
inline constexpr std::int64_t kFormatVersion = 1;

inline constexpr int kNumEventTypes = 5;
inline constexpr std::array<const char*, kNumEventTypes> kEventTypes = {"View", "AddToCart", "ViewCart",
                                                                        "StartCheckout", "Purchase"};
inline constexpr std::array<float, kNumEventTypes> kDefaultWeights = {1, 2, 3, 4, 5};

// Item details (the catalog), in item-index order.
struct ItemTable {
  std::vector<std::string> id, name, category, style, description, gender_affinity;
  std::vector<float> price;
  std::size_t size() const { return id.size(); }
  void resize(std::size_t n);
};
// Collective on a parallel file: every rank passes the same table (rank 0's values are written,
// but each rank's sizes and string widths shape the datasets, so they must agree).
void write_items(h5::File& f, const ItemTable& items);
ItemTable read_items(const h5::File& f);

struct MatrixInfo {
  Index n_rows = 0, n_cols = 0, nnz = 0;
};
// Checks that `group` holds a CSR matrix with the right types and consistent shapes; throws
// InputError naming the file and dataset otherwise.
MatrixInfo matrix_info(const h5::File& f, const std::string& group);
// The whole row pointer (rows + 1 values). Validates that it starts at 0, never decreases and
// ends at nnz.
std::vector<std::int64_t> read_indptr(const h5::File& f, const std::string& group);
// Rows [row_begin, row_end) as a CsrBlock (collective on a parallel file). Validates column
// indices and that every value is finite and non-negative. Column indices that are not sorted
// within a row (a file written by other tools, e.g. scipy) are sorted on read, their values with
// them; a column repeated within a row is an InputError.
CsrBlock read_csr_rows(const h5::File& f, const std::string& group, Index row_begin, Index row_end);
// Write a distributed CSR matrix: every rank passes its block; blocks are consecutive in rank
// order (rank r's row_begin = sum of the rows of ranks < r). Collective.
void write_csr(h5::File& f, const std::string& group, const CsrBlock& local, const Comm& comm);

// Fingerprint of a matrix (FNV-1a over indptr, indices and data, combined over ranks in row
// order): identifies the data a model was trained on. Collective.
std::uint64_t fingerprint(const CsrBlock& local, const Comm& comm);

// Order-free checksum of a block's (row, column, value) triples, summed over comm; with
// `transposed`, of its (column, row, value) triples, so a matrix and its transpose agree.
// Collective.
std::uint64_t triples_checksum(const CsrBlock& local, bool transposed, const Comm& comm);

}  // namespace mfrec::dataset

namespace mfrec {

// This rank's share of a prepared file's training data.
struct TrainData {
  Index n_users = 0, n_items = 0, nnz = 0;
  Bounds user_bounds, item_bounds;  // partition over the comm's ranks
  CsrBlock users;                   // local rows of /matrix/train (user x item)
  CsrBlock items;                   // local rows of /matrix/train_by_item (item x user)
  Index user_begin() const { return users.row_begin; }
  Index item_begin() const { return items.row_begin; }
};

// Collective over comm: reads the row pointers, partitions both sides by non-zeros and reads
// this rank's rows. Every failure is agreed over comm (AgreedError on every rank, naming the file
// and dataset): a root attribute format other than mfrec-prepared, missing matrices or shapes
// that disagree, no users, no items or no non-zeros, bad indices or values, and a
// /matrix/train_by_item that is not the transpose of /matrix/train (compared by checksum).
TrainData load_train_data(const h5::File& f, const Comm& comm);

}  // namespace mfrec
