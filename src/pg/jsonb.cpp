// jsonb text into a Json value (see include/pkonline/pg/jsonb.hpp).
#include "pkonline/pg/jsonb.hpp"

#include <vector>

#include "pkonline/pg/bridge.hpp"

extern "C" {
#include "postgres.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
}

namespace pkonline::pg {

namespace {

// One token of the walk, copied out of PostgreSQL's memory.
struct Token {
  JsonbIteratorToken kind;
  Json scalar;      // WJB_KEY (a string), WJB_VALUE, WJB_ELEM
  bool raw_scalar;  // WJB_BEGIN_ARRAY of a top-level scalar
};

Json Scalar(const JsonbValue& v) {
  switch (v.type) {
    case jbvNull:
      return Json();
    case jbvBool:
      return Json::Bool(v.val.boolean);
    case jbvString:
      return Json::String(std::string(v.val.string.val, v.val.string.len));
    case jbvNumeric: {
      char* digits = Call([&]() {
        return DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v.val.numeric)));
      });
      std::string text(digits);
      Call([&]() { pfree(digits); });
      return Json::NumberText(text);
    }
    default:
      Fail(sqlstate::kInternal, "pkonline: unexpected jsonb value");
  }
}

// The tokens of `text`'s jsonb, in order.
std::vector<Token> Tokens(const std::string& text) {
  Jsonb* jb =
      Call([&]() { return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(text.c_str()))); });
  std::vector<Token> out;
  JsonbIterator* it = Call([&]() { return JsonbIteratorInit(&jb->root); });
  for (;;) {
    JsonbValue v;
    const JsonbIteratorToken kind = Call([&]() { return JsonbIteratorNext(&it, &v, false); });
    if (kind == WJB_DONE) break;
    Token t{kind, Json(), false};
    if (kind == WJB_KEY || kind == WJB_VALUE || kind == WJB_ELEM) t.scalar = Scalar(v);
    if (kind == WJB_BEGIN_ARRAY) t.raw_scalar = v.val.array.rawScalar;
    out.push_back(std::move(t));
  }
  return out;
}

// Builds the value starting at tokens[i], leaving i past it.
Json Build(const std::vector<Token>& tokens, size_t& i) {
  const Token& t = tokens.at(i++);
  if (t.kind == WJB_BEGIN_ARRAY) {
    Json array = Json::Array();
    while (tokens.at(i).kind != WJB_END_ARRAY) array.Push(Build(tokens, i));
    i++;
    if (t.raw_scalar) return array.Items().at(0);
    return array;
  }
  if (t.kind == WJB_BEGIN_OBJECT) {
    Json object = Json::Object();
    while (tokens.at(i).kind != WJB_END_OBJECT) {
      const std::string key = tokens.at(i++).scalar.AsString();
      object.Set(key, Build(tokens, i));
    }
    i++;
    return object;
  }
  return t.scalar;  // WJB_ELEM, WJB_VALUE
}

}  // namespace

Json ReadJsonb(const std::string& text) {
  const std::vector<Token> tokens = Tokens(text);
  size_t i = 0;
  return Build(tokens, i);
}

}  // namespace pkonline::pg
