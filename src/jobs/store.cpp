// Job store: every read and write of the job tables goes through here.
#include "pkonline/jobs/store.hpp"

#include "pkonline/pg/bridge.hpp"
#include "pkonline/pg/catalog.hpp"
#include "pkonline/pg/job_lock.hpp"
#include "pkonline/pg/jsonb.hpp"
#include "pkonline/pg/spi.hpp"
#include "pkonline/pg/txn.hpp"

namespace pkonline::jobs {

namespace store {

using pg::AsBool;
using pg::AsInt;
using pg::Exec;
using pg::Query;
using pg::V;

unsigned ExtensionOwner() {
  static unsigned owner = 0;
  if (owner == 0) {
    auto r = Query("SELECT extowner FROM pg_catalog.pg_extension WHERE extname = 'pkonline'", {}, true);
    if (r.empty())
      Fail(sqlstate::kUndefinedObject, "extension \"pkonline\" is not installed in this database");
    owner = static_cast<unsigned>(AsInt(r.scalar()));
  }
  return owner;
}

bool SchemaIs01() {
  return Query("SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'pkonline'", {}, true)
             .scalar() == pg::Value("0.1");
}

bool Foreign(int64_t job_id);

namespace {

// Run bookkeeping SQL as the extension owner.
template <typename F>
void Privileged(F&& f) {
  pg::AsRole(ExtensionOwner(), f);
}

pg::Result PrivQuery(const std::string& sql, const pg::Params& params) {
  pg::Result r;
  Privileged([&]() { r = Query(sql, params); });
  return r;
}

Job LoadImpl(int64_t job_id, bool for_update) {
  auto r = PrivQuery(
      "SELECT id, relid, table_name, operation, owner::oid, run_as::oid, state, step_no, "
      "pause_requested, cancel_requested, cursor_block, end_block, rows_done, options "
      "FROM pkonline.jobs WHERE id = $1::bigint" +
          std::string(for_update ? " FOR UPDATE" : ""),
      {V(job_id)});
  if (r.empty())
    Fail(sqlstate::kUndefinedObject, "pkonline job " + std::to_string(job_id) + " does not exist");
  const auto& row = r.rows[0];
  Job j;
  j.id = AsInt(row[0]);
  j.relid = static_cast<unsigned>(AsInt(row[1]));
  j.table_name = row[2].value_or("");
  j.operation = row[3].value_or("");
  j.owner = static_cast<unsigned>(AsInt(row[4]));
  j.run_as = static_cast<unsigned>(AsInt(row[5]));
  j.state = JobStateFromText(row[6].value_or(""));
  j.step_no = static_cast<int>(AsInt(row[7]));
  j.pause_requested = AsBool(row[8]);
  j.cancel_requested = AsBool(row[9]);
  j.cursor_block = AsInt(row[10]);
  j.end_block = AsInt(row[11], -1);
  j.rows_done = AsInt(row[12]);
  j.options = pg::ReadJsonb(row[13].value_or("{}"));
  j.settings = JobSettings::Load(j.options);
  return j;
}

}  // namespace

int64_t Create(unsigned relid, const std::string& table_name, const std::string& operation,
               const Json& options, unsigned owner, unsigned run_as, JobState state) {
  auto r = PrivQuery(
      "INSERT INTO pkonline.jobs (relid, table_name, operation, owner, run_as, state, options) "
      "VALUES ($1::oid, $2, $3, $4::oid::regrole, $5::oid::regrole, $6, $7::jsonb || "
      "pg_catalog.jsonb_build_object($8, pg_catalog.md5(pg_catalog.gen_random_uuid()::pg_catalog.text))) "
      "RETURNING id",
      {V(static_cast<int64_t>(relid)), V(table_name), V(operation), V(static_cast<int64_t>(owner)),
       V(static_cast<int64_t>(run_as)), V(std::string(ToText(state))), V(options.ToText()),
       V(std::string(kHelperKey))});
  return AsInt(r.scalar());
}

void SavePlan(int64_t job_id, const std::vector<StepPlan>& plan) {
  int n = 0;
  for (const auto& s : plan)
    PrivQuery(
        "INSERT INTO pkonline.job_steps (job_id, step_no, step, action, lock) "
        "VALUES ($1::bigint, $2::int, $3, $4, $5)",
        {V(job_id), V(++n), V(s.name), V(s.action), V(s.lock)});
}

std::vector<std::string> StepNames(int64_t job_id) {
  std::vector<std::string> names;
  for (const auto& row :
       PrivQuery("SELECT step FROM pkonline.job_steps WHERE job_id = $1::bigint ORDER BY step_no",
                 {V(job_id)})
           .rows)
    names.push_back(row[0].value_or(""));
  return names;
}

bool Exists(int64_t job_id) {
  return !PrivQuery("SELECT 1 FROM pkonline.jobs WHERE id = $1::bigint", {V(job_id)}).empty();
}

Job Load(int64_t job_id) { return LoadImpl(job_id, false); }
Job LoadForUpdate(int64_t job_id) { return LoadImpl(job_id, true); }

void SetState(int64_t job_id, JobState state) {
  PrivQuery("UPDATE pkonline.jobs SET state = $2, updated_at = pg_catalog.now() WHERE id = $1::bigint",
            {V(job_id), V(std::string(ToText(state)))});
}

void MarkRunning(int64_t job_id, int pid) {
  PrivQuery(
      "UPDATE pkonline.jobs SET state = CASE WHEN cancel_requested THEN 'cancelling' ELSE 'running' END, "
      "worker_pid = $2::int, attempts = attempts + 1, "
      "started_at = COALESCE(started_at, pg_catalog.now()), updated_at = pg_catalog.now(), "
      "last_sqlstate = NULL, last_error = NULL, last_detail = NULL, last_hint = NULL "
      "WHERE id = $1::bigint",
      {V(job_id), V(pid)});
}

void MarkFinished(int64_t job_id, JobState state) {
  PrivQuery(
      "UPDATE pkonline.jobs SET state = $2, worker_pid = NULL, finished_at = pg_catalog.clock_timestamp(), "
      "updated_at = pg_catalog.now(), pause_requested = false, cancel_requested = false "
      "WHERE id = $1::bigint",
      {V(job_id), V(std::string(ToText(state)))});
}

void MarkFailed(int64_t job_id, const std::string& sqlstate, const std::string& message,
                const std::string& detail, const std::string& hint) {
  PrivQuery(
      "UPDATE pkonline.jobs SET state = 'failed', worker_pid = NULL, updated_at = pg_catalog.now(), "
      "last_sqlstate = $2, last_error = $3, last_detail = NULLIF($4, ''), last_hint = NULLIF($5, ''), "
      "pause_requested = false WHERE id = $1::bigint",
      {V(job_id), V(sqlstate), V(message), V(detail), V(hint)});
  PrivQuery(
      "UPDATE pkonline.job_steps s SET state = 'failed' FROM pkonline.jobs j "
      "WHERE j.id = $1::bigint AND s.job_id = j.id AND s.step_no = j.step_no AND s.state = 'running'",
      {V(job_id)});
}

void ClearPauseRequest(int64_t job_id) {
  PrivQuery("UPDATE pkonline.jobs SET pause_requested = false WHERE id = $1::bigint", {V(job_id)});
}

void RefuseCancel(int64_t job_id) {
  PrivQuery("UPDATE pkonline.jobs SET cancel_requested = false, state = 'running' WHERE id = $1::bigint",
            {V(job_id)});
}

void StepStarted(int64_t job_id, int step_no, const std::string& step) {
  PrivQuery(
      "UPDATE pkonline.job_steps SET state = 'running', "
      "started_at = COALESCE(started_at, pg_catalog.clock_timestamp()) "
      "WHERE job_id = $1::bigint AND step_no = $2::int",
      {V(job_id), V(step_no)});
  PrivQuery("UPDATE pkonline.jobs SET step_no = $2::int, updated_at = pg_catalog.now() WHERE id = $1::bigint",
            {V(job_id), V(step_no)});
  Event(job_id, "step_start", step, "step " + std::to_string(step_no) + " " + step + " started");
}

void StepDone(int64_t job_id, int step_no, const std::string& step, const std::string& state) {
  PrivQuery(
      "UPDATE pkonline.job_steps SET state = $3, finished_at = pg_catalog.clock_timestamp() "
      "WHERE job_id = $1::bigint AND step_no = $2::int",
      {V(job_id), V(step_no), V(state)});
  if (state == "done")
    PrivQuery(
        "UPDATE pkonline.jobs SET step_no = $2::int + 1, updated_at = pg_catalog.now() WHERE id = $1::bigint",
        {V(job_id), V(step_no)});
  Event(job_id, "step_" + state, step, "step " + std::to_string(step_no) + " " + step + " " + state);
}

void SetBackfillRange(int64_t job_id, int64_t end_block, int64_t rows_estimate, int64_t cursor) {
  PrivQuery(
      "UPDATE pkonline.jobs SET end_block = $2::bigint, rows_estimate = $3::bigint, cursor_block = "
      "$4::bigint, "
      "backfill_started_at = COALESCE(backfill_started_at, pg_catalog.clock_timestamp()) "
      "WHERE id = $1::bigint",
      {V(job_id), V(end_block), V(rows_estimate), V(cursor)});
}

void SaveCursor(int64_t job_id, int64_t next_block, int64_t rows_added, int batch_blocks) {
  PrivQuery(
      "UPDATE pkonline.jobs SET cursor_block = $2::bigint, rows_done = rows_done + $3::bigint, "
      "batch_blocks = $4::int, updated_at = pg_catalog.now() WHERE id = $1::bigint",
      {V(job_id), V(next_block), V(rows_added), V(batch_blocks)});
}

void SetOption(int64_t job_id, const std::string& key, const Json& value) {
  PrivQuery(
      "UPDATE pkonline.jobs SET options = options || pg_catalog.jsonb_build_object($2::text, $3::jsonb), "
      "updated_at = pg_catalog.now() WHERE id = $1::bigint",
      {V(job_id), V(key), V(value.ToText())});
}

Json OptionNow(int64_t job_id, const std::string& key) {
  const auto text =
      PrivQuery("SELECT options -> $2::text FROM pkonline.jobs WHERE id = $1::bigint", {V(job_id), V(key)})
          .scalar();
  return text ? pg::ReadJsonb(*text) : Json();
}

void SaveStepReport(int64_t job_id, int step_no, const StepReport& r) {
  Json blockers = Json::Strings(r.blocked_by);
  PrivQuery(
      "UPDATE pkonline.job_steps SET busy_ms = busy_ms + $3::float8, batches = batches + $4::bigint, "
      "rows = rows + $5::bigint, wal_bytes = wal_bytes + $6::bigint, lock_retries = lock_retries + $7::int, "
      "blocked_by = COALESCE((SELECT pg_catalog.array_agg(DISTINCT b) FROM pg_catalog.unnest(blocked_by || "
      "  ARRAY(SELECT pg_catalog.jsonb_array_elements_text($8::jsonb))) b), '{}'), "
      "lock_mode = CASE WHEN $10::float8 > lock_ms THEN NULLIF($9, '') ELSE lock_mode END, "
      "lock_ms = GREATEST(lock_ms, $10::float8), writes_blocked_ms = GREATEST(writes_blocked_ms, "
      "$11::float8) "
      "WHERE job_id = $1::bigint AND step_no = $2::int",
      {V(job_id), V(step_no), V(std::to_string(r.busy_ms)), V(r.batches), V(r.rows), V(r.wal_bytes),
       V(r.lock_retries), V(blockers.ToText()), V(r.lock_mode), V(std::to_string(r.lock_ms)),
       V(std::to_string(r.writes_blocked_ms))});
}

namespace {
std::string TablesArray(const std::vector<unsigned>& tables) {
  std::vector<Json> items;
  for (unsigned t : tables) items.push_back(Json::Number(t));
  return Json::Array(items).ToText();
}
const char* kTotalSize =
    "(SELECT COALESCE(sum(pg_catalog.pg_total_relation_size(t::oid)), 0) "
    " FROM pg_catalog.jsonb_array_elements_text($2::jsonb) t "
    " WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_class WHERE oid = t::oid))";
}  // namespace

void RecordSizeBefore(int64_t job_id, const std::vector<unsigned>& tables) {
  PrivQuery(std::string("UPDATE pkonline.jobs SET size_before = ") + kTotalSize +
                " WHERE id = $1::bigint AND size_before IS NULL",
            {V(job_id), V(TablesArray(tables))});
}

void RecordSizeAfter(int64_t job_id, const std::vector<unsigned>& tables) {
  PrivQuery(std::string("UPDATE pkonline.jobs SET size_after = ") + kTotalSize + " WHERE id = $1::bigint",
            {V(job_id), V(TablesArray(tables))});
}

bool Foreign(int64_t job_id) {
  if (SchemaIs01()) return false;
  return AsBool(PrivQuery("SELECT origin IS DISTINCT FROM " + pg::Internal("_origin") +
                              "() FROM pkonline.jobs WHERE id = $1::bigint",
                          {V(job_id)})
                    .scalar());
}

bool OthersQueued(int64_t job_id) {
  return !PrivQuery("SELECT 1 FROM pkonline.jobs WHERE state = 'queued' AND id <> $1::bigint LIMIT 1",
                    {V(job_id)})
              .empty();
}

void CountLockRetry(int64_t job_id) {
  PrivQuery("UPDATE pkonline.jobs SET lock_retries = lock_retries + 1 WHERE id = $1::bigint", {V(job_id)});
}

void NoteQueueWait(int64_t job_id) {
  PrivQuery(
      "INSERT INTO pkonline.events (job_id, kind, message, detail) "
      "SELECT q.id, 'wait', pg_catalog.format('waited %s s in the queue for a worker', pg_catalog.round(q.ms "
      "/ 1000, 1)), "
      "pg_catalog.jsonb_build_object('waited_ms', q.ms, 'for', 'a worker') "
      "FROM (SELECT j.id, (EXTRACT(epoch FROM pg_catalog.clock_timestamp() - j.updated_at) * 1000)::numeric "
      "AS ms "
      "      FROM pkonline.jobs j WHERE j.id = $1::bigint AND j.state = 'queued') q WHERE q.ms > 1000",
      {V(job_id)});
}

void SetWaiting(int64_t job_id, const std::string& what) {
  const bool has_column =
      !PrivQuery(
           "SELECT 1 FROM pg_catalog.pg_attribute WHERE attrelid = 'pkonline.jobs'::pg_catalog.regclass "
           "AND attname = 'waiting_for' AND NOT attisdropped",
           {})
           .empty();
  if (!has_column) return;
  PrivQuery("UPDATE pkonline.jobs SET waiting_for = NULLIF($2, '') WHERE id = $1::bigint",
            {V(job_id), V(what)});
}

void Event(int64_t job_id, const std::string& kind, const std::string& step, const std::string& message,
           const std::string& detail_json) {
  PrivQuery(
      "INSERT INTO pkonline.events (job_id, kind, step, message, detail) "
      "VALUES ($1::bigint, $2, NULLIF($3, ''), $4, NULLIF($5, '')::jsonb)",
      {V(job_id), V(kind), V(step), V(message), V(detail_json)});
}

bool WorkerAlive(int64_t job_id) {
  return AsBool(
      Query("SELECT " + pg::Internal("_worker_alive") + "($1::bigint)", {V(job_id)}, true).scalar());
}

void Forget(int64_t job_id) {
  (void)Query("DELETE FROM pkonline.jobs WHERE id = $1::bigint AND state IN ('done', 'cancelled')",
              {V(job_id)}, false);
}

int64_t ForgetFinished(unsigned role, const std::string& older_than) {
  return AsInt(Query("WITH gone AS (DELETE FROM pkonline.jobs WHERE state IN ('done', 'cancelled') "
                     "AND finished_at < pg_catalog.now() - $2::pg_catalog.interval "
                     "AND pg_catalog.pg_has_role($1::oid, owner, 'USAGE') RETURNING 1) "
                     "SELECT count(*) FROM gone",
                     {V(static_cast<int64_t>(role)), V(older_than)}, false)
                   .scalar());
}

bool Claim(int64_t job_id) { return pg::ClaimJob(job_id); }

void Release(int64_t job_id) { pg::ReleaseJob(job_id); }

}  // namespace store
}  // namespace pkonline::jobs
