// Reading a few heap blocks of a table, to time them (pkonline.check's duration estimate): the
// pages are read through the buffer manager and their line pointers counted — no SQL, no plan,
// so no code of the table's owner (index predicates, policies) runs for the reader.
#pragma once

#include <cstdint>

namespace pkonline::pg {

// Reads blocks [start, start + count) of the main fork of table `relid` (clipped to its size),
// under ACCESS SHARE (kept to the end of the transaction); returns the row versions found in
// them (live or not).
int64_t ReadHeapBlocks(unsigned relid, int64_t start, int64_t count);

}  // namespace pkonline::pg
