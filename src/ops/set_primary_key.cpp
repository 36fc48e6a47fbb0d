// set_primary_key: make existing columns the primary key (or move it there), online.
//
// Steps: preflight (read-only: NULLs and duplicates, with samples, before any change) ->
// CHECK (col IS NOT NULL) NOT VALID for each nullable column (brief) -> VALIDATE (scan, DML
// continues) -> unique index built concurrently (or an existing one reused) -> with a replaced PK
// kept as a unique constraint, a unique index on its columns built concurrently -> swap (brief,
// one transaction: foreign keys referencing the old PK are dropped and re-added NOT VALID on the
// kept unique constraint, the old PK is dropped, with replace_unique the UNIQUE constraint on the
// new key's columns too (its foreign keys re-added on the new key), the new one attached USING
// INDEX — the validated checks spare the NOT NULL scan — and the replica identity re-pointed) ->
// VALIDATE the moved
// foreign keys (SHARE UPDATE EXCLUSIVE on the referencing tables: DML continues).
#include "pkonline/ops/job_sql.hpp"
#include "pkonline/ops/set_primary_key.hpp"

#include "pkonline/ops/backfill.hpp"
#include "pkonline/ops/plans.hpp"
#include "pkonline/ops/set_primary_key.hpp"
#include "pkonline/ops/shared_steps.hpp"
#include "pkonline/pg/bridge.hpp"
#include "pkonline/pg/catalog.hpp"
#include "pkonline/pg/quote.hpp"
#include "pkonline/pg/spi.hpp"
#include "pkonline/text.hpp"

namespace pkonline::ops {

using pg::Exec;
using pg::Ident;
using pg::Query;
using pg::V;

namespace {

SetPrimaryKeyPlan Plan(const jobs::Job& job) { return SetPrimaryKeyPlan::Load(job); }

std::string NewIndex(const jobs::Job& job) {
  const auto reuse = Plan(job).reuse_index;
  return reuse ? *reuse : HelperName(job, "pkey");
}
std::string OldKeyIndex(const jobs::Job& job) { return HelperName(job, "old_key"); }
std::string CheckName(const jobs::Job& job, size_t i) {
  return HelperName(job, "not_null_" + std::to_string(i + 1));
}
std::vector<std::string> OldKeyColumns(const jobs::Job& job) {
  const auto plan = Plan(job);
  return plan.old ? plan.old->columns : std::vector<std::string>();
}

// Is the table's primary key on exactly these columns (in this order)?
bool PkOn(const jobs::Job& job, const std::vector<std::string>& columns) {
  return !Query(
              "SELECT 1 FROM pg_catalog.pg_constraint c WHERE c.conrelid = $1::oid AND c.contype = 'p' "
              "AND c.conkey = (SELECT pg_catalog.array_agg(a.attnum ORDER BY u.ord) "
              "FROM pg_catalog.jsonb_array_elements_text($2::pg_catalog.jsonb) WITH ORDINALITY u(name, ord) "
              "JOIN pg_catalog.pg_attribute a ON a.attrelid = $1::oid AND a.attname = u.name AND NOT "
              "a.attisdropped)",
              {V(RelidText(job)), V(Json::Strings(columns).ToText())}, true)
              .empty();
}
bool Swapped(const jobs::Job& job) { return PkOn(job, Plan(job).columns); }

// --- preflight -----------------------------------------------------------------------------------
// One read-only pass per question, under ACCESS SHARE only (no writer waits for it). Duplicates
// need every value at once: a GROUP BY of the key columns (it spills to disk past work_mem).
}  // namespace

void set_pk::Preflight(Context& ctx) {
  const auto& job = ctx.job();
  const auto columns = Plan(job).columns;
  // Both questions answered before either is reported: one round of fixes, not two.
  int64_t nulls = 0, groups = 0, extra = 0;
  std::string null_rows, dup_values, table, list, any_null;
  ctx.Txn("pkonline job " + IdText(job) + ": preflight, NULLs", [&]() {
    table = TableSql(job);
    list = ColumnList(job, columns);
    for (const auto& c : columns)
      any_null += (any_null.empty() ? "" : " OR ") + ColumnSql(job, c) + " IS NULL";
    auto r = Query(
        "SELECT pg_catalog.count(*), pg_catalog.string_agg(k, ', ') FILTER (WHERE n <= 3) FROM (SELECT ROW(" +
            list + ")::pg_catalog.text k, pg_catalog.row_number() OVER () n FROM " + table + " WHERE " +
            any_null + ") s",
        {}, true);
    nulls = pg::AsInt(r.rows[0][0]);
    null_rows = r.rows[0][1].value_or("?");
  });
  ctx.Txn("pkonline job " + IdText(job) + ": preflight, duplicates", [&]() {
    auto r = Query(
        "SELECT pg_catalog.count(*), pg_catalog.sum(n - 1), pg_catalog.string_agg(k || ' ' || n || ' times', "
        "', ' ORDER BY rn) FILTER (WHERE rn <= 3) FROM (SELECT ROW(" +
            list +
            ")::pg_catalog.text k, "
            "pg_catalog.count(*) n, pg_catalog.row_number() OVER (ORDER BY pg_catalog.count(*) DESC, "
            "ROW(" +
            list + ")) rn FROM " + table + " WHERE NOT (" + any_null + ") GROUP BY " + list +
            " HAVING pg_catalog.count(*) > 1) d",
        {}, true);
    groups = pg::AsInt(r.rows[0][0]);
    extra = pg::AsInt(r.rows[0][1]);
    dup_values = r.rows[0][2].value_or("?");
  });
  if (nulls == 0 && groups == 0) {
    ctx.Event("info", "preflight: no NULL and no duplicate in the new key");
    return;
  }
  const std::string null_query = "SELECT * FROM " + table + " WHERE " + any_null;
  const std::string dup_query = "SELECT " + list + ", count(*) FROM " + table + " GROUP BY " + list +
                                " HAVING count(*) > 1 ORDER BY count(*) DESC";
  std::string message, detail, hint;
  if (nulls > 0 && groups > 0) {
    message =
        Fmt("(%1%) cannot be the primary key of %2%: %3% rows have a NULL in it, and %4% values appear more "
            "than once (%5% extra rows)",
            list, job.table_name, nulls, groups, extra);
    detail = (columns.size() > 1 ? Fmt("NULL in the keys %1%; repeated: %2%.", null_rows, dup_values)
                                 : Fmt("Repeated: %1%.", dup_values)) +
             " Nothing was changed.";
    hint = Fmt("List them: %1%; and: %2%. Fix them, then pkonline.resume(%3%); or pkonline.cancel(%3%).",
               null_query, dup_query, job.id);
  } else if (nulls > 0) {
    message = Fmt("%1% rows of %2% have a NULL in (%3%): a primary key cannot", nulls, job.table_name, list);
    detail = columns.size() > 1
                 ? Fmt("For example the rows with the key %1%. Nothing was changed.", null_rows)
                 : std::string("Nothing was changed.");
    hint = Fmt("List them: %1%. Fill or delete them, then pkonline.resume(%2%); or pkonline.cancel(%2%).",
               null_query, job.id);
  } else {
    message = Fmt("(%1%) is not unique in %2%: %3% values appear more than once (%4% extra rows)", list,
                  job.table_name, groups, extra);
    detail = "For example: " + dup_values + ". Nothing was changed.";
    hint = Fmt("List them: %1%. Remove the duplicates, then pkonline.resume(%2%); or pkonline.cancel(%2%).",
               dup_query, job.id);
  }
  Fail(SqlState(nulls > 0 ? "23502" : "23505"), message, detail, hint);
}

namespace {

using set_pk::Preflight;

// --- NOT NULL checks -----------------------------------------------------------------------------
void AddChecks(Context& ctx) {
  const auto& job = ctx.job();
  const auto nullable = Plan(job).nullable;
  for (size_t i = 0; i < nullable.size(); i++) AddNotNullCheck(ctx, CheckName(job, i), nullable[i]);
}

void DropChecks(Context& ctx) {
  const auto& job = ctx.job();
  const auto nullable = Plan(job).nullable;
  for (size_t i = 0; i < nullable.size(); i++) DropCheck(ctx, CheckName(job, i));
}

void ValidateChecks(Context& ctx) {
  const auto& job = ctx.job();
  const auto nullable = Plan(job).nullable;
  for (size_t i = 0; i < nullable.size(); i++)
    ValidateCheck(ctx, CheckName(job, i), [&]() -> bool {
      Fail(SqlState("23502"),
           Fmt("column \"%1%\" of %2% got NULLs while job %3% ran: it cannot be part of the primary key",
               nullable[i], job.table_name, job.id),
           "Rows written before the check constraint was added hold NULLs.",
           Fmt("Fill them, then pkonline.resume(%1%); or pkonline.cancel(%1%) to undo the job.", job.id));
    });
}

// --- indexes -------------------------------------------------------------------------------------
void BuildNewIndex(Context& ctx) {
  const auto& job = ctx.job();
  const auto reuse = Plan(job).reuse_index;
  if (reuse) {
    ctx.Event("info", "reusing the unique index " + *reuse);
    return;
  }
  BuildUniqueIndex(ctx, NewIndex(job), Plan(job).columns, [&job]() { return Swapped(job); });
}

void DropNewIndex(Context& ctx) {
  const auto& job = ctx.job();
  if (Plan(job).reuse_index) return;  // not ours
  DropUniqueIndex(ctx, NewIndex(job), Plan(job).columns, [&job]() { return Swapped(job); });
}

void BuildOldKeyIndex(Context& ctx) {
  const auto& job = ctx.job();
  BuildUniqueIndex(ctx, OldKeyIndex(job), OldKeyColumns(job), [&job]() { return Swapped(job); });
}

void DropOldKeyIndex(Context& ctx) {
  const auto& job = ctx.job();
  DropUniqueIndex(ctx, OldKeyIndex(job), OldKeyColumns(job), [&job]() { return Swapped(job); });
}

// --- the swap ------------------------------------------------------------------------------------
struct ForeignKey {
  std::string table, name, definition;
  bool validated = false;
};

// The foreign keys that reference the table through this index, and how to make them again:
// those of a partitioned table once, on it (re-adding it there makes its partitions' again).
// Each referencing table (partitions too) must still be the job's role's own, as at creation: a
// foreign key added meanwhile by a role with REFERENCES on the table is refused here, before any
// change (its re-adding and validation would run that role's code with the job's rights).
std::vector<ForeignKey> ForeignKeysOn(const jobs::Job& job, const std::string& index_oid) {
  auto stranger = Query(
      "SELECT c.conname, rc.oid::pg_catalog.regclass::pg_catalog.text, "
      "rc.relowner::pg_catalog.regrole::pg_catalog.text, rc.relkind = 'p' FROM pg_catalog.pg_constraint c "
      "JOIN pg_catalog.pg_class rc ON rc.oid = c.conrelid "
      "WHERE c.contype = 'f' AND c.confrelid = $1::oid AND c.conindid = $2::oid "
      "AND (rc.relowner <> $3::oid OR rc.relkind = 'p') ORDER BY rc.relkind = 'p' LIMIT 1",
      {V(RelidText(job)), V(index_oid), V(static_cast<int64_t>(job.run_as))}, true);
  if (!stranger.empty() && pg::AsBool(stranger.rows[0][3]))
    Fail(sqlstate::kFeatureNotSupported,
         Fmt("foreign key %1% on the partitioned table %2% references %3%", *stranger.rows[0][0],
             *stranger.rows[0][1], job.table_name),
         "PostgreSQL 15 cannot add a foreign key NOT VALID on a partitioned table. Nothing was changed.",
         Fmt("Drop that foreign key, pkonline.resume(%1%), and add it again after the job; or "
             "pkonline.cancel(%1%).",
             job.id));
  if (!stranger.empty())
    Fail(sqlstate::kInsufficientPrivilege,
         Fmt("foreign key %1% on %2% references %3%, and %2% belongs to %4%", *stranger.rows[0][0],
             *stranger.rows[0][1], job.table_name, *stranger.rows[0][2]),
         Fmt("The swap re-adds the foreign keys on the key it replaces as the owner of %1%, and only on its "
             "own tables. Nothing was changed.",
             job.table_name),
         Fmt("Drop that foreign key (or have its owner drop it), pkonline.resume(%1%), and add it again "
             "after the job; or pkonline.cancel(%1%).",
             job.id));
  auto r = Query(
      "SELECT pg_catalog.format('%I.%I', n.nspname, rc.relname), c.conname, "
      "pg_catalog.pg_get_constraintdef(c.oid), c.convalidated FROM pg_catalog.pg_constraint c "
      "JOIN pg_catalog.pg_class rc ON rc.oid = c.conrelid "
      "JOIN pg_catalog.pg_namespace n ON n.oid = rc.relnamespace "
      "WHERE c.contype = 'f' AND c.confrelid = $1::oid AND c.conindid = $2::oid AND c.conparentid = 0 "
      "ORDER BY c.oid",
      {V(RelidText(job)), V(index_oid)}, true);
  std::vector<ForeignKey> fks;
  for (const auto& row : r.rows) fks.push_back({*row[0], *row[1], *row[2], pg::AsBool(row[3])});
  return fks;
}

// Does the replica identity use this index?
bool IdentityOn(const jobs::Job& job, const std::string& index_oid) {
  return pg::AsBool(Query("SELECT relreplident = 'i' AND EXISTS (SELECT 1 FROM pg_catalog.pg_index "
                          "WHERE indexrelid = $2::oid AND indisreplident) FROM pg_catalog.pg_class "
                          "WHERE oid = $1::oid",
                          {V(RelidText(job)), V(index_oid)}, true)
                        .scalar());
}

// replace_unique, inside the swap: the UNIQUE constraint the new key makes redundant is dropped,
// its foreign keys with it (added again, NOT VALID, once the key is there: `fks`). Gone already
// (dropped by hand meanwhile): nothing to do. Returns whether the replica identity was on it.
bool DropReplacedUnique(const jobs::Job& job, const SetPrimaryKeyPlan::Key& unique,
                        std::vector<ForeignKey>& fks) {
  auto r = Query(
      "SELECT c.conindid, c.condeferrable FROM pg_catalog.pg_constraint c WHERE c.conrelid = $1::oid AND "
      "c.contype = 'u' "
      "AND c.conname = $2 AND (SELECT pg_catalog.array_agg(a.attname::pg_catalog.text ORDER BY "
      "a.attname::pg_catalog.text) FROM pg_catalog.pg_attribute a WHERE a.attrelid = c.conrelid "
      "AND a.attnum = ANY (c.conkey)) = (SELECT pg_catalog.array_agg(x ORDER BY x) FROM "
      "pg_catalog.jsonb_array_elements_text($3::pg_catalog.jsonb) x)",
      {V(RelidText(job)), V(unique.name), V(Json::Strings(unique.columns).ToText())}, true);
  if (r.empty()) return false;
  if (pg::AsBool(r.rows[0][1]))
    Fail(sqlstate::kFeatureNotSupported,
         Fmt("UNIQUE constraint %1% of %2% became DEFERRABLE while job %3% ran", unique.name, job.table_name,
             job.id),
         "A primary key that replaced it would be checked at once. Nothing was changed.",
         Fmt("pkonline.cancel(%1%), then set_primary_key without replace_unique.", job.id));
  const std::string index_oid = *r.rows[0][0];
  const bool identity = IdentityOn(job, index_oid);
  const auto on_unique = ForeignKeysOn(job, index_oid);
  for (const auto& fk : on_unique) Exec("ALTER TABLE " + fk.table + " DROP CONSTRAINT " + Ident(fk.name));
  Exec("ALTER TABLE " + TableSql(job) + " DROP CONSTRAINT " + Ident(unique.name));
  fks.insert(fks.end(), on_unique.begin(), on_unique.end());
  return identity;
}

void Swap(Context& ctx) {
  const auto& job = ctx.job();
  ctx.WaitPoint("swap");
  const SetPrimaryKeyPlan plan = Plan(job);
  ctx.Ddl("pkonline job " + IdText(job) + ": swap primary key", [&]() {
    const std::string t = TableSql(job);
    const auto& columns = plan.columns;
    if (PkOn(job, columns)) return;  // committed before a crash: this step is one transaction
    auto rel = pg::LookupRelation(job.relid);
    auto old = Query(
        "SELECT c.conname, c.conindid::pg_catalog.regclass::pg_catalog.text, "
        "(SELECT pg_catalog.string_agg(a.attname, ',' ORDER BY k.n) FROM pg_catalog.unnest(c.conkey) "
        " WITH ORDINALITY k(attnum, n) JOIN pg_catalog.pg_attribute a ON a.attrelid = c.conrelid "
        " AND a.attnum = k.attnum), c.conindid "
        "FROM pg_catalog.pg_constraint c WHERE c.conrelid = $1::oid AND c.contype = 'p'",
        {V(RelidText(job))}, true);
    const bool had_pk = !old.empty();
    const bool expected_pk = plan.old.has_value();
    if (had_pk != expected_pk)
      Fail(sqlstate::kInvalidTableDefinition,
           Fmt("the primary key of %1% changed while job %2% ran", t, job.id), "",
           Fmt("pkonline.cancel(%1%) undoes what the job created; then start it again.", job.id));
    std::vector<ForeignKey> fks;
    std::string pk_name = pg::ChooseName(rel->name, "", "pkey", rel->nsp_oid, true);
    bool identity_on_old = false;
    if (had_pk) {
      pk_name = *old.rows[0][0];
      const std::string old_index_oid = *old.rows[0][3];
      identity_on_old = IdentityOn(job, old_index_oid);
      // Foreign keys that reference the old key (through its index) move to the kept unique key.
      fks = ForeignKeysOn(job, old_index_oid);
      if (!fks.empty() && !plan.KeepsOldKey())
        Fail(SqlState("2BP01"),
             Fmt("foreign key %1% on %2% references the primary key of %3%", fks[0].name, fks[0].table, t),
             "With old_pk => 'drop' the key it references would be gone.",
             Fmt("pkonline.cancel(%1%), then set_primary_key(..., old_pk => 'unique').", job.id));
      for (const auto& fk : fks) Exec("ALTER TABLE " + fk.table + " DROP CONSTRAINT " + Ident(fk.name));
      Exec("ALTER TABLE " + t + " DROP CONSTRAINT " + Ident(pk_name));
    }
    std::string kept;
    if (had_pk && plan.KeepsOldKey()) {
      kept = pg::ChooseName(rel->name, plan.old->columns.at(0), "key", rel->nsp_oid, true);
      Exec("ALTER TABLE " + t + " ADD CONSTRAINT " + Ident(kept) + " UNIQUE USING INDEX " +
           Ident(OldKeyIndex(job)));
    }
    // (its foreign keys are made again below, on the new key: the same columns)
    const bool identity_on_unique =
        plan.replaced_unique && DropReplacedUnique(job, *plan.replaced_unique, fks);
    // The validated checks prove NOT NULL: no scan under this lock.
    Exec("ALTER TABLE " + t + " ADD CONSTRAINT " + Ident(pk_name) + " PRIMARY KEY USING INDEX " +
         Ident(NewIndex(job)));
    std::vector<MovedForeignKey> moved;
    for (const auto& fk : fks) {
      // (pg_get_constraintdef ends with NOT VALID for a key that is not validated)
      Exec("ALTER TABLE " + fk.table + " ADD CONSTRAINT " + Ident(fk.name) + " " + fk.definition +
           (fk.validated ? " NOT VALID" : ""));
      if (fk.validated) moved.push_back({fk.table, fk.name});
    }
    if (identity_on_old) Exec("ALTER TABLE " + t + " REPLICA IDENTITY USING INDEX " + Ident(kept));
    // (USING INDEX gave the key's index the constraint's name)
    if (identity_on_unique) Exec("ALTER TABLE " + t + " REPLICA IDENTITY USING INDEX " + Ident(pk_name));
    for (size_t i = 0; i < plan.nullable.size(); i++)
      Exec("ALTER TABLE " + t + " DROP CONSTRAINT IF EXISTS " + Ident(CheckName(job, i)));
    ctx.Remember(fact::kMovedFks, SaveMovedForeignKeys(moved));
  });
  ctx.WaitPoint("swap_committed");
}

const char* kBrief =
    "ACCESS EXCLUSIVE, catalog only (milliseconds), under pkonline.lock_timeout with retries";

class SetPrimaryKey final : public Operation {
 public:
  std::vector<Step> Steps(const jobs::Job& job) const override {
    const SetPrimaryKeyPlan plan = Plan(job);
    if (plan.partitioned) return set_pk::PartitionedSteps(job);
    const std::string cols = QuotedList(plan.columns);
    std::vector<Step> steps;
    steps.push_back({"preflight",
                     "count NULLs and duplicates of (" + cols +
                         "), with samples; the job fails here, "
                         "changing nothing, if there are any",
                     "ACCESS SHARE only: reads (nobody waits for it)", Preflight, nullptr});
    if (!plan.nullable.empty()) {
      steps.push_back({"add_check",
                       "ADD CONSTRAINT … CHECK (col IS NOT NULL) NOT VALID for each nullable column", kBrief,
                       AddChecks, DropChecks});
      steps.push_back({"validate", "VALIDATE CONSTRAINT (a NULL written meanwhile fails the job cleanly)",
                       "SHARE UPDATE EXCLUSIVE for one scan: reads and writes continue", ValidateChecks,
                       nullptr});
    }
    if (plan.reuse_index) {
      steps.push_back({"create_index",
                       "reuse the valid unique index " + *plan.reuse_index + " (" + cols + ")", "none",
                       BuildNewIndex, nullptr});
    } else {
      steps.push_back({"create_index", "CREATE UNIQUE INDEX CONCURRENTLY (" + cols + ")",
                       "SHARE UPDATE EXCLUSIVE: reads and writes continue; waits for older transactions",
                       BuildNewIndex, DropNewIndex});
    }
    if (plan.KeepsOldKey())
      steps.push_back({"keep_old_key",
                       "CREATE UNIQUE INDEX CONCURRENTLY on the old key (" + QuotedList(plan.old->columns) +
                           "), to keep it as a unique constraint",
                       "SHARE UPDATE EXCLUSIVE: reads and writes continue; waits for older transactions",
                       BuildOldKeyIndex, DropOldKeyIndex});
    std::string swap =
        plan.old ? "drop primary key " + plan.old->name +
                       (plan.KeepsOldKey() ? " (kept as a UNIQUE constraint; foreign keys referencing it are "
                                             "re-added NOT VALID on that constraint)"
                                           : "") +
                       ", "
                 : std::string();
    if (plan.replaced_unique)
      swap += "drop UNIQUE constraint " + plan.replaced_unique->name +
              " (foreign keys referencing it are re-added NOT VALID on the new key), ";
    swap += "ADD PRIMARY KEY USING INDEX, drop the checks";
    steps.push_back(
        {"swap", swap,
         "ACCESS EXCLUSIVE on the table (and on tables whose foreign keys move), catalog only: the "
         "validated checks spare the NOT NULL scan",
         Swap, nullptr, true});
    steps.push_back({"validate_fks", "VALIDATE the foreign keys that moved (none if none did)",
                     "SHARE UPDATE EXCLUSIVE on each referencing table: reads and writes continue",
                     ValidateForeignKeys, nullptr});
    return steps;
  }
};

}  // namespace

std::unique_ptr<Operation> MakeSetPrimaryKey() { return std::make_unique<SetPrimaryKey>(); }

}  // namespace pkonline::ops
