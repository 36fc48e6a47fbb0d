// The unit tests' one assertion: prints "ok N - what" or "not ok N - what" and counts.
#pragma once

#include <cstdio>
#include <string>

namespace unit {

inline int passed = 0;
inline int failed = 0;

inline void Check(bool ok, const std::string& what) {
  std::printf("%s %d - %s\n", ok ? "ok" : "not ok", passed + failed + 1, what.c_str());
  (ok ? passed : failed)++;
}

void PlanTests();
void PacingTests();
void JobTests();
void WindowTests();

}  // namespace unit
