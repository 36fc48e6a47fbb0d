// Where user-written code can run (see include/pkonline/pg/user_code.hpp).
#include "pkonline/pg/user_code.hpp"

#include "pkonline/pg/bridge.hpp"
#include "pkonline/pg/spi.hpp"

#include <cstring>

extern "C" {
#include "postgres.h"
#include "access/transam.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/pg_am.h"
#include "catalog/pg_index.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_opclass.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "nodes/nodeFuncs.h"
#include "nodes/parsenodes.h"
#include "nodes/readfuncs.h"
#include "optimizer/optimizer.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
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

// --- objects that are not built in (rebuilds) --------------------------------------------------
// The first object an expression tree uses that PostgreSQL did not create at initdb: a function,
// an operator, a type, a collation (class and OID; class InvalidOid for a subquery). Plain C:
// also called inside an error bridge's PG_TRY, where no C++ object may be made.
struct NotBuiltIn {
  Oid classid;
  Oid objid;
};

bool Note(NotBuiltIn* f, Oid classid, Oid objid) {
  if (objid < FirstNormalObjectId) return false;
  f->classid = classid;
  f->objid = objid;
  return true;
}

bool NoteFunction(Oid func, void* context) {
  auto* f = static_cast<NotBuiltIn*>(context);
  if (Note(f, ProcedureRelationId, func)) return true;
  char* name = get_func_name(func);
  if (name != nullptr && !RunsSqlText(name)) return false;
  f->classid = ProcedureRelationId;
  f->objid = func;
  return true;
}

bool NoteOperators(Node* node, NotBuiltIn* f) {
  switch (nodeTag(node)) {
    case T_OpExpr:
    case T_DistinctExpr:
    case T_NullIfExpr:
      return Note(f, OperatorRelationId, reinterpret_cast<OpExpr*>(node)->opno);
    case T_ScalarArrayOpExpr:
      return Note(f, OperatorRelationId, reinterpret_cast<ScalarArrayOpExpr*>(node)->opno);
    case T_RowCompareExpr: {
      ListCell* lc;
      foreach (lc, reinterpret_cast<RowCompareExpr*>(node)->opnos)
        if (Note(f, OperatorRelationId, lfirst_oid(lc))) return true;
      return false;
    }
    default:
      return false;
  }
}

bool BuiltInOnlyWalker(Node* node, void* context) {
  if (node == nullptr) return false;
  auto* f = static_cast<NotBuiltIn*>(context);
  if (IsA(node, SubLink) || IsA(node, SubPlan)) {
    f->classid = InvalidOid;
    f->objid = InvalidOid;
    return true;
  }
  if (!IsA(node, List) && !IsA(node, IntList) && !IsA(node, OidList)) {
    if (Note(f, TypeRelationId, exprType(node)) || Note(f, CollationRelationId, exprCollation(node)) ||
        Note(f, CollationRelationId, exprInputCollation(node)))
      return true;
  }
  if (IsA(node, CollateExpr) && Note(f, CollationRelationId, reinterpret_cast<CollateExpr*>(node)->collOid))
    return true;
  if (NoteOperators(node, f)) return true;
  if (check_functions_in_node(node, NoteFunction, context)) return true;
  return expression_tree_walker(
      node, reinterpret_cast<bool (*)()>(reinterpret_cast<void (*)()>(BuiltInOnlyWalker)), context);
}

// "function shared.f(bigint)", "a subquery": what a NotBuiltIn names.
char* Describe(const NotBuiltIn& f) {
  if (!OidIsValid(f.classid)) return pstrdup("a subquery");
  ObjectAddress a;
  a.classId = f.classid;
  a.objectId = f.objid;
  a.objectSubId = 0;
  char* d = getObjectDescription(&a, true);
  return d != nullptr ? d : psprintf("object %u", f.objid);
}

// What index `index` (of any table) uses that is not built in, or nullptr: its expressions and
// predicate, operator classes and collations.
char* IndexNotBuiltInC(Oid index) {
  HeapTuple tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(index));
  if (!HeapTupleIsValid(tup)) return nullptr;
  auto* form = reinterpret_cast<Form_pg_index>(GETSTRUCT(tup));
  NotBuiltIn f{};
  bool found = false;
  bool isnull;
  Datum d = SysCacheGetAttr(INDEXRELID, tup, Anum_pg_index_indclass, &isnull);
  auto* classes = reinterpret_cast<oidvector*>(DatumGetPointer(d));
  for (int i = 0; !found && i < form->indnkeyatts; i++)
    found = Note(&f, OperatorClassRelationId, classes->values[i]);
  d = SysCacheGetAttr(INDEXRELID, tup, Anum_pg_index_indcollation, &isnull);
  auto* colls = reinterpret_cast<oidvector*>(DatumGetPointer(d));
  for (int i = 0; !found && i < form->indnkeyatts; i++)
    found = Note(&f, CollationRelationId, colls->values[i]);
  for (AttrNumber column : {Anum_pg_index_indexprs, Anum_pg_index_indpred}) {
    if (found) break;
    d = SysCacheGetAttr(INDEXRELID, tup, column, &isnull);
    if (!isnull) found = BuiltInOnlyWalker(static_cast<Node*>(stringToNode(TextDatumGetCString(d))), &f);
  }
  ReleaseSysCache(tup);
  return found ? Describe(f) : nullptr;
}

// Every function, operator and type an expression tree uses that is not built in, the relations
// its subqueries read, and whether it calls a built-in function that runs SQL given as text.
struct Used {
  List* functions;  // (operators' functions are called by OID: the operator is what is looked up)
  List* operators;
  List* types;
  List* relations;
  bool sql_text;
};

bool AddFunction(Oid func, void* context) {
  auto* u = static_cast<Used*>(context);
  if (func >= FirstNormalObjectId) {
    u->functions = list_append_unique_oid(u->functions, func);
  } else {
    char* name = get_func_name(func);
    if (name != nullptr && RunsSqlText(name)) u->sql_text = true;
  }
  return false;
}

bool UsedWalker(Node* node, void* context) {
  if (node == nullptr) return false;
  auto* u = static_cast<Used*>(context);
  if (IsA(node, RangeTblEntry)) {
    const auto* rte = reinterpret_cast<RangeTblEntry*>(node);
    if (rte->rtekind == RTE_RELATION) u->relations = list_append_unique_oid(u->relations, rte->relid);
    return false;
  }
  NotBuiltIn f{};
  if (NoteOperators(node, &f)) u->operators = list_append_unique_oid(u->operators, f.objid);
  // (a subquery's FROM items, target entries and the like are walked too: not values)
  const bool value = nodeTag(node) >= T_Var && nodeTag(node) < T_TargetEntry;
  if (value && exprType(node) >= FirstNormalObjectId)
    u->types = list_append_unique_oid(u->types, exprType(node));
  if (IsA(node, OpExpr) || IsA(node, DistinctExpr) || IsA(node, NullIfExpr) || IsA(node, ScalarArrayOpExpr)) {
    // the operator is looked up by name; its function by the operator (not again by name)
  } else {
    (void)check_functions_in_node(node, AddFunction, context);
  }
  if (IsA(node, Query))
    return query_tree_walker(reinterpret_cast<::Query*>(node),
                             reinterpret_cast<bool (*)()>(reinterpret_cast<void (*)()>(UsedWalker)), context,
                             QTW_EXAMINE_RTES_BEFORE);
  return expression_tree_walker(node, reinterpret_cast<bool (*)()>(reinterpret_cast<void (*)()>(UsedWalker)),
                                context);
}

}  // namespace

std::string NameOthersCouldShadow(const std::string& node_text, unsigned owner) {
  const char* text = node_text.c_str();
  Used used{NIL, NIL, NIL, NIL, false};
  Call([&]() { (void)UsedWalker(static_cast<Node*>(stringToNode(text)), &used); });
  if (used.sql_text) return "a function that runs SQL given as text (looked up anew each time it runs)";
  // A schema is the owner's own when it is not a temporary one, its owner is the table's owner or a
  // superuser, and nobody else (PUBLIC included) may CREATE in it.
  // A role counts as the owner when it is the owner, a superuser, or pg_database_owner (the owner
  // of PostgreSQL 15's public schema) while the table's owner owns the database (it has no other
  // member then).
  auto is_owner = [](const std::string& role) {
    return "(" + role +
           " = $2::oid OR COALESCE((SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.oid = " + role +
           "), false) OR (" + role +
           " = 'pg_database_owner'::pg_catalog.regrole AND $2::oid = (SELECT d.datdba FROM "
           "pg_catalog.pg_database d "
           "WHERE d.datname = pg_catalog.current_database())))";
  };
  const std::string others_may_create =
      "n.nspname LIKE 'pg\\_temp\\_%' OR n.nspname LIKE 'pg\\_toast\\_temp\\_%' OR NOT " +
      is_owner("n.nspowner") +
      " OR EXISTS (SELECT 1 FROM pg_catalog.aclexplode(COALESCE(n.nspacl, pg_catalog.acldefault('n', "
      "n.nspowner))) a WHERE a.privilege_type = 'CREATE' AND NOT " +
      is_owner("a.grantee") + ")";
  auto check = [&](List* oids, const std::string& sql) -> std::string {
    ListCell* lc;
    foreach (lc, oids) {
      auto r = Query(sql, {V(static_cast<int64_t>(lfirst_oid(lc))), V(static_cast<int64_t>(owner))}, true);
      if (!r.empty() && r.scalar()) return *r.scalar();
    }
    return "";
  };
  std::string what = check(
      used.functions, std::string("SELECT 'function ' || p.oid::pg_catalog.regprocedure::pg_catalog.text || "
                                  "' is in schema ' || pg_catalog.quote_ident(n.nspname) FROM "
                                  "pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = "
                                  "p.pronamespace WHERE p.oid = $1::oid AND (") +
                          others_may_create + ")");
  if (what.empty())
    what = check(
        used.operators,
        std::string("SELECT 'operator ' || o.oid::pg_catalog.regoperator::pg_catalog.text || "
                    "' is in schema ' || pg_catalog.quote_ident(n.nspname) FROM pg_catalog.pg_operator o "
                    "JOIN pg_catalog.pg_namespace n ON n.oid = o.oprnamespace WHERE o.oid = $1::oid AND (") +
            others_may_create + ")");
  if (what.empty())
    what = check(
        used.types,
        "SELECT 'type ' || t.oid::pg_catalog.regtype::pg_catalog.text || ' belongs to ' || "
        "t.typowner::pg_catalog.regrole::pg_catalog.text FROM pg_catalog.pg_type t WHERE t.oid = $1::oid "
        "AND NOT " +
            is_owner("t.typowner"));
  // A table or view another role owns may be replaced by it (CREATE OR REPLACE VIEW): the fill
  // would then run its code as each writer.
  if (what.empty())
    what = check(
        used.relations,
        "SELECT 'relation ' || c.oid::pg_catalog.regclass::pg_catalog.text || ' belongs to ' || "
        "c.relowner::pg_catalog.regrole::pg_catalog.text FROM pg_catalog.pg_class c WHERE c.oid = $1::oid "
        "AND NOT " +
            is_owner("c.relowner"));
  return what;
}

std::string IndexNotBuiltIn(unsigned index_oid) {
  const char* what = Call([&]() { return IndexNotBuiltInC(index_oid); });
  return what != nullptr ? what : "";
}

std::string ExpressionNotBuiltIn(const std::string& node_text) {
  const char* text = node_text.c_str();
  const char* what = Call([&]() -> const char* {
    NotBuiltIn f{};
    return BuiltInOnlyWalker(static_cast<Node*>(stringToNode(text)), &f) ? Describe(f) : nullptr;
  });
  return what != nullptr ? what : "";
}

void RequireBuiltInIndexStmt(void* index_stmt, unsigned relid, const char* like) {
  auto* stmt = static_cast<IndexStmt*>(index_stmt);
  const Oid am = get_index_am_oid(stmt->accessMethod, false);
  NotBuiltIn f{};
  bool found = Note(&f, AccessMethodRelationId, am);
  ListCell* lc;
  foreach (lc, list_concat_copy(stmt->indexParams, stmt->indexIncludingParams)) {
    if (found) break;
    auto* elem = lfirst_node(IndexElem, lc);
    Oid type = InvalidOid;
    if (elem->expr != nullptr) {
      found = BuiltInOnlyWalker(elem->expr, &f) || Note(&f, TypeRelationId, exprType(elem->expr));
      type = exprType(elem->expr);
    } else if (elem->name != nullptr) {  // a plain column: its type is not looked up by name
      type = get_atttype(relid, get_attnum(relid, elem->name));
    }
    if (!found && elem->collation != NIL)
      found = Note(&f, CollationRelationId, get_collation_oid(elem->collation, false));
    if (!found && elem->opclass != NIL)
      found = Note(&f, OperatorClassRelationId, get_opclass_oid(am, elem->opclass, false));
    else if (!found && OidIsValid(type) && list_member_ptr(stmt->indexParams, elem))
      found = Note(&f, OperatorClassRelationId, GetDefaultOpClass(type, am));
  }
  if (!found && stmt->whereClause != nullptr) found = BuiltInOnlyWalker(stmt->whereClause, &f);
  if (found)
    ereport(ERROR,
            (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
             errmsg("index %s built again for the new column type (as %s) would use %s, which is not "
                    "built in",
                    quote_identifier(like), quote_identifier(stmt->idxname), Describe(f)),
             errdetail("An index rebuilt from its definition looks its functions, operators, operator "
                       "classes and collations up anew; only PostgreSQL's built-in ones are sure to be "
                       "the ones the old index used."),
             errhint("Drop the index for the time of the job and create it again afterwards.")));
}

bool NodeRunsUserCode(void* node) {
  return Call([&]() { return UserCodeWalker(static_cast<Node*>(node), nullptr); });
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
