// A column's DEFAULT carried to another column as the analysed expression it is, never as text.
#pragma once

#include <string>

namespace pkonline::pg {

// Sets the DEFAULT of column `column` of table `relid` (locked ACCESS EXCLUSIVE by the caller) to
// the analysed expression `node_text` (pg_attrdef.adbin of another column): the same functions
// and operators, by OID, with only the implicit cast that fitted it to the old column's type
// replaced by PostgreSQL's cast to the new column's type. Text printed by pg_get_expr and parsed
// again would look every name up anew (another role's overload could be found).
void CarryDefault(unsigned relid, const std::string& column, const std::string& node_text);

}  // namespace pkonline::pg
