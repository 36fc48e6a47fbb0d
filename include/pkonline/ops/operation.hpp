// The operations: each a plan of steps (jobs/step.hpp) built from the job's options.
#pragma once

#include <memory>
#include <string>

#include "pkonline/jobs/step.hpp"

namespace pkonline::ops {

using jobs::Context;
using jobs::Operation;
using jobs::PointOfNoReturn;
using jobs::Step;
using jobs::StopRequested;

// The operation named in pkonline.jobs.operation.
std::unique_ptr<Operation> MakeOperation(const std::string& name);

}  // namespace pkonline::ops
