// Message text: Boost.Format in the C++ regime (it throws on a bad format or argument count,
// which the error bridge turns into an internal error, never a crash); JSON text for event details.
#pragma once

#include <boost/format.hpp>
#include <string>
#include <vector>

namespace pkonline {

template <typename... Args>
std::string Fmt(const char* format, const Args&... args) {
  boost::format f(format);
  (f % ... % args);
  return f.str();
}

// A JSON string literal ("..." with escapes).
std::string JsonString(const std::string& s);
// A JSON array of strings.
std::string JsonArray(const std::vector<std::string>& items);
// Reads back an array of strings as JsonArray writes it (throws std::invalid_argument otherwise).
std::vector<std::string> ParseJsonArray(const std::string& json);

}  // namespace pkonline
