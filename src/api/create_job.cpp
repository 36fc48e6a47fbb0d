// Creating a job: its row, options and step list, the NOTICE that announces it, its worker.
#include <vector>

#include "pkonline/api/api.hpp"
#include "pkonline/api/create_job.hpp"
#include "pkonline/guc.hpp"
#include "pkonline/jobs/store.hpp"
#include "pkonline/ops/operation.hpp"
#include "pkonline/pg/bridge.hpp"
#include "pkonline/pg/spi.hpp"
#include "pkonline/pg/txn.hpp"
#include "pkonline/text.hpp"
#include "pkonline/worker/start.hpp"

extern "C" {
#include "postgres.h"
#include "access/xact.h"
#include "miscadmin.h"
}

namespace pkonline::api {

using jobs::Job;
using jobs::JobState;
namespace store = jobs::store;

int64_t CreateJob(const TableInfo& t, const std::string& operation, const Json& plan, bool start) {
  Json options = plan;
  guc::CurrentJobSettings().SaveTo(options);
  int64_t id = 0;
  const unsigned owner = GetUserId();
  id = store::Create(t.relid, t.qualified, operation, options, owner, t.owner,
                     start ? JobState::kQueued : JobState::kCreated);
  Job job = store::Load(id);
  std::vector<store::StepPlan> steps;
  for (const auto& s : ops::MakeOperation(operation)->Steps(job)) steps.push_back({s.name, s.action, s.lock});
  store::SavePlan(id, steps);
  store::Event(id, "created", "", operation + " on " + t.qualified + " created");
  return id;
}

void StartOrQueue(int64_t job_id) {
  Job job = store::Load(job_id);
  worker::Target target;
  target.db = MyDatabaseId;
  target.run_as = job.run_as;
  target.wait_xid = Call([]() { return GetTopTransactionId(); });
  bool started = false;
  pg::AsRole(store::ExtensionOwner(), [&]() { started = worker::StartJob(job_id, target); });
  if (!started)
    Notice("pkonline job " + std::to_string(job_id) + " is queued: pkonline.max_workers jobs are running",
           "It starts when one of them ends, or with pkonline.run_pending().");
}

void Announce(int64_t job_id, const std::string& what, bool start) {
  Notice(Fmt("pkonline job %1%: %2%%3%", job_id, what,
             start ? std::string() : Fmt(" (not started: run pkonline.start(%1%))", job_id)),
         Fmt("Follow it with SELECT * FROM pkonline.status, or CALL pkonline.wait(%1%).", job_id));
  if (!start) return;
  pg::SpiScope spi;
  StartOrQueue(job_id);
  spi.Close();
}

}  // namespace pkonline::api
