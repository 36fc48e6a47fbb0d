// Where user-written code can run (see include/pkonline/pg/user_code.hpp).
#include "pkonline/pg/user_code.hpp"

#include "pkonline/pg/bridge.hpp"
#include "pkonline/pg/spi.hpp"

#include <cstring>

extern "C" {
#include "postgres.h"
#include "access/transam.h"
#include "nodes/nodeFuncs.h"
#include "nodes/readfuncs.h"
#include "optimizer/optimizer.h"
#include "storage/lmgr.h"
#include "utils/lsyscache.h"
#include "utils/partcache.h"
}

namespace pkonline::pg {

namespace {

// Built-in functions that run SQL given to them as text.
bool RunsSqlText(const char* name) {
  static const char* const kNames[] = {"query_to_xml",
                                       "query_to_xmlschema",
                                       "query_to_xml_and_xmlschema",
                                       "cursor_to_xml",
                                       "cursor_to_xmlschema",
                                       "table_to_xml",
                                       "table_to_xmlschema",
                                       "table_to_xml_and_xmlschema",
                                       "schema_to_xml",
                                       "schema_to_xmlschema",
                                       "schema_to_xml_and_xmlschema",
                                       "database_to_xml",
                                       "database_to_xmlschema",
                                       "database_to_xml_and_xmlschema",
                                       "ts_stat",
                                       "ts_rewrite"};
  for (const char* n : kNames)
    if (strcmp(name, n) == 0) return true;
  return false;
}

bool IsUserFunction(Oid func, void*) {
  if (func >= FirstNormalObjectId) return true;
  char* name = get_func_name(func);
  return name == nullptr || RunsSqlText(name);
}

bool UserCodeWalker(Node* node, void* context) {
  if (node == nullptr) return false;
  if (IsA(node, SubLink) || IsA(node, SubPlan) || IsA(node, CoerceToDomain)) return true;
  if (!IsA(node, List) && !IsA(node, IntList) && !IsA(node, OidList) && exprType(node) >= FirstNormalObjectId)
    return true;
  if (check_functions_in_node(node, IsUserFunction, context)) return true;
  return expression_tree_walker(
      node, reinterpret_cast<bool (*)()>(reinterpret_cast<void (*)()>(UserCodeWalker)), context);
}

// The table's expressions that an UPDATE of one column evaluates (CHECK constraints, index
// expressions and predicates, generated columns, policies), as stored node trees.
bool ExpressionsRunUserCode(unsigned relid) {
  auto r = Query(
      "SELECT c.conbin::pg_catalog.text FROM pg_catalog.pg_constraint c WHERE c.conrelid = $1::oid AND "
      "c.conbin IS NOT NULL "
      "UNION ALL SELECT i.indexprs::pg_catalog.text FROM pg_catalog.pg_index i WHERE i.indrelid = $1::oid "
      "AND i.indexprs IS NOT NULL "
      "UNION ALL SELECT i.indpred::pg_catalog.text FROM pg_catalog.pg_index i WHERE i.indrelid = $1::oid AND "
      "i.indpred IS NOT NULL "
      "UNION ALL SELECT ad.adbin::pg_catalog.text FROM pg_catalog.pg_attrdef ad JOIN pg_catalog.pg_attribute "
      "a "
      "  ON a.attrelid = ad.adrelid AND a.attnum = ad.adnum WHERE ad.adrelid = $1::oid AND a.attgenerated <> "
      "'' "
      "UNION ALL SELECT p.polqual::pg_catalog.text FROM pg_catalog.pg_policy p WHERE p.polrelid = $1::oid "
      "AND p.polqual IS NOT NULL "
      "UNION ALL SELECT p.polwithcheck::pg_catalog.text FROM pg_catalog.pg_policy p WHERE p.polrelid = "
      "$1::oid "
      "  AND p.polwithcheck IS NOT NULL",
      {V(static_cast<int64_t>(relid))}, true);
  for (const auto& row : r.rows) {
    if (!row[0]) continue;
    const char* text = row[0]->c_str();
    if (Call([&]() { return UserCodeWalker(static_cast<Node*>(stringToNode(text)), nullptr); })) return true;
  }
  return false;
}

// A partition's constraint, which every UPDATE sent to the partition checks: the bounds of every
// level above it, over its partition key expressions, compared with the key's operator classes
// (a hash partition's through satisfies_hash_partition(), which calls the opclass's support
// function: not visible in the expression, so a level whose opclass or collation is not built in
// counts as user code).
bool PartitionRunsUserCode(unsigned relid) {
  const bool is_partition = Call([&]() { return get_rel_relispartition(relid); });
  if (!is_partition) return false;
  if (AsBool(Query("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_partition_ancestors($1::oid) a "
                   "JOIN pg_catalog.pg_partitioned_table p ON p.partrelid = a.relid "
                   "WHERE EXISTS (SELECT 1 FROM pg_catalog.unnest(p.partclass::pg_catalog.oid[]) c "
                   "              WHERE c >= 16384) "
                   "OR EXISTS (SELECT 1 FROM pg_catalog.unnest(p.partcollation::pg_catalog.oid[]) c "
                   "           WHERE c >= 16384))",
                   {V(static_cast<int64_t>(relid))}, true)
                 .scalar()))
    return true;
  return Call([&]() {
    Expr* qual = get_partition_qual_relid(relid);
    return qual != nullptr && UserCodeWalker(reinterpret_cast<Node*>(qual), nullptr);
  });
}

}  // namespace

bool NodeRunsUserCode(void* node) {
  return Call([&]() { return UserCodeWalker(static_cast<Node*>(node), nullptr); });
}

bool IndexRunsUserCode(unsigned index_oid) {
  auto r = Query(
      "SELECT i.indexprs::pg_catalog.text FROM pg_catalog.pg_index i WHERE i.indexrelid = $1::oid "
      "AND i.indexprs IS NOT NULL "
      "UNION ALL SELECT i.indpred::pg_catalog.text FROM pg_catalog.pg_index i WHERE i.indexrelid = $1::oid "
      "AND i.indpred IS NOT NULL",
      {V(static_cast<int64_t>(index_oid))}, true);
  for (const auto& row : r.rows) {
    if (!row[0]) continue;
    const char* text = row[0]->c_str();
    if (Call([&]() { return UserCodeWalker(static_cast<Node*>(stringToNode(text)), nullptr); })) return true;
  }
  return false;
}

bool TableRunsUserCode(unsigned relid) {
  Call([&]() { LockRelationOid(relid, RowExclusiveLock); });
  if (ExpressionsRunUserCode(relid) || PartitionRunsUserCode(relid)) return true;
  return AsBool(
      Query(
          "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t WHERE t.tgrelid = $1::oid AND NOT "
          "t.tgisinternal "
          "  AND t.tgenabled IN ('A', 'R') AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e "
          "  JOIN pg_catalog.pg_extension x ON x.oid = e.refobjid AND x.extname = 'pkonline' "
          "  WHERE e.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND e.objid = t.tgfoid "
          "  AND e.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass AND e.deptype = 'e')) "
          "OR EXISTS (SELECT 1 FROM pg_catalog.pg_rewrite r WHERE r.ev_class = $1::oid AND r.rulename <> "
          "'_RETURN' "
          "  AND r.ev_enabled IN ('A', 'R')) "
          "OR EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE ("
          "  (d.classid = 'pg_catalog.pg_constraint'::pg_catalog.regclass AND d.objid IN "
          "    (SELECT c.oid FROM pg_catalog.pg_constraint c WHERE c.conrelid = $1::oid)) "
          "  OR (d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid IN "
          "    (SELECT i.indexrelid FROM pg_catalog.pg_index i WHERE i.indrelid = $1::oid)) "
          "  OR (d.classid = 'pg_catalog.pg_attrdef'::pg_catalog.regclass AND d.objid IN "
          "    (SELECT ad.oid FROM pg_catalog.pg_attrdef ad JOIN pg_catalog.pg_attribute a ON a.attrelid = "
          "ad.adrelid "
          "     AND a.attnum = ad.adnum WHERE ad.adrelid = $1::oid AND a.attgenerated <> '')) "
          "  OR (d.classid = 'pg_catalog.pg_policy'::pg_catalog.regclass AND d.objid IN "
          "    (SELECT p.oid FROM pg_catalog.pg_policy p WHERE p.polrelid = $1::oid))) "
          "  AND ((d.refclassid IN ('pg_catalog.pg_proc'::pg_catalog.regclass, "
          "'pg_catalog.pg_operator'::pg_catalog.regclass, "
          "    'pg_catalog.pg_opclass'::pg_catalog.regclass, 'pg_catalog.pg_type'::pg_catalog.regclass) "
          "    AND d.refobjid >= 16384 "
          // trusted: a member of an extension that a superuser owns (an extension's code, installed by
          // a superuser or trusted by one), never an object a user made and added to an extension
          "    AND NOT (EXISTS (SELECT 1 FROM pg_catalog.pg_depend e WHERE e.classid = d.refclassid AND "
          "e.objid = d.refobjid "
          "      AND e.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass AND e.deptype = 'e') "
          "      AND COALESCE((SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.oid = CASE d.refclassid "
          "        WHEN 'pg_catalog.pg_proc'::pg_catalog.regclass THEN (SELECT proowner FROM "
          "pg_catalog.pg_proc WHERE oid = d.refobjid) "
          "        WHEN 'pg_catalog.pg_operator'::pg_catalog.regclass THEN (SELECT oprowner FROM "
          "pg_catalog.pg_operator WHERE oid = d.refobjid) "
          "        WHEN 'pg_catalog.pg_opclass'::pg_catalog.regclass THEN (SELECT opcowner FROM "
          "pg_catalog.pg_opclass WHERE oid = d.refobjid) "
          "        ELSE (SELECT typowner FROM pg_catalog.pg_type WHERE oid = d.refobjid) END), false))) "
          "))",
          {V(static_cast<int64_t>(relid))}, true)
          .scalar());
}

}  // namespace pkonline::pg
