// Unit tests of the operations' plans, without a server: the step list each operation builds from
// a job's options, the one step marked final and the point of no return derived from it. The
// PostgreSQL layer is replaced by stand-ins that throw (test/unit/pg_stubs.cpp), so building a plan
// that touched the database would fail here.
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "pkonline/jobs/step.hpp"
#include "pkonline/ops/operation.hpp"
#include "pkonline/ops/plans.hpp"
#include "pkonline/pg/bridge.hpp"

#include "check.hpp"

namespace {

using pkonline::jobs::Job;
using pkonline::jobs::Step;
using pkonline::ops::FillMode;
using pkonline::ops::IntPkMethod;
using pkonline::ops::OldPk;

using unit::Check;

Job MakeJob(const std::string& operation, pkonline::Json options) {
  Job job;
  job.id = 42;
  job.relid = 16384;
  job.table_name = "public.t";
  job.operation = operation;
  job.options = std::move(options);
  return job;
}

std::string Names(const std::vector<Step>& steps) {
  std::string out;
  for (const auto& s : steps) out += (out.empty() ? "" : ",") + s.name;
  return out;
}

int Finals(const std::vector<Step>& steps) {
  int n = 0;
  for (const auto& s : steps) n += s.final ? 1 : 0;
  return n;
}

// The plan of `job`: its step names, one final step, and the point of no return at `ponr`.
void CheckPlan(const std::string& label, const Job& job, const std::string& names, int ponr) {
  std::vector<Step> steps;
  try {
    steps = pkonline::ops::MakeOperation(job.operation)->Steps(job);
  } catch (const std::exception& e) {
    Check(false, label + ": the plan builds (" + e.what() + ")");
    return;
  }
  Check(Names(steps) == names,
        label + ": steps " + names + (Names(steps) == names ? "" : " (got " + Names(steps) + ")"));
  Check(Finals(steps) == 1, label + ": exactly one step is final");
  int got = -1;
  try {
    got = pkonline::jobs::PointOfNoReturn(steps);
  } catch (const std::exception&) {
  }
  Check(got == ponr, label + ": point of no return at step " + std::to_string(ponr) + " (got " +
                         std::to_string(got) + ")");
  bool runnable = true;
  for (const auto& s : steps) runnable = runnable && static_cast<bool>(s.run);
  Check(runnable, label + ": every step can run");
}

pkonline::ops::AddIntPkPlan IntPk(IntPkMethod method) {
  pkonline::ops::AddIntPkPlan p;
  p.schema = "public";
  p.column = "id";
  p.column_type = "bigint";
  p.identity = true;
  p.method = method;
  p.pk_name = "t_pkey";
  return p;
}

pkonline::ops::AddColumnPlan AddColumn(FillMode mode, bool not_null, bool unique) {
  pkonline::ops::AddColumnPlan p;
  p.schema = "public";
  p.column = "c";
  p.column_type = "integer";
  p.fill = "a + 1";
  p.fill_sql = "(a + 1)";
  p.fill_row_sql = "(NEW.a + 1)";
  p.fill_runs_user_code = false;
  p.mode = mode;
  p.not_null = not_null;
  p.unique = unique;
  if (unique) p.unique_name = "t_c_key";
  return p;
}

pkonline::ops::SetPrimaryKeyPlan SetPk(std::vector<std::string> columns, std::vector<std::string> nullable,
                                       OldPk old_pk, bool had_key, bool reuse) {
  pkonline::ops::SetPrimaryKeyPlan p;
  p.schema = "public";
  p.columns = std::move(columns);
  p.nullable = std::move(nullable);
  p.old_pk = old_pk;
  if (had_key) p.old = pkonline::ops::SetPrimaryKeyPlan::Key{"t_pkey", {"id"}};
  if (reuse) p.reuse_index = "t_a_key";
  return p;
}

// The plan saved into a job's options (as the API does) and the job's plan built from them.
template <typename Plan>
Job JobOf(const Plan& plan) {
  return MakeJob(plan.kOperation, plan.Save());
}

// Saved and loaded back, the plan is the same (every field, by its JSON).
template <typename Plan>
void CheckRoundTrip(const std::string& label, const Plan& plan) {
  const Job job = JobOf(plan);
  bool same = false;
  try {
    same = Plan::Load(job).Save() == plan.Save();
  } catch (const std::exception&) {
  }
  Check(same, label + ": saved into the job's options and loaded back unchanged");
}

// Loading fails (a PgError naming the key) when the key is missing or of the wrong kind.
template <typename Plan>
void CheckRefused(const std::string& label, pkonline::Json options, const std::string& key) {
  bool named = false;
  try {
    Plan::Load(MakeJob(Plan::kOperation, std::move(options)));
  } catch (const pkonline::PgError& e) {
    named = e.message().find(key) != std::string::npos;
  }
  Check(named, label);
}

}  // namespace

void unit::PlanTests() {
  CheckPlan("add_int_pk in place", JobOf(IntPk(IntPkMethod::kInPlace)),
            "add_column,backfill,catch_up,add_check,validate,create_index,attach", 7);
  CheckPlan("add_int_pk copy", JobOf(IntPk(IntPkMethod::kCopy)),
            "add_column,copy,build_indexes,catch_up,swap,cleanup", 5);
  {
    auto parted = IntPk(IntPkMethod::kInPlace);
    parted.identity = false;
    parted.partitioned = true;
    parted.pk_columns = {"id", "ts", "region"};
    CheckPlan("add_int_pk on a partitioned table", JobOf(parted),
              "preflight,add_column,backfill,catch_up,partition_keys,attach", 6);
    CheckRoundTrip("add_int_pk plan, partitioned", parted);
    const auto back = pkonline::ops::AddIntPkPlan::Load(JobOf(parted));
    Check(back.KeyColumns() == std::vector<std::string>{"id", "ts", "region"} &&
              pkonline::ops::AddIntPkPlan::Load(JobOf(IntPk(IntPkMethod::kInPlace))).KeyColumns() ==
                  std::vector<std::string>{"id"},
          "add_int_pk plan: a partitioned table's key is its pk_columns, a plain table's the new column");
  }
  CheckPlan("add_column, a value kept in the catalog", JobOf(AddColumn(FillMode::kCatalog, true, false)),
            "add_column", 1);
  CheckPlan("add_column, a value kept in the catalog, unique",
            JobOf(AddColumn(FillMode::kCatalog, true, true)), "add_column,create_index,finish", 3);
  CheckPlan("add_column, filled in batches, NOT NULL, unique",
            JobOf(AddColumn(FillMode::kBackfill, true, true)),
            "add_column,backfill,catch_up,add_check,validate,create_index,finish", 7);
  {
    auto parted = AddColumn(FillMode::kBackfill, true, false);
    parted.partitioned = true;
    CheckPlan("add_column on a partitioned table, NOT NULL", JobOf(parted),
              "add_column,backfill,catch_up,partition_checks,finish", 5);
    CheckRoundTrip("add_column plan, partitioned", parted);
    auto catalog = AddColumn(FillMode::kCatalog, true, false);
    catalog.partitioned = true;
    CheckPlan("add_column on a partitioned table, a value kept in the catalog", JobOf(catalog), "add_column",
              1);
  }
  CheckPlan("add_column, filled in batches, nullable", JobOf(AddColumn(FillMode::kBackfill, false, false)),
            "add_column,backfill,catch_up,finish", 4);
  CheckPlan("set_primary_key, a nullable column, the old key kept",
            JobOf(SetPk({"a", "b"}, {"a"}, OldPk::kUnique, true, false)),
            "preflight,add_check,validate,create_index,keep_old_key,swap,validate_fks", 6);
  CheckPlan("set_primary_key, an index reused, no key before",
            JobOf(SetPk({"a"}, {}, OldPk::kUnique, false, true)), "preflight,create_index,swap,validate_fks",
            3);
  {
    auto parted = SetPk({"id", "ts"}, {"id"}, OldPk::kDrop, false, false);
    parted.partitioned = true;
    parted.pk_name = "t_pkey";
    CheckPlan("set_primary_key on a partitioned table", JobOf(parted), "preflight,partition_keys,attach", 3);
    CheckRoundTrip("set_primary_key plan, partitioned", parted);
  }
  CheckPlan("set_primary_key, the old key dropped", JobOf(SetPk({"a"}, {}, OldPk::kDrop, true, false)),
            "preflight,create_index,swap,validate_fks", 3);

  {
    pkonline::ops::ConvertPkPlan p;
    p.schema = "public";
    p.pk_name = "t_pkey";
    p.targets = {{16384, "public.t", "id", true}, {16390, "public.c", "t_id", false}};
    p.tables = {16384, 16390};
    CheckPlan("convert_pk_to_bigint, a NOT NULL key and a nullable referencing column", JobOf(p),
              "add_columns,backfill,add_checks,validate,create_indexes,swap,validate_fks", 6);
    CheckRoundTrip("convert_pk_to_bigint plan", p);
    auto other_first = p;
    std::swap(other_first.targets[0], other_first.targets[1]);
    CheckRefused<pkonline::ops::ConvertPkPlan>(
        "convert_pk_to_bigint plan: a first target not the job's table", other_first.Save(), "first target");
  }

  // Which batches may keep the table's triggers quiet (jobs/runner.cpp decides from this).
  using pkonline::jobs::BatchCode;
  auto batches = [](const Job& job) { return pkonline::ops::MakeOperation(job.operation)->Batches(job); };
  auto user_fill = AddColumn(FillMode::kBackfill, false, false);
  user_fill.fill_runs_user_code = true;
  Check(batches(JobOf(IntPk(IntPkMethod::kInPlace))) == BatchCode::kBuiltinsOnly &&
            batches(JobOf(IntPk(IntPkMethod::kCopy))) == BatchCode::kOwnCopyOnly &&
            batches(JobOf(AddColumn(FillMode::kBackfill, false, false))) == BatchCode::kBuiltinsOnly &&
            batches(JobOf(user_fill)) == BatchCode::kUserCode,
        "batches: user code in the fill, the copy method and built-ins are told apart");

  // Typed plans: what the API saves is what the steps load; a missing or mistyped key is refused.
  CheckRoundTrip("add_int_pk plan", IntPk(IntPkMethod::kCopy));
  CheckRoundTrip("add_column plan", AddColumn(FillMode::kBackfill, true, true));
  CheckRoundTrip("set_primary_key plan", SetPk({"a", "b|c", "d\"e"}, {"a"}, OldPk::kUnique, true, true));
  {
    const auto back = pkonline::ops::SetPrimaryKeyPlan::Load(
        JobOf(SetPk({"a", "b|c", "d\"e"}, {"a"}, OldPk::kUnique, true, true)));
    Check(back.columns == std::vector<std::string>{"a", "b|c", "d\"e"} && back.old &&
              back.old->name == "t_pkey" && back.KeepsOldKey() &&
              back.reuse_index == std::optional<std::string>("t_a_key"),
          "set_primary_key plan: names with | and quotes come back as they were");
  }
  pkonline::Json no_column = IntPk(IntPkMethod::kInPlace).Save();
  pkonline::Json stripped = pkonline::Json::Object();
  for (const auto& [k, v] : no_column.Fields())
    if (k != "column_name") stripped.Set(k, v);
  CheckRefused<pkonline::ops::AddIntPkPlan>("add_int_pk plan: a missing key is refused, naming it", stripped,
                                            "column_name");
  pkonline::Json bad_method = IntPk(IntPkMethod::kInPlace).Save();
  bad_method.Set("method", pkonline::Json::String("teleport"));
  CheckRefused<pkonline::ops::AddIntPkPlan>("add_int_pk plan: an unknown method is refused", bad_method,
                                            "method");
  pkonline::Json text_bool = AddColumn(FillMode::kBackfill, true, false).Save();
  text_bool.Set("not_null", pkonline::Json::String("true"));
  CheckRefused<pkonline::ops::AddColumnPlan>("add_column plan: a boolean stored as text is refused",
                                             text_bool, "not_null");
  pkonline::Json text_list = SetPk({"a"}, {}, OldPk::kDrop, false, false).Save();
  text_list.Set("columns", pkonline::Json::String("[\"a\"]"));
  CheckRefused<pkonline::ops::SetPrimaryKeyPlan>(
      "set_primary_key plan: a list stored as JSON text is refused", text_list, "columns");

  // Moved foreign keys: objects, so a table or constraint name holding | survives.
  const std::vector<pkonline::ops::MovedForeignKey> fks{{"public.\"a|b\"", "fk|1"}, {"s.c", "fk2"}};
  const Job any = JobOf(IntPk(IntPkMethod::kInPlace));
  const auto fks_back = pkonline::ops::LoadMovedForeignKeys(any, pkonline::ops::SaveMovedForeignKeys(fks));
  Check(fks_back.size() == 2 && fks_back[0].table == "public.\"a|b\"" && fks_back[0].name == "fk|1" &&
            fks_back[1].name == "fk2" && pkonline::ops::LoadMovedForeignKeys(any, pkonline::Json()).empty(),
        "moved foreign keys: saved and loaded back, names with | intact; none recorded reads as none");

  // A plan without a final step has no point of no return: the runner refuses it.
  bool refused = false;
  try {
    pkonline::jobs::PointOfNoReturn({Step{"only", "", "", [](pkonline::jobs::Context&) {}, nullptr}});
  } catch (const std::logic_error&) {
    refused = true;
  }
  Check(refused, "a plan without a final step is refused");

  bool unknown = false;
  try {
    pkonline::ops::MakeOperation("drop_everything");
  } catch (const std::exception&) {
    unknown = true;
  }
  Check(unknown, "an unknown operation is refused");
}
