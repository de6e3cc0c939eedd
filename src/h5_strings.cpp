// The HDF5 facade: fixed-length (NUL-padded) string datasets.
#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "mfrec/comm.hpp"
#include "mfrec/h5.hpp"

namespace mfrec::h5 {

void File::create_string_dataset(const std::string& name, Index n, std::size_t width, const DatasetOptions& opt) {
  Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type.get(), std::max<std::size_t>(width, 1));
  H5Tset_strpad(type.get(), H5T_STR_NULLPAD);
  create_dataset_impl(name, type.get(), {n}, opt);
}

void File::write_string_rows(const std::string& name, Index row_begin, const std::vector<std::string>& rows) {
  Handle d = open_dataset(name);
  Handle type(H5Dget_type(d.get()), H5Tclose);
  std::size_t width = H5Tget_size(type.get());
  std::vector<char> buf(rows.size() * width, '\0');
  for (std::size_t i = 0; i < rows.size(); ++i) {
    if (rows[i].size() > width)
      throw InputError(path_ + ": dataset " + name + ": string '" + rows[i] + "' longer than " + std::to_string(width));
    std::memcpy(buf.data() + i * width, rows[i].data(), rows[i].size());
  }
  io_rows(name, type.get(), row_begin, static_cast<Index>(rows.size()), buf.data(), true);
}

std::vector<std::string> File::read_string_rows(const std::string& name, Index row_begin, Index n_rows) const {
  check_class(name, TypeClass::kString);
  Handle d = open_dataset(name);
  Handle type(H5Dget_type(d.get()), H5Tclose);
  if (H5Tis_variable_str(type.get()) > 0)
    throw InputError(path_ + ": dataset " + name + " holds variable-length strings; mfrec writes fixed-length");
  std::size_t width = H5Tget_size(type.get());
  const auto n = static_cast<std::size_t>(std::max<Index>(n_rows, 0));
  std::vector<char> buf(n * width + 1, '\0');
  const_cast<File*>(this)->io_rows(name, type.get(), row_begin, n_rows, buf.data(), false);
  std::vector<std::string> out(n);
  for (std::size_t i = 0; i < n; ++i) {
    const char* s = buf.data() + i * width;
    out[i].assign(s, strnlen(s, width));
  }
  return out;
}

std::vector<std::string> File::read_strings(const std::string& name) const {
  Dims d = shape(name);
  return read_string_rows(name, 0, d.empty() ? 1 : d[0]);
}

void File::write_strings(const std::string& name, const std::vector<std::string>& v, const DatasetOptions& opt) {
  std::size_t width = 1;
  for (const auto& s : v) width = std::max(width, s.size());
  create_string_dataset(name, v.size(), width, opt);
  if (!comm_ || comm_->is_root()) {
    write_string_rows(name, 0, v);
  } else {
    write_string_rows(name, 0, {});
  }
}

}  // namespace mfrec::h5
