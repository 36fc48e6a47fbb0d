// Argument checks shared by the operations' API functions: each failure is a clear ERROR with a
// SQLSTATE and a hint, raised before anything is written.
#pragma once

#include <string>

namespace pkonline::api {

struct TableInfo {
  unsigned relid = 0;
  std::string schema, name, qualified;  // qualified: quoted schema.name
  unsigned nsp_oid = 0;
  double reltuples = 0;
};

void RequirePrimary();
// A plain, permanent, user table the caller owns (or is a member of the owning role), in a schema
// where the caller may create the job's helper objects.
TableInfo RequireOwnedPlainTable(unsigned relid);
void RequireNoPrimaryKey(const TableInfo& t);
void RequireColumnFree(const TableInfo& t, const std::string& column);
void RequireNoActiveJob(const TableInfo& t);

}  // namespace pkonline::api
