// check()'s look at the data of a new primary key (set_primary_key): NULLs and duplicates, found
// before the job rather than by it, and a UNIQUE constraint the key would make redundant. Exact
// from the catalog where it can be (NOT NULL, a unique index on the columns); else the table is
// read, up to kReadLimit bytes; past that, pg_stats' estimates. Read as the caller (the table's
// owner: the operation's own checks passed).
#include <chrono>
#include <optional>

#include "pkonline/api/check_findings.hpp"
#include "pkonline/api/checks.hpp"
#include "pkonline/pg/bridge.hpp"
#include "pkonline/pg/spi.hpp"
#include "pkonline/pg/txn.hpp"
#include "pkonline/text.hpp"

namespace pkonline::api {

namespace {

constexpr double kReadLimit = 1024.0 * 1024 * 1024;  // 1 GB: a few seconds of sequential reading

struct Key {
  std::string table, list, any_null;
  bool not_null = false;
  std::string unique_index, unique_constraint;
  double bytes = 0;
  bool has_pk = false;
  unsigned owner = 0;  // the table's: its code (policies, index expressions, types) runs as it
};

// A text[] literal: {"a","b"}, each element quoted, its quotes and backslashes escaped.
std::string ArrayLiteral(const std::vector<std::string>& items) {
  std::string out = "{";
  for (size_t i = 0; i < items.size(); i++) {
    out += i ? ",\"" : "\"";
    for (char ch : items[i]) {
      if (ch == '"' || ch == '\\') out += '\\';
      out += ch;
    }
    out += '"';
  }
  return out + "}";
}

// The columns' attnums in the key's order, as int2vector text ("3 1").
std::string KeyAttnums(unsigned relid, const std::vector<std::string>& columns) {
  return pg::Query(
             "SELECT pg_catalog.string_agg(a.attnum::pg_catalog.text, ' ' ORDER BY u.o) FROM "
             "pg_catalog.unnest($2::text[]) WITH ORDINALITY u(c, o) JOIN pg_catalog.pg_attribute a "
             "ON a.attrelid = $1::oid AND a.attname = u.c AND NOT a.attisdropped",
             {pg::V(static_cast<int64_t>(relid)), pg::V(ArrayLiteral(columns))}, true)
      .scalar()
      .value_or("");
}

Key Describe(unsigned relid, const std::vector<std::string>& columns) {
  auto r = pg::Query(
      "SELECT $1::oid::pg_catalog.regclass::pg_catalog.text, "
      "(SELECT pg_catalog.string_agg(pg_catalog.quote_ident(c), ', ' ORDER BY o) FROM "
      "pg_catalog.unnest($2::text[]) "
      "   WITH ORDINALITY u(c, o)), "
      "(SELECT pg_catalog.string_agg(pg_catalog.quote_ident(c) || ' IS NULL', ' OR ' ORDER BY o) "
      "   FROM pg_catalog.unnest($2::text[]) WITH ORDINALITY u(c, o)), "
      "(SELECT pg_catalog.bool_and(a.attnotnull) FROM pg_catalog.pg_attribute a WHERE a.attrelid = $1::oid "
      "   AND a.attname = ANY ($2::name[]) AND NOT a.attisdropped), "
      "(SELECT i.indexrelid::pg_catalog.regclass::pg_catalog.text || COALESCE(' ' || k.conname, '') "
      "   FROM pg_catalog.pg_index i LEFT JOIN pg_catalog.pg_constraint k ON k.conindid = i.indexrelid "
      "   AND k.contype = 'u' "
      "  WHERE i.indrelid = $1::oid AND i.indisunique AND NOT i.indisprimary AND i.indisvalid "
      "    AND i.indpred IS NULL AND i.indexprs IS NULL AND i.indnkeyatts = "
      "pg_catalog.cardinality($2::text[]) "
      "    AND (SELECT pg_catalog.array_agg(a.attname::pg_catalog.text ORDER BY a.attname) FROM "
      "pg_catalog.pg_attribute a "
      "         WHERE a.attrelid = $1::oid AND a.attnum = ANY (i.indkey::int2[])) "
      "        = (SELECT pg_catalog.array_agg(c ORDER BY c) FROM pg_catalog.unnest($2::text[]) c) "
      "  ORDER BY 1 LIMIT 1), "
      "pg_catalog.pg_relation_size($1::oid), "
      "c.relowner, "
      "EXISTS (SELECT 1 FROM pg_catalog.pg_constraint p WHERE p.conrelid = $1::oid AND p.contype = 'p') "
      "FROM pg_catalog.pg_class c WHERE c.oid = $1::oid",
      {pg::V(static_cast<int64_t>(relid)), pg::V(ArrayLiteral(columns))}, true);
  const auto& row = r.rows.at(0);
  Key k;
  k.table = row[0].value_or("?");
  k.list = row[1].value_or("");
  k.any_null = row[2].value_or("false");
  k.not_null = pg::AsBool(row[3]);
  const std::string unique = row[4].value_or("");
  const auto space = unique.find(' ');
  k.unique_index = unique.substr(0, space);
  if (space != std::string::npos) k.unique_constraint = unique.substr(space + 1);
  k.bytes = std::stod(row[5].value_or("0"));
  k.owner = static_cast<unsigned>(pg::AsInt(row[6]));
  k.has_pk = pg::AsBool(row[7]);
  return k;
}

// A unique index or UNIQUE constraint on the key's columns: reused as the key, replaced by it, or
// left beside it (redundant: every write maintains both).
void RedundantUnique(unsigned relid, const CheckedOperation& op, const Key& k, std::vector<Finding>& out) {
  if (k.unique_index.empty()) return;
  if (!k.unique_constraint.empty()) {
    if (op.replace_unique)
      out.push_back(
          {"ok", "redundant unique",
           Fmt("UNIQUE constraint %1% on (%2%) is dropped in the swap (replace_unique); foreign keys "
               "that reference it move to the new primary key",
               k.unique_constraint, k.list),
           ""});
    else
      out.push_back(
          {"warning", "redundant unique",
           Fmt("UNIQUE constraint %1% on (%2%) would be redundant beside the new primary key on the "
               "same columns: every write would maintain both indexes",
               k.unique_constraint, k.list),
           "PostgreSQL cannot turn a UNIQUE constraint into the primary key; set_primary_key(..., "
           "replace_unique => true) drops it in the swap, and foreign keys that reference it move "
           "to the new key (re-added NOT VALID, then validated)."});
    return;
  }
  if (ReusableKeyIndex(relid, KeyAttnums(relid, op.columns))) {
    out.push_back({"ok", "redundant unique",
                   Fmt("unique index %1% on (%2%) becomes the primary key itself: no index is built",
                       k.unique_index, k.list),
                   ""});
    return;
  }
  out.push_back(
      {"warning", "redundant unique",
       Fmt("unique index %1% on (%2%) would be redundant beside the new primary key (it cannot be the "
           "key itself: its column order, sort order, operator classes or access method differ)",
           k.unique_index, k.list),
       "Drop it after the job (DROP INDEX CONCURRENTLY) if nothing refers to it."});
}

}  // namespace

void KeyData(unsigned relid, const CheckedOperation& op, std::vector<Finding>& out) {
  const Key k = Describe(relid, op.columns);
  RedundantUnique(relid, op, k, out);
  const std::string null_query = "SELECT * FROM " + k.table + " WHERE " + k.any_null;
  const std::string dup_query = "SELECT " + k.list + ", count(*) FROM " + k.table + " GROUP BY " + k.list +
                                " HAVING count(*) > 1 ORDER BY count(*) DESC";
  if (k.not_null && !k.unique_index.empty()) {
    out.push_back(
        {"ok", "data",
         Fmt("no NULL and no duplicate in (%1%): its columns are NOT NULL and unique index %2% covers them",
             k.list, k.unique_index),
         ""});
    return;
  }
  if (k.bytes > kReadLimit) {
    auto s = pg::Query(
        "SELECT pg_catalog.max(s.null_frac), pg_catalog.bool_or(s.n_distinct = -1) FROM pg_catalog.pg_stats "
        "s "
        "JOIN pg_catalog.pg_class c ON c.relname = s.tablename JOIN pg_catalog.pg_namespace n ON n.oid = "
        "c.relnamespace AND n.nspname = s.schemaname WHERE c.oid = $1::oid AND s.attname = ANY ($2::name[])",
        {pg::V(static_cast<int64_t>(relid)), pg::V(ArrayLiteral(op.columns))}, true);
    out.push_back(
        {"warning", "data",
         Fmt("not read: %1%; pg_stats: up to %2% of a column NULL%3%",
             Fmt("the table has %1% MB, more than check() reads", static_cast<int64_t>(k.bytes / 1048576)),
             s.rows[0][0].value_or("?"), pg::AsBool(s.rows[0][1]) ? ", one column estimated unique" : ""),
         "The job's preflight reads it (ACCESS SHARE only) and stops before any change if there are "
         "NULLs or duplicates. To know now: " +
             null_query + "; " + dup_query});
    return;
  }
  // Planned and read as the table's owner in a security-restricted operation, as ANALYZE reads
  // it, and rolled back: planning a query runs the table's code (a partial index's predicate,
  // expression statistics, policies, its types' operators), which is its owner's, never to run
  // with the caller's rights (found by the second review of 0.5: a superuser's check() made the
  // owner superuser).
  const auto t0 = std::chrono::steady_clock::now();
  int64_t nulls = 0, groups = 0, extra = 0;
  const std::optional<PgError> failed = pg::InRolledBackSubtransaction([&]() {
    pg::AsOwnerRestricted(k.owner, [&]() {
      if (!k.not_null)
        nulls = pg::AsInt(
            pg::Query("SELECT count(*) FROM ONLY " + k.table + " WHERE " + k.any_null, {}, true).scalar());
      if (k.unique_index.empty()) {
        auto r = pg::Query("SELECT count(*), COALESCE(sum(n - 1), 0) FROM (SELECT count(*) n FROM ONLY " +
                               k.table + " WHERE NOT (" + k.any_null + ") GROUP BY " + k.list +
                               " HAVING count(*) > 1) d",
                           {}, true);
        groups = pg::AsInt(r.rows[0][0]);
        extra = pg::AsInt(r.rows[0][1]);
      }
    });
  });
  if (failed) {
    out.push_back(
        {"warning", "data", "not read: " + failed->message(),
         "The job's preflight reads it and stops before any change if there are NULLs or duplicates."});
    return;
  }
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  if (nulls == 0 && groups == 0) {
    out.push_back(
        {"ok", "data",
         Fmt("no NULL and no duplicate in (%1%) (read in %2% ms)", k.list, static_cast<int64_t>(ms)), ""});
    return;
  }
  std::string what;
  if (nulls > 0) what = Fmt("%1% rows have a NULL in (%2%)", nulls, k.list);
  if (groups > 0)
    what += Fmt("%1%%2% values of (%3%) appear more than once (%4% extra rows)", what.empty() ? "" : "; ",
                groups, k.list, extra);
  std::string advice = "List them: ";
  if (nulls > 0) advice += null_query;
  if (groups > 0) advice += (nulls > 0 ? "; and: " : "") + dup_query;
  out.push_back({"blocker", "data", what + " (the job would stop at its preflight)", advice});
}

}  // namespace pkonline::api
