// A column's DEFAULT carried as an expression tree (see include/pkonline/pg/column_default.hpp).
#include "pkonline/pg/column_default.hpp"

#include "pkonline/pg/bridge.hpp"

extern "C" {
#include "postgres.h"
#include "access/table.h"
#include "access/transam.h"
#include "access/xact.h"
#include "catalog/pg_attrdef.h"
#include "catalog/pg_type.h"
#include "nodes/nodeFuncs.h"
#include "nodes/readfuncs.h"
#include "parser/parse_coerce.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
}

namespace pkonline::pg {

namespace {

// The expression below the cast that fitted it to the old column (a serial's
// nextval(...)::integer is nextval(...) again), when the cast to the new type then needs nothing
// but PostgreSQL's own: below an implicit cast from a built-in type, or an explicit one from
// bigint (nextval(...)::integer written out: kept, the column would stop at 2^31-1 all the same).
// Otherwise the expression as it is, cast again on top (int4 to int8).
Node* BelowCast(Node* expr) {
  Node* arg = nullptr;
  bool implicit = false;
  if (IsA(expr, FuncExpr) && list_length(castNode(FuncExpr, expr)->args) >= 1 &&
      castNode(FuncExpr, expr)->funcformat != COERCE_EXPLICIT_CALL) {
    arg = static_cast<Node*>(linitial(castNode(FuncExpr, expr)->args));
    implicit = castNode(FuncExpr, expr)->funcformat == COERCE_IMPLICIT_CAST;
  } else if (IsA(expr, RelabelType)) {
    arg = reinterpret_cast<Node*>(castNode(RelabelType, expr)->arg);
    implicit = castNode(RelabelType, expr)->relabelformat == COERCE_IMPLICIT_CAST;
  }
  if (arg == nullptr) return expr;
  const Oid from = exprType(arg);
  if (implicit ? from < FirstNormalObjectId : from == INT8OID) return arg;
  return expr;
}

void CarryDefaultC(Oid relid, const char* column, const char* node_text) {
  Relation rel = table_open(relid, AccessExclusiveLock);
  const AttrNumber attnum = get_attnum(relid, column);
  if (attnum == InvalidAttrNumber) elog(ERROR, "pkonline: column \"%s\" not found", column);
  const Form_pg_attribute att = TupleDescAttr(RelationGetDescr(rel), attnum - 1);
  Node* expr = BelowCast(static_cast<Node*>(stringToNode(node_text)));
  Node* cast = coerce_to_target_type(nullptr, expr, exprType(expr), att->atttypid, att->atttypmod,
                                     COERCION_ASSIGNMENT, COERCE_IMPLICIT_CAST, -1);
  if (cast == nullptr)
    ereport(ERROR,
            (errcode(ERRCODE_DATATYPE_MISMATCH), errmsg("the default of column \"%s\" cannot be cast to %s",
                                                        column, format_type_be(att->atttypid))));
  (void)StoreAttrDefault(rel, attnum, cast, false, false);
  CommandCounterIncrement();
  table_close(rel, NoLock);
}

}  // namespace

void CarryDefault(unsigned relid, const std::string& column, const std::string& node_text) {
  const char* c = column.c_str();
  const char* t = node_text.c_str();
  Call([&]() { CarryDefaultC(relid, c, t); });
}

}  // namespace pkonline::pg
