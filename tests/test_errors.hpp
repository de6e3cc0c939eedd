// The message of the exception a call raises, for tests that check error texts.
#pragma once
#include <exception>
#include <string>

namespace mfrec::testdata {

// e.what() of the std::exception f() throws; "" when it returns normally.
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

}  // namespace mfrec::testdata
