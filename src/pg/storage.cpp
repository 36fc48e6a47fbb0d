// Storage swaps, index clones and the trusted NOT NULL (see include/pkonline/pg/storage.hpp).
#include "pkonline/pg/storage.hpp"

#include "pkonline/pg/bridge.hpp"

extern "C" {
#include "postgres.h"
#include "access/attmap.h"
#include "access/genam.h"
#include "access/relation.h"
#include "access/xact.h"
#include "commands/tablespace.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/toast_internals.h"
#include "catalog/catalog.h"
#include "catalog/dependency.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_attribute.h"
#include "catalog/pg_class.h"
#include "catalog/pg_statistic.h"
#include "access/stratnum.h"
#include "utils/fmgroids.h"
#include "commands/defrem.h"
#include "commands/tablecmds.h"
#include "nodes/makefuncs.h"
#include "parser/parse_utilcmd.h"
#include "storage/lmgr.h"
#include "storage/predicate.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/builtins.h"
#include "utils/syscache.h"
}

namespace pkonline::pg {

namespace {

template <typename T>
void Swap(T& x, T& y) {
  T t = x;
  x = y;
  y = t;
}

// Points `toast`'s internal dependency at `owner` (it had exactly one, on its old owner).
void Reown(Oid toast, Oid owner) {
  if (!OidIsValid(toast)) return;
  if (deleteDependencyRecordsFor(RelationRelationId, toast, false) != 1)
    elog(ERROR, "pkonline: expected one dependency record for TOAST table %u", toast);
  ObjectAddress base{RelationRelationId, owner, 0};
  ObjectAddress self{RelationRelationId, toast, 0};
  recordDependencyOn(&self, &base, DEPENDENCY_INTERNAL);
}

// Renames a TOAST table and its index to PostgreSQL's own pattern for `owner`.
void NameToast(Oid toast, Oid owner, const char* suffix) {
  if (!OidIsValid(toast)) return;
  char name[NAMEDATALEN];
  snprintf(name, sizeof name, "pg_toast_%u%s", owner, suffix);
  RenameRelationInternal(toast, name, true, false);
  CommandCounterIncrement();
  snprintf(name, sizeof name, "pg_toast_%u%s_index", owner, suffix);
  RenameRelationInternal(toast_get_valid_index(toast, AccessExclusiveLock), name, true, true);
  CommandCounterIncrement();
}

void SwapStorageC(Oid a, Oid b) {
  Relation ra = relation_open(a, AccessExclusiveLock);
  Relation rb = relation_open(b, AccessExclusiveLock);
  if (ra->rd_rel->relkind != rb->rd_rel->relkind)
    elog(ERROR, "pkonline: cannot swap storage of different kinds");
  if (ra->rd_rel->relowner != rb->rd_rel->relowner)
    ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                    errmsg("pkonline: cannot swap the storage of \"%s\" with \"%s\", which has another owner",
                           RelationGetRelationName(ra), RelationGetRelationName(rb))));
  if (ra->rd_rel->relkind == RELKIND_RELATION) {
    TransferPredicateLocksToHeapRelation(ra);
    TransferPredicateLocksToHeapRelation(rb);
  }
  relation_close(ra, NoLock);
  relation_close(rb, NoLock);

  Relation pg_class = table_open(RelationRelationId, RowExclusiveLock);
  HeapTuple ta = SearchSysCacheCopy1(RELOID, ObjectIdGetDatum(a));
  HeapTuple tb = SearchSysCacheCopy1(RELOID, ObjectIdGetDatum(b));
  if (!HeapTupleIsValid(ta) || !HeapTupleIsValid(tb))
    elog(ERROR, "pkonline: cache lookup failed for relation");
  Form_pg_class fa = reinterpret_cast<Form_pg_class>(GETSTRUCT(ta));
  Form_pg_class fb = reinterpret_cast<Form_pg_class>(GETSTRUCT(tb));
  if (!OidIsValid(fa->relfilenode) || !OidIsValid(fb->relfilenode) ||
      fa->relpersistence != fb->relpersistence)
    elog(ERROR, "pkonline: relations %u and %u cannot swap storage", a, b);
  const bool heap = fa->relkind == RELKIND_RELATION;
  Swap(fa->relfilenode, fb->relfilenode);
  Swap(fa->reltablespace, fb->reltablespace);
  Swap(fa->relpages, fb->relpages);
  Swap(fa->reltuples, fb->reltuples);
  Swap(fa->relallvisible, fb->relallvisible);
  Swap(fa->relfrozenxid, fb->relfrozenxid);
  Swap(fa->relminmxid, fb->relminmxid);
  if (heap) Swap(fa->reltoastrelid, fb->reltoastrelid);
  const Oid toast_a = fa->reltoastrelid;  // now the TOAST table of b's old storage, and so on
  const Oid toast_b = fb->reltoastrelid;
  CatalogTupleUpdate(pg_class, &ta->t_self, ta);
  CatalogTupleUpdate(pg_class, &tb->t_self, tb);
  heap_freetuple(ta);
  heap_freetuple(tb);
  table_close(pg_class, RowExclusiveLock);
  CommandCounterIncrement();
  if (heap) {
    Reown(toast_a, a);
    Reown(toast_b, b);
    CommandCounterIncrement();
    // Names follow their owners: first out of the way, then into place.
    NameToast(toast_b, b, "_pkonline_old");
    NameToast(toast_a, a, "");
  }
  RelationCloseSmgrByOid(a);
  RelationCloseSmgrByOid(b);
}

// The clone's columns named `from` (a plain key or INCLUDE column) take the name `to`, and the
// default operator class of that column's type; none may be in an expression or a predicate.
void RenameClonedColumn(IndexStmt* stmt, const char* from, const char* to) {
  if (stmt->whereClause != nullptr)
    elog(ERROR, "pkonline: a partial index cannot be cloned onto another column");
  for (List* elems : {stmt->indexParams, stmt->indexIncludingParams}) {
    ListCell* lc;
    foreach (lc, elems) {
      auto* elem = lfirst_node(IndexElem, lc);
      if (elem->expr != nullptr)
        elog(ERROR, "pkonline: an expression index cannot be cloned onto another column");
      if (elem->name == nullptr || strcmp(elem->name, from) != 0) continue;
      elem->name = pstrdup(to);
      elem->opclass = NIL;
      elem->opclassopts = NIL;
      elem->collation = NIL;
    }
  }
}

Oid CreateIndexLikeC(Oid relid, Oid model, const char* name, bool build, const char* from, const char* to) {
  Relation heap = table_open(relid, ShareLock);
  Relation model_rel = index_open(model, AccessShareLock);
  const int natts = RelationGetDescr(heap)->natts;
  AttrMap* map = make_attrmap(natts);  // same columns at the same positions: the identity
  for (int i = 0; i < natts; i++) map->attnums[i] = static_cast<AttrNumber>(i + 1);
  RangeVar* rv = makeRangeVar(get_namespace_name(RelationGetNamespace(heap)),
                              pstrdup(RelationGetRelationName(heap)), -1);
  IndexStmt* stmt = generateClonedIndexStmt(rv, model_rel, map, nullptr);
  stmt->idxname = pstrdup(name);
  if (from != nullptr) RenameClonedColumn(stmt, from, to);
  stmt->isconstraint = false;
  stmt->primary = false;
  stmt->deferrable = false;
  stmt->initdeferred = false;
  stmt->concurrent = false;
  stmt->if_not_exists = false;
  stmt->reset_default_tblspc = false;
  stmt->tableSpace = nullptr;
  const Oid space = model_rel->rd_rel->reltablespace;
  if (OidIsValid(space)) stmt->tableSpace = get_tablespace_name(space);
  index_close(model_rel, AccessShareLock);
  table_close(heap, NoLock);
  ObjectAddress made =
      DefineIndex(relid, stmt, InvalidOid, InvalidOid, InvalidOid, false, false, true, !build, true);
  CommandCounterIncrement();
  return made.objectId;
}

void SetNotNullC(Oid relid, AttrNumber attnum) {
  Relation attr = table_open(AttributeRelationId, RowExclusiveLock);
  HeapTuple t = SearchSysCacheCopyAttNum(relid, attnum);
  if (!HeapTupleIsValid(t))
    elog(ERROR, "pkonline: cache lookup failed for attribute %d of %u", attnum, relid);
  reinterpret_cast<Form_pg_attribute>(GETSTRUCT(t))->attnotnull = true;
  CatalogTupleUpdate(attr, &t->t_self, t);
  heap_freetuple(t);
  table_close(attr, RowExclusiveLock);
  CommandCounterIncrement();
}

// The index columns named `from` in the indexes of `relid` take the name `to` (an index column
// keeps the name its table column had when the index was built).
void RenameIndexColumnsC(Oid relid, const char* from, const char* to) {
  Relation heap = table_open(relid, NoLock);
  List* indexes = RelationGetIndexList(heap);
  table_close(heap, NoLock);
  Relation attr = table_open(AttributeRelationId, RowExclusiveLock);
  ListCell* lc;
  foreach (lc, indexes) {
    const Oid index = lfirst_oid(lc);
    HeapTuple t = SearchSysCacheCopyAttName(index, from);
    if (!HeapTupleIsValid(t)) continue;
    namestrcpy(&reinterpret_cast<Form_pg_attribute>(GETSTRUCT(t))->attname, to);
    CatalogTupleUpdate(attr, &t->t_self, t);
    heap_freetuple(t);
  }
  table_close(attr, RowExclusiveLock);
  CommandCounterIncrement();
}

}  // namespace

void RenameIndexColumns(unsigned relid, const std::string& from, const std::string& to) {
  const char* f = from.c_str();
  const char* t = to.c_str();
  Call([&]() { RenameIndexColumnsC(relid, f, t); });
}

void SwapStorage(unsigned a, unsigned b) {
  Call([&]() { SwapStorageC(a, b); });
}

namespace {
int copy_writes = 0;

// Every pg_statistic row of a becomes b's and the other way round (same columns at the same
// positions: the rows describe the storage that the swap moved).
void SwapStatisticsC(Oid a, Oid b) {
  Relation sd = table_open(StatisticRelationId, RowExclusiveLock);
  List* rows = NIL;
  for (Oid rel : {a, b}) {
    ScanKeyData key;
    ScanKeyInit(&key, Anum_pg_statistic_starelid, BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(rel));
    SysScanDesc scan = systable_beginscan(sd, StatisticRelidAttnumInhIndexId, true, nullptr, 1, &key);
    HeapTuple tup;
    while (HeapTupleIsValid(tup = systable_getnext(scan))) {
      rows = lappend(rows, heap_copytuple(tup));
      CatalogTupleDelete(sd, &tup->t_self);
    }
    systable_endscan(scan);
  }
  CommandCounterIncrement();
  ListCell* lc;
  foreach (lc, rows) {
    HeapTuple tup = static_cast<HeapTuple>(lfirst(lc));
    auto* st = reinterpret_cast<Form_pg_statistic>(GETSTRUCT(tup));
    st->starelid = st->starelid == a ? b : a;
    CatalogTupleInsert(sd, tup);
  }
  table_close(sd, RowExclusiveLock);
  CommandCounterIncrement();
}
}  // namespace

void SwapStatistics(unsigned a, unsigned b) {
  Call([&]() { SwapStatisticsC(a, b); });
}

bool CopyWritesAllowed() { return copy_writes > 0; }
CopyWriteScope::CopyWriteScope(bool on) : on_(on) {
  if (on_) copy_writes++;
}
CopyWriteScope::~CopyWriteScope() {
  if (on_) copy_writes--;
}

unsigned CreateIndexLike(unsigned relid, unsigned model, const std::string& name, bool build,
                         const std::string& from, const std::string& to) {
  const char* n = name.c_str();
  const char* f = from.empty() ? nullptr : from.c_str();
  const char* t = to.c_str();
  return Call([&]() { return static_cast<unsigned>(CreateIndexLikeC(relid, model, n, build, f, t)); });
}

void LockShared(unsigned relid) {
  Call([&]() { LockRelationOid(relid, AccessShareLock); });
}

void SetNotNullTrusted(unsigned relid, int attnum) {
  Call([&]() { SetNotNullC(relid, static_cast<AttrNumber>(attnum)); });
}

}  // namespace pkonline::pg
