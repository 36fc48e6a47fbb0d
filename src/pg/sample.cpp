// Timed sample reads of a table's heap (see sample.hpp).
#include "pkonline/pg/sample.hpp"

#include "pkonline/pg/bridge.hpp"

extern "C" {
#include "postgres.h"
#include "access/relation.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "storage/bufpage.h"
#include "utils/rel.h"
}

namespace pkonline::pg {

int64_t ReadHeapBlocks(unsigned relid, int64_t start, int64_t count) {
  int64_t tuples = 0;
  Call([&]() {
    Relation rel = relation_open(relid, AccessShareLock);
    if (rel->rd_rel->relkind != RELKIND_RELATION) elog(ERROR, "pkonline: %u is not a table", relid);
    const BlockNumber blocks = RelationGetNumberOfBlocks(rel);
    BufferAccessStrategy strategy = GetAccessStrategy(BAS_BULKREAD);
    for (int64_t b = start; b < start + count && b < static_cast<int64_t>(blocks); b++) {
      CHECK_FOR_INTERRUPTS();
      Buffer buf = ReadBufferExtended(rel, MAIN_FORKNUM, static_cast<BlockNumber>(b), RBM_NORMAL, strategy);
      LockBuffer(buf, BUFFER_LOCK_SHARE);
      Page page = BufferGetPage(buf);
      if (!PageIsNew(page)) {
        const OffsetNumber max = PageGetMaxOffsetNumber(page);
        for (OffsetNumber off = FirstOffsetNumber; off <= max; off++)
          if (ItemIdIsNormal(PageGetItemId(page, off))) tuples++;
      }
      UnlockReleaseBuffer(buf);
    }
    FreeAccessStrategy(strategy);
    relation_close(rel, NoLock);
  });
  return tuples;
}

}  // namespace pkonline::pg
