// pkonline.add_int_pk(): checks, then a queued job row with its plan, then (optionally) a worker.
#include "pkonline/api/api.hpp"
#include "pkonline/api/checks.hpp"
#include "pkonline/api/jobs_api.hpp"
#include "pkonline/guc.hpp"
#include "pkonline/jobs/store.hpp"
#include "pkonline/ops/operation.hpp"
#include "pkonline/pg/bridge.hpp"
#include "pkonline/text.hpp"
#include "pkonline/pg/catalog.hpp"
#include "pkonline/pg/spi.hpp"

extern "C" {
#include "postgres.h"
#include "catalog/pg_type.h"
}

namespace pkonline::api {

namespace {

struct IntType {
  const char* name;
  double max;
};

IntType RequireIntType(unsigned type) {
  switch (type) {
    case INT2OID: return {"smallint", 32767.0};
    case INT4OID: return {"integer", 2147483647.0};
    case INT8OID: return {"bigint", 9.2e18};
    default:
      Fail(sqlstate::kInvalidParameter, "column_type must be smallint, integer or bigint", "",
           "The default, bigint, never runs out.");
  }
}

}  // namespace

int64_t AddIntPk(const AddIntPkArgs& a) {
  pg::SpiScope spi;
  RequirePrimary();
  const IntType type = RequireIntType(a.column_type);
  TableInfo t = RequireOwnedPlainTable(a.relid);
  RequireNoPrimaryKey(t);
  RequireColumnFree(t, a.column_name);
  if (t.reltuples >= type.max)
    Fail(sqlstate::kNumericOutOfRange,
         Fmt("table %1% has about %2% rows, more than column_type %3% can number", t.qualified,
             static_cast<int64_t>(t.reltuples), type.name),
         "", "Use column_type => 'bigint'.");
  RequireNoActiveJob(t);

  auto options = guc::JobSettings();
  options["column_name"] = a.column_name;
  options["column_type"] = type.name;
  options["identity"] = a.identity ? "true" : "false";
  options["schema"] = t.schema;
  options["pk_name"] = pg::ChooseName(t.name, "", "pkey", t.nsp_oid, true);

  const int64_t id = CreateJob(t, "add_int_pk", options, a.start);
  spi.Close();
  Announce(id, Fmt("add_int_pk on %1%, column %2% %3%, primary key %4%", t.qualified, a.column_name, type.name,
                    options["pk_name"]),
           a.start);
  return id;
}

}  // namespace pkonline::api
