// Operation names (pkonline.jobs.operation) to their step lists.
#include "pkonline/ops/add_column.hpp"
#include "pkonline/ops/add_int_pk.hpp"
#include "pkonline/ops/convert_pk.hpp"
#include "pkonline/ops/set_primary_key.hpp"
#include "pkonline/pg/bridge.hpp"

namespace pkonline::ops {

std::unique_ptr<Operation> MakeOperation(const std::string& name) {
  if (name == "add_int_pk") return MakeAddIntPk();
  if (name == "add_column") return MakeAddColumn();
  if (name == "set_primary_key") return MakeSetPrimaryKey();
  if (name == "convert_pk_to_bigint") return MakeConvertPk();
  Fail(sqlstate::kFeatureNotSupported, "unknown pkonline operation \"" + name + "\"");
}

}  // namespace pkonline::ops
