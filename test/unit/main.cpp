// pkonline's unit tests, without a server: built and run by test/run.sh, which counts the last
// line, "unit: N passed, M failed".
#include <cstdio>

#include "check.hpp"

int main() {
  unit::PlanTests();
  unit::PacingTests();
  unit::JobTests();
  unit::WindowTests();
  std::printf("unit: %d passed, %d failed\n", unit::passed, unit::failed);
  return unit::failed == 0 ? 0 : 1;
}
