// Identifier and literal quoting through PostgreSQL's own quoting rules.
#include "pkonline/pg/quote.hpp"

#include "pkonline/pg/bridge.hpp"

extern "C" {
#include "postgres.h"
#include "utils/builtins.h"
}

namespace pkonline::pg {

std::string Ident(const std::string& name) {
  const char* in = name.c_str();
  const char* out = Call([&]() { return quote_identifier(in); });
  return out;
}

std::string Qualified(const std::string& schema, const std::string& name) {
  return Ident(schema) + "." + Ident(name);
}

std::string Literal(const std::string& text) {
  const char* in = text.c_str();
  const char* out = Call([&]() { return quote_literal_cstr(in); });
  return out;
}

}  // namespace pkonline::pg
