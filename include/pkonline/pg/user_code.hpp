// Where user-written code can run. session_replication_role = replica (which keeps the table's
// own triggers quiet during a backfill) also switches off foreign-key checks and triggers on
// every other table: it may be used only where no code a user wrote can run in the statement.
#pragma once

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

// Could the index's expressions or predicate run code a user wrote (as NodeRunsUserCode)? An
// index built again on a column of another type resolves its functions and operators anew: only
// built-in ones (found in pg_catalog, the worker's search_path) are sure to resolve as before.
bool IndexRunsUserCode(unsigned index_oid);

// Could evaluating this expression tree (a Node*, analysed) run code a user wrote: a function that
// is not built in, or a built-in one that runs SQL given as text; a subquery (it may read through
// views and policies); a domain's checks; a value of a type that is not built in (its input
// function may check a domain, a composite's fields may be of one)?
bool NodeRunsUserCode(void* node);

}  // namespace pkonline::pg
