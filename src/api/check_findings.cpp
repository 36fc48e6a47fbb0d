// The findings of pkonline.check() that read the table and the server (see check_findings.hpp).
// Everything is read as the caller: what pg_stat_activity or pg_stat_replication hide from the
// caller stays hidden, and the finding says so.
#include "pkonline/api/check_findings.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "pkonline/guc.hpp"
#include "pkonline/ops/partitions.hpp"
#include "pkonline/pg/quote.hpp"
#include "pkonline/pg/bridge.hpp"
#include "pkonline/pg/disk.hpp"
#include "pkonline/pg/sample.hpp"
#include "pkonline/pg/spi.hpp"
#include "pkonline/text.hpp"

namespace pkonline::api {

using pg::AsBool;
using pg::AsInt;
using pg::V;

namespace {

pg::Value Rel(unsigned relid) { return V(static_cast<int64_t>(relid)); }

// A numeric result (0 for NULL: a size of a relation dropped meanwhile).
double Num(const pg::Value& v) { return std::stod(v.value_or("0")); }

std::string Bytes(double b) {
  const char* units[] = {"bytes", "kB", "MB", "GB", "TB"};
  int u = 0;
  while (b >= 10240 && u < 4) {
    b /= 1024;
    u++;
  }
  return Fmt("%1% %2%", static_cast<int64_t>(std::llround(b)), units[u]);
}

// HH:MM:SS (hours past 99 as they are), at least `floor` seconds.
std::string Interval(double seconds, int64_t floor = 1) {
  const int64_t s = std::max<int64_t>(floor, static_cast<int64_t>(seconds));
  return Fmt("%02d:%02d:%02d", s / 3600, s / 60 % 60, s % 60);
}

// Bytes per entry of a new btree index on one 8-byte key (tuple header, key, line pointer, at
// the default fillfactor 90).
constexpr double kIndexEntryBytes = 22;
// An in-place backfill rewrites every row once; VACUUM every pkonline.vacuum_every blocks lets
// the next batches reuse the space, and the table grows by about this much.
constexpr double kInPlaceGrowth = 0.15;
// A job's time per heap block against the time a read of that block takes (pg/sample.hpp),
// measured with bench/check_estimate.sh (1M rows of the bench table, cached, 2 cores, the
// defaults): rewriting rows in place ~880 reads, filling a volatile column ~870, converting a key
// ~900, the copy ~125, a unique index alone ~120.
constexpr double kInPlaceFactor = 880, kFillFactor = 870, kCopyFactor = 125, kIndexOnlyFactor = 120,
                 kConvertFactor = 900;

struct Sizes {
  double table = 0, indexes = 0, rows = 0;
  int64_t blocks = 0;
};

Sizes SizesOf(unsigned relid) {
  auto r = pg::Query(
      "SELECT pg_catalog.pg_table_size(c.oid), pg_catalog.pg_indexes_size(c.oid), GREATEST(c.reltuples, 0), "
      "pg_catalog.pg_relation_size(c.oid) / pg_catalog.current_setting('block_size')::bigint "
      "FROM pg_catalog.pg_class c WHERE c.oid = $1::oid",
      {Rel(relid)}, true);
  if (r.empty()) return {};
  return {Num(r.rows[0][0]), Num(r.rows[0][1]), Num(r.rows[0][2]), AsInt(r.rows[0][3])};
}

// What the operation writes besides the rows it changes in place, and how it is made up.
std::pair<double, std::string> Needed(unsigned relid, const CheckedOperation& op, const Sizes& s) {
  const double growth = kInPlaceGrowth * s.table, key = s.rows * kIndexEntryBytes;
  if (op.operation == "add_int_pk" && op.copy)
    return {CopyMethodBytes(relid), "a second copy of the table and its indexes, and the key's index"};
  if (op.operation == "add_int_pk")
    return {growth + s.rows * 8 + key,
            "the rows rewritten in place (~15 % growth, and 8 bytes more each) and the key's index"};
  if (op.operation == "add_column" && op.catalog_only)
    return {0, "the value is not volatile: a catalog-only change, no row is rewritten"};
  if (op.operation == "add_column")
    return {growth + (op.unique ? key : 0),
            op.unique ? "the rows rewritten in place (~15 % growth, plus the new values) and the unique index"
                      : "the rows rewritten in place (~15 % growth, plus the new values)"};
  if (op.operation == "set_primary_key")
    return {key * static_cast<double>(std::max<size_t>(1, op.columns.size())),
            "the new unique index (none if an existing one is reused)"};
  // convert_pk_to_bigint: the shadow columns' backfill and every index on a converted column,
  // built again (wider), in each table it touches.
  auto r = pg::Query(
      "WITH cols AS (SELECT conrelid AS rel, conkey[1] AS att FROM pg_catalog.pg_constraint "
      "  WHERE conrelid = $1::oid AND contype = 'p' "
      "  UNION SELECT conrelid, conkey[1] FROM pg_catalog.pg_constraint "
      "  WHERE confrelid = $1::oid AND contype = 'f' AND $2::boolean) "
      "SELECT COALESCE((SELECT sum(pg_catalog.pg_table_size(rel)) FROM (SELECT DISTINCT rel FROM cols) t), "
      "0), "
      "COALESCE((SELECT sum(GREATEST(c.reltuples, 0)) FROM pg_catalog.pg_class c "
      "  WHERE c.oid IN (SELECT rel FROM cols)), 0), "
      "COALESCE((SELECT sum(pg_catalog.pg_relation_size(i.indexrelid)) FROM pg_catalog.pg_index i "
      "  WHERE EXISTS (SELECT 1 FROM cols WHERE cols.rel = i.indrelid AND cols.att = ANY (i.indkey))), 0)",
      {Rel(relid), V(std::string(op.referencing ? "true" : "false"))}, true);
  return {kInPlaceGrowth * Num(r.rows[0][0]) + 8 * Num(r.rows[0][1]) + 1.2 * Num(r.rows[0][2]),
          "the new bigint columns filled in place (~15 % growth, and 8 bytes more a row) and each index on a "
          "converted column built again"};
}

}  // namespace

double CopyMethodBytes(unsigned relid) {
  const Sizes s = SizesOf(relid);
  return s.table + s.indexes + s.rows * kIndexEntryBytes;
}

void SizeAndDisk(unsigned relid, const CheckedOperation& op, std::vector<Finding>& out) {
  const Sizes s = SizesOf(relid);
  out.push_back({"ok", "size",
                 Fmt("table %1%, indexes %2%, about %3% rows in %4% blocks", Bytes(s.table), Bytes(s.indexes),
                     static_cast<int64_t>(s.rows), s.blocks),
                 ""});
  const auto [need, what] = Needed(relid, op, s);
  if (need <= 0) {
    out.push_back({"ok", "disk", Fmt("%1% needs no room: %2%", op.operation, what), ""});
    return;
  }
  pg::FreeSpace free = pg::FreeSpaceFor(relid);
  if (!AsBool(pg::Query("SELECT pg_catalog.pg_has_role('pg_monitor', 'USAGE')", {}, true).scalar())) {
    free.bytes.reset();  // the server's file systems are for its monitors to see
    free.unknown_why = "shown to members of pg_monitor only";
  }
  const std::string needs = Fmt("%1% needs about %2% more: %3%", op.operation, Bytes(need), what);
  const std::string wal =
      "WAL is not counted: it goes to pg_wal, within max_wal_size and the archive's pace.";
  if (!free.bytes) {
    out.push_back({"warning", "disk",
                   Fmt("%1%; the free space of tablespace %2% is unknown (%3%)", needs, free.tablespace,
                       free.unknown_why),
                   "Check the file system's free space by hand. " + wal});
    return;
  }
  const double avail = static_cast<double>(*free.bytes);
  const std::string has =
      Fmt("%1%; the file system of tablespace %2% has %3% free", needs, free.tablespace, Bytes(avail));
  if (need > avail)
    out.push_back(
        {op.copy ? "blocker" : "warning", "disk", has,
         op.copy ? "Free disk space, or use method => 'in_place', which rewrites the rows where they are."
                 : "Free disk space first: a full disk stops every writer of the server."});
  else if (need > 0.8 * avail)
    out.push_back({"warning", "disk", has, "Little room would be left: free disk space first. " + wal});
  else
    out.push_back({"ok", "disk", has, wal});
}

void Duration(unsigned relid, const CheckedOperation& op, std::vector<Finding>& out) {
  auto r = pg::Query(
      "SELECT pg_catalog.has_table_privilege(c.oid, 'SELECT'), "
      "pg_catalog.pg_relation_size(c.oid) / pg_catalog.current_setting('block_size')::bigint, "
      "(SELECT COALESCE(sum(pg_catalog.pg_relation_size(r.conrelid)), 0) / "
      "        pg_catalog.current_setting('block_size')::bigint "
      " FROM (SELECT DISTINCT conrelid FROM pg_catalog.pg_constraint "
      "       WHERE confrelid = c.oid AND contype = 'f' AND conrelid <> c.oid AND $2::boolean) r) "
      "FROM pg_catalog.pg_class c WHERE c.oid = $1::oid",
      {Rel(relid),
       V(std::string(op.operation == "convert_pk_to_bigint" && op.referencing ? "true" : "false"))},
      true);
  if (r.empty()) return;
  const auto& row = r.rows[0];
  const int64_t table_blocks = AsInt(row[1]);
  const int64_t blocks = table_blocks + AsInt(row[2]);
  const jobs::JobSettings settings = guc::CurrentJobSettings();
  if (!AsBool(row[0])) {
    out.push_back({"warning", "duration", "unknown: you may not read the table, so no sample was timed",
                   "Run check() as the table's owner."});
    return;
  }
  if (blocks == 0 || op.catalog_only) {
    out.push_back({"ok", "duration",
                   op.catalog_only ? "seconds: the value is not volatile, a catalog-only change"
                                   : "seconds: the table is empty",
                   ""});
    return;
  }
  // Three batch-sized samples (start, middle, end of the heap), or the whole of a small table,
  // read page by page (pg/sample.hpp: no SQL, so none of the table's code runs) and timed here.
  const int64_t sample = std::max(1, settings.batch_size);
  std::vector<int64_t> starts{0};
  if (table_blocks > 3 * sample) starts = {0, (table_blocks - sample) / 2, table_blocks - sample};
  const int64_t length = starts.size() == 1 ? table_blocks : sample;
  double seconds = 0;
  int64_t read = 0, rows = 0;
  for (int64_t start : starts) {
    const auto t0 = std::chrono::steady_clock::now();
    rows += pg::ReadHeapBlocks(relid, start, length);
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    read += std::min(length, table_blocks - start);
  }
  const double per_block = seconds / static_cast<double>(std::max<int64_t>(read, 1));
  // The job's time per block read, measured on the bench (bench/check_estimate.sh): writing rows
  // and WAL, the index builds, VACUUM and the pauses between batches.
  const double factor = op.operation == "add_int_pk"        ? (op.copy ? kCopyFactor : kInPlaceFactor)
                        : op.operation == "add_column"      ? kFillFactor
                        : op.operation == "set_primary_key" ? kIndexOnlyFactor
                                                            : kConvertFactor;
  const double pacing = settings.batch_time_ms > 0
                            ? static_cast<double>(settings.batch_time_ms + settings.batch_sleep_ms) /
                                  static_cast<double>(settings.batch_time_ms)
                            : 1.0;
  const double estimate = per_block * static_cast<double>(blocks) * factor * pacing;
  out.push_back({"ok", "duration",
                 Fmt("about %1% (between %2% and %3%), from %4% row versions in %5% blocks read in %6% ms of "
                     "%7% blocks",
                     Interval(estimate), Interval(estimate / 2), Interval(estimate * 2), rows, read,
                     Fmt("%.1f", seconds * 1000), blocks),
                 "Throttles (pkonline.max_replica_lag, max_wal_rate), lock waits and the application's load "
                 "make it longer; a table read from cache makes the estimate short."});
}

void Transactions(std::vector<Finding>& out) {
  const bool all =
      AsBool(pg::Query("SELECT pg_catalog.pg_has_role('pg_read_all_stats', 'USAGE')", {}, true).scalar());
  auto r = pg::Query(
      "SELECT pid, COALESCE(usename::pg_catalog.text, '?'), state, "
      "EXTRACT(epoch FROM pg_catalog.clock_timestamp() - xact_start)::pg_catalog.float8, datname "
      "FROM pg_catalog.pg_stat_activity "
      "WHERE pid <> pg_catalog.pg_backend_pid() AND xact_start IS NOT NULL "
      "AND backend_type <> 'autovacuum worker' "
      "AND ((state LIKE 'idle in transaction%' AND state_change < pg_catalog.clock_timestamp() - interval '1 "
      "second') "
      "  OR (xact_start < pg_catalog.clock_timestamp() - interval '5 seconds' "
      "      AND (backend_xmin IS NOT NULL OR backend_xid IS NOT NULL))) "
      "ORDER BY xact_start",
      {}, true);
  const std::string why =
      "The job's concurrent index build waits for every snapshot older than itself, and VACUUM cannot "
      "reclaim the rows the backfill leaves behind while it is open.";
  for (const auto& row : r.rows)
    out.push_back(
        {"warning", "transaction",
         Fmt("pid %1% (role %2%, database %3%): %4%, its transaction open for %5%", row[0].value_or("?"),
             row[1].value_or("?"), row[4].value_or("?"), row[2].value_or("?"), Interval(Num(row[3]), 0)),
         why + Fmt(" End it, or pg_terminate_backend(%1%).", row[0].value_or("?"))});
  auto p = pg::Query(
      "SELECT gid, COALESCE(owner::pg_catalog.text, '?'), COALESCE(database::pg_catalog.text, '?'), "
      "pg_catalog.quote_literal(gid), EXTRACT(epoch FROM pg_catalog.clock_timestamp() - "
      "prepared)::pg_catalog.float8 "
      "FROM pg_catalog.pg_prepared_xacts ORDER BY prepared",
      {}, true);
  for (const auto& row : p.rows)
    out.push_back({"warning", "prepared transaction",
                   Fmt("%1% (role %2%, database %3%) prepared %4% ago", row[3].value_or("?"),
                       row[1].value_or("?"), row[2].value_or("?"), Interval(Num(row[4]), 0)),
                   why + Fmt(" COMMIT PREPARED or ROLLBACK PREPARED %1%.", row[3].value_or("?"))});
  if (r.empty() && p.empty())
    out.push_back(
        {"ok", "transaction",
         std::string(
             "no transaction holding a snapshot for more than 5 seconds, none idle in transaction for a "
             "second or more, none prepared") +
             (all ? "" : " (of the sessions you may see: only your own roles')"),
         all ? "" : "A member of pg_read_all_stats sees every session."});
}

void Replication(unsigned relid, const CheckedOperation& op, std::vector<Finding>& out) {
  auto r = pg::Query(
      "SELECT (SELECT pg_catalog.string_agg(p.pubname::pg_catalog.text, ', ' ORDER BY p.pubname) "
      "  FROM pg_catalog.pg_publication_tables p WHERE p.schemaname = n.nspname AND p.tablename = "
      "c.relname), "
      "CASE c.relreplident WHEN 'd' THEN CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k "
      "  WHERE k.conrelid = c.oid AND k.contype = 'p') THEN 'default (the primary key)' "
      "  ELSE 'default, and no primary key: UPDATEs and DELETEs cannot be published' END "
      "  WHEN 'n' THEN 'nothing' "
      "  WHEN 'f' THEN 'full' ELSE 'index ' || COALESCE((SELECT "
      "i.indexrelid::pg_catalog.regclass::pg_catalog.text "
      "  FROM pg_catalog.pg_index i WHERE i.indrelid = c.oid AND i.indisreplident), '?') END "
      "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = "
      "$1::oid",
      {Rel(relid)}, true);
  if (r.empty()) return;
  const auto& row = r.rows[0];
  if (!row[0]) {
    out.push_back({"ok", "publication",
                   "the table is in no publication; replica identity " + row[1].value_or("?"), ""});
  } else {
    std::string advice;
    if (op.operation == "add_int_pk" || op.operation == "add_column")
      advice =
          Fmt("Add column %1% to the table on every subscriber first: a subscriber whose table lacks a "
              "published column stops applying changes.",
              op.column.empty() ? std::string("the new column") : op.column);
    else if (op.operation == "set_primary_key")
      advice =
          "With the default replica identity, UPDATEs and DELETEs are published by the new key: give the "
          "subscribers' tables a key or identity on the same columns first.";
    else
      advice = "Subscribers' columns must be bigint before the publisher's are.";
    out.push_back({"warning", "publication",
                   Fmt("the table is published in %1%; replica identity %2%", *row[0], row[1].value_or("?")),
                   advice});
  }
  const int max_lag = guc::CurrentJobSettings().max_replica_lag_ms;
  auto s = pg::Query(
      "SELECT COALESCE(NULLIF(r.application_name, ''), r.client_addr::pg_catalog.text, "
      "r.pid::pg_catalog.text), "
      "r.state, (EXTRACT(epoch FROM r.replay_lag) * 1000)::bigint FROM pg_catalog.pg_stat_replication r "
      "WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots l "
      "  WHERE l.active_pid = r.pid AND l.slot_type = 'logical') ORDER BY 1",
      {}, true);
  if (s.empty()) out.push_back({"ok", "standby", "no physical standby is connected", ""});
  for (const auto& st : s.rows) {
    const std::string name = st[0].value_or("?");
    if (!st[2]) {
      out.push_back({"ok", "standby",
                     Fmt("standby %1% (%2%): replay lag unknown (an idle standby, or one you may not see)",
                         name, st[1].value_or("?")),
                     max_lag > 0 ? Fmt("The backfill waits whenever a standby replays more than "
                                       "pkonline.max_replica_lag (%1% ms) behind.",
                                       max_lag)
                                 : ""});
      continue;
    }
    const int64_t lag = AsInt(st[2]);
    const bool behind = max_lag > 0 && lag > max_lag;
    out.push_back({behind ? "warning" : "ok", "standby",
                   Fmt("standby %1% (%2%) replays %3% ms behind; pkonline.max_replica_lag is %4%", name,
                       st[1].value_or("?"), lag, max_lag > 0 ? Fmt("%1% ms", max_lag) : "0 (not waited for)"),
                   behind ? "The backfill would wait for it from its first batch." : ""});
  }
}

void Attached(unsigned relid, std::vector<Finding>& out) {
  auto r = pg::Query(
      "SELECT "
      "(SELECT pg_catalog.string_agg(pg_catalog.format('%I (%s)', tgname, CASE tgenabled WHEN 'O' THEN "
      "'enabled' "
      "   WHEN 'D' THEN 'disabled' WHEN 'A' THEN 'ALWAYS' ELSE 'REPLICA' END), ', ' ORDER BY tgname) "
      " FROM pg_catalog.pg_trigger WHERE tgrelid = c.oid AND NOT tgisinternal), "
      "(SELECT pg_catalog.string_agg(pg_catalog.quote_ident(rulename), ', ' ORDER BY rulename) "
      " FROM pg_catalog.pg_rewrite WHERE ev_class = c.oid AND rulename <> '_RETURN'), "
      "(SELECT pg_catalog.string_agg(pg_catalog.format('%I to %s', conname, confrelid::pg_catalog.regclass), "
      "', ' "
      "   ORDER BY conname) FROM pg_catalog.pg_constraint WHERE conrelid = c.oid AND contype = 'f'), "
      "(SELECT pg_catalog.string_agg(pg_catalog.format('%I from %s', conname, "
      "conrelid::pg_catalog.regclass), ', ' "
      "   ORDER BY conname) FROM pg_catalog.pg_constraint WHERE confrelid = c.oid AND contype = 'f'), "
      "(SELECT pg_catalog.string_agg(inhparent::pg_catalog.regclass::pg_catalog.text, ', ') "
      " FROM pg_catalog.pg_inherits WHERE inhrelid = c.oid), "
      "(SELECT pg_catalog.string_agg(inhrelid::pg_catalog.regclass::pg_catalog.text, ', ') "
      " FROM pg_catalog.pg_inherits WHERE inhparent = c.oid) "
      "FROM pg_catalog.pg_class c WHERE c.oid = $1::oid",
      {Rel(relid)}, true);
  if (r.empty()) return;
  const auto& row = r.rows[0];
  auto some = [](const pg::Value& v) { return v.value_or("none"); };
  out.push_back({"ok", "triggers", some(row[0]),
                 row[0]
                     ? "The backfill's own UPDATEs fire only triggers enabled ALWAYS or REPLICA, unless "
                       "pkonline.backfill_fires_triggers is on; the application's writes fire them as usual."
                     : ""});
  out.push_back({"ok", "rules", some(row[1]), ""});
  out.push_back({"ok", "foreign keys out", some(row[2]), ""});
  out.push_back({"ok", "foreign keys in", some(row[3]), ""});
  if (row[4] || row[5])
    out.push_back({"ok", "inheritance", Fmt("parents: %1%; children: %2%", some(row[4]), some(row[5])), ""});
  else
    out.push_back({"ok", "inheritance", "none: no parent, no child, not a partition", ""});
}

void Partitions(unsigned relid, const CheckedOperation& op, std::vector<Finding>& out) {
  auto r = pg::Query(
      "SELECT pg_catalog.count(*) FILTER (WHERE isleaf), pg_catalog.max(level), "
      "pg_catalog.pg_size_pretty(pg_catalog.sum(pg_catalog.pg_total_relation_size(relid)) FILTER (WHERE "
      "isleaf)), "
      "(SELECT pg_catalog.format('%s (%s, about %s rows)', l.relid::pg_catalog.regclass, "
      "  pg_catalog.pg_size_pretty(pg_catalog.pg_total_relation_size(l.relid)), "
      "  GREATEST(c.reltuples, 0)::pg_catalog.int8) "
      " FROM pg_catalog.pg_partition_tree($1::oid) l JOIN pg_catalog.pg_class c ON c.oid = l.relid "
      " WHERE l.isleaf ORDER BY pg_catalog.pg_total_relation_size(l.relid) DESC, l.relid LIMIT 1) "
      "FROM pg_catalog.pg_partition_tree($1::oid)",
      {Rel(relid)}, true);
  const auto& row = r.rows[0];
  out.push_back({"ok", "partitions",
                 Fmt("%1% partitions in %2% level(s), %3% in all; the largest: %4%", AsInt(row[0]),
                     AsInt(row[1]), row[2].value_or("0 bytes"), row[3].value_or("none")),
                 "Each partition is filled and gets its own key in turn; partitions created or attached "
                 "during the job are included."});
  if (op.operation != "add_int_pk" && op.operation != "set_primary_key") return;
  std::vector<std::string> key = op.columns;  // set_primary_key's columns, or add_int_pk's pk_columns
  if (key.empty() && op.operation == "set_primary_key") return;
  if (key.empty()) {
    bool expression = false;
    key.push_back(op.column);
    for (const auto& c : ops::PartitionKeyColumns(relid, &expression))
      if (c != op.column) key.push_back(c);
  }
  std::string list;
  for (const auto& c : key) list += (list.empty() ? "" : ", ") + pg::Ident(c);
  out.push_back({"ok", "key", Fmt("the job will create PRIMARY KEY (%1%)", list),
                 op.columns.empty()
                     ? "A partitioned table's key must contain its partition key columns; "
                       "pk_columns names another order."
                     : "Each partition gets its own key on these columns first; the partitioned "
                       "table's attaches them."});
}

}  // namespace pkonline::api
