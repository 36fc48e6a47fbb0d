// Where user-written code can run. session_replication_role = replica (which keeps the table's
// own triggers quiet during a backfill) also switches off foreign-key checks and triggers on
// every other table: it may be used only where no code a user wrote can run in the statement.
#pragma once

namespace pkonline::pg {

// Could an UPDATE of one column of this table run code a user wrote, other than the job's own
// triggers (functions of the pkonline extension)? Yes when the table has a trigger or rule
// enabled ALWAYS or REPLICA, or a CHECK or exclusion constraint, index, generated column or policy
// that uses a function, operator, operator class or type that is neither built in nor part of an
// extension. Locks the table ROW EXCLUSIVE first, so that the answer holds for the rest of the
// transaction (adding any of these needs a lock that conflicts with it, or, for an index built
// concurrently, waits for this transaction before it is written to).
bool TableRunsUserCode(unsigned relid);

}  // namespace pkonline::pg
