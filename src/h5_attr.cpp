// The HDF5 facade: scalar attributes (double, int64, fixed-length string) on an object.
#include <algorithm>
#include <cstring>
#include <string>

#include "h5_internal.hpp"
#include "mfrec/h5.hpp"

namespace mfrec::h5 {

using detail::error_stack;

static void write_attr(hid_t file, const std::string& path, const std::string& obj, const std::string& key,
                       hid_t type, const void* value) {
  if (H5Aexists_by_name(file, obj.c_str(), key.c_str(), H5P_DEFAULT) > 0)
    H5Adelete_by_name(file, obj.c_str(), key.c_str(), H5P_DEFAULT);
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  hid_t a = H5Acreate_by_name(file, obj.c_str(), key.c_str(), type, space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (a < 0) throw IoError(path + ": " + obj + ": cannot create attribute " + key + " (" + error_stack() + ")");
  Handle attr(a, H5Aclose);
  if (H5Awrite(attr.get(), type, value) < 0)
    throw IoError(path + ": " + obj + ": cannot write attribute " + key + " (" + error_stack() + ")");
}

void File::set_attr(const std::string& obj, const std::string& key, double v) {
  write_attr(file_.get(), path_, obj, key, H5T_NATIVE_DOUBLE, &v);
}
void File::set_attr(const std::string& obj, const std::string& key, std::int64_t v) {
  write_attr(file_.get(), path_, obj, key, H5T_NATIVE_INT64, &v);
}
void File::set_attr(const std::string& obj, const std::string& key, const std::string& v) {
  Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type.get(), std::max<std::size_t>(v.size(), 1));
  H5Tset_strpad(type.get(), H5T_STR_NULLPAD);
  std::string buf = v.empty() ? std::string(1, '\0') : v;
  write_attr(file_.get(), path_, obj, key, type.get(), buf.data());
}

bool File::has_attr(const std::string& obj, const std::string& key) const {
  if (!exists(obj)) return false;
  htri_t r = H5Aexists_by_name(file_.get(), obj.c_str(), key.c_str(), H5P_DEFAULT);
  if (r < 0) error_stack();
  return r > 0;
}

static Handle open_attr(hid_t file, const std::string& path, const std::string& obj, const std::string& key) {
  hid_t a = H5Aopen_by_name(file, obj.c_str(), key.c_str(), H5P_DEFAULT, H5P_DEFAULT);
  if (a < 0) {
    error_stack();
    throw InputError(path + ": " + obj + ": missing attribute " + key);
  }
  return Handle(a, H5Aclose);
}

double File::attr_double(const std::string& obj, const std::string& key) const {
  Handle a = open_attr(file_.get(), path_, obj, key);
  double v = 0;
  if (H5Aread(a.get(), H5T_NATIVE_DOUBLE, &v) < 0) fail("cannot read attribute " + key, obj);
  return v;
}

std::int64_t File::attr_int(const std::string& obj, const std::string& key) const {
  Handle a = open_attr(file_.get(), path_, obj, key);
  std::int64_t v = 0;
  if (H5Aread(a.get(), H5T_NATIVE_INT64, &v) < 0) fail("cannot read attribute " + key, obj);
  return v;
}

std::string File::attr_string(const std::string& obj, const std::string& key) const {
  Handle a = open_attr(file_.get(), path_, obj, key);
  Handle type(H5Aget_type(a.get()), H5Tclose);
  if (H5Tget_class(type.get()) != H5T_STRING) throw InputError(path_ + ": " + obj + ": attribute " + key + " is not a string");
  if (H5Tis_variable_str(type.get()) > 0) {
    char* s = nullptr;
    if (H5Aread(a.get(), type.get(), &s) < 0) fail("cannot read attribute " + key, obj);
    std::string out = s ? s : "";
    H5free_memory(s);
    return out;
  }
  std::size_t n = H5Tget_size(type.get());
  std::string buf(n, '\0');
  if (H5Aread(a.get(), type.get(), buf.data()) < 0) fail("cannot read attribute " + key, obj);
  buf.resize(strnlen(buf.c_str(), n));
  return buf;
}

}  // namespace mfrec::h5
