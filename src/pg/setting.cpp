// Setting values read with PostgreSQL's own parser (see setting.hpp).
#include "pkonline/pg/setting.hpp"

#include "pkonline/pg/bridge.hpp"
#include "pkonline/text.hpp"

extern "C" {
#include "postgres.h"
#include "utils/builtins.h"
#include "utils/guc.h"
}

namespace pkonline::pg {

int ParseSetting(const std::string& value, const std::string& unit, const std::string& what, int min,
                 int max) {
  const int flags = unit == "ms" ? GUC_UNIT_MS : unit == "kB" ? GUC_UNIT_KB : 0;
  int result = 0;
  const char* hint = nullptr;
  const char* v = value.c_str();
  const bool ok = Call([&]() { return parse_int(v, &result, flags, &hint); });
  if (!ok)
    Fail(sqlstate::kInvalidParameter, Fmt("invalid value for %1%: \"%2%\"", what, value), hint ? hint : "",
         unit.empty() ? "An integer." : Fmt("An integer in %1%, or with a unit (e.g. '2s').", unit));
  if (result < min || result > max)
    Fail(sqlstate::kInvalidParameter,
         Fmt("%1%%2% is outside the valid range for %3% (%4% .. %5%)", result, unit, what, min, max));
  return result;
}

bool ParseBool(const std::string& value, const std::string& what) {
  bool result = false;
  const char* v = value.c_str();
  if (!Call([&]() { return parse_bool(v, &result); }))
    Fail(sqlstate::kInvalidParameter, Fmt("invalid value for %1%: \"%2%\"", what, value), "", "on or off.");
  return result;
}

}  // namespace pkonline::pg
