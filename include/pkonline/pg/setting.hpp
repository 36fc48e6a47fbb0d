// A setting's value as PostgreSQL reads a GUC's: an integer with an optional unit.
#pragma once

#include <string>

namespace pkonline::pg {

// `value` read as an integer setting whose base unit is `unit` ("ms", "kB" or "" for none), so
// '2s' is 2000 for "ms"; out of [min, max] or unreadable: 22023 naming `what`.
int ParseSetting(const std::string& value, const std::string& unit, const std::string& what, int min,
                 int max);

// `value` read as a boolean setting ('on', 'true', '1', ...); else 22023 naming `what`.
bool ParseBool(const std::string& value, const std::string& what);

}  // namespace pkonline::pg
