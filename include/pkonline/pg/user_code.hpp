// Where user-written code can run. session_replication_role = replica (which keeps the table's
// own triggers quiet during a backfill) also switches off foreign-key checks and triggers on
// every other table: it may be used only where no code a user wrote can run in the statement.
#pragma once

#include <string>

namespace pkonline::pg {

// Could an UPDATE of one column of this table run code a user wrote, other than the job's own
// triggers (functions of the pkonline extension)? Yes when the table has a trigger or rule
// enabled ALWAYS or REPLICA, or a CHECK or exclusion constraint, index, generated column or policy
// that uses a function, operator, operator class or type that is neither built in nor a
// superuser's member of an extension, or it is a partition whose constraint (every level's
// bounds, key expressions and operator classes) does; or when one of those expressions could run user code
// (NodeRunsUserCode: dependencies on built-in objects are not recorded, so the expressions
// themselves are read). Locks the table ROW EXCLUSIVE first, so that the answer holds for the rest of the
// transaction (adding any of these needs a lock that conflicts with it, or, for an index built
// concurrently, waits for this transaction before it is written to).
bool TableRunsUserCode(unsigned relid);

// Could evaluating this expression tree (a Node*, analysed) run code a user wrote: a function that
// is not built in, or a built-in one that runs SQL given as text; a subquery (it may read through
// views and policies); a domain's checks; a value of a type that is not built in (its input
// function may check a domain, a composite's fields may be of one)?
bool NodeRunsUserCode(void* node);

// What an object built again from its definition could resolve differently (the corollary of the
// security model: a rebuild calls exactly what the original called, or PostgreSQL's built-in
// objects for the new type). Each returns a description of the first function, operator, operator
// class, collation, type or access method that PostgreSQL did not create at initdb (or a
// built-in function that runs SQL text, or "a subquery"), or "" if there is none:
// - of index `index_oid` (expressions, predicate, operator classes, collations);
std::string IndexNotBuiltIn(unsigned index_oid);
// - of an analysed expression tree stored as text (pg_attrdef.adbin, pg_constraint.conbin, ...).
std::string ExpressionNotBuiltIn(const std::string& node_text);

// An expression stored as SQL text (add_column's fill: a DEFAULT, a trigger's body, the backfill's
// UPDATE) is parsed again where it is used: a name in a schema where another role may create
// could then find that role's overload (a polymorphic function, one with defaults, an operator),
// and a type's owner may add casts. Returns what makes the expression tree `node_text` unsafe so
// for a table owned by `owner` — "function f(anyelement) is in schema shared", "type t belongs to
// bob" — or "": every function and operator that is not built in is in a schema that only the
// owner or a superuser owns and may create in, every type that is not built in and every table or
// view its subqueries read belong to the owner or a superuser, and it calls no built-in function
// that runs SQL given as text (query_to_xml and the like).
std::string NameOthersCouldShadow(const std::string& node_text, unsigned owner);

// For an IndexStmt that has been through parse analysis (transformIndexStmt), about to be run on
// table `relid` as a rebuild of index `like`: raises 0A000 naming what the index would use that is
// not built in — what its
// expressions, predicate, explicit and default operator classes and collations resolved to. The
// same analysed statement must then be run (DefineIndex does not look anything up again).
// C-style: may be called inside an error bridge's PG_TRY.
void RequireBuiltInIndexStmt(void* index_stmt, unsigned relid, const char* like);

}  // namespace pkonline::pg
