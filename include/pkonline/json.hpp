// A JSON value, as kept in a job's options (pkonline.jobs.options, jsonb): what the plans of the
// operations and the job's settings load from and save to. Plain C++ (unit-tested): PostgreSQL's
// jsonb API reads a stored value into it (pg/jsonb.hpp); ToText() writes one for a ::jsonb cast.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace pkonline {

class Json {
 public:
  enum class Kind { kNull, kBool, kNumber, kString, kArray, kObject };

  Json() = default;  // null
  static Json Bool(bool v);
  static Json Number(int64_t v);
  static Json NumberText(std::string digits);  // a number as jsonb prints it
  static Json String(std::string v);
  static Json Array(std::vector<Json> items = {});
  static Json Strings(const std::vector<std::string>& items);  // an array of strings
  static Json Object();

  Kind kind() const { return kind_; }
  bool is_null() const { return kind_ == Kind::kNull; }

  // Reads; each throws Json::Error when the value is not of that kind.
  bool AsBool() const;
  int64_t AsInt() const;
  const std::string& AsString() const;
  const std::vector<Json>& Items() const;
  std::vector<std::string> AsStrings() const;  // an array of strings

  // Objects. Set replaces a key's value (or adds the key); Find gives nullptr for a key not there;
  // At throws Json::Error naming the key.
  Json& Set(const std::string& key, Json value);
  const Json* Find(const std::string& key) const;
  const Json& At(const std::string& key) const;
  const std::vector<std::pair<std::string, Json>>& Fields() const;
  // Arrays.
  Json& Push(Json value);

  // JSON text (for a ::jsonb parameter, an event's detail).
  std::string ToText() const;

  bool operator==(const Json& other) const;
  bool operator!=(const Json& other) const { return !(*this == other); }

  struct Error : std::runtime_error {
    using std::runtime_error::runtime_error;
  };

 private:
  void Require(Kind kind, const char* what) const;
  Kind kind_ = Kind::kNull;
  bool bool_ = false;
  std::string text_;  // a string's value, or a number's digits
  std::vector<Json> items_;
  std::vector<std::pair<std::string, Json>> fields_;
};

// A JSON string literal ("..." with escapes).
std::string JsonString(const std::string& s);

}  // namespace pkonline
