// The findings of pkonline.check() that read the table and the server (see check_findings.hpp).
// Everything is read as the caller: what pg_stat_activity or pg_stat_replication hide from the
// caller stays hidden, and the finding says so.
#include "pkonline/api/check_findings.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <optional>

#include "pkonline/guc.hpp"
#include "pkonline/ops/partitions.hpp"
#include "pkonline/pg/quote.hpp"
#include "pkonline/pg/bridge.hpp"
#include "pkonline/pg/disk.hpp"
#include "pkonline/pg/spi.hpp"
#include "pkonline/pg/txn.hpp"
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

// pkonline.estimate()'s numbers for the operation check() looks at (the SQL function holds the
// model: sql/pkonline--0.4--0.5.sql).
struct Estimate {
  double data_peak = 0, after = 0, wal = 0, wal_kept = 0, seconds_low = 0, seconds_high = 0;
  std::string basis;
};

Estimate EstimateNow(unsigned relid, const CheckedOperation& op) {
  auto r = pg::Query(
      "SELECT e.disk_peak_bytes, e.disk_after_bytes, e.wal_bytes, e.seconds_low, e.seconds_high, e.basis, "
      "LEAST(e.wal_bytes, (SELECT setting::float8 * 1048576 FROM pg_catalog.pg_settings WHERE name = "
      "'max_wal_size')) "
      "FROM pkonline.estimate($1::oid::pg_catalog.regclass, $2, $3::pg_catalog.jsonb "
      "  || pg_catalog.jsonb_build_object('catalog_only', $4::boolean)) e",
      {Rel(relid), V(op.operation), V(op.args_json.empty() ? std::string("{}") : op.args_json),
       V(std::string(op.catalog_only ? "true" : "false"))},
      true);
  const auto& row = r.rows.at(0);
  Estimate e;
  e.wal_kept = Num(row[6]);
  e.data_peak = Num(row[0]) - e.wal_kept;
  e.after = Num(row[1]);
  e.wal = Num(row[2]);
  e.seconds_low = Num(row[3]);
  e.seconds_high = Num(row[4]);
  e.basis = row[5].value_or("");
  return e;
}

// The estimate, or (arguments the operation refuses: its finding says why) none.
std::optional<Estimate> EstimateOf(unsigned relid, const CheckedOperation& op) {
  Estimate e;
  if (pg::InRolledBackSubtransaction([&]() { e = EstimateNow(relid, op); })) return std::nullopt;
  return e;
}

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
  const std::optional<Estimate> est = EstimateOf(relid, op);
  if (!est) return;  // (the operation's finding says what is wrong with its arguments)
  const Estimate& e = *est;
  const double need = e.data_peak;
  if (need <= 0) {
    out.push_back({"ok", "disk", Fmt("%1% needs no room: %2%", op.operation, e.basis), ""});
    return;
  }
  const std::string what = Fmt("%1% after the job; pkonline.estimate() for what it rests on", Bytes(e.after));
  pg::FreeSpace free = pg::FreeSpaceFor(relid);
  if (!AsBool(pg::Query("SELECT pg_catalog.pg_has_role('pg_monitor', 'USAGE')", {}, true).scalar())) {
    free.bytes.reset();  // the server's file systems are for its monitors to see
    free.unknown_why = "shown to members of pg_monitor only";
  }
  const std::string needs = Fmt("%1% needs about %2% more at its peak, %3%", op.operation, Bytes(need), what);
  const std::string wal = "The WAL it writes goes to pg_wal: see the finding wal.";
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
  const int64_t blocks = AsInt(row[1]) + AsInt(row[2]);
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
  const std::optional<Estimate> est = EstimateOf(relid, op);
  if (!est) return;
  const Estimate& e = *est;
  out.push_back(
      {"ok", "duration",
       Fmt("between %1% and %2% (%3%)", Interval(e.seconds_low, 0), Interval(e.seconds_high, 0), e.basis),
       "Throttles (pkonline.max_replica_lag, max_wal_rate), lock waits, old snapshots and the application's "
       "load make it longer (bench/estimate.sh: 30 of 30 jobs inside the range on the bench machine)."});
}

// The WAL the job writes, against what keeps it: max_wal_size (more frequent checkpoints beyond
// it), replication slots (kept until their consumers have it), archiving (the archive must take
// it), physical standbys (they replay it).
void Wal(unsigned relid, const CheckedOperation& op, std::vector<Finding>& out) {
  const std::optional<Estimate> est = EstimateOf(relid, op);
  if (!est) return;
  const Estimate& e = *est;
  if (e.wal <= 0) {
    out.push_back({"ok", "wal", "no WAL to speak of: " + e.basis, ""});
    return;
  }
  auto r = pg::Query(
      "SELECT (SELECT setting::float8 * 1048576 FROM pg_catalog.pg_settings WHERE name = 'max_wal_size'), "
      "(SELECT setting::float8 FROM pg_catalog.pg_settings WHERE name = 'max_slot_wal_keep_size'), "
      "(SELECT count(*) FROM pg_catalog.pg_replication_slots), "
      "(SELECT setting FROM pg_catalog.pg_settings WHERE name = 'archive_mode'), "
      "(SELECT count(*) FROM pg_catalog.pg_stat_replication)",
      {}, true);
  const auto& row = r.rows.at(0);
  const double max_wal = Num(row[0]), slot_keep_mb = Num(row[1]);
  const int64_t slots = AsInt(row[2]), standbys = AsInt(row[4]);
  const bool archiving = row[3].value_or("off") != "off";
  std::string detail = Fmt("about %1% of WAL (%2% max_wal_size)", Bytes(e.wal), Bytes(max_wal));
  std::vector<std::string> notes;
  bool warn = false;
  if (e.wal > max_wal) notes.push_back("more than max_wal_size: checkpoints come sooner while it runs");
  if (slots > 0) {
    notes.push_back(
        slot_keep_mb < 0
            ? Fmt("%1% replication slot(s) keep it until their consumers have it, without a limit "
                  "(max_slot_wal_keep_size = -1)",
                  slots)
            : Fmt("%1% replication slot(s) keep up to max_slot_wal_keep_size (%2%) of it", slots,
                  Bytes(slot_keep_mb * 1048576)));
    warn = warn || slot_keep_mb < 0;
  }
  if (archiving) notes.push_back("archive_mode is on: the archive must take all of it");
  if (standbys > 0) notes.push_back(Fmt("%1% standby(s) replay it", standbys));
  for (const auto& n : notes) detail += "; " + n;
  out.push_back(
      {warn ? "warning" : "ok", "wal", detail,
       warn ? "Make sure pg_wal's file system has room for it until every slot's consumer has it, or "
              "set pkonline.max_wal_rate to spread it out."
            : "pkonline.max_wal_rate spreads it out if the archive or the standbys cannot keep up."});
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
