// A partitioned table's tree, as a job sees it (see include/pkonline/ops/partitions.hpp).
#include "pkonline/ops/partitions.hpp"

#include <algorithm>
#include <chrono>

#include "pkonline/json.hpp"
#include "pkonline/pg/bridge.hpp"
#include "pkonline/pg/spi.hpp"
#include "pkonline/text.hpp"

namespace pkonline::ops {

using pg::V;

std::vector<unsigned> Leaves(const jobs::Job& job) {
  auto r = pg::Query(
      "SELECT relid::pg_catalog.oid::pg_catalog.int8 FROM pg_catalog.pg_partition_tree($1::oid) "
      "WHERE isleaf ORDER BY relid::pg_catalog.oid",
      {V(static_cast<int64_t>(job.relid))}, false);
  std::vector<unsigned> out;
  for (const auto& row : r.rows) out.push_back(static_cast<unsigned>(pg::AsInt(row[0])));
  return out;
}

std::optional<std::string> LeafSql(const jobs::Job& job, unsigned leaf) {
  auto r = pg::Query(
      "SELECT pg_catalog.format('%I.%I', n.nspname, c.relname), c.relowner = $3::oid, "
      "c.relowner::pg_catalog.regrole::pg_catalog.text, c.relkind::pg_catalog.text, c.relforcerowsecurity, "
      "pg_catalog.has_schema_privilege(c.relowner, c.relnamespace, 'CREATE'), "
      "EXISTS (SELECT 1 FROM pg_catalog.pg_partition_ancestors(c.oid) a "
      "        JOIN pg_catalog.pg_partitioned_table p ON p.partrelid = a.relid "
      "        WHERE 0 = ANY (p.partattrs::pg_catalog.int2[])) "
      "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
      "WHERE c.oid = $1::oid AND c.oid IN (SELECT relid FROM pg_catalog.pg_partition_tree($2::oid))",
      {V(static_cast<int64_t>(leaf)), V(static_cast<int64_t>(job.relid)),
       V(static_cast<int64_t>(job.run_as))},
      false);
  if (r.empty()) return std::nullopt;
  const auto& row = r.rows[0];
  const std::string& name = *row[0];
  const std::string then = Fmt("DETACH it, then pkonline.resume(%1%); or pkonline.cancel(%1%).", job.id);
  if (!pg::AsBool(row[1]))
    Fail(sqlstate::kInsufficientPrivilege,
         Fmt("partition %1% of %2% changed owner (now %3%) while job %4% ran", name, job.table_name,
             row[2].value_or("?"), job.id),
         "The job works as the owner of the partitioned table, and only on partitions that role owns.",
         Fmt("Give the partition back to that role, then pkonline.resume(%1%); or pkonline.cancel(%1%).",
             job.id));
  if (*row[3] != "r")
    Fail(sqlstate::kFeatureNotSupported,
         Fmt("partition %1% of %2% is not an ordinary table (a foreign table?)", name, job.table_name),
         "A primary key cannot be built on a foreign table.", then);
  if (pg::AsBool(row[4]))
    Fail(sqlstate::kFeatureNotSupported,
         Fmt("partition %1% of %2% has FORCE ROW LEVEL SECURITY", name, job.table_name),
         "The job works as the table's owner, who would see and fill only the rows its policies allow.",
         "ALTER TABLE ... NO FORCE ROW LEVEL SECURITY, or " + then);
  if (pg::AsBool(row[6]))
    Fail(sqlstate::kFeatureNotSupported,
         Fmt("partition %1% of %2% is below a table partitioned by an expression", name, job.table_name),
         "The primary key of a partitioned table must contain its partition key, and a key holds columns "
         "only.",
         then);
  if (!pg::AsBool(row[5]))
    Fail(sqlstate::kInsufficientPrivilege,
         Fmt("the owner of partition %1% may not create objects in its schema", name),
         "The job builds each partition's key index in the partition's schema.",
         Fmt("GRANT CREATE ON that schema to the table's owner, then pkonline.resume(%1%).", job.id));
  return name;
}

std::vector<std::string> UncoveredKeyColumns(const jobs::Job& job, unsigned leaf,
                                             const std::vector<std::string>& key) {
  auto r = pg::Query(
      "SELECT DISTINCT a.attname::pg_catalog.text FROM pg_catalog.pg_partition_ancestors($1::oid) t "
      "JOIN pg_catalog.pg_partitioned_table p ON p.partrelid = t.relid "
      "CROSS JOIN LATERAL pg_catalog.unnest(p.partattrs::pg_catalog.int2[]) k(attnum) "
      "JOIN pg_catalog.pg_attribute a ON a.attrelid = t.relid AND a.attnum = k.attnum "
      "WHERE a.attname::pg_catalog.text NOT IN "
      "  (SELECT pg_catalog.jsonb_array_elements_text($2::pg_catalog.jsonb)) ORDER BY 1",
      {V(static_cast<int64_t>(leaf)), V(Json::Strings(key).ToText())}, false);
  std::vector<std::string> out;
  for (const auto& row : r.rows) out.push_back(*row[0]);
  return out;
}

void LockTree(const jobs::Job& job, const std::string& table_sql, const std::string& mode) {
  // The table, then its partitions level by level (the order ALTER TABLE and ATTACH PARTITION take
  // them in), each waiting only for what is left of one pkonline.lock_timeout.
  auto r = pg::Query(
      "SELECT pg_catalog.format('%I.%I', n.nspname, c.relname) FROM pg_catalog.pg_partition_tree($1::oid) t "
      "JOIN pg_catalog.pg_class c ON c.oid = t.relid JOIN pg_catalog.pg_namespace n ON n.oid = "
      "c.relnamespace "
      "WHERE t.level > 0 ORDER BY t.level, t.relid::pg_catalog.oid",
      {V(static_cast<int64_t>(job.relid))}, false);
  std::vector<std::string> tables{table_sql};
  for (const auto& row : r.rows) tables.push_back(*row[0]);
  const int64_t full = job.settings.lock_timeout_ms;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(full);
  for (const auto& t : tables) {
    const int64_t left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now())
            .count();
    if (left < 1)
      Fail(sqlstate::kLockNotAvailable,
           Fmt("could not lock the %1% tables of %2% within pkonline.lock_timeout (%3% ms)", tables.size(),
               job.table_name, full));
    pg::Exec("SET LOCAL lock_timeout = '" + std::to_string(left) + "ms'");
    pg::Exec("LOCK TABLE ONLY " + t + " IN " + mode + " MODE");
  }
  pg::Exec("SET LOCAL lock_timeout = '" + std::to_string(full) + "ms'");
}

int64_t Blocks(unsigned relid) {
  return pg::AsInt(pg::Query("SELECT pg_catalog.pg_relation_size($1::oid) / "
                             "pg_catalog.current_setting('block_size')::bigint",
                             {V(static_cast<int64_t>(relid))}, true)
                       .scalar());
}

int64_t RowsEstimate(unsigned relid) {
  auto r = pg::Query("SELECT GREATEST(reltuples, 0)::bigint FROM pg_catalog.pg_class WHERE oid = $1::oid",
                     {V(static_cast<int64_t>(relid))}, true);
  return r.empty() ? 0 : pg::AsInt(r.scalar());
}

std::vector<std::string> PartitionKeyColumns(unsigned relid, bool* expression) {
  auto r = pg::Query(
      "SELECT a.attname::pg_catalog.text, k.attnum = 0 "
      "FROM pg_catalog.pg_partition_tree($1::oid) t "
      "JOIN pg_catalog.pg_partitioned_table p ON p.partrelid = t.relid "
      "CROSS JOIN LATERAL pg_catalog.unnest(p.partattrs::pg_catalog.int2[]) WITH ORDINALITY k(attnum, ord) "
      "LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = t.relid AND a.attnum = k.attnum "
      "ORDER BY t.level, k.ord",
      {V(static_cast<int64_t>(relid))}, true);
  std::vector<std::string> out;
  *expression = false;
  for (const auto& row : r.rows) {
    if (pg::AsBool(row[1])) {
      *expression = true;
      continue;
    }
    const std::string name = *row[0];
    bool seen = false;
    for (const auto& c : out) seen = seen || c == name;
    if (!seen) out.push_back(name);
  }
  return out;
}

}  // namespace pkonline::ops
