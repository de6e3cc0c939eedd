// Helpers shared by the HDF5 facade's files (h5.cpp, h5_strings.cpp, h5_attr.cpp).
// Internal: not part of include/mfrec/h5.hpp.
#pragma once
#include <hdf5.h>

#include <string>
#include <vector>

#include "mfrec/h5.hpp"

namespace mfrec::h5::detail {

using HDims = std::vector<hsize_t>;

// HDF5's error stack as text (the innermost messages, joined); clears the stack.
std::string error_stack();

// A property list of class `cls`; IoError if HDF5 cannot create it.
Handle make_plist(hid_t cls);

}  // namespace mfrec::h5::detail
