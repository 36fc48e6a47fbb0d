// Worker transactions, top-level statements, latch sleeps and role switches.
#include "pkonline/pg/txn.hpp"

#include <chrono>
#include "pkonline/pg/wal.hpp"

#include "pkonline/pg/bridge.hpp"
#include "pkonline/pg/lock_watch.hpp"
#include "pkonline/pg/spi.hpp"
#include "pkonline/pg/user_code.hpp"

extern "C" {
#include "postgres.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "executor/instrument.h"
#include "miscadmin.h"
#include "utils/timestamp.h"
#include "pgstat.h"
#include "executor/spi.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "nodes/parsenodes.h"
#include "commands/tablecmds.h"
#include "commands/tablespace.h"
#include "parser/analyze.h"
#include "parser/parse_utilcmd.h"
#include "storage/latch.h"
#include "tcop/pquery.h"
#include "tcop/tcopprot.h"
#include "tcop/utility.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/portal.h"
#include "utils/snapmgr.h"
#include "utils/timeout.h"
#include "utils/wait_event.h"
}

namespace pkonline::pg {

namespace {

// Abort whatever transaction is open, back to a clean idle state.
void AbortAll() {
  Call([]() {
    HOLD_INTERRUPTS();
    disable_all_timeouts(false);
    AbortOutOfAnyTransaction();
    RESUME_INTERRUPTS();
  });
}

}  // namespace

void InTransaction(const std::string& activity, const std::function<void()>& fn, const TxnOptions& opts) {
  const char* act = activity.c_str();
  const int lock_ms = opts.lock_timeout_ms;
  const bool repeatable = opts.repeatable_read;
  const int deadlock_ms = opts.deadlock_timeout_ms;
  int nest = 0;
  Call([&]() {
    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    if (repeatable) XactIsoLevel = XACT_REPEATABLE_READ;  // before the first snapshot
    // Every setting the transaction changes — ours, and any that code it runs sets, even with
    // set_config(…, false) — is undone when it ends (as PostgreSQL's own maintenance commands do
    // around the table owner's code); it starts with search_path pinned.
    nest = NewGUCNestLevel();
    (void)set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
                            true, 0, false);
    if (lock_ms > 0) {
      char buf[32];
      snprintf(buf, sizeof buf, "%d", lock_ms);
      set_config_option("lock_timeout", buf, PGC_USERSET, PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0, false);
    }
    {
      char buf[32];
      snprintf(buf, sizeof buf, "%d", deadlock_ms > 0 ? deadlock_ms : TxnOptions::kDeadlockMs);
      (void)set_config_option("deadlock_timeout", buf, PGC_SUSET, PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0,
                              false);
    }
    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
    PushActiveSnapshot(GetTransactionSnapshot());
    pgstat_report_activity(STATE_RUNNING, act);
  });
  try {
    fn();
    lock_watch::BeforeTransactionEnd();
    Call([&]() {
      SPI_finish();
      PopActiveSnapshot();
      AtEOXact_GUC(false, nest);
      CommitTransactionCommand();
      pgstat_report_stat(false);
      pgstat_report_activity(STATE_IDLE, nullptr);
    });
    lock_watch::AfterTransactionEnd();
  } catch (...) {
    lock_watch::BeforeTransactionEnd();
    AbortAll();
    lock_watch::AfterTransactionEnd();
    throw;
  }
}

std::optional<PgError> InRolledBackSubtransaction(const std::function<void()>& fn) {
  MemoryContext const context = CurrentMemoryContext;
  ResourceOwner const owner = CurrentResourceOwner;
  Call([&]() {
    BeginInternalSubTransaction(nullptr);
    MemoryContextSwitchTo(context);
  });
  // Back to the caller's memory context first: fn may have left an SPI connection's context
  // current, which the rollback deletes.
  auto rollback = [&]() {
    MemoryContextSwitchTo(context);
    Call([&]() {
      RollbackAndReleaseCurrentSubTransaction();
      MemoryContextSwitchTo(context);
      CurrentResourceOwner = owner;
    });
  };
  std::optional<PgError> error;
  try {
    fn();
  } catch (const PgError& e) {
    error = e;
  } catch (...) {
    rollback();
    throw;
  }
  rollback();
  return error;
}

void ReplicaRoleForThisTransaction() {
  Call([]() {
    (void)set_config_option("session_replication_role", "replica", PGC_SUSET, PGC_S_SESSION, GUC_ACTION_LOCAL,
                            true, 0, false);
  });
}

uint64_t WalBytes() { return pgWalUsage.wal_bytes; }

void SetWorkerSetting(const std::string& name, const std::string& value) {
  const char* n = name.c_str();
  const char* v = value.c_str();
  Call([&]() { (void)set_config_option(n, v, PGC_SUSET, PGC_S_SESSION, GUC_ACTION_SET, true, 0, false); });
}

namespace {

using Renames = std::vector<std::pair<std::string, std::string>>;

const char* Renamed(const Renames& renames, const char* name) {
  for (const auto& [from, to] : renames)
    if (from == name) return to.c_str();
  return nullptr;
}

// Renames the unqualified column references `from` in a raw expression tree (in place).
bool RenameColumnRefs(Node* node, void* context) {
  if (node == nullptr) return false;
  if (IsA(node, ColumnRef)) {
    auto* ref = reinterpret_cast<ColumnRef*>(node);
    if (list_length(ref->fields) == 1 && IsA(linitial(ref->fields), String)) {
      const char* to = Renamed(*static_cast<const Renames*>(context), strVal(linitial(ref->fields)));
      if (to != nullptr) ref->fields = list_make1(makeString(pstrdup(to)));
    }
    return false;
  }
  // (PostgreSQL 15 declares the walker without parameters; the cast through void (*)() says so.)
  return raw_expression_tree_walker(
      node, reinterpret_cast<bool (*)()>(reinterpret_cast<void (*)()>(RenameColumnRefs)), context);
}

void RenameInIndexElems(List* elems, Renames& r) {
  ListCell* lc;
  foreach (lc, elems) {
    auto* elem = lfirst_node(IndexElem, lc);
    const char* to = elem->name != nullptr ? Renamed(r, elem->name) : nullptr;
    if (to != nullptr) elem->name = pstrdup(to);
    if (elem->expr != nullptr) (void)RenameColumnRefs(elem->expr, &r);
  }
}

// The rewrite of a CREATE INDEX statement (see txn.hpp).
void ApplyIndexRewrite(RawStmt* raw, const IndexRewrite& rw, const char* sql) {
  if (!IsA(raw->stmt, IndexStmt)) elog(ERROR, "pkonline: not an index definition");
  auto* stmt = reinterpret_cast<IndexStmt*>(raw->stmt);
  // (no C++ object is made here: this runs inside the error bridge's PG_TRY)
  Renames& r = const_cast<Renames&>(rw.renames);
  RenameInIndexElems(stmt->indexParams, r);
  RenameInIndexElems(stmt->indexIncludingParams, r);
  if (stmt->whereClause != nullptr) (void)RenameColumnRefs(stmt->whereClause, &r);
  const char* like = stmt->idxname;  // the old index's name, as the definition gave it
  stmt->idxname = pstrdup(rw.name.c_str());
  stmt->concurrent = true;
  stmt->if_not_exists = false;
  // Analysed here, once: what its names resolve to now is checked, and this very tree is what
  // DefineIndex builds (ProcessUtility does not analyse a statement marked transformed again).
  const Oid relid = RangeVarGetRelidExtended(stmt->relation, ShareUpdateExclusiveLock, 0,
                                             RangeVarCallbackOwnsRelation, nullptr);
  // pg_get_indexdef leaves out the tablespace: the new index goes where the old one is.
  const Oid old_index = get_relname_relid(like, get_rel_namespace(relid));
  const Oid space = OidIsValid(old_index) ? get_rel_tablespace(old_index) : InvalidOid;
  if (OidIsValid(space)) stmt->tableSpace = get_tablespace_name(space);
  IndexStmt* analysed = transformIndexStmt(relid, stmt, sql);
  RequireBuiltInIndexStmt(analysed, relid, like);
  raw->stmt = reinterpret_cast<Node*>(analysed);
}

}  // namespace

namespace {

// The table a top-level CREATE INDEX, DROP INDEX or VACUUM (of one table) works on, InvalidOid
// for others.
Oid TopLevelTarget(Node* stmt) {
  RangeVar* rel = nullptr;
  if (IsA(stmt, IndexStmt)) rel = castNode(IndexStmt, stmt)->relation;
  if (IsA(stmt, VacuumStmt) && list_length(castNode(VacuumStmt, stmt)->rels) == 1)
    rel = linitial_node(VacuumRelation, castNode(VacuumStmt, stmt)->rels)->relation;
  if (IsA(stmt, DropStmt) && castNode(DropStmt, stmt)->removeType == OBJECT_INDEX &&
      list_length(castNode(DropStmt, stmt)->objects) == 1) {  // DROP INDEX CONCURRENTLY: its table
    const Oid index = RangeVarGetRelid(
        makeRangeVarFromNameList(linitial_node(List, castNode(DropStmt, stmt)->objects)), NoLock, true);
    return OidIsValid(index) ? IndexGetRelation(index, true) : InvalidOid;
  }
  return rel != nullptr ? RangeVarGetRelid(rel, NoLock, true) : InvalidOid;
}

}  // namespace

void RunTopLevel(const std::string& sql, const IndexRewrite* rewrite) {
  const char* sql_c = sql.c_str();
  MemoryContext parse_cxt = nullptr;
  Oid target = InvalidOid;
  const auto started = std::chrono::steady_clock::now();
  try {
    Call([&]() {
      SetCurrentStatementStartTimestamp();
      StartTransactionCommand();
      pgstat_report_activity(STATE_RUNNING, sql_c);
      // Parse and plan trees must outlive the statement's own internal commits.
      parse_cxt =
          AllocSetContextCreate(TopMemoryContext, "pkonline top-level statement", ALLOCSET_DEFAULT_SIZES);
      MemoryContext old = MemoryContextSwitchTo(parse_cxt);
      List* raw = pg_parse_query(sql_c);
      if (list_length(raw) != 1) elog(ERROR, "pkonline: top-level SQL must be one statement");
      RawStmt* stmt = linitial_node(RawStmt, raw);
      if (rewrite != nullptr) ApplyIndexRewrite(stmt, *rewrite, sql_c);
      target = TopLevelTarget(stmt->stmt);
      bool snap = analyze_requires_snapshot(stmt);
      if (snap) PushActiveSnapshot(GetTransactionSnapshot());
      List* queries = pg_analyze_and_rewrite_fixedparams(stmt, sql_c, nullptr, 0, nullptr);
      List* plans = pg_plan_queries(queries, sql_c, CURSOR_OPT_PARALLEL_OK, nullptr);
      if (snap) PopActiveSnapshot();
      Portal portal = CreatePortal("pkonline", true, true);
      portal->visible = false;
      PortalDefineQuery(portal, nullptr, sql_c, CreateCommandTag(stmt->stmt), plans, nullptr);
      PortalStart(portal, nullptr, 0, InvalidSnapshot);
      DestReceiver* dest = CreateDestReceiver(DestNone);
      MemoryContextSwitchTo(old);
      QueryCompletion qc;
      InitializeQueryCompletion(&qc);
      PortalRun(portal, FETCH_ALL, true, true, dest, dest, &qc);
      dest->rDestroy(dest);
      PortalDrop(portal, false);
      CommitTransactionCommand();
      MemoryContextDelete(parse_cxt);
      parse_cxt = nullptr;
      pgstat_report_stat(false);
      pgstat_report_activity(STATE_IDLE, nullptr);
    });
  } catch (...) {
    AbortAll();
    if (parse_cxt != nullptr) MemoryContextDelete(parse_cxt);
    if (target != InvalidOid)
      lock_watch::TopLevel(
          target,
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count());
    throw;
  }
  if (target != InvalidOid)
    lock_watch::TopLevel(
        target,
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count());
}

void SleepMs(long ms) {
  if (ms <= 0) {
    CheckInterrupts();
    return;
  }
  // The whole time, though the latch is set meanwhile (a timer's signal sets it: the load
  // sampler's, every few milliseconds); interrupts are served at each wake-up.
  // (steady_clock: a step of the system clock does not lengthen it)
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  Call([&]() {
    for (;;) {
      const long left = static_cast<long>(
          std::chrono::ceil<std::chrono::milliseconds>(end - std::chrono::steady_clock::now()).count());
      if (left <= 0) break;
      (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, left, PG_WAIT_EXTENSION);
      ResetLatch(MyLatch);
      CHECK_FOR_INTERRUPTS();
    }
  });
}

void CheckInterrupts() {
  Call([]() { CHECK_FOR_INTERRUPTS(); });
}

namespace {

void AsRoleWith(unsigned role, int flags, const std::function<void()>& fn) {
  Oid saved_user;
  int saved_ctx;
  GetUserIdAndSecContext(&saved_user, &saved_ctx);
  // search_path pinned again: code that ran earlier in the transaction (the table owner's) may
  // have changed it, and fn runs with another role's rights.
  const int nest = Call([]() { return NewGUCNestLevel(); });
  SetUserIdAndSecContext(role, saved_ctx | SECURITY_LOCAL_USERID_CHANGE | flags);
  try {
    Call([]() {
      (void)set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION,
                              GUC_ACTION_SAVE, true, 0, false);
    });
    fn();
  } catch (...) {
    SetUserIdAndSecContext(saved_user, saved_ctx);
    throw;  // the transaction is rolled back, and its settings with it
  }
  SetUserIdAndSecContext(saved_user, saved_ctx);
  Call([&]() { AtEOXact_GUC(true, nest); });
}

}  // namespace

void AsRole(unsigned role, const std::function<void()>& fn) { AsRoleWith(role, 0, fn); }

void AsOwnerRestricted(unsigned owner, const std::function<void()>& fn) {
  AsRoleWith(owner, SECURITY_RESTRICTED_OPERATION, fn);
}

}  // namespace pkonline::pg
