// What the runner knows of a plan (see include/pkonline/jobs/step.hpp). Plain C++: unit-tested
// without a server (test/unit).
#include "pkonline/jobs/step.hpp"

#include <stdexcept>

namespace pkonline::jobs {

int PointOfNoReturn(const std::vector<Step>& steps) {
  for (size_t i = 0; i < steps.size(); i++)
    if (steps[i].final) return static_cast<int>(i) + 1;
  throw std::logic_error("pkonline: a plan without a final step");
}

}  // namespace pkonline::jobs
