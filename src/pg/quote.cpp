// Identifier and literal quoting through PostgreSQL's own quoting rules.
#include "pkonline/pg/quote.hpp"

#include "pkonline/pg/bridge.hpp"

extern "C" {
#include "postgres.h"
#include "common/md5.h"
#include "utils/resowner.h"
#include "utils/builtins.h"
}

namespace pkonline::pg {

std::string Ident(const std::string& name) {
  const char* in = name.c_str();
  const char* out = Call([&]() { return quote_identifier(in); });
  std::string result(out);
  if (out != in)
    pfree(const_cast<char*>(out));  // quote_identifier returns its input when no quotes are needed
  return result;
}

std::string Qualified(const std::string& schema, const std::string& name) {
  return Ident(schema) + "." + Ident(name);
}

std::string Literal(const std::string& text) {
  const char* in = text.c_str();
  char* out = Call([&]() { return quote_literal_cstr(in); });
  std::string result(out);
  pfree(out);
  return result;
}

std::string KeyedTag(const std::string& key, const std::string& what) {
  const std::string text = key + "/" + what;
  char hex[33];
  const char* err = nullptr;
  const bool ok = Call([&]() {
    // The hash registers with the current resource owner (OpenSSL builds): outside a transaction
    // (a worker planning its steps) it has none, so one is lent for the call.
    ResourceOwner saved = CurrentResourceOwner;
    ResourceOwner lent = saved == nullptr ? ResourceOwnerCreate(nullptr, "pkonline helper name") : nullptr;
    if (lent != nullptr) CurrentResourceOwner = lent;
    const bool hashed = pg_md5_hash(text.data(), text.size(), hex, &err);
    if (lent != nullptr) {
      CurrentResourceOwner = saved;
      ResourceOwnerRelease(lent, RESOURCE_RELEASE_BEFORE_LOCKS, false, true);
      ResourceOwnerRelease(lent, RESOURCE_RELEASE_LOCKS, false, true);
      ResourceOwnerRelease(lent, RESOURCE_RELEASE_AFTER_LOCKS, false, true);
      ResourceOwnerDelete(lent);
    }
    return hashed;
  });
  if (!ok) Fail(sqlstate::kInternal, std::string("pkonline: md5 failed: ") + (err ? err : "?"));
  return std::string(hex, 8);
}

}  // namespace pkonline::pg
