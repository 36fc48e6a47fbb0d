// add_int_pk: give a table without a primary key an integer PK column, online.
//
// Steps: add column + sequence default + fill trigger (brief) -> backfill in ctid batches ->
// CHECK (col IS NOT NULL) NOT VALID (brief) -> VALIDATE (scan, DML continues) ->
// CREATE UNIQUE INDEX CONCURRENTLY -> attach the PK USING INDEX, drop the helpers, identity (brief).
#include "pkonline/ops/add_int_pk.hpp"

#include "pkonline/ops/backfill.hpp"
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

std::string Id(const jobs::Job& job) { return std::to_string(job.id); }
std::string RelidText(const jobs::Job& job) { return std::to_string(job.relid); }

// Names of the job's helper objects, all derived from the job id.
std::string SeqName(const jobs::Job& job) { return "pkonline_" + Id(job) + "_seq"; }
std::string FillName(const jobs::Job& job) { return "pkonline_" + Id(job) + "_fill"; }
std::string CheckName(const jobs::Job& job) { return "pkonline_" + Id(job) + "_not_null"; }

// The schema the job's helpers live in: the table's schema, as recorded at creation.
std::string HelperSchema(const jobs::Job& job) { return job.Opt("schema"); }
std::string SeqSql(const jobs::Job& job) { return pg::Qualified(HelperSchema(job), SeqName(job)); }
std::string FillFnSql(const jobs::Job& job) { return pg::Qualified(HelperSchema(job), FillName(job)); }

bool ColumnExists(const jobs::Job& job, const std::string& column) {
  return !Query("SELECT 1 FROM pg_catalog.pg_attribute WHERE attrelid = $1::oid AND attname = $2 "
                "AND NOT attisdropped",
                {V(RelidText(job)), V(column)}, true)
              .empty();
}

bool TableExists(const jobs::Job& job) { return pg::Relation(job.relid).has_value(); }

// Is the table's primary key the one this job attaches (its name, on its column)?
bool HasOurPk(const jobs::Job& job) {
  return !Query(
              "SELECT 1 FROM pg_catalog.pg_constraint c WHERE c.conrelid = $1::oid AND c.contype = 'p' "
              "AND c.conname = $2 AND c.conkey = ARRAY[(SELECT attnum FROM pg_catalog.pg_attribute "
              "WHERE attrelid = $1::oid AND attname = $3 AND NOT attisdropped)]",
              {V(RelidText(job)), V(job.Opt("pk_name")), V(job.Opt("column_name"))}, true)
              .empty();
}

// The column this job added, whatever it is called now: the one its sequence is owned by
// (falling back to the name, once the sequence is gone). Empty if there is none.
std::string OurColumn(const jobs::Job& job) {
  auto r = Query(
      "SELECT a.attname FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_attribute a "
      "ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid "
      "WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = pg_catalog.to_regclass($2) "
      "AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid = $1::oid "
      "AND d.deptype = 'a' AND NOT a.attisdropped",
      {V(RelidText(job)), V(SeqSql(job))}, true);
  if (!r.empty()) return *r.scalar();
  return ColumnExists(job, job.Opt("column_name")) ? job.Opt("column_name") : std::string();
}


void AddColumn(Context& ctx) {
  const auto& job = ctx.job();
  const std::string col = job.Opt("column_name");
  const std::string type = job.Opt("column_type");  // one of smallint, integer, bigint (checked by the API)
  ctx.Ddl("pkonline job " + Id(job) + ": add column", [&]() {
    const std::string t = TableSql(job);
    if (ColumnExists(job, col)) return;  // done before a crash: this step is one transaction
    const std::string c = Ident(col);
    Exec("ALTER TABLE " + t + " ADD COLUMN " + c + " " + type);
    Exec("CREATE SEQUENCE " + SeqSql(job) + " AS " + type);
    Exec("ALTER SEQUENCE " + SeqSql(job) + " OWNED BY " + t + "." + c);
    Exec("ALTER TABLE " + t + " ALTER COLUMN " + c + " SET DEFAULT pg_catalog.nextval(" +
         pg::Literal(SeqSql(job)) + "::pg_catalog.regclass)");
    const std::string seq_oid =
        *Query("SELECT " + pg::Literal(SeqSql(job)) + "::pg_catalog.regclass::pg_catalog.oid", {}, true).scalar();
    const std::string body = "BEGIN NEW." + c + " := pg_catalog.nextval(" + seq_oid +
                             "::pg_catalog.oid::pg_catalog.regclass); RETURN NEW; END";
    Exec("CREATE FUNCTION " + FillFnSql(job) + "() RETURNS trigger LANGUAGE plpgsql AS " + pg::Literal(body));
    Exec("CREATE TRIGGER " + Ident(FillName(job)) + " BEFORE INSERT OR UPDATE ON " + t +
         " FOR EACH ROW WHEN (NEW." + c + " IS NULL) EXECUTE FUNCTION " + FillFnSql(job) + "()");
  });
}

void UndoAddColumn(Context& ctx) {
  const auto& job = ctx.job();
  ctx.Ddl("pkonline job " + Id(job) + ": undo add column", [&]() {
    if (TableExists(job)) {
      const std::string t = TableSql(job);
      if (HasOurPk(job))
        Fail(sqlstate::kObjectNotInState, "the primary key of " + t + " is attached already; nothing to undo");
      Exec("DROP TRIGGER IF EXISTS " + Ident(FillName(job)) + " ON " + t);
      const std::string column = OurColumn(job);
      if (!column.empty()) Exec("ALTER TABLE " + t + " DROP COLUMN " + Ident(column));
    }
    Exec("DROP FUNCTION IF EXISTS " + FillFnSql(job) + "()");
    Exec("DROP SEQUENCE IF EXISTS " + SeqSql(job));
  });
}

bool CheckState(const jobs::Job& job, bool* validated) {
  auto r = Query("SELECT convalidated FROM pg_catalog.pg_constraint WHERE conrelid = $1::oid AND conname = $2",
                 {V(RelidText(job)), V(CheckName(job))}, true);
  if (r.empty()) return false;
  if (validated) *validated = pg::AsBool(r.scalar());
  return true;
}

void AddCheck(Context& ctx) {
  const auto& job = ctx.job();
  ctx.Ddl("pkonline job " + Id(job) + ": add check not valid", [&]() {
    const std::string t = TableSql(job);
    if (CheckState(job, nullptr)) return;
    Exec("ALTER TABLE " + t + " ADD CONSTRAINT " + Ident(CheckName(job)) + " CHECK (" +
         ColumnSql(job, job.Opt("column_name")) + " IS NOT NULL) NOT VALID");
  });
}

void UndoCheck(Context& ctx) {
  const auto& job = ctx.job();
  ctx.Ddl("pkonline job " + Id(job) + ": undo check", [&]() {
    if (TableExists(job))
      Exec("ALTER TABLE " + TableSql(job) + " DROP CONSTRAINT IF EXISTS " + Ident(CheckName(job)));
  });
}

void Validate(Context& ctx) {
  const auto& job = ctx.job();
  for (int attempt = 1;; attempt++) {
    bool validated = false;
    try {
      ctx.Txn("pkonline job " + Id(job) + ": validate", [&]() {
        const std::string t = TableSql(job);
        if (!CheckState(job, &validated))
          Fail(sqlstate::kUndefinedObject, "constraint " + CheckName(job) + " of " + t + " was dropped",
               "", "Cancel the job and start it again.");
        if (validated) return;
        Exec("ALTER TABLE " + t + " VALIDATE CONSTRAINT " + Ident(CheckName(job)));
      });
      return;
    } catch (const PgError& e) {
      if (e.sqlstate() != sqlstate::kCheckViolation || attempt >= 3) throw;
      ctx.Event("info", "rows without a value found by VALIDATE; sweeping the table again");
      int64_t filled = Sweep(ctx, job.Opt("column_name"));
      ctx.Event("info", "sweep filled " + std::to_string(filled) + " rows");
    }
  }
}

// The job's index: 'v' valid, 'i' invalid, 'n' none, 'f' the name is taken by another index
char IndexState(const jobs::Job& job) {
  auto r = Query(
      "SELECT i.indisvalid, i.indrelid = $1::oid AND i.indisunique AND i.indnatts = 1 "
      "AND i.indkey[0] = (SELECT attnum FROM pg_catalog.pg_attribute WHERE attrelid = $1::oid "
      "AND attname = $3 AND NOT attisdropped) "
      "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_index i ON i.indexrelid = c.oid "
      "WHERE c.relnamespace = (SELECT relnamespace FROM pg_catalog.pg_class WHERE oid = $1::oid) "
      "AND c.relname = $2",
      {V(RelidText(job)), V(job.Opt("pk_name")), V(job.Opt("column_name"))}, true);
  if (r.empty()) return 'n';
  if (!pg::AsBool(r.rows[0][1])) return 'f';
  return pg::AsBool(r.rows[0][0]) ? 'v' : 'i';
}

void FailForeignIndex(const jobs::Job& job) {
    Fail(sqlstate::kDuplicateObject,
         Fmt("an index named %1% was created by someone else while job %2% ran", job.Opt("pk_name"), job.id),
         "pkonline names the primary key's index when the job is created.",
         Fmt("Rename or drop that index, then pkonline.resume(%1%); or pkonline.cancel(%1%).", job.id));
}

std::string IndexSql(const jobs::Job& job) {
  auto rel = pg::Relation(job.relid);
  return pg::Qualified(rel ? rel->schema : HelperSchema(job), job.Opt("pk_name"));
}

void CreateIndex(Context& ctx) {
  const auto& job = ctx.job();
  char state = 'n';
  std::string t, index;
  ctx.Txn("pkonline job " + Id(job) + ": check index", [&]() {
    t = TableSql(job);
    index = IndexSql(job);
    state = HasOurPk(job) ? 'v' : IndexState(job);
    if (state == 'f') FailForeignIndex(job);
  });
  if (state == 'v') return;
  ctx.WaitPoint("create_index");
  if (state == 'i') {
    ctx.Event("info", "dropping INVALID index " + job.Opt("pk_name") + " left by an interrupted build");
    ctx.TopLevel("DROP INDEX CONCURRENTLY IF EXISTS " + index);
  }
  ctx.TopLevel("CREATE UNIQUE INDEX CONCURRENTLY " + Ident(job.Opt("pk_name")) + " ON " + t + " (" +
               Ident(job.Opt("column_name")) + ")");
}

void UndoIndex(Context& ctx) {
  const auto& job = ctx.job();
  bool present = false;
  std::string index;
  ctx.Txn("pkonline job " + Id(job) + ": check index", [&]() {
    present = TableExists(job) && !HasOurPk(job) && (IndexState(job) == 'i' || IndexState(job) == 'v');
    if (present) index = IndexSql(job);
  });
  if (present) ctx.TopLevel("DROP INDEX CONCURRENTLY IF EXISTS " + index);
}

void Attach(Context& ctx) {
  const auto& job = ctx.job();
  const std::string col = job.Opt("column_name");
  ctx.WaitPoint("attach");
  ctx.Ddl("pkonline job " + Id(job) + ": attach primary key", [&]() {
    const std::string t = TableSql(job);
    if (HasOurPk(job)) return;  // committed before a crash: this step is one transaction
    auto other = Query("SELECT conname FROM pg_catalog.pg_constraint WHERE conrelid = $1::oid AND contype = 'p'",
                       {V(RelidText(job))}, true);
    if (!other.empty())
      Fail(sqlstate::kInvalidTableDefinition,
           Fmt("table %1% got a primary key (%2%) while job %3% ran", t, *other.scalar(), job.id), "",
           Fmt("pkonline.cancel(%1%) undoes what the job created.", job.id));
    const std::string c = ColumnSql(job, col);
    const std::string pk = Ident(job.Opt("pk_name"));
    Exec("ALTER TABLE " + t + " ADD CONSTRAINT " + pk + " PRIMARY KEY USING INDEX " + pk);
    Exec("ALTER TABLE " + t + " DROP CONSTRAINT IF EXISTS " + Ident(CheckName(job)));
    Exec("DROP TRIGGER IF EXISTS " + Ident(FillName(job)) + " ON " + t);
    Exec("DROP FUNCTION IF EXISTS " + FillFnSql(job) + "()");
    auto rel = pg::Relation(job.relid);
    if (job.OptBool("identity")) {
      // Every value handed out so far is below the next one; the table is locked, so none race.
      const std::string next = *Query("SELECT pg_catalog.nextval(" + pg::Literal(SeqSql(job)) + "::pg_catalog.regclass)").scalar();
      Exec("ALTER TABLE " + t + " ALTER COLUMN " + c + " DROP DEFAULT");
      Exec("DROP SEQUENCE " + SeqSql(job));
      const std::string seq = pg::ChooseName(rel->name, col, "seq", rel->nsp_oid, false);
      Exec("ALTER TABLE " + t + " ALTER COLUMN " + c + " ADD GENERATED BY DEFAULT AS IDENTITY (SEQUENCE NAME " +
           pg::Qualified(rel->schema, seq) + " START WITH " + next + ")");
    } else {
      const std::string seq = pg::ChooseName(rel->name, col, "seq", rel->nsp_oid, false);
      Exec("ALTER SEQUENCE " + SeqSql(job) + " RENAME TO " + Ident(seq));
    }
  });
  ctx.WaitPoint("attach_committed");
}

class AddIntPk final : public Operation {
 public:
  std::vector<Step> Steps(const jobs::Job& job) const override {
    const std::string col = job.Opt("column_name");
    return {
        {"add_column",
         "ADD COLUMN " + col + " " + job.Opt("column_type") + " (nullable), a sequence as its DEFAULT, "
         "a BEFORE INSERT OR UPDATE trigger filling it when NULL",
         "ACCESS EXCLUSIVE, catalog only (milliseconds), under pkonline.lock_timeout with retries", AddColumn,
         UndoAddColumn},
        {"backfill", "UPDATE … SET " + col + " = DEFAULT by ranges of heap blocks, one transaction per batch",
         "ROW EXCLUSIVE; row locks of one batch only (about pkonline.batch_time)",
         [col](Context& ctx) { Backfill(ctx, col); }, nullptr},
        {"add_check", "ADD CONSTRAINT … CHECK (" + col + " IS NOT NULL) NOT VALID",
         "ACCESS EXCLUSIVE, catalog only (milliseconds), under pkonline.lock_timeout with retries", AddCheck,
         UndoCheck},
        {"validate", "VALIDATE CONSTRAINT (re-sweeps NULLs if any are found)",
         "SHARE UPDATE EXCLUSIVE for one scan: reads and writes continue", Validate, nullptr},
        {"create_index", "CREATE UNIQUE INDEX CONCURRENTLY " + job.Opt("pk_name") + " (" + col + ")",
         "SHARE UPDATE EXCLUSIVE: reads and writes continue; waits for older transactions", CreateIndex,
         UndoIndex},
        {"attach",
         "ADD PRIMARY KEY USING INDEX, drop the check and trigger" +
             std::string(job.OptBool("identity") ? ", make the column GENERATED BY DEFAULT AS IDENTITY" : ""),
         "ACCESS EXCLUSIVE, catalog only: the validated check spares the NOT NULL scan", Attach, nullptr},
    };
  }
  int PointOfNoReturn() const override { return 6; }
};

}  // namespace

std::unique_ptr<Operation> MakeAddIntPk() { return std::make_unique<AddIntPk>(); }

std::unique_ptr<Operation> MakeOperation(const std::string& name) {
  if (name == "add_int_pk") return MakeAddIntPk();
  Fail(sqlstate::kFeatureNotSupported, "unknown pkonline operation \"" + name + "\"");
}

}  // namespace pkonline::ops
