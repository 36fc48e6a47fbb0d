// pkonline.add_int_pk(): checks, then a queued job row with its plan, then (optionally) a worker.
#include "pkonline/api/api.hpp"
#include "pkonline/api/check_findings.hpp"
#include "pkonline/api/checks.hpp"
#include "pkonline/api/create_job.hpp"
#include "pkonline/guc.hpp"
#include "pkonline/jobs/store.hpp"
#include "pkonline/ops/operation.hpp"
#include "pkonline/ops/plans.hpp"
#include "pkonline/pg/bridge.hpp"
#include "pkonline/text.hpp"
#include "pkonline/pg/catalog.hpp"
#include "pkonline/pg/disk.hpp"
#include "pkonline/pg/spi.hpp"
#include "pkonline/pg/storage.hpp"

extern "C" {
#include "postgres.h"
#include "catalog/pg_type.h"
}

namespace pkonline::api {

namespace {

struct IntType {
  const char* name;
  double max;
};

IntType RequireIntType(unsigned type) {
  switch (type) {
    case INT2OID:
      return {"smallint", 32767.0};
    case INT4OID:
      return {"integer", 2147483647.0};
    case INT8OID:
      return {"bigint", 9.2e18};
    default:
      Fail(sqlstate::kInvalidParameter, "column_type must be smallint, integer or bigint", "",
           "The default, bigint, never runs out.");
  }
}

// What the copy method cannot do, refused before anything changes (inheritance and FORCE ROW
// LEVEL SECURITY are refused for every method: checks.cpp).
void RequireCopyable(const TableInfo& t, const IntType& type) {
  const pg::Value relid = pg::V(static_cast<int64_t>(t.relid));
  auto r = pg::Query(
      "SELECT NULL, "
      "EXISTS (SELECT 1 FROM pg_catalog.pg_publication p WHERE p.puballtables) OR "
      "EXISTS (SELECT 1 FROM pg_catalog.pg_publication_rel WHERE prrelid = c.oid) OR "
      "EXISTS (SELECT 1 FROM pg_catalog.pg_publication_namespace WHERE pnnspid = c.relnamespace), "
      "(SELECT pg_catalog.string_agg(i.indexrelid::pg_catalog.regclass::pg_catalog.text, ', ') FROM "
      "pg_catalog.pg_index i "
      "WHERE i.indrelid = c.oid AND NOT (i.indisvalid AND i.indisready AND i.indislive)), "
      "EXISTS (SELECT 1 FROM pg_catalog.pg_constraint WHERE conrelid = c.oid AND contype = 'x'), "
      "NULL, NULL, "
      "pg_catalog.pg_relation_size(c.oid) / pg_catalog.current_setting('block_size')::bigint "
      "FROM pg_catalog.pg_class c WHERE c.oid = $1::oid",
      {relid}, true);
  const auto& row = r.rows[0];
  const std::string in_place = "method => 'in_place' works on it.";
  if (pg::AsBool(row[1]))
    Fail(sqlstate::kFeatureNotSupported, Fmt("table %1% is published for logical replication", t.qualified),
         "The copy's rows would be published as writes to another table, and the swap not at all.", in_place);
  if (row[2])
    Fail(sqlstate::kObjectNotInState, Fmt("table %1% has invalid indexes: %2%", t.qualified, *row[2]),
         "A failed CREATE INDEX CONCURRENTLY leaves an invalid index; the copy method cannot rebuild it.",
         "DROP INDEX or REINDEX it first.");
  if (pg::AsBool(row[3]))
    Fail(sqlstate::kFeatureNotSupported, Fmt("table %1% has an exclusion constraint", t.qualified), "",
         in_place);
  const pg::FreeSpace free = pg::FreeSpaceFor(t.relid);
  const double needed = CopyMethodBytes(t.relid);
  if (free.bytes && needed > static_cast<double>(*free.bytes))
    Fail(
        SqlState("53100"), Fmt("not enough disk space for the copy of %1%", t.qualified),
        Fmt("The copy method needs about %1% MB (the table, its indexes and the new key's index, once more), "
            "more than the file system of the table's tablespace has free.",
            static_cast<int64_t>(needed / 1048576)),
        "Free disk space, or use method => 'in_place', which rewrites the rows where they are.");
  // Rows not written during the job get ids from their position: up to pg::kIdsPerHeapBlock per
  // block; the table may grow by kGrowthMargin before the job starts, and kNewRowsMargin ids are
  // kept for rows inserted meanwhile.
  constexpr double kGrowthMargin = 1.5, kNewRowsMargin = 1000.0;
  const double largest =
      static_cast<double>(pg::AsInt(row[6])) * kGrowthMargin * static_cast<double>(pg::kIdsPerHeapBlock) +
      kNewRowsMargin;
  if (largest >= type.max)
    Fail(sqlstate::kNumericOutOfRange,
         Fmt("table %1% is too large for column_type %2% with the copy method", t.qualified, type.name),
         Fmt("Its ids come from row positions: up to %1% per 8 kB block.", pg::kIdsPerHeapBlock),
         "Use column_type => 'bigint'.");
}

}  // namespace

int64_t AddIntPk(const AddIntPkArgs& a) {
  pg::SpiScope spi;
  RequirePrimary();
  const IntType type = RequireIntType(a.column_type);
  TableInfo t = RequireOwnedPlainTable(a.relid);
  RequireNoPrimaryKey(t);
  RequireColumnFree(t, a.column_name);
  RequireNoForcedRls(t, "ALTER TABLE ... NO FORCE ROW LEVEL SECURITY while the job runs.");
  if (t.reltuples >= type.max)
    Fail(sqlstate::kNumericOutOfRange,
         Fmt("table %1% has about %2% rows, more than column_type %3% can number", t.qualified,
             static_cast<int64_t>(t.reltuples), type.name),
         "", "Use column_type => 'bigint'.");
  if (a.method != "in_place" && a.method != "copy")
    Fail(
        sqlstate::kInvalidParameter, "method must be 'in_place' or 'copy'", "",
        "in_place fills the rows where they are; copy writes them once more, ids filled, and swaps storage.");
  if (a.method == "copy") RequireCopyable(t, type);
  RequireNoActiveJob(t);

  ops::AddIntPkPlan plan;
  plan.schema = t.schema;
  plan.column = a.column_name;
  plan.column_type = type.name;
  plan.identity = a.identity;
  plan.method = a.method == "copy" ? ops::IntPkMethod::kCopy : ops::IntPkMethod::kInPlace;
  plan.pk_name = pg::ChooseName(t.name, "", "pkey", t.nsp_oid, true);

  if (a.dry_run) return 0;
  const int64_t id = CreateJob(t, plan.kOperation, plan.Save(), a.start);
  spi.Close();
  Announce(id,
           Fmt("add_int_pk on %1%, column %2% %3%, primary key %4%%5%", t.qualified, a.column_name, type.name,
               plan.pk_name, plan.method == ops::IntPkMethod::kCopy ? ", copy method" : ""),
           a.start);
  return id;
}

}  // namespace pkonline::api
