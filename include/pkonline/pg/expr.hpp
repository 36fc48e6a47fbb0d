// A user's SQL expression over a table's rows (add_column's fill): parsed as exactly one
// expression, analysed against the table as the caller, coerced to the column's type, and written
// back out with every name outside pg_catalog schema-qualified, so the worker evaluates the same
// thing whatever its search_path.
#pragma once

#include <string>

namespace pkonline::pg {

struct CheckedExpr {
  std::string sql;      // columns bare: for UPDATE … SET col = (sql) and DEFAULT (sql)
  std::string row_sql;  // columns as new.<col>: for a row trigger's body
  std::string type;     // the column type, as SQL text (qualified when not in pg_catalog)
  std::string tree;     // the analysed expression (nodeToString), coerced to the column type
  bool refers_to_columns = false;
  bool has_subquery = false;
  bool whole_row = false;  // refers to the whole row (t, t.*): its shape differs between partitions
  bool is_volatile = false;
  // May evaluating it run code a user wrote (a function not built in, a subquery, a domain check)?
  bool runs_user_code = true;
  // Can it be the column's DEFAULT? (no column references, no subquery)
  bool default_ok() const { return !refers_to_columns && !has_subquery; }
};

// Errors (each a clear SQLSTATE): not a single expression (42601), unknown names (42703/42883),
// aggregates, window or set-returning functions (42803/0A000), a type that does not convert to
// `type_oid` by assignment (42804). Names resolve through `search_path` (the caller's).
CheckedExpr CheckRowExpression(unsigned relid, const std::string& text, unsigned type_oid,
                               const std::string& search_path);

// A type named as in SQL (`integer`, `varchar(20)`, `myschema.mydomain`), looked up through
// `search_path` (the caller's): its OID, or an error (42704) if there is none.
unsigned TypeByName(const std::string& name, const std::string& search_path);

// The type as SQL text (qualified when not visible from pg_catalog alone); errors for pseudo-types.
std::string ColumnTypeSql(unsigned type_oid);
// Does the type have a default btree operator class (can it carry a unique index)?
bool HasBtreeOpclass(unsigned type_oid);

}  // namespace pkonline::pg
