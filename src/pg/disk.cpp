// Free space of the file system under a relation's tablespace.
#include "pkonline/pg/disk.hpp"

#include <sys/statvfs.h>

#include <cerrno>
#include <cstring>

#include "pkonline/pg/bridge.hpp"

extern "C" {
#include "postgres.h"
#include "catalog/pg_tablespace_d.h"
#include "miscadmin.h"
#include "commands/tablespace.h"
#include "utils/lsyscache.h"
}

namespace pkonline::pg {

FreeSpace FreeSpaceFor(unsigned relid) {
  Oid space = Call([&]() { return get_rel_tablespace(relid); });
  if (space == InvalidOid) space = Call([]() { return MyDatabaseTableSpace; });
  FreeSpace out;
  char* name = Call([&]() { return get_tablespace_name(space); });
  out.tablespace = name != nullptr ? name : std::to_string(space);
  if (name != nullptr) pfree(name);
  const std::string data_dir = DataDir != nullptr ? DataDir : "";
  if (space == DEFAULTTABLESPACE_OID)
    out.directory = data_dir + "/base";
  else if (space == GLOBALTABLESPACE_OID)
    out.directory = data_dir + "/global";
  else
    out.directory = data_dir + "/pg_tblspc/" + std::to_string(space);
  struct statvfs fs {};
  if (statvfs(out.directory.c_str(), &fs) != 0) {
    out.unknown_why = std::string("statvfs of its directory failed: ") + strerror(errno);
    return out;
  }
  out.bytes = static_cast<uint64_t>(fs.f_bavail) * static_cast<uint64_t>(fs.f_frsize);
  return out;
}

}  // namespace pkonline::pg
