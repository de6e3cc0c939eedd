// The HDF5 facade: files, groups, datasets and row-range I/O. Fixed-length string datasets are
// in h5_strings.cpp, attributes in h5_attr.cpp.
#include "mfrec/h5.hpp"

#include <cstdio>
#include <cstring>
#include <exception>
#include <utility>

#include "h5_internal.hpp"
#include "mfrec/comm.hpp"
#include "mfrec/durable.hpp"

namespace mfrec::h5 {
namespace detail {

// HDF5's error stack as text: the innermost messages, joined.
static herr_t walk_cb(unsigned n, const H5E_error2_t* err, void* data) {
  auto* out = static_cast<std::string*>(data);
  if (n < 3 && err->desc && *err->desc) {
    if (!out->empty()) *out += "; ";
    *out += err->desc;
  }
  return 0;
}

std::string error_stack() {
  std::string out;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, walk_cb, &out);
  H5Eclear2(H5E_DEFAULT);
  return out;
}

Handle make_plist(hid_t cls) {
  hid_t id = H5Pcreate(cls);
  if (id < 0) throw IoError("H5Pcreate failed: " + error_stack());
  return Handle(id, H5Pclose);
}

}  // namespace detail

using detail::error_stack;
using detail::HDims;
using detail::make_plist;

namespace {

HDims to_hdims(const Dims& dims, const std::string& path, const std::string& name) {
  HDims out;
  for (Index d : dims) {
    if (d < 0) throw IoError(path + ": dataset " + name + ": negative dimension " + std::to_string(d));
    out.push_back(static_cast<hsize_t>(d));
  }
  return out;
}

struct Silence {  // HDF5 prints its error stack by default; we turn it into exceptions instead
  Silence() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }
};
const Silence silence;

std::string parent_of(const std::string& name) {
  auto pos = name.find_last_of('/');
  if (pos == std::string::npos || pos == 0) return "/";
  return name.substr(0, pos);
}

TypeClass class_of(hid_t type) {
  switch (H5Tget_class(type)) {
    case H5T_INTEGER: return TypeClass::kInteger;
    case H5T_FLOAT: return TypeClass::kFloat;
    case H5T_STRING: return TypeClass::kString;
    default: return TypeClass::kOther;
  }
}

const char* class_name(TypeClass c) {
  switch (c) {
    case TypeClass::kInteger: return "integer";
    case TypeClass::kFloat: return "float";
    case TypeClass::kString: return "string";
    default: return "other";
  }
}

}  // namespace

Handle& Handle::operator=(Handle&& o) noexcept {
  if (this != &o) {
    reset();
    id_ = o.id_;
    closer_ = o.closer_;
    o.id_ = H5I_INVALID_HID;
  }
  return *this;
}

void Handle::reset() noexcept {
  if (id_ >= 0 && closer_) closer_(id_);
  id_ = H5I_INVALID_HID;
}

File::File(std::string path, hid_t id, const Comm* comm)
    : path_(std::move(path)), open_path_(path_), file_(id, H5Fclose), comm_(comm) {}

File::File(File&& o) noexcept
    : path_(std::move(o.path_)), open_path_(std::move(o.open_path_)), file_(std::move(o.file_)),
      comm_(o.comm_), atomic_(std::exchange(o.atomic_, false)) {}

File& File::operator=(File&& o) noexcept {
  if (this != &o) {
    file_.reset();
    path_ = std::move(o.path_);
    open_path_ = std::move(o.open_path_);
    file_ = std::move(o.file_);
    comm_ = o.comm_;
    atomic_ = std::exchange(o.atomic_, false);
  }
  return *this;
}

File::~File() {
  // While an exception unwinds, a parallel close (collective) could wait forever for ranks
  // that are elsewhere; leave the handle to process exit (MPI_Abort follows) instead.
  if (comm_ && std::uncaught_exceptions() > 0) {
    file_.release();
  } else {
    file_.reset();
  }
  if (atomic_) std::remove(open_path_.c_str());  // never committed: no half-written output
}

void File::fail(const std::string& what, const std::string& object) const {
  std::string stack = error_stack();
  throw IoError(path_ + (object.empty() ? "" : ": " + object) + ": " + what + (stack.empty() ? "" : " (" + stack + ")"));
}

static hid_t open_or_create(const std::string& path, const Comm* comm, bool create, bool writable) {
  Handle fapl = make_plist(H5P_FILE_ACCESS);
  if (comm) {
    if (H5Pset_fapl_mpio(fapl.get(), comm->native(), MPI_INFO_NULL) < 0)
      throw IoError(path + ": H5Pset_fapl_mpio failed: " + error_stack());
    H5Pset_all_coll_metadata_ops(fapl.get(), true);
    H5Pset_coll_metadata_write(fapl.get(), true);
  }
  hid_t id = create ? H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get())
                    : H5Fopen(path.c_str(), writable ? H5F_ACC_RDWR : H5F_ACC_RDONLY, fapl.get());
  return id;
}

// A parallel create or open fails on every rank (MPI_File_open is collective), and each rank
// would throw on its own: agree, so the program reports one line and exits without an abort.
static void agree_on_open(const Comm* comm, hid_t id, const std::string& error) {
  if (!comm) return;
  const std::string agreed = agree(*comm, id < 0 ? error : std::string());
  if (agreed.empty()) return;
  if (id >= 0) H5Fclose(id);
  check_agreed(*comm, agreed);
}

File File::create(const std::string& path, const Comm* comm) {
  hid_t id = open_or_create(path, comm, true, true);
  const std::string err = id < 0 ? path + ": cannot create HDF5 file (" + error_stack() + ")" : std::string();
  agree_on_open(comm, id, err);
  if (id < 0) throw IoError(err);
  return File(path, id, comm);
}

File File::open(const std::string& path, const Comm* comm, bool writable) {
  hid_t id = open_or_create(path, comm, false, writable);
  std::string err;
  if (id < 0) {
    error_stack();
    std::FILE* f = std::fopen(path.c_str(), "rb");
    err = f ? path + ": not an HDF5 file (or it is damaged)" : path + ": cannot open: " + std::strerror(errno);
    if (f) std::fclose(f);
  }
  agree_on_open(comm, id, err);
  if (id < 0) throw InputError(err);
  return File(path, id, comm);
}

File File::create_atomic(const std::string& path, const Comm* comm) {
  const std::string tmp = partial_path(path);
  hid_t id = open_or_create(tmp, comm, true, true);
  const std::string err = id < 0 ? tmp + ": cannot create HDF5 file (" + error_stack() + ")" : std::string();
  agree_on_open(comm, id, err);
  if (id < 0) throw IoError(err);
  File f(path, id, comm);
  f.open_path_ = tmp;
  f.atomic_ = true;
  return f;
}

void File::close() {
  if (file_.get() >= 0 && H5Fclose(file_.release()) < 0) fail("close failed", "");
}

void File::commit() {
  close();
  if (!atomic_) return;
  // Rank 0 renames; the others learn the outcome, so a failed rename is one error on every rank
  // (and the partial file is removed by the destructors) instead of a rank left waiting.
  if (comm_) comm_->barrier();
  std::string err;
  if ((!comm_ || comm_->is_root()) && std::rename(open_path_.c_str(), path_.c_str()) != 0)
    err = path_ + ": cannot rename " + open_path_ + ": " + std::strerror(errno);
  if (comm_) {
    check_agreed(*comm_, err);
  } else if (!err.empty()) {
    throw IoError(err);
  }
  atomic_ = false;
}

bool File::exists(const std::string& name) const {
  if (name == "/" || name.empty()) return true;
  // Check each component so a missing parent is "absent", not an error.
  std::size_t pos = 0;
  while (true) {
    pos = name.find('/', pos + 1);
    std::string prefix = name.substr(0, pos);
    htri_t r = H5Lexists(file_.get(), prefix.c_str(), H5P_DEFAULT);
    if (r <= 0) {
      error_stack();
      return false;
    }
    if (pos == std::string::npos) return true;
  }
}

void File::create_group(const std::string& name) {
  if (exists(name)) return;
  Handle lcpl = make_plist(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(lcpl.get(), 1);
  hid_t g = H5Gcreate2(file_.get(), name.c_str(), lcpl.get(), H5P_DEFAULT, H5P_DEFAULT);
  if (g < 0) fail("cannot create group", name);
  H5Gclose(g);
}

std::vector<std::string> File::list(const std::string& group) const {
  std::vector<std::string> out;
  auto cb = [](hid_t, const char* n, const H5L_info_t*, void* data) -> herr_t {
    static_cast<std::vector<std::string>*>(data)->emplace_back(n);
    return 0;
  };
  if (H5Literate_by_name(file_.get(), group.c_str(), H5_INDEX_NAME, H5_ITER_INC, nullptr, cb, &out,
                          H5P_DEFAULT) < 0)
    fail("cannot list group", group);
  return out;
}

void File::create_dataset_impl(const std::string& name, hid_t type, const Dims& shape, const DatasetOptions& opt) {
  create_group(parent_of(name));
  const HDims dims = to_hdims(shape, path_, name);
  Handle space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose);
  if (space.get() < 0) fail("cannot create dataspace", name);
  Handle dcpl = make_plist(H5P_DATASET_CREATE);
  if (opt.chunk_rows > 0 && !dims.empty() && dims[0] > 0) {
    HDims chunk = dims;
    chunk[0] = std::min<hsize_t>(static_cast<hsize_t>(opt.chunk_rows), dims[0]);
    H5Pset_chunk(dcpl.get(), static_cast<int>(chunk.size()), chunk.data());
    if (opt.deflate > 0) H5Pset_deflate(dcpl.get(), static_cast<unsigned>(opt.deflate));
  }
  H5Pset_fill_time(dcpl.get(), H5D_FILL_TIME_NEVER);
  H5Pset_obj_track_times(dcpl.get(), false);  // no modification times: same data, same bytes
  hid_t d = H5Dcreate2(file_.get(), name.c_str(), type, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT);
  if (d < 0) fail("cannot create dataset", name);
  H5Dclose(d);
}

Handle File::open_dataset(const std::string& name) const {
  if (!exists(name)) throw InputError(path_ + ": missing dataset " + name);
  hid_t d = H5Dopen2(file_.get(), name.c_str(), H5P_DEFAULT);
  if (d < 0) fail("cannot open dataset", name);
  return Handle(d, H5Dclose);
}

Dims File::shape(const std::string& name) const {
  Handle d = open_dataset(name);
  Handle space(H5Dget_space(d.get()), H5Sclose);
  int nd = H5Sget_simple_extent_ndims(space.get());
  if (nd < 0) fail("cannot read shape", name);
  HDims dims(static_cast<std::size_t>(nd));
  H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  return Dims(dims.begin(), dims.end());
}

void File::check_class(const std::string& name, TypeClass cls) const {
  Handle d = open_dataset(name);
  Handle type(H5Dget_type(d.get()), H5Tclose);
  TypeClass have = class_of(type.get());
  if (have != cls)
    throw InputError(path_ + ": dataset " + name + " has type " + class_name(have) + ", expected " +
                     class_name(cls));
}

Dims File::require(const std::string& name, TypeClass cls, int rank, Index width) const {
  check_class(name, cls);
  Dims d = shape(name);
  if (static_cast<int>(d.size()) != rank)
    throw InputError(path_ + ": dataset " + name + " has " + std::to_string(d.size()) + " dimensions, expected " +
                     std::to_string(rank));
  if (width > 0 && (d.size() < 2 || d[1] != width))
    throw InputError(path_ + ": dataset " + name + " has " + std::to_string(d.size() < 2 ? 1 : d[1]) +
                     " columns, expected " + std::to_string(width));
  return d;
}

Index File::root_or_none(Index n) const { return (!comm_ || comm_->is_root()) ? n : 0; }

void File::io_rows(const std::string& name, hid_t mem_type, Index row_begin, Index n_rows, void* data,
                   bool write, bool independent) {
  if (row_begin < 0 || n_rows < 0)
    throw InputError(path_ + ": dataset " + name + ": negative rows [" + std::to_string(row_begin) + ", +" +
                     std::to_string(n_rows) + ")");
  Handle d = open_dataset(name);
  Handle fspace(H5Dget_space(d.get()), H5Sclose);
  int nd = H5Sget_simple_extent_ndims(fspace.get());
  HDims dims(static_cast<std::size_t>(std::max(nd, 0)));
  H5Sget_simple_extent_dims(fspace.get(), dims.data(), nullptr);
  if (nd == 0) dims = {1};  // a scalar: one "row"
  if (dims[0] == 0 && n_rows == 0 && row_begin == 0) return;  // an empty dataset: same on every rank
  const auto first = static_cast<hsize_t>(row_begin), count_rows = static_cast<hsize_t>(n_rows);
  if (first + count_rows > dims[0])
    throw InputError(path_ + ": dataset " + name + ": rows [" + std::to_string(row_begin) + ", " +
                     std::to_string(row_begin + n_rows) + ") out of range (" + std::to_string(dims[0]) + " rows)");
  HDims start(dims.size(), 0), count = dims;
  start[0] = first;
  count[0] = count_rows;
  Handle mspace(H5Screate_simple(static_cast<int>(count.size()), count.data(), nullptr), H5Sclose);
  if (nd > 0) {
    if (n_rows == 0) {
      H5Sselect_none(fspace.get());
      H5Sselect_none(mspace.get());
    } else if (H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr) < 0) {
      fail("cannot select rows", name);
    }
  }
  Handle dxpl = make_plist(H5P_DATASET_XFER);
  if (comm_) H5Pset_dxpl_mpio(dxpl.get(), independent ? H5FD_MPIO_INDEPENDENT : H5FD_MPIO_COLLECTIVE);
  herr_t rc = write ? H5Dwrite(d.get(), mem_type, mspace.get(), fspace.get(), dxpl.get(), data)
                    : H5Dread(d.get(), mem_type, mspace.get(), fspace.get(), dxpl.get(), data);
  if (rc < 0) fail(write ? "write failed" : "read failed", name);
}

std::uint64_t fnv1a(const void* data, std::size_t n, std::uint64_t h) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (std::size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 1099511628211ULL;
  }
  return h;
}

}  // namespace mfrec::h5
