// Catalog look-ups used by the API and the operations.
#include "pkonline/pg/catalog.hpp"

#include "pkonline/pg/bridge.hpp"
#include "pkonline/pg/spi.hpp"

extern "C" {
#include "postgres.h"
#include "commands/defrem.h"
#include "utils/lsyscache.h"
}

namespace pkonline::pg {

std::string Internal(const std::string& proname) {
  auto r = Query(
      "SELECT pg_catalog.quote_ident(n.nspname) OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) "
      "pg_catalog.quote_ident(p.proname) FROM pg_catalog.pg_proc p "
      "JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) p.pronamespace "
      "JOIN pg_catalog.pg_depend d ON d.classid OPERATOR(pg_catalog.=) "
      "'pg_catalog.pg_proc'::pg_catalog.regclass "
      " AND d.objid OPERATOR(pg_catalog.=) p.oid AND d.deptype OPERATOR(pg_catalog.=) 'e' "
      "JOIN pg_catalog.pg_extension x ON x.oid OPERATOR(pg_catalog.=) d.refobjid "
      " AND x.extname OPERATOR(pg_catalog.=) 'pkonline' "
      "WHERE p.proname OPERATOR(pg_catalog.=) $1::pg_catalog.name",
      {V(proname)}, true);
  if (r.empty())
    Fail(sqlstate::kUndefinedObject,
         "pkonline's function " + proname + " is missing (is the extension installed here?)");
  return *r.rows[0][0];
}

char RelKind(unsigned relid) {
  return Call([&]() { return get_rel_relkind(relid); });
}

std::optional<RelInfo> LookupRelation(unsigned relid) {
  auto r = Query(
      "SELECT n.nspname, c.relname, n.oid FROM pg_catalog.pg_class c "
      "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1::oid",
      {V(static_cast<int64_t>(relid))}, true);
  if (r.empty()) return std::nullopt;
  return RelInfo{*r.rows[0][0], *r.rows[0][1], static_cast<unsigned>(AsInt(r.rows[0][2]))};
}

std::vector<unsigned> WithPartitions(const std::vector<unsigned>& relids) {
  std::vector<unsigned> out;
  for (unsigned relid : relids) {
    out.push_back(relid);
    auto r = Query(
        "SELECT relid::pg_catalog.oid::pg_catalog.int8 FROM pg_catalog.pg_partition_tree($1::oid) "
        "WHERE level > 0 ORDER BY level, relid::pg_catalog.oid",
        {V(static_cast<int64_t>(relid))}, true);
    for (const auto& row : r.rows) out.push_back(static_cast<unsigned>(AsInt(row[0])));
  }
  return out;
}

std::string ChooseName(const std::string& name1, const std::string& name2, const std::string& label,
                       unsigned nsp_oid, bool is_constraint) {
  const char* n1 = name1.c_str();
  const char* n2 = name2.empty() ? nullptr : name2.c_str();
  const char* lb = label.c_str();
  char* out = Call([&]() { return ChooseRelationName(n1, n2, lb, nsp_oid, is_constraint); });
  std::string result(out);
  pfree(out);
  return result;
}

}  // namespace pkonline::pg
