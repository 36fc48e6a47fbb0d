// pkonline.check(): before a job, is the table ready and what will it cost? The operation's own
// checks run first, in a subtransaction that is always rolled back, with every argument the DBA
// gave: a refusal is a `blocker` with the very message the operation would give. Then the
// findings of check_findings.cpp. Nothing is written; no lock stronger than ACCESS SHARE.
#include <algorithm>
#include <optional>

#include "pkonline/api/api.hpp"
#include "pkonline/api/check_findings.hpp"
#include "pkonline/pg/bridge.hpp"
#include "pkonline/pg/catalog.hpp"
#include "pkonline/pg/expr.hpp"
#include "pkonline/pg/storage.hpp"
#include "pkonline/pg/jsonb.hpp"
#include "pkonline/pg/spi.hpp"
#include "pkonline/pg/txn.hpp"
#include "pkonline/text.hpp"

namespace pkonline::api {

namespace {

const std::vector<std::string> kOperations = {"add_int_pk", "add_column", "set_primary_key",
                                              "convert_pk_to_bigint"};

// The arguments each operation takes in check()'s `args` (its own names; tbl and start are not).
std::vector<std::string> ArgumentNames(const std::string& op) {
  if (op == "add_int_pk") return {"column_name", "column_type", "identity", "method", "pk_columns"};
  if (op == "add_column")
    return {"column_name", "column_type", "fill", "not_null", "is_unique", "set_default", "method"};
  if (op == "set_primary_key") return {"columns", "old_pk", "replace_unique"};
  return {"referencing", "method"};
}

std::string Joined(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : ", ") + i;
  return out;
}

// The DBA's `args`, read by name and kind: a bad one is an error of check() itself.
class Args {
 public:
  Args(const std::string& op, const std::string& text, const std::string& search_path)
      : op_(op), search_path_(search_path) {
    json_ = pg::ReadJsonb(text);
    if (json_.kind() != Json::Kind::kObject)
      Fail(sqlstate::kInvalidParameter, "args must be a JSON object", "",
           "For example '{\"column_name\": \"id\"}': the operation's arguments by name.");
    const auto names = ArgumentNames(op);
    for (const auto& [key, value] : json_.Fields())
      if (std::find(names.begin(), names.end(), key) == names.end())
        Fail(sqlstate::kInvalidParameter, Fmt("%1% takes no argument \"%2%\"", op, key), "",
             Fmt("Its arguments: %1%.", Joined(names)));
  }
  bool Has(const std::string& key) const { return json_.Find(key) != nullptr; }
  std::string Text(const std::string& key, const std::string& if_absent) const {
    return Read<std::string>(key, if_absent, "a string", [](const Json& j) { return j.AsString(); });
  }
  bool Bool(const std::string& key, bool if_absent) const {
    return Read<bool>(key, if_absent, "true or false", [](const Json& j) { return j.AsBool(); });
  }
  std::vector<std::string> Strings(const std::string& key) const {
    return Read<std::vector<std::string>>(key, {}, "an array of strings",
                                          [](const Json& j) { return j.AsStrings(); });
  }
  // Looked up as the operation's regtype argument would be: through the caller's search_path.
  unsigned Type(const std::string& key, const std::string& if_absent) const {
    return pg::TypeByName(Text(key, if_absent), search_path_);
  }

 private:
  template <typename T, typename F>
  T Read(const std::string& key, T if_absent, const char* kind, F read) const {
    const Json* v = json_.Find(key);
    if (v == nullptr) return if_absent;
    try {
      return read(*v);
    } catch (const Json::Error&) {
      Fail(sqlstate::kInvalidParameter, Fmt("argument \"%1%\" of %2% must be %3%", key, op_, kind));
    }
  }
  std::string op_, search_path_;
  Json json_;
};

// A refusal is what the operation says of the table and the arguments; a cancel, a statement
// timeout, a shutdown, resources running out or an internal error end check() itself.
void RethrowIfNotARefusal(const PgError& e) {
  const std::string code = e.sqlstate_text();
  for (const char* cls : {"57", "53", "58", "XX"})
    if (code.compare(0, 2, cls) == 0) throw e;
}

// The operation's own checks, dry: every refusal it would raise, nothing created. What it still
// lacks to run (add_column's fill, set_primary_key's columns) is a warning that says how to give it.
Finding DryRun(const CheckArgs& c, const Args& args, CheckedOperation& op) {
  std::function<void()> run;
  std::vector<std::string> missing;
  if (c.operation == "add_int_pk") {
    AddIntPkArgs a{c.relid, args.Text("column_name", "id"), args.Type("column_type", "bigint"), std::nullopt,
                   false,   args.Text("method", "in_place")};
    if (args.Has("identity")) a.identity = args.Bool("identity", true);
    if (args.Has("pk_columns")) a.pk_columns = op.columns = args.Strings("pk_columns");
    a.dry_run = true;
    op.column = a.column_name;
    op.copy = a.method == "copy";
    run = [a]() { AddIntPk(a); };
  } else if (c.operation == "add_column") {
    for (const char* key : {"column_name", "column_type", "fill"})
      if (!args.Has(key)) missing.push_back(key);
    if (missing.empty()) {
      AddColumnArgs a{c.relid,
                      args.Text("column_name", ""),
                      args.Type("column_type", ""),
                      args.Text("fill", ""),
                      args.Has("not_null") ? std::optional<bool>(args.Bool("not_null", true)) : std::nullopt,
                      args.Bool("is_unique", false),
                      args.Bool("set_default", true),
                      false,
                      c.search_path};
      a.dry_run = true;
      a.method = args.Text("method", "in_place");
      op.column = a.column_name;
      op.unique = a.unique;
      op.copy = a.method == "copy";
      run = [a]() { AddColumn(a); };
    }
  } else if (c.operation == "set_primary_key") {
    if (!args.Has("columns")) missing.push_back("columns");
    if (missing.empty()) {
      SetPrimaryKeyArgs a{c.relid, args.Strings("columns"), args.Text("old_pk", "unique"), false};
      a.dry_run = true;
      a.replace_unique = args.Bool("replace_unique", false);
      op.replace_unique = a.replace_unique;
      op.columns = a.columns;
      run = [a]() { SetPrimaryKey(a); };
    }
  } else {
    ConvertPkArgs a{c.relid, args.Bool("referencing", true), false};
    a.dry_run = true;
    a.method = args.Text("method", "in_place");
    op.referencing = a.referencing;
    op.copy = a.method == "copy";
    run = [a]() { ConvertPkToBigint(a); };
  }
  if (!missing.empty())
    return {"warning", "operation",
            Fmt("%1%'s own checks were not run: they need %2%", c.operation, Joined(missing)),
            Fmt("Give them in args, for example pkonline.check('t', '%1%', '%2%').", c.operation,
                c.operation == "add_column"
                    ? "{\"column_name\": \"c\", \"column_type\": \"text\", \"fill\": \"lower(name)\"}"
                    : "{\"columns\": [\"a\", \"b\"]}")};
  std::optional<PgError> refused = pg::InRolledBackSubtransaction(run);
  if (refused) RethrowIfNotARefusal(*refused);
  if (!refused && c.operation == "add_column") {
    const std::optional<PgError> failed = pg::InRolledBackSubtransaction([&]() {
      const pg::CheckedExpr fill =
          pg::CheckRowExpression(c.relid, args.Text("fill", ""), args.Type("column_type", ""), c.search_path);
      op.catalog_only = fill.default_ok() && !fill.is_volatile;
    });
    if (failed) RethrowIfNotARefusal(*failed);
  }
  if (!refused)
    return {"ok", "operation", Fmt("%1% passes every check it makes before it starts", c.operation), ""};
  std::string detail = Fmt("%1% (SQLSTATE %2%)", refused->message(), refused->sqlstate_text());
  if (!refused->detail().empty()) detail += ". " + refused->detail();
  return {"blocker", "operation", detail, refused->hint()};
}

}  // namespace

std::vector<Finding> Check(const CheckArgs& c) {
  if (std::find(kOperations.begin(), kOperations.end(), c.operation) == kOperations.end())
    Fail(sqlstate::kInvalidParameter, Fmt("pkonline has no operation \"%1%\"", c.operation), "",
         Fmt("check() knows %1%.", Joined(kOperations)));
  pg::SpiScope spi;
  const Args args(c.operation, c.args, c.search_path);
  CheckedOperation op;
  op.operation = c.operation;
  op.args_json = c.args;
  std::vector<Finding> out{DryRun(c, args, op)};
  // The rest reads the table, locked ACCESS SHARE to the end of the transaction so that it
  // stays while it is read: an ordinary table, or a partitioned one's tree (what else it is, the
  // operation said).
  pg::LockShared(c.relid);
  if (pg::RelKind(c.relid) == 'r') {
    SizeAndDisk(c.relid, op, out);
    Duration(c.relid, op, out);
    Wal(c.relid, op, out);
    Transactions(out);
    Replication(c.relid, op, out);
    Attached(c.relid, out);
    if (op.operation == "set_primary_key" && !op.columns.empty() && out.front().level == "ok")
      KeyData(c.relid, op, out);
  } else if (pg::RelKind(c.relid) == 'p') {
    Partitions(c.relid, op, out);
    Wal(c.relid, op, out);
    Transactions(out);
  }
  spi.Close();
  return out;
}

}  // namespace pkonline::api
