// Parse, analyse, coerce and deparse a row expression (see expr.hpp).
#include "pkonline/pg/expr.hpp"

#include <cstring>

#include "pkonline/pg/bridge.hpp"
#include "pkonline/pg/user_code.hpp"
#include "pkonline/text.hpp"

extern "C" {
#include "postgres.h"
#include "access/table.h"
#include "access/transam.h"
#include "catalog/pg_am.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "nodes/nodeFuncs.h"
#include "nodes/parsenodes.h"
#include "optimizer/optimizer.h"
#include "parser/parse_coerce.h"
#include "parser/parse_collate.h"
#include "parser/parse_expr.h"
#include "parser/parse_node.h"
#include "parser/parse_relation.h"
#include "parser/parse_type.h"
#include "parser/parser.h"
#include "rewrite/rewriteManip.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/ruleutils.h"
}

namespace pkonline::pg {

namespace {

const int kSyntaxError = SqlState("42601");
const int kDatatypeMismatch = SqlState("42804");

// search_path for the rest of a GUC nest level we open and close ourselves.
void SetSearchPath(const std::string& value) {
  const char* v = value.c_str();
  Call([&]() {
    (void)set_config_option("search_path", v, PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
  });
}

// The one expression of "SELECT (<text>)", or an error if the text is anything else.
Node* ParseOneExpression(const std::string& text) {
  const std::string sql = "SELECT (" + text + ")";
  const char* s = sql.c_str();
  List* stmts = Call([&]() { return raw_parser(s, RAW_PARSE_DEFAULT); });
  const char* hint = "fill is one SQL expression, such as gen_random_uuid() or lower(email).";
  if (list_length(stmts) != 1) Fail(kSyntaxError, "fill must be a single SQL expression", "", hint);
  Node* stmt = static_cast<RawStmt*>(linitial(stmts))->stmt;
  if (!IsA(stmt, SelectStmt)) Fail(kSyntaxError, "fill must be a single SQL expression", "", hint);
  auto* sel = reinterpret_cast<SelectStmt*>(stmt);
  const bool plain = sel->op == SETOP_NONE && sel->fromClause == NIL && sel->whereClause == nullptr &&
                     sel->groupClause == NIL && sel->havingClause == nullptr && sel->windowClause == NIL &&
                     sel->sortClause == NIL && sel->limitCount == nullptr && sel->limitOffset == nullptr &&
                     sel->distinctClause == NIL && sel->withClause == nullptr && sel->intoClause == nullptr &&
                     sel->lockingClause == NIL && sel->valuesLists == NIL &&
                     list_length(sel->targetList) == 1;
  if (!plain) Fail(kSyntaxError, "fill must be a single SQL expression", "", hint);
  auto* target = static_cast<ResTarget*>(linitial(sel->targetList));
  if (target->name != nullptr || target->indirection != NIL)
    Fail(kSyntaxError, "fill must be a single SQL expression", "", hint);
  return target->val;
}

std::string TypeName(Oid type) {
  char* s = Call([&]() { return format_type_be(type); });
  std::string out(s);
  pfree(s);
  return out;
}

// Does the expression refer to the whole row of the table (varno 1 at the expression's own level),
// in a subquery too?
struct WholeRow {
  int levels_up;
};
bool WholeRowWalker(Node* node, void* context) {
  if (node == nullptr) return false;
  auto* c = static_cast<WholeRow*>(context);
  if (IsA(node, Var)) {
    const Var* v = reinterpret_cast<Var*>(node);
    return v->varattno == InvalidAttrNumber && v->varno == 1 &&
           static_cast<int>(v->varlevelsup) == c->levels_up;
  }
  auto walker = reinterpret_cast<bool (*)()>(reinterpret_cast<void (*)()>(WholeRowWalker));
  if (IsA(node, Query)) {
    c->levels_up++;
    const bool found = query_tree_walker(reinterpret_cast<Query*>(node), walker, context, 0);
    c->levels_up--;
    return found;
  }
  return expression_tree_walker(node, walker, context);
}

std::string Deparse(Node* expr, const std::string& alias, Oid relid, bool prefix) {
  const char* a = alias.c_str();
  char* s = Call([&]() { return deparse_expression(expr, deparse_context_for(a, relid), prefix, false); });
  std::string out(s);
  pfree(s);
  return out;
}

}  // namespace

std::string ColumnTypeSql(unsigned type_oid) {
  const char kind = Call([&]() { return get_typtype(type_oid); });
  if (kind == TYPTYPE_PSEUDO)
    Fail(kDatatypeMismatch, Fmt("column_type %1% is a pseudo-type", TypeName(type_oid)), "",
         "A column needs a real data type, such as uuid, bigint, text or timestamptz.");
  const int level = Call([]() { return NewGUCNestLevel(); });
  SetSearchPath("pg_catalog");
  std::string out = TypeName(type_oid);
  Call([&]() { AtEOXact_GUC(true, level); });
  return out;
}

unsigned TypeByName(const std::string& name, const std::string& search_path) {
  const int level = Call([]() { return NewGUCNestLevel(); });
  const char* n = name.c_str();
  Oid type = InvalidOid;
  try {
    SetSearchPath(search_path);
    Call([&]() {
      int32 typmod = -1;
      parseTypeString(n, &type, &typmod, false);
    });
  } catch (...) {
    Call([&]() { AtEOXact_GUC(false, level); });
    throw;
  }
  Call([&]() { AtEOXact_GUC(true, level); });
  return type;
}

bool HasBtreeOpclass(unsigned type_oid) {
  return Call([&]() { return OidIsValid(GetDefaultOpClass(type_oid, BTREE_AM_OID)); });
}

CheckedExpr CheckRowExpression(unsigned relid, const std::string& text, unsigned type_oid,
                               const std::string& search_path) {
  if (text.find_first_not_of(" \t\r\n") == std::string::npos)
    Fail(sqlstate::kInvalidParameter, "fill must not be empty", "",
         "fill is one SQL expression, such as gen_random_uuid() or lower(email).");
  CheckedExpr out;
  out.type = ColumnTypeSql(type_oid);

  // Names in the expression resolve as they would in the caller's own session.
  const int level = Call([]() { return NewGUCNestLevel(); });
  SetSearchPath(search_path);
  Relation rel = Call([&]() { return table_open(relid, AccessShareLock); });
  ParseState* pstate = Call([]() { return make_parsestate(nullptr); });
  Node* expr = nullptr;
  try {
    Node* raw = ParseOneExpression(text);
    expr = Call([&]() {
      ParseNamespaceItem* item =
          addRangeTableEntryForRelation(pstate, rel, AccessShareLock, nullptr, false, true);
      addNSItemToQuery(pstate, item, true, true, true);
      return transformExpr(pstate, raw, EXPR_KIND_UPDATE_SOURCE);
    });
  } catch (const PgError& e) {
    // Say where: the error is about the fill expression, not about anything pkonline runs.
    throw PgError(e.sqlstate(), e.message(), e.detail().empty() ? "In fill => " + text : e.detail(),
                  e.hint().empty()
                      ? "fill is one SQL expression computed for each row, over the row's columns."
                      : e.hint());
  }
  const Oid from = Call([&]() { return exprType(expr); });
  Node* coerced = Call([&]() {
    return coerce_to_target_type(pstate, expr, from, type_oid, -1, COERCION_ASSIGNMENT, COERCE_IMPLICIT_CAST,
                                 -1);
  });
  if (coerced == nullptr)
    Fail(kDatatypeMismatch,
         Fmt("fill is of type %1%, which does not convert to column_type %2%", TypeName(from),
             TypeName(type_oid)),
         "", "Cast it: fill => '(...)::" + TypeName(type_oid) + "'.");
  Call([&]() { assign_expr_collations(pstate, coerced); });
  out.refers_to_columns = Call([&]() { return contain_var_clause(coerced); });
  out.has_subquery = Call([&]() { return checkExprHasSubLink(coerced); });
  out.whole_row = Call([&]() {
    WholeRow context{0};
    return WholeRowWalker(coerced, &context);
  });
  out.is_volatile = Call([&]() { return contain_volatile_functions(coerced); });
  out.runs_user_code = NodeRunsUserCode(coerced);
  out.tree = Call([&]() { return nodeToString(coerced); });

  // Written back out, as pg_dump writes a view: every name outside pg_catalog qualified.
  SetSearchPath("pg_catalog");
  const std::string relname = RelationGetRelationName(rel);
  out.sql = Deparse(coerced, relname, relid, false);
  out.row_sql = Deparse(coerced, "new", relid, true);
  Call([&]() {
    table_close(rel, NoLock);
    free_parsestate(pstate);
    AtEOXact_GUC(true, level);
  });
  return out;
}

}  // namespace pkonline::pg
