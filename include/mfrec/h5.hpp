// The HDF5 facade: the only module that calls HDF5.
// Handles are move-only and released without throwing. Every HDF5 call is checked; a failure
// becomes an IoError (or InputError for a missing or mistyped object) naming the file and the
// object, with HDF5's own error stack appended.
// A File opened with a Comm is a parallel (MPI-IO) file: creating groups, datasets and
// attributes is collective (same arguments on every rank), and row-range reads and writes are
// collective too (a rank with nothing to do passes n_rows = 0).
#pragma once
#include <hdf5.h>

#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "mfrec/error.hpp"
#include "mfrec/types.hpp"

namespace mfrec {
class Comm;
}

namespace mfrec::h5 {

// Shapes and row numbers are mfrec's Index (signed 64-bit): HDF5's hsize_t stays in h5.cpp.
using Dims = std::vector<Index>;

class Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  Handle() = default;
  Handle(hid_t id, Closer closer) : id_(id), closer_(closer) {}
  Handle(Handle&& o) noexcept : id_(o.id_), closer_(o.closer_) { o.id_ = H5I_INVALID_HID; }
  Handle& operator=(Handle&& o) noexcept;
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() { reset(); }
  void reset() noexcept;
  hid_t get() const { return id_; }
  hid_t release() noexcept { hid_t id = id_; id_ = H5I_INVALID_HID; return id; }

 private:
  hid_t id_ = H5I_INVALID_HID;
  Closer closer_ = nullptr;
};

template <class T>
hid_t native_type() {
  if constexpr (std::is_same_v<T, float>) return H5T_NATIVE_FLOAT;
  else if constexpr (std::is_same_v<T, double>) return H5T_NATIVE_DOUBLE;
  else if constexpr (std::is_same_v<T, std::int8_t>) return H5T_NATIVE_INT8;
  else if constexpr (std::is_same_v<T, std::uint8_t>) return H5T_NATIVE_UINT8;
  else if constexpr (std::is_same_v<T, std::int16_t>) return H5T_NATIVE_INT16;
  else if constexpr (std::is_same_v<T, std::int32_t>) return H5T_NATIVE_INT32;
  else if constexpr (std::is_same_v<T, std::uint32_t>) return H5T_NATIVE_UINT32;
  else if constexpr (std::is_same_v<T, std::int64_t>) return H5T_NATIVE_INT64;
  else if constexpr (std::is_same_v<T, std::uint64_t>) return H5T_NATIVE_UINT64;
  else static_assert(sizeof(T) == 0, "no HDF5 type for this type");
}

enum class TypeClass { kInteger, kFloat, kString, kOther };
template <class T>
constexpr TypeClass type_class() {
  return std::is_floating_point_v<T> ? TypeClass::kFloat : TypeClass::kInteger;
}

struct DatasetOptions {
  Index chunk_rows = 0;    // 0: contiguous
  int deflate = 0;         // 0: none, else gzip level (needs chunking)
};

class File {
 public:
  // Create (truncate) or open a file; with a Comm the file is opened for MPI-IO on it.
  static File create(const std::string& path, const Comm* comm = nullptr);
  static File open(const std::string& path, const Comm* comm = nullptr, bool writable = false);
  // Create "<path>.partial"; commit() closes it and renames it to `path` (collective), so a
  // reader never sees a half-written file. Dropped without commit, the partial file is removed.
  static File create_atomic(const std::string& path, const Comm* comm = nullptr);
  void commit();

  File(File&&) noexcept;
  File& operator=(File&&) noexcept;
  ~File();

  const std::string& path() const { return path_; }
  bool parallel() const { return comm_ != nullptr; }
  void close();  // collective for a parallel file

  // Objects.
  bool exists(const std::string& name) const;
  void create_group(const std::string& name);  // parents created as needed
  std::vector<std::string> list(const std::string& group) const;
  template <class T>
  void create_dataset(const std::string& name, const Dims& dims, const DatasetOptions& opt = {}) {
    create_dataset_impl(name, native_type<T>(), dims, opt);
  }
  void create_string_dataset(const std::string& name, Index n, std::size_t width, const DatasetOptions& opt = {});
  Dims shape(const std::string& name) const;
  // Throws InputError naming the file and dataset unless it exists with the given rank, type
  // class (and, for width > 0, row width = dims[1]).
  Dims require(const std::string& name, TypeClass cls, int rank, Index width = 0) const;
  template <class T>
  Dims require(const std::string& name, int rank, Index width = 0) const {
    return require(name, type_class<T>(), rank, width);
  }

  // Rows [row_begin, row_begin + n_rows) of a 1-D or 2-D dataset (all columns).
  template <class T>
  void write_rows(const std::string& name, Index row_begin, Index n_rows, const T* data) {
    io_rows(name, native_type<T>(), row_begin, n_rows, const_cast<T*>(data), true);
  }
  // Every rank calls it (collective transfer). `overlapping`: the ranks' ranges overlap in part
  // (e.g. CSR row pointers, n+1 entries each): read independently, as Open MPI 4.1's OMPIO
  // collective read returns wrong values for partly overlapping requests (seen with 3 ranks).
  template <class T>
  void read_rows(const std::string& name, Index row_begin, Index n_rows, T* out, bool overlapping = false) const {
    check_class(name, type_class<T>());
    const_cast<File*>(this)->io_rows(name, native_type<T>(), row_begin, n_rows, out, false, overlapping);
  }
  template <class T>
  std::vector<T> read_all(const std::string& name) const {
    Dims d = shape(name);
    Index n = 1;
    for (auto x : d) n *= x;
    std::vector<T> out(static_cast<std::size_t>(n));
    read_rows(name, 0, d.empty() ? 1 : d[0], out.data());
    return out;
  }
  // Create a 1-D dataset and write all of it from rank 0 (collective on a parallel file).
  template <class T>
  void write_vector(const std::string& name, const std::vector<T>& v, const DatasetOptions& opt = {}) {
    create_dataset<T>(name, {static_cast<Index>(v.size())}, opt);
    write_rows(name, 0, root_or_none(static_cast<Index>(v.size())), v.data());
  }
  // Fixed-length strings (NUL-padded), `width` bytes each.
  void write_string_rows(const std::string& name, Index row_begin, const std::vector<std::string>& rows);
  std::vector<std::string> read_string_rows(const std::string& name, Index row_begin, Index n_rows) const;
  std::vector<std::string> read_strings(const std::string& name) const;
  void write_strings(const std::string& name, const std::vector<std::string>& v, const DatasetOptions& opt = {});

  // Attributes on an object ("/" for the root). Writing is collective on a parallel file.
  void set_attr(const std::string& obj, const std::string& key, double v);
  void set_attr(const std::string& obj, const std::string& key, std::int64_t v);
  void set_attr(const std::string& obj, const std::string& key, int v) { set_attr(obj, key, static_cast<std::int64_t>(v)); }
  void set_attr(const std::string& obj, const std::string& key, const std::string& v);
  void set_attr(const std::string& obj, const std::string& key, const char* v) { set_attr(obj, key, std::string(v)); }
  bool has_attr(const std::string& obj, const std::string& key) const;
  double attr_double(const std::string& obj, const std::string& key) const;
  std::int64_t attr_int(const std::string& obj, const std::string& key) const;
  std::string attr_string(const std::string& obj, const std::string& key) const;

 private:
  File(std::string path, hid_t id, const Comm* comm);
  void create_dataset_impl(const std::string& name, hid_t type, const Dims& dims, const DatasetOptions& opt);
  void io_rows(const std::string& name, hid_t mem_type, Index row_begin, Index n_rows, void* data, bool write,
               bool independent = false);
  void check_class(const std::string& name, TypeClass cls) const;
  Index root_or_none(Index n) const;
  Handle open_dataset(const std::string& name) const;
  [[noreturn]] void fail(const std::string& what, const std::string& object) const;

  std::string path_;       // the final name
  std::string open_path_;  // the name on disk (path_ or its .partial)
  Handle file_;
  const Comm* comm_ = nullptr;
  bool atomic_ = false;
};

// The fingerprint of a set of arrays: FNV-1a 64 over bytes, for data-set identity in models.
std::uint64_t fnv1a(const void* data, std::size_t n, std::uint64_t h = 1469598103934665603ULL);

}  // namespace mfrec::h5
