// Step bodies shared by operations (see shared_steps.hpp).
#include "pkonline/ops/job_sql.hpp"
#include "pkonline/ops/shared_steps.hpp"

#include "pkonline/ops/backfill.hpp"
#include "pkonline/ops/plans.hpp"
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

std::string HelperName(const jobs::Job& job, const std::string& suffix) {
  const std::string name = "pkonline_" + IdText(job) + "_" + suffix;
  const Json* key = job.options.Find(jobs::kHelperKey);
  if (key == nullptr || key->kind() != Json::Kind::kString) return name;  // a job made before 0.4
  return name + "_" + pg::KeyedTag(key->AsString(), suffix);
}

std::string HelperSql(const jobs::Job& job, const std::string& suffix) {
  return pg::Qualified(HelperSchema(job), HelperName(job, suffix));
}

bool TableExists(const jobs::Job& job) { return pg::LookupRelation(job.relid).has_value(); }

bool ColumnExists(const jobs::Job& job, const std::string& column) {
  return !Query(
              "SELECT 1 FROM pg_catalog.pg_attribute WHERE attrelid = $1::oid AND attname = $2 "
              "AND NOT attisdropped",
              {V(RelidText(job)), V(column)}, true)
              .empty();
}

int ColumnAttnum(const jobs::Job& job, const std::string& column) {
  // Not read-only: it must see a column added earlier in the same transaction.
  return static_cast<int>(
      pg::AsInt(Query("SELECT attnum FROM pg_catalog.pg_attribute WHERE attrelid = $1::oid "
                      "AND attname = $2 AND NOT attisdropped",
                      {V(RelidText(job)), V(column)}, false)
                    .scalar()));
}

std::string FillTriggerSql(const std::string& trigger, const std::string& table_sql,
                           const std::string& column_sql, const std::string& function_call, bool on_update) {
  return "CREATE OR REPLACE TRIGGER " + Ident(trigger) +
         (on_update ? " BEFORE INSERT OR UPDATE ON " : " BEFORE INSERT ON ") + table_sql +
         " FOR EACH ROW WHEN (NEW." + column_sql + " IS NULL) EXECUTE FUNCTION " + function_call;
}

namespace {

// The role the job works as (the table's owner), and so the owner of every helper it created.
std::string TableOwner(const jobs::Job& job) { return std::to_string(job.run_as); }

}  // namespace

void DropSequenceIfOurs(const jobs::Job& job, const std::string& suffix) {
  auto r = Query(
      "SELECT pg_catalog.format('%I.%I', n.nspname, c.relname) FROM pg_catalog.pg_class c "
      "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2 "
      "AND c.relkind = 'S' AND c.relowner = $3::oid",
      {V(HelperSchema(job)), V(HelperName(job, suffix)), V(TableOwner(job))}, false);
  if (!r.empty()) Exec("DROP SEQUENCE " + *r.scalar());
}

void DropFunctionIfOurs(const jobs::Job& job, const std::string& suffix) {
  auto r = Query(
      "SELECT pg_catalog.format('%I.%I()', n.nspname, p.proname) FROM pg_catalog.pg_proc p "
      "JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = $1 AND p.proname = $2 "
      "AND p.pronargs = 0 AND p.proowner = $3::oid",
      {V(HelperSchema(job)), V(HelperName(job, suffix)), V(TableOwner(job))}, false);
  if (!r.empty()) Exec("DROP FUNCTION " + *r.scalar());
}

void CreateJobTrigger(Context& ctx, const std::string& sql) {
  ctx.AsExtensionOwner([&]() { Exec(sql); });
}

void CatchUp(Context& ctx, const std::string& trigger, const std::function<std::string()>& function_call,
             const std::string& column, const std::string& value_sql, bool require_value) {
  const auto& job = ctx.job();
  ctx.Ddl("pkonline job " + IdText(job) + ": fill trigger on update", [&]() {
    CreateJobTrigger(ctx,
                     FillTriggerSql(trigger, TableSql(job), ColumnSql(job, column), function_call(), true));
  });
  const int64_t filled = Sweep(ctx, column, value_sql, require_value);
  ctx.Event("info",
            Fmt("catch-up pass filled %1% rows written without a value while the backfill ran", filled));
}

bool CheckExists(const jobs::Job& job, const std::string& check, bool* validated) {
  auto r =
      Query("SELECT convalidated FROM pg_catalog.pg_constraint WHERE conrelid = $1::oid AND conname = $2",
            {V(RelidText(job)), V(check)}, true);
  if (r.empty()) return false;
  if (validated) *validated = pg::AsBool(r.scalar());
  return true;
}

void AddNotNullCheck(Context& ctx, const std::string& check, const std::string& column) {
  const auto& job = ctx.job();
  ctx.Ddl("pkonline job " + IdText(job) + ": add check not valid", [&]() {
    const std::string t = TableSql(job);
    if (CheckExists(job, check)) return;
    Exec("ALTER TABLE " + t + " ADD CONSTRAINT " + Ident(check) + " CHECK (" + ColumnSql(job, column) +
         " IS NOT NULL) NOT VALID");
  });
}

void DropCheck(Context& ctx, const std::string& check) {
  const auto& job = ctx.job();
  ctx.Ddl("pkonline job " + IdText(job) + ": drop check", [&]() {
    if (TableExists(job)) Exec("ALTER TABLE " + TableSql(job) + " DROP CONSTRAINT IF EXISTS " + Ident(check));
  });
}

void ValidateCheck(Context& ctx, const std::string& check, const std::function<bool()>& on_nulls) {
  const auto& job = ctx.job();
  for (int attempt = 1;; attempt++) {
    try {
      ctx.Txn("pkonline job " + IdText(job) + ": validate", [&]() {
        const std::string t = TableSql(job);
        bool validated = false;
        if (!CheckExists(job, check, &validated))
          Fail(sqlstate::kUndefinedObject, "constraint " + check + " of " + t + " was dropped", "",
               "Cancel the job and start it again.");
        if (validated) return;
        Exec("ALTER TABLE " + t + " VALIDATE CONSTRAINT " + Ident(check));
      });
      return;
    } catch (const PgError& e) {
      if (e.sqlstate() != sqlstate::kCheckViolation || attempt >= 3 || !on_nulls()) throw;
    }
  }
}

char UniqueIndexState(const jobs::Job& job, const std::string& name,
                      const std::vector<std::string>& columns) {
  return UniqueIndexStateOn(job.relid, name, columns);
}

char UniqueIndexStateOn(unsigned relid, const std::string& name, const std::vector<std::string>& columns) {
  auto r = Query(
      "SELECT i.indisvalid, i.indrelid = $1::oid AND i.indisunique AND i.indpred IS NULL "
      "AND i.indexprs IS NULL AND i.indnkeyatts = i.indnatts "
      "AND i.indkey::pg_catalog.text = (SELECT pg_catalog.string_agg(a.attnum::pg_catalog.text, ' ' ORDER BY "
      "u.ord) "
      "  FROM pg_catalog.jsonb_array_elements_text($3::pg_catalog.jsonb) WITH ORDINALITY u(name, ord) "
      "  JOIN pg_catalog.pg_attribute a ON a.attrelid = $1::oid AND a.attname = u.name AND NOT "
      "a.attisdropped) "
      "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_index i ON i.indexrelid = c.oid "
      "WHERE c.relnamespace = (SELECT relnamespace FROM pg_catalog.pg_class WHERE oid = $1::oid) "
      "AND c.relname = $2",
      {V(static_cast<int64_t>(relid)), V(name), V(Json::Strings(columns).ToText())}, true);
  if (r.empty()) return 'n';
  if (!pg::AsBool(r.rows[0][1])) return 'f';
  return pg::AsBool(r.rows[0][0]) ? 'v' : 'i';
}

std::string IndexSql(const jobs::Job& job, const std::string& name) {
  auto rel = pg::LookupRelation(job.relid);
  return pg::Qualified(rel ? rel->schema : HelperSchema(job), name);
}

void BuildUniqueIndex(Context& ctx, const std::string& name, const std::vector<std::string>& columns,
                      const std::function<bool()>& attached) {
  const auto& job = ctx.job();
  char state = 'n';
  std::string t, index, list;
  ctx.Txn("pkonline job " + IdText(job) + ": check index", [&]() {
    t = TableSql(job);
    index = IndexSql(job, name);
    state = attached() ? 'v' : UniqueIndexState(job, name, columns);
    if (state == 'f')
      Fail(sqlstate::kDuplicateObject,
           Fmt("an index named %1% was created by someone else while job %2% ran", name, job.id),
           "pkonline chooses the index name when the job is created.",
           Fmt("Rename or drop that index, then pkonline.resume(%1%); or pkonline.cancel(%1%).", job.id));
    if (state != 'v') list = ColumnList(job, columns);
  });
  if (state == 'v') return;
  ctx.WaitPoint("create_index");
  if (state == 'i') {
    ctx.Event("info", "dropping INVALID index " + name + " left by an interrupted build");
    ctx.TopLevel("DROP INDEX CONCURRENTLY IF EXISTS " + index);
  }
  ctx.TopLevel("CREATE UNIQUE INDEX CONCURRENTLY " + Ident(name) + " ON " + t + " (" + list + ")");
}

void DropUniqueIndex(Context& ctx, const std::string& name, const std::vector<std::string>& columns,
                     const std::function<bool()>& attached) {
  const auto& job = ctx.job();
  bool present = false;
  std::string index;
  ctx.Txn("pkonline job " + IdText(job) + ": check index", [&]() {
    if (!TableExists(job) || attached()) return;
    const char state = UniqueIndexState(job, name, columns);
    present = state == 'i' || state == 'v';
    if (present) index = IndexSql(job, name);
  });
  if (present) ctx.TopLevel("DROP INDEX CONCURRENTLY IF EXISTS " + index);
}

// The moved foreign keys were re-added NOT VALID; validating them reads the referencing tables
// under SHARE UPDATE EXCLUSIVE (their DML continues).
void ValidateForeignKeys(Context& ctx) {
  const auto& job = ctx.job();
  std::vector<MovedForeignKey> moved;
  ctx.Txn("pkonline job " + IdText(job) + ": moved foreign keys",
          [&]() { moved = LoadMovedForeignKeys(job, ctx.Recall(fact::kMovedFks)); });
  for (const auto& fk : moved) {
    const std::string& table = fk.table;
    const std::string& name = fk.name;
    ctx.Txn("pkonline job " + IdText(job) + ": validate " + name, [&]() {
      auto r = Query(
          "SELECT NOT c.convalidated, t.relowner = $3::oid, t.relowner::pg_catalog.regrole::pg_catalog.text "
          "FROM pg_catalog.pg_constraint c JOIN pg_catalog.pg_class t ON t.oid = c.conrelid "
          "WHERE c.conname = $1 AND c.conrelid = pg_catalog.to_regclass($2)",
          {V(name), V(table), V(static_cast<int64_t>(job.run_as))}, true);
      if (r.empty() || !pg::AsBool(r.rows[0][0])) return;  // gone, or validated already
      // Validation plans a query on the referencing table: only on one of the job's role's own
      // (a table of that name that another role owns now is not the one the swap re-added it on).
      if (!pg::AsBool(r.rows[0][1]))
        Fail(
            sqlstate::kInsufficientPrivilege,
            Fmt("%1% belongs to %2% now: job %3% does not validate its foreign key %4%", table,
                r.rows[0][2].value_or("?"), job.id, name),
            "The key is in place, NOT VALID: it holds for new rows, existing ones are not checked.",
            Fmt("Its owner validates it: ALTER TABLE %1% VALIDATE CONSTRAINT %2%; then pkonline.resume(%3%).",
                table, Ident(name), job.id));
      Exec("ALTER TABLE " + table + " VALIDATE CONSTRAINT " + Ident(name));
    });
  }
}

}  // namespace pkonline::ops
