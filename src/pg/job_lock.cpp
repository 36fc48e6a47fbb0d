// The job's claim (see include/pkonline/pg/job_lock.hpp): LOCKTAG_USERLOCK, a lock tag that
// PostgreSQL keeps for extensions' own use and that no SQL function takes, in the user lock
// method, whose session locks survive the end (and the abort) of transactions.
#include "pkonline/pg/job_lock.hpp"

#include "pkonline/jobs/job.hpp"
#include "pkonline/pg/bridge.hpp"

extern "C" {
#include "postgres.h"
#include "miscadmin.h"
#include "storage/lock.h"
}

namespace pkonline::pg {

namespace {

constexpr uint16 kClaimSubid = 2;  // the job's claim (the SQL function _worker_alive reads it)

LOCKTAG Tag(int64_t job_id) {
  LOCKTAG tag;
  tag.locktag_field1 = MyDatabaseId;
  tag.locktag_field2 = static_cast<uint32>(jobs::kAdvisoryClass);
  tag.locktag_field3 = static_cast<uint32>(job_id);
  tag.locktag_field4 = kClaimSubid;
  tag.locktag_type = LOCKTAG_USERLOCK;
  tag.locktag_lockmethodid = USER_LOCKMETHOD;
  return tag;
}

}  // namespace

bool ClaimJob(int64_t job_id) {
  return Call([&]() {
    LOCKTAG tag = Tag(job_id);
    return LockAcquire(&tag, ExclusiveLock, true, true) != LOCKACQUIRE_NOT_AVAIL;
  });
}

bool HoldsJob(int64_t job_id) {
  return Call([&]() {
    LOCKTAG tag = Tag(job_id);
    return LockHeldByMe(&tag, ExclusiveLock);
  });
}

void ReleaseJob(int64_t job_id) {
  Call([&]() {
    LOCKTAG tag = Tag(job_id);
    if (LockHeldByMe(&tag, ExclusiveLock)) (void)LockRelease(&tag, ExclusiveLock, true);
  });
}

int JobHolderPidRaw(int64_t job_id) {
  const LOCKTAG want = Tag(job_id);
  LockData* data = GetLockStatusData();
  int pid = 0;
  for (int i = 0; i < data->nelements && pid == 0; i++) {
    const LockInstanceData& l = data->locks[i];
    if (l.holdMask != 0 && l.locktag.locktag_type == want.locktag_type &&
        l.locktag.locktag_field1 == want.locktag_field1 && l.locktag.locktag_field2 == want.locktag_field2 &&
        l.locktag.locktag_field3 == want.locktag_field3 && l.locktag.locktag_field4 == want.locktag_field4)
      pid = l.pid;
  }
  return pid;
}

int JobHolderPid(int64_t job_id) {
  return Call([&]() { return JobHolderPidRaw(job_id); });
}

}  // namespace pkonline::pg
