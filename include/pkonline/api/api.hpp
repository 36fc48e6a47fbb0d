// The C++ bodies of the SQL API. The extern "C" shims in sql_functions.cpp only unpack
// arguments and call these through the error bridge.
#pragma once

#include <optional>

#include <cstdint>
#include <string>
#include <vector>

namespace pkonline::api {

struct AddIntPkArgs {
  unsigned relid;
  std::string column_name;
  unsigned column_type;          // type OID
  std::optional<bool> identity;  // unset: true unless the table is partitioned
  bool start;
  std::string method;                                  // "in_place" or "copy"
  bool dry_run = false;                                // every check, then no job (pkonline.check)
  std::optional<std::vector<std::string>> pk_columns;  // partitioned tables: the key's columns
};
int64_t AddIntPk(const AddIntPkArgs& args);

struct AddColumnArgs {
  unsigned relid;
  std::string column_name;
  unsigned column_type;          // type OID
  std::string fill;              // one SQL expression over the row
  std::optional<bool> not_null;  // unset: NOT NULL when the column gets a DEFAULT, else refused
  bool unique;
  bool set_default;
  bool start;
  std::string search_path;          // the caller's, for resolving names in fill
  bool dry_run = false;             // every check, then no job (pkonline.check)
  std::string method = "in_place";  // or "copy" (0.6)
};
int64_t AddColumn(const AddColumnArgs& args);

struct SetPrimaryKeyArgs {
  unsigned relid;
  std::vector<std::string> columns;
  std::string old_pk;  // "unique" or "drop"
  bool start;
  bool dry_run = false;         // every check, then no job (pkonline.check)
  bool replace_unique = false;  // the UNIQUE constraint on the same columns goes in the swap
};
int64_t SetPrimaryKey(const SetPrimaryKeyArgs& args);

struct ConvertPkArgs {
  unsigned relid;
  bool referencing;  // convert the integer columns of foreign keys referencing the key too
  bool start;
  bool dry_run = false;             // every check, then no job (pkonline.check)
  std::string method = "in_place";  // or "copy" (0.6)
};
int64_t ConvertPkToBigint(const ConvertPkArgs& args);

// pkonline.wait(): polls until the job ends (or `timeout`, an interval's text, passes), committing
// between polls; returns the job's state. `atomic`: called where it may not commit (refused).
std::string Wait(int64_t job, const std::optional<std::string>& timeout, bool atomic);

// pkonline.check(): one finding per row, before a job (src/api/check.cpp).
struct Finding {
  std::string level;  // "ok", "warning" or "blocker"
  std::string item, detail, advice;
};
struct CheckArgs {
  unsigned relid;
  std::string operation;    // add_int_pk, add_column, set_primary_key, convert_pk_to_bigint
  std::string args;         // jsonb text: the operation's own arguments, by name
  std::string search_path;  // the caller's (add_column's fill)
};
std::vector<Finding> Check(const CheckArgs& args);

std::string Start(int64_t job_id);
std::string Pause(int64_t job_id);
std::string Resume(int64_t job_id);
std::string Cancel(int64_t job_id);
// A job's run window, changed while it exists ("" always); returns it ("always" for "").
std::string SetRunWindow(int64_t job_id, const std::string& window);
// pkonline.set_option(): one of jobs::FindTunable's settings (or run_window) of an unfinished job,
// by its creator; the worker takes it at its next batch or retry. Returns the value set.
std::string SetOption(int64_t job_id, const std::string& name, const std::string& value);
// pkonline.complete(): the job no longer stops before its final step; a job stopped there goes on.
std::string Complete(int64_t job_id);
int RunPending();
// pkonline.forget(job): a done or cancelled job's records removed (its creator and members only).
std::string Forget(int64_t job_id);
// pkonline.forget(older_than): the done and cancelled jobs the caller may forget, finished longer
// ago than `older_than` (an interval as text): how many.
int64_t ForgetOlder(const std::string& older_than);

}  // namespace pkonline::api
