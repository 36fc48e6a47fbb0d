// Catalog look-ups by OID. Names come back raw; quote them with quote.hpp before use in SQL.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace pkonline::pg {

struct RelInfo {
  std::string schema;
  std::string name;
  unsigned nsp_oid = 0;
};

// The table's current schema and name; nullopt if it no longer exists.
std::optional<RelInfo> LookupRelation(unsigned relid);
// The relation's relkind as the catalogs say now ('r', 'v', …), '\0' if it no longer exists.
char RelKind(unsigned relid);
// The tables with, after each partitioned one, every partition below it (as the tree is now).
std::vector<unsigned> WithPartitions(const std::vector<unsigned>& relids);
// A relation/constraint name that is free in the schema, built like PostgreSQL's own choices
// (e.g. "orders_pkey", "orders_id_seq1").
std::string ChooseName(const std::string& name1, const std::string& name2, const std::string& label,
                       unsigned nsp_oid, bool is_constraint);
// The schema-qualified, quoted name of pkonline's own function `proname` (one of its internals:
// "_fill_nextval", …), found among the extension's members: pkonline_internal since 0.5, pkonline
// before (a job made under an older version may run with this library). Never a function a role
// made under that name elsewhere.
std::string Internal(const std::string& proname);

}  // namespace pkonline::pg
