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

#include <algorithm>

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

// What the copy method cannot do for add_int_pk, beyond RequireCopyable: ids from positions
// must fit the column's type.
void RequireCopyableIds(const TableInfo& t, const IntType& type) {
  RequireCopyable(t, "the new key's index");
  const int64_t blocks = pg::AsInt(
      pg::Query(
          "SELECT pg_catalog.pg_relation_size($1::oid) / pg_catalog.current_setting('block_size')::bigint",
          {pg::V(static_cast<int64_t>(t.relid))}, true)
          .scalar());
  // Rows not written during the job get ids from their position: up to pg::kIdsPerHeapBlock per
  // block; the table may grow by kGrowthMargin before the job starts, and kNewRowsMargin ids are
  // kept for rows inserted meanwhile.
  constexpr double kGrowthMargin = 1.5, kNewRowsMargin = 1000.0;
  const double largest =
      static_cast<double>(blocks) * kGrowthMargin * static_cast<double>(pg::kIdsPerHeapBlock) +
      kNewRowsMargin;
  if (largest >= type.max)
    Fail(sqlstate::kNumericOutOfRange,
         Fmt("table %1% is too large for column_type %2% with the copy method", t.qualified, type.name),
         Fmt("Its ids come from row positions: up to %1% per 8 kB block.", pg::kIdsPerHeapBlock),
         "Use column_type => 'bigint'.");
}

// A partitioned table's key: the new column with the partition key columns of every level, or
// the DBA's pk_columns, which must hold the new column and every one of those. Its identity
// stays a sequence DEFAULT: in PostgreSQL 15 an identity of a partitioned table does not reach
// its partitions (a row inserted into one directly would have no id).
std::vector<std::string> PartitionedKey(const TableInfo& t, const AddIntPkArgs& a) {
  const std::vector<std::string> part = RequirePartitionTree(t);
  if (a.identity.value_or(false))
    Fail(sqlstate::kFeatureNotSupported,
         Fmt("identity => true does not work on partitioned table %1%", t.qualified),
         "In PostgreSQL 15 an identity column of a partitioned table does not reach its partitions: a row "
         "inserted into a partition directly would get no id.",
         "Leave identity out: the column gets a sequence as its DEFAULT, which every partition has.");
  std::vector<std::string> key;
  if (!a.pk_columns) {
    key.push_back(a.column_name);
    for (const auto& c : part)
      if (c != a.column_name) key.push_back(c);
    return key;
  }
  key = *a.pk_columns;
  bool has_new = false;
  for (size_t i = 0; i < key.size(); i++) {
    has_new = has_new || key[i] == a.column_name;
    for (size_t j = 0; j < i; j++)
      if (key[j] == key[i])
        Fail(sqlstate::kInvalidParameter, Fmt("pk_columns names column \"%1%\" twice", key[i]));
    if (key[i] != a.column_name &&
        pg::Query(
            "SELECT 1 FROM pg_catalog.pg_attribute WHERE attrelid = $1::oid AND attname = $2 AND attnum > 0 "
            "AND NOT attisdropped",
            {pg::V(static_cast<int64_t>(t.relid)), pg::V(key[i])}, true)
            .empty())
      Fail(sqlstate::kUndefinedColumn,
           Fmt("column \"%1%\" of pk_columns does not exist in %2%", key[i], t.qualified));
  }
  if (!has_new)
    Fail(sqlstate::kInvalidParameter, Fmt("pk_columns must contain the new column \"%1%\"", a.column_name),
         "", "pkonline.set_primary_key() makes existing columns the key.");
  std::vector<std::string> suggested = key;
  for (const auto& c : part)
    if (std::find(key.begin(), key.end(), c) == key.end()) suggested.push_back(c);
  if (suggested.size() > key.size()) {
    std::string list;
    for (const auto& c : suggested) list += (list.empty() ? "" : ",") + c;
    Fail(sqlstate::kFeatureNotSupported,
         Fmt("pk_columns lacks partition key column \"%1%\" of %2%", suggested[key.size()], t.qualified),
         "PostgreSQL requires a partitioned table's primary key to contain every partition key column.",
         Fmt("Add it: pk_columns => '{%1%}'.", list));
  }
  return key;
}

}  // namespace

int64_t AddIntPk(const AddIntPkArgs& a) {
  pg::SpiScope spi;
  RequirePrimary();
  const IntType type = RequireIntType(a.column_type);
  TableInfo t = RequireOwnedPlainTable(a.relid, true);
  RequireNoPrimaryKey(t);
  RequireColumnFree(t, a.column_name);
  RequireNoForcedRls(t, "ALTER TABLE ... NO FORCE ROW LEVEL SECURITY while the job runs.");
  std::vector<std::string> key;
  if (t.partitioned) {
    key = PartitionedKey(t, a);
    RequireKeyTypes(t, key);
  } else if (a.pk_columns) {
    Fail(sqlstate::kInvalidParameter, "pk_columns is for partitioned tables",
         Fmt("%1% is not partitioned: its primary key is the new column alone.", t.qualified),
         "Leave pk_columns out; pkonline.set_primary_key() makes other columns a key.");
  }
  if (t.partitioned)  // a partitioned table has no rows of its own: its partitions' estimates
    t.reltuples = std::stod(pg::Query("SELECT COALESCE(pg_catalog.sum(GREATEST(c.reltuples, 0)), 0) FROM "
                                      "pg_catalog.pg_partition_tree($1::oid) p JOIN pg_catalog.pg_class c ON "
                                      "c.oid = p.relid WHERE p.isleaf",
                                      {pg::V(static_cast<int64_t>(t.relid))}, true)
                                .scalar()
                                .value_or("0"));
  if (t.reltuples >= type.max)
    Fail(sqlstate::kNumericOutOfRange,
         Fmt("table %1% has about %2% rows, more than column_type %3% can number", t.qualified,
             static_cast<int64_t>(t.reltuples), type.name),
         "", "Use column_type => 'bigint'.");
  if (a.method != "in_place" && a.method != "copy")
    Fail(
        sqlstate::kInvalidParameter, "method must be 'in_place' or 'copy'", "",
        "in_place fills the rows where they are; copy writes them once more, ids filled, and swaps storage.");
  if (a.method == "copy" && t.partitioned)
    Fail(sqlstate::kFeatureNotSupported,
         Fmt("the copy method does not work on partitioned table %1%", t.qualified),
         "It would copy and swap every partition; in place, each partition is filled where its rows are.",
         "Use method => 'in_place' (the default).");
  if (a.method == "copy") RequireCopyableIds(t, type);
  RequireNoActiveJob(t);

  ops::AddIntPkPlan plan;
  plan.schema = t.schema;
  plan.column = a.column_name;
  plan.column_type = type.name;
  plan.identity = a.identity.value_or(!t.partitioned);
  plan.partitioned = t.partitioned;
  if (t.partitioned) plan.pk_columns = key;
  plan.method = a.method == "copy" ? ops::IntPkMethod::kCopy : ops::IntPkMethod::kInPlace;
  plan.pk_name = pg::ChooseName(t.name, "", "pkey", t.nsp_oid, true);

  if (a.dry_run) return 0;
  const int64_t id = CreateJob(t, plan.kOperation, plan.Save(), a.start);
  spi.Close();
  Announce(
      id,
      Fmt("add_int_pk on %1%, column %2% %3%, primary key %4%%5%", t.qualified, a.column_name, type.name,
          plan.pk_name,
          plan.method == ops::IntPkMethod::kCopy ? ", copy method"
          : t.partitioned
              ? Fmt(" (%1%): a partitioned table's key contains its partition key; partition by partition",
                    ops::QuotedList(key))
              : std::string()),
      a.start);
  return id;
}

}  // namespace pkonline::api
