// The operations' plans (see include/pkonline/ops/plans.hpp): each option key named once, here.
#include "pkonline/ops/plans.hpp"

#include <utility>

#include "pkonline/pg/bridge.hpp"
#include "pkonline/pg/quote.hpp"
#include "pkonline/text.hpp"

namespace pkonline::ops {

namespace {

constexpr char kSchema[] = "schema";

// Reads the job's options; a key missing or of the wrong kind fails the job (XX000), naming both.
class Reader {
 public:
  explicit Reader(const jobs::Job& job) : job_(job) {}
  const Json& At(const char* key) const {
    const Json* v = job_.options.Find(key);
    if (!v) Fail(sqlstate::kInternal, Fmt("pkonline: job %1% has no option %2%", job_.id, key));
    return *v;
  }
  template <typename F>
  auto Read(const char* key, F&& read) const -> decltype(read(std::declval<const Json&>())) {
    const Json& v = At(key);
    try {
      return read(v);
    } catch (const Json::Error& e) {
      Fail(sqlstate::kInternal, Fmt("pkonline: job %1%'s option %2%: %3%", job_.id, key, e.what()));
    }
  }
  std::string String(const char* key) const {
    return Read(key, [](const Json& v) { return v.AsString(); });
  }
  bool Bool(const char* key) const {
    return Read(key, [](const Json& v) { return v.AsBool(); });
  }
  std::vector<std::string> Strings(const char* key) const {
    return Read(key, [](const Json& v) { return v.AsStrings(); });
  }
  bool Has(const char* key) const { return job_.options.Find(key) != nullptr; }
  // One of `names` (the enum's values in order); anything else fails.
  template <typename E, size_t N>
  E Choice(const char* key, const char* const (&names)[N]) const {
    const std::string text = String(key);
    for (size_t i = 0; i < N; i++)
      if (text == names[i]) return static_cast<E>(i);
    Fail(sqlstate::kInternal, Fmt("pkonline: job %1%'s option %2% is \"%3%\"", job_.id, key, text));
  }
  int64_t id() const { return job_.id; }

 private:
  const jobs::Job& job_;
};

constexpr const char* kMethods[] = {"in_place", "copy"};       // IntPkMethod, in order
constexpr const char* kFillModes[] = {"catalog", "backfill"};  // FillMode
constexpr const char* kOldPks[] = {"drop", "unique"};          // OldPk

}  // namespace

std::string HelperSchema(const jobs::Job& job) { return Reader(job).String(kSchema); }

const char* ToText(IntPkMethod method) { return kMethods[static_cast<int>(method)]; }
const char* ToText(OldPk old_pk) { return kOldPks[static_cast<int>(old_pk)]; }

// --- add_int_pk ----------------------------------------------------------------------------------
AddIntPkPlan AddIntPkPlan::Load(const jobs::Job& job) {
  const Reader r(job);
  AddIntPkPlan p;
  p.schema = r.String(kSchema);
  p.column = r.String("column_name");
  p.column_type = r.String("column_type");
  p.identity = r.Bool("identity");
  p.method = r.Choice<IntPkMethod>("method", kMethods);
  p.pk_name = r.String("pk_name");
  if (r.Has("partitioned")) p.partitioned = r.Bool("partitioned");  // jobs made by 0.2 have neither
  if (p.partitioned) p.pk_columns = r.Strings("pk_columns");
  return p;
}

Json AddIntPkPlan::Save() const {
  Json o = Json::Object();
  o.Set(kSchema, Json::String(schema));
  o.Set("column_name", Json::String(column));
  o.Set("column_type", Json::String(column_type));
  o.Set("identity", Json::Bool(identity));
  o.Set("method", Json::String(ToText(method)));
  o.Set("pk_name", Json::String(pk_name));
  if (partitioned) {
    o.Set("partitioned", Json::Bool(true));
    o.Set("pk_columns", Json::Strings(pk_columns));
  }
  return o;
}

// --- add_column ----------------------------------------------------------------------------------
AddColumnPlan AddColumnPlan::Load(const jobs::Job& job) {
  const Reader r(job);
  AddColumnPlan p;
  p.schema = r.String(kSchema);
  p.column = r.String("column_name");
  p.column_type = r.String("column_type");
  p.fill = r.String("fill");
  p.fill_sql = r.String("fill_sql");
  p.fill_row_sql = r.String("fill_row_sql");
  p.fill_runs_user_code = r.Bool("fill_runs_user_code");
  p.mode = r.Choice<FillMode>("mode", kFillModes);
  p.not_null = r.Bool("not_null");
  p.unique = r.Bool("unique");
  p.set_default = r.Bool("set_default");
  if (p.unique) p.unique_name = r.String("unique_name");
  if (r.Has("partitioned")) p.partitioned = r.Bool("partitioned");
  if (r.Has("method")) p.copy = r.String("method") == "copy";
  if (p.copy) p.key_column = r.String("key_column");
  return p;
}

Json AddColumnPlan::Save() const {
  Json o = Json::Object();
  o.Set(kSchema, Json::String(schema));
  o.Set("column_name", Json::String(column));
  o.Set("column_type", Json::String(column_type));
  o.Set("fill", Json::String(fill));
  o.Set("fill_sql", Json::String(fill_sql));
  o.Set("fill_row_sql", Json::String(fill_row_sql));
  o.Set("fill_runs_user_code", Json::Bool(fill_runs_user_code));
  o.Set("mode", Json::String(kFillModes[static_cast<int>(mode)]));
  o.Set("not_null", Json::Bool(not_null));
  o.Set("unique", Json::Bool(unique));
  o.Set("set_default", Json::Bool(set_default));
  if (unique) o.Set("unique_name", Json::String(unique_name));
  if (partitioned) o.Set("partitioned", Json::Bool(true));
  if (copy) {
    o.Set("method", Json::String("copy"));
    o.Set("key_column", Json::String(key_column));
  }
  return o;
}

// --- set_primary_key -----------------------------------------------------------------------------
SetPrimaryKeyPlan SetPrimaryKeyPlan::Load(const jobs::Job& job) {
  const Reader r(job);
  SetPrimaryKeyPlan p;
  p.schema = r.String(kSchema);
  p.columns = r.Strings("columns");
  p.nullable = r.Strings("nullable");
  p.old_pk = r.Choice<OldPk>("old_pk", kOldPks);
  if (r.Has("old_key")) {
    p.old = r.Read("old_key", [](const Json& v) {
      return Key{v.At("name").AsString(), v.At("columns").AsStrings()};
    });
  }
  if (r.Has("reuse_index")) p.reuse_index = r.String("reuse_index");
  if (r.Has("replaced_unique")) {
    p.replaced_unique = r.Read("replaced_unique", [](const Json& v) {
      return Key{v.At("name").AsString(), v.At("columns").AsStrings()};
    });
  }
  if (r.Has("partitioned")) p.partitioned = r.Bool("partitioned");
  if (p.partitioned) p.pk_name = r.String("pk_name");
  if (p.columns.empty()) Fail(sqlstate::kInternal, Fmt("pkonline: job %1% has no key columns", r.id()));
  return p;
}

Json SetPrimaryKeyPlan::Save() const {
  Json o = Json::Object();
  o.Set(kSchema, Json::String(schema));
  o.Set("columns", Json::Strings(columns));
  o.Set("nullable", Json::Strings(nullable));
  o.Set("old_pk", Json::String(ToText(old_pk)));
  if (old) {
    Json key = Json::Object();
    key.Set("name", Json::String(old->name));
    key.Set("columns", Json::Strings(old->columns));
    o.Set("old_key", std::move(key));
  }
  if (reuse_index) o.Set("reuse_index", Json::String(*reuse_index));
  if (replaced_unique) {
    Json key = Json::Object();
    key.Set("name", Json::String(replaced_unique->name));
    key.Set("columns", Json::Strings(replaced_unique->columns));
    o.Set("replaced_unique", std::move(key));
  }
  if (partitioned) {
    o.Set("partitioned", Json::Bool(true));
    o.Set("pk_name", Json::String(pk_name));
  }
  return o;
}

// --- convert_pk_to_bigint -------------------------------------------------------------------------
ConvertPkPlan ConvertPkPlan::Load(const jobs::Job& job) {
  const Reader r(job);
  ConvertPkPlan p;
  p.schema = r.String(kSchema);
  p.pk_name = r.String("pk_name");
  p.referencing = r.Bool("referencing");
  if (r.Has("method")) p.copy = r.String("method") == "copy";
  if (p.copy)
    p.copy_keys = r.Read("copy_keys", [](const Json& v) {
      std::vector<std::string> out;
      for (const auto& k : v.Items()) out.push_back(k.AsString());
      return out;
    });
  p.targets = r.Read("targets", [](const Json& v) {
    std::vector<Target> out;
    for (const auto& t : v.Items())
      out.push_back({static_cast<unsigned>(t.At("relid").AsInt()), t.At("table").AsString(),
                     t.At("column").AsString(), t.At("not_null").AsBool()});
    return out;
  });
  p.tables = r.Read(kTouchedTablesKey, [](const Json& v) {
    std::vector<unsigned> out;
    for (const auto& t : v.Items()) out.push_back(static_cast<unsigned>(t.AsInt()));
    return out;
  });
  if (p.targets.empty() || p.targets[0].relid != job.relid)
    Fail(sqlstate::kInternal, Fmt("pkonline: job %1%'s first target is not its table", job.id));
  return p;
}

Json ConvertPkPlan::Save() const {
  Json o = Json::Object();
  o.Set(kSchema, Json::String(schema));
  o.Set("pk_name", Json::String(pk_name));
  o.Set("referencing", Json::Bool(referencing));
  if (copy) {
    o.Set("method", Json::String("copy"));
    Json keys = Json::Array();
    for (const auto& k : copy_keys) keys.Push(Json::String(k));
    o.Set("copy_keys", std::move(keys));
  }
  Json list = Json::Array();
  for (const auto& t : targets) {
    Json item = Json::Object();
    item.Set("relid", Json::Number(t.relid));
    item.Set("table", Json::String(t.table));
    item.Set("column", Json::String(t.column));
    item.Set("not_null", Json::Bool(t.not_null));
    list.Push(std::move(item));
  }
  o.Set("targets", std::move(list));
  Json touched = Json::Array();
  for (unsigned relid : tables) touched.Push(Json::Number(relid));
  o.Set(kTouchedTablesKey, std::move(touched));
  return o;
}

Json SaveMovedForeignKeys(const std::vector<MovedForeignKey>& fks) {
  Json list = Json::Array();
  for (const auto& fk : fks) {
    Json o = Json::Object();
    o.Set("table", Json::String(fk.table));
    o.Set("name", Json::String(fk.name));
    list.Push(std::move(o));
  }
  return list;
}

std::vector<MovedForeignKey> LoadMovedForeignKeys(const jobs::Job& job, const Json& value) {
  std::vector<MovedForeignKey> out;
  if (value.is_null()) return out;
  try {
    for (const auto& item : value.Items())
      out.push_back({item.At("table").AsString(), item.At("name").AsString()});
  } catch (const Json::Error& e) {
    Fail(sqlstate::kInternal, Fmt("pkonline: job %1%'s option %2%: %3%", job.id, fact::kMovedFks, e.what()));
  }
  return out;
}

std::string QuotedList(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + pg::Ident(n);
  return out;
}

}  // namespace pkonline::ops
