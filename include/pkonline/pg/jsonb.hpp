// jsonb text into a Json value, read with PostgreSQL's own jsonb parser and iterator.
#pragma once

#include <string>

#include "pkonline/json.hpp"

namespace pkonline::pg {

// Parses `text` as jsonb (jsonb_in: a malformed text fails with 22P02) and walks it with
// JsonbIteratorNext into a Json value.
Json ReadJsonb(const std::string& text);

}  // namespace pkonline::pg
