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
  std::string result(out);
  if (out != in)
    pfree(const_cast<char*>(out));  // quote_identifier returns its input when no quotes are needed
  return result;
}

std::string Qualified(const std::string& schema, const std::string& name) {
  return Ident(schema) + "." + Ident(name);
}

std::string Literal(const std::string& text) {
  const char* in = text.c_str();
  char* out = Call([&]() { return quote_literal_cstr(in); });
  std::string result(out);
  pfree(out);
  return result;
}

}  // namespace pkonline::pg
