// What a job worker gets in bgw_extra (the job id travels in bgw_main_arg).
#pragma once

#include <cstdint>

namespace pkonline::worker {

struct WorkerExtra {
  uint32_t db;
  uint32_t run_as;  // the role the work runs as (the table's owner)
  uint32_t wait_xid;
  int32_t slot = -1;  // the worker slot reserved for it (worker/slots.hpp), -1 for the scan worker
  uint32_t slot_generation = 0;
};
static_assert(sizeof(WorkerExtra) <= 128, "bgw_extra holds 128 bytes");

}  // namespace pkonline::worker
