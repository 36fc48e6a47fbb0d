// Identifier quoting. Identifiers reach SQL only through these, and only for names read from
// the catalogs (or validated as a single name); values always travel as parameters.
#pragma once

#include <string>

namespace pkonline::pg {

std::string Ident(const std::string& name);                                 // quote_identifier
std::string Qualified(const std::string& schema, const std::string& name);  // "s"."n"
std::string Literal(const std::string& text);                               // quote_literal
// Eight hex digits of md5(key/what): a tag nobody can tell in advance without the key (a job's
// helper names: include/pkonline/ops/shared_steps.hpp).
std::string KeyedTag(const std::string& key, const std::string& what);

}  // namespace pkonline::pg
