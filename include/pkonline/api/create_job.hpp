// Creating a job (src/api/create_job.cpp): its row with the plan, the NOTICE, its worker.
#pragma once

#include <cstdint>
#include <string>

#include "pkonline/api/checks.hpp"
#include "pkonline/json.hpp"

namespace pkonline::api {

// A job in state 'queued' (start) or 'created' (waits for pkonline.start). Its options: the
// operation's plan (`plan`, an ops/plans.hpp Save()) and this session's pkonline.* settings.
int64_t CreateJob(const TableInfo& t, const std::string& operation, const Json& plan, bool start);
// Starts the job's worker (after this transaction ends) or leaves it queued at max_workers.
void StartOrQueue(int64_t job_id);
// After CreateJob (SPI closed): a NOTICE "pkonline job N: <what>" with how to follow it, then,
// with `start`, the worker (else the NOTICE says how to start it).
void Announce(int64_t job_id, const std::string& what, bool start);

}  // namespace pkonline::api
