// The convert_pk_to_bigint operation's step list.
#pragma once

#include <memory>

#include "pkonline/ops/operation.hpp"

namespace pkonline::ops {
std::unique_ptr<Operation> MakeConvertPk();
}
