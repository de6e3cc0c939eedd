// The error hierarchy. The library throws; only a program's main turns an error into a
// one-line message and an exit status (or MPI_Abort when other ranks may be waiting).
#pragma once
#include <stdexcept>
#include <string>

namespace mfrec {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A bad option or configuration value. Raised identically on every rank (options are parsed
// and checked the same way everywhere), so no rank is left waiting.
class ConfigError : public Error {
 public:
  using Error::Error;
};

// Bad input data: a malformed CSV line, a dataset with the wrong type or shape, NaN values.
class InputError : public Error {
 public:
  using Error::Error;
};

// A failed read or write (HDF5, the file system).
class IoError : public Error {
 public:
  using Error::Error;
};

// An error every rank of a communicator raised together, after agreeing on it (comm.hpp's
// agree_on / check_agreed): the program prints it once and every rank exits 2, with no
// MPI_Abort. The message is the first failing rank's.
class AgreedError : public Error {
 public:
  using Error::Error;
};

// A failed MPI call.
class CommError : public Error {
 public:
  using Error::Error;
};

}  // namespace mfrec
