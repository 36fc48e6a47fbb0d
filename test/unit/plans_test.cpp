// Unit tests of the operations' plans, without a server: the step list each operation builds from
// a job's options, the one step marked final and the point of no return derived from it. The
// PostgreSQL layer is replaced by stand-ins that throw (test/unit/pg_stubs.cpp), so building a plan
// that touched the database would fail here.
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "pkonline/jobs/step.hpp"
#include "pkonline/ops/operation.hpp"

#include "check.hpp"

namespace {

using pkonline::jobs::Job;
using pkonline::jobs::Step;

using unit::Check;

Job MakeJob(const std::string& operation, std::map<std::string, std::string> options) {
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

std::map<std::string, std::string> IntPk(const std::string& method) {
  return {{"column_name", "id"}, {"column_type", "bigint"}, {"identity", "true"},
          {"method", method},    {"pk_name", "t_pkey"},     {"schema", "public"}};
}

std::map<std::string, std::string> AddColumn(const std::string& mode, bool not_null, bool unique) {
  std::map<std::string, std::string> o{{"column_name", "c"},
                                       {"column_type", "integer"},
                                       {"mode", mode},
                                       {"fill", "a + 1"},
                                       {"fill_sql", "(a + 1)"},
                                       {"not_null", not_null ? "true" : "false"},
                                       {"unique", unique ? "true" : "false"},
                                       {"set_default", "false"},
                                       {"schema", "public"}};
  if (unique) o["unique_name"] = "t_c_key";
  return o;
}

}  // namespace

void unit::PlanTests() {
  CheckPlan("add_int_pk in place", MakeJob("add_int_pk", IntPk("in_place")),
            "add_column,backfill,catch_up,add_check,validate,create_index,attach", 7);
  CheckPlan("add_int_pk copy", MakeJob("add_int_pk", IntPk("copy")),
            "add_column,copy,build_indexes,catch_up,swap,cleanup", 5);
  CheckPlan("add_column, a value kept in the catalog",
            MakeJob("add_column", AddColumn("catalog", true, false)), "add_column", 1);
  CheckPlan("add_column, a value kept in the catalog, unique",
            MakeJob("add_column", AddColumn("catalog", true, true)), "add_column,create_index,finish", 3);
  CheckPlan("add_column, filled in batches, NOT NULL, unique",
            MakeJob("add_column", AddColumn("backfill", true, true)),
            "add_column,backfill,catch_up,add_check,validate,create_index,finish", 7);
  CheckPlan("add_column, filled in batches, nullable",
            MakeJob("add_column", AddColumn("backfill", false, false)), "add_column,backfill,catch_up,finish",
            4);
  CheckPlan("set_primary_key, a nullable column, the old key kept",
            MakeJob("set_primary_key", {{"columns", "[\"a\", \"b\"]"},
                                        {"column_list", "a, b"},
                                        {"nullable", "[\"a\"]"},
                                        {"old_pk", "unique"},
                                        {"old_pk_name", "t_pkey"},
                                        {"old_pk_columns", "[\"id\"]"},
                                        {"old_pk_column_list", "id"},
                                        {"schema", "public"}}),
            "preflight,add_check,validate,create_index,keep_old_key,swap,validate_fks", 6);
  CheckPlan("set_primary_key, an index reused, no key before",
            MakeJob("set_primary_key", {{"columns", "[\"a\"]"},
                                        {"column_list", "a"},
                                        {"nullable", "[]"},
                                        {"old_pk", "unique"},
                                        {"reuse_index", "t_a_key"},
                                        {"schema", "public"}}),
            "preflight,create_index,swap,validate_fks", 3);
  CheckPlan("set_primary_key, the old key dropped",
            MakeJob("set_primary_key", {{"columns", "[\"a\"]"},
                                        {"column_list", "a"},
                                        {"nullable", "[]"},
                                        {"old_pk", "drop"},
                                        {"old_pk_name", "t_pkey"},
                                        {"old_pk_columns", "[\"id\"]"},
                                        {"old_pk_column_list", "id"},
                                        {"schema", "public"}}),
            "preflight,create_index,swap,validate_fks", 3);

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
