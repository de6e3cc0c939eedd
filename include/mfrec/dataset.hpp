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
// The event type's code (index in kEventTypes), or -1 when unknown. Case-insensitive.
int event_type_code(const std::string& name);

// Item details (the catalog), in item-index order.
struct ItemTable {
  std::vector<std::string> id, name, category, style, description, gender_affinity;
  std::vector<float> price;
  std::size_t size() const { return id.size(); }
  void resize(std::size_t n);
};
// Collective on a parallel file: rank 0's table is written (other ranks may pass an empty one
// only if `from_root` is true).
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
// indices and that every value is finite and non-negative.
CsrBlock read_csr_rows(const h5::File& f, const std::string& group, Index row_begin, Index row_end);
// Write a distributed CSR matrix: every rank passes its block; blocks are consecutive in rank
// order (rank r's row_begin = sum of the rows of ranks < r). Collective.
void write_csr(h5::File& f, const std::string& group, const CsrBlock& local, const Comm& comm);

// Fingerprint of a matrix (FNV-1a over indptr, indices and data, combined over ranks in row
// order): identifies the data a model was trained on. Collective.
std::uint64_t fingerprint(const CsrBlock& local, const Comm& comm);

}  // namespace mfrec::dataset
