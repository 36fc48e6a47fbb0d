// The C++ bodies of the SQL API. The extern "C" shims in sql_functions.cpp only unpack
// arguments and call these through the error bridge.
#pragma once

#include <cstdint>
#include <string>

namespace pkonline::api {

struct AddIntPkArgs {
  unsigned relid;
  std::string column_name;
  unsigned column_type;  // type OID
  bool identity;
  bool start;
};
int64_t AddIntPk(const AddIntPkArgs& args);

std::string Start(int64_t job_id);
std::string Pause(int64_t job_id);
std::string Resume(int64_t job_id);
std::string Cancel(int64_t job_id);
int RunPending();

}  // namespace pkonline::api
