// The file system under a relation: how much room is left for a job's new storage.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace pkonline::pg {

struct FreeSpace {
  std::string directory;          // the tablespace's directory
  std::string tablespace;         // its name
  std::optional<uint64_t> bytes;  // free for this server's OS user; nullopt when unknown
  std::string unknown_why;        // why, when unknown
};

// statvfs() of the directory of the tablespace relation `relid` is in (pg_default: base/ of the
// data directory; others: pg_tblspc/<oid>, followed).
FreeSpace FreeSpaceFor(unsigned relid);

}  // namespace pkonline::pg
