// WAL this process has written.
#pragma once

#include <cstdint>

namespace pkonline::pg {

// WAL bytes this process has written since it started (pgWalUsage).
uint64_t WalBytes();

}  // namespace pkonline::pg
