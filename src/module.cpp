// The module: magic block, _PG_init (settings; the launcher when preloaded).
#include "pkonline/guc.hpp"
#include "pkonline/pg/bridge.hpp"
#include "pkonline/worker/slots.hpp"

extern "C" {
#include "postgres.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"

PG_MODULE_MAGIC;

PGDLLEXPORT void _PG_init(void);

void _PG_init(void) {
  pkonline::Entry([]() { pkonline::guc::Define(); });
  if (!process_shared_preload_libraries_in_progress) return;
  pkonline::worker::slots::InstallHooks();
  BackgroundWorker w;
  memset(&w, 0, sizeof w);
  w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
  w.bgw_start_time = BgWorkerStart_RecoveryFinished;
  w.bgw_restart_time = 10;
  snprintf(w.bgw_library_name, BGW_MAXLEN, "pkonline");
  snprintf(w.bgw_function_name, BGW_MAXLEN, "pkonline_launcher_main");
  snprintf(w.bgw_name, BGW_MAXLEN, "pkonline launcher");
  snprintf(w.bgw_type, BGW_MAXLEN, "pkonline launcher");
  RegisterBackgroundWorker(&w);
}

}  // extern "C"
