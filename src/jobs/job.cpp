// A job's options (see include/pkonline/jobs/job.hpp). Plain C++: unit-tested without a server.
#include "pkonline/jobs/job.hpp"

#include "pkonline/pg/bridge.hpp"

namespace pkonline::jobs {

const std::string& Job::Opt(const std::string& key) const {
  auto it = options.find(key);
  if (it == options.end()) Fail(sqlstate::kInternal, "job " + std::to_string(id) + " has no option " + key);
  return it->second;
}
int64_t Job::OptInt(const std::string& key) const { return std::stoll(Opt(key)); }
bool Job::OptBool(const std::string& key) const { return Opt(key) == "true"; }

}  // namespace pkonline::jobs
