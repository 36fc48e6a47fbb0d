// Message text: Boost.Format in the C++ regime (it throws on a bad format or argument count,
// which the error bridge turns into an internal error, never a crash). JSON text: json.hpp.
#pragma once

#include <boost/format.hpp>
#include <string>

namespace pkonline {

template <typename... Args>
std::string Fmt(const char* format, const Args&... args) {
  boost::format f(format);
  (f % ... % args);
  return f.str();
}

}  // namespace pkonline
