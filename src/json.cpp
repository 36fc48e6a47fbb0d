// A JSON value (see include/pkonline/json.hpp). Plain C++: unit-tested without a server.
#include "pkonline/json.hpp"

#include <cstdio>

namespace pkonline {

Json Json::Bool(bool v) {
  Json j;
  j.kind_ = Kind::kBool;
  j.bool_ = v;
  return j;
}

Json Json::Number(int64_t v) { return NumberText(std::to_string(v)); }

Json Json::NumberText(std::string digits) {
  Json j;
  j.kind_ = Kind::kNumber;
  j.text_ = std::move(digits);
  return j;
}

Json Json::String(std::string v) {
  Json j;
  j.kind_ = Kind::kString;
  j.text_ = std::move(v);
  return j;
}

Json Json::Array(std::vector<Json> items) {
  Json j;
  j.kind_ = Kind::kArray;
  j.items_ = std::move(items);
  return j;
}

Json Json::Strings(const std::vector<std::string>& items) {
  Json j = Array();
  for (const auto& s : items) j.items_.push_back(String(s));
  return j;
}

Json Json::Object() {
  Json j;
  j.kind_ = Kind::kObject;
  return j;
}

namespace {
const char* KindName(Json::Kind kind) {
  switch (kind) {
    case Json::Kind::kNull:
      return "null";
    case Json::Kind::kBool:
      return "a boolean";
    case Json::Kind::kNumber:
      return "a number";
    case Json::Kind::kString:
      return "a string";
    case Json::Kind::kArray:
      return "an array";
    case Json::Kind::kObject:
      return "an object";
  }
  return "?";
}
}  // namespace

void Json::Require(Kind kind, const char* what) const {
  if (kind_ != kind) throw Error(std::string("expected ") + what + ", found " + KindName(kind_));
}

bool Json::AsBool() const {
  Require(Kind::kBool, "a boolean");
  return bool_;
}

int64_t Json::AsInt() const {
  Require(Kind::kNumber, "a number");
  size_t used = 0;
  int64_t v = 0;
  try {
    v = std::stoll(text_, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text_.size()) throw Error("expected an integer, found " + text_);
  return v;
}

const std::string& Json::AsString() const {
  Require(Kind::kString, "a string");
  return text_;
}

const std::vector<Json>& Json::Items() const {
  Require(Kind::kArray, "an array");
  return items_;
}

std::vector<std::string> Json::AsStrings() const {
  std::vector<std::string> out;
  for (const auto& item : Items()) out.push_back(item.AsString());
  return out;
}

Json& Json::Set(const std::string& key, Json value) {
  Require(Kind::kObject, "an object");
  for (auto& [k, v] : fields_)
    if (k == key) {
      v = std::move(value);
      return *this;
    }
  fields_.emplace_back(key, std::move(value));
  return *this;
}

const Json* Json::Find(const std::string& key) const {
  Require(Kind::kObject, "an object");
  for (const auto& [k, v] : fields_)
    if (k == key) return &v;
  return nullptr;
}

const Json& Json::At(const std::string& key) const {
  const Json* v = Find(key);
  if (!v) throw Error("no key \"" + key + "\"");
  return *v;
}

const std::vector<std::pair<std::string, Json>>& Json::Fields() const {
  Require(Kind::kObject, "an object");
  return fields_;
}

Json& Json::Push(Json value) {
  Require(Kind::kArray, "an array");
  items_.push_back(std::move(value));
  return *this;
}

std::string Json::ToText() const {
  switch (kind_) {
    case Kind::kNull:
      return "null";
    case Kind::kBool:
      return bool_ ? "true" : "false";
    case Kind::kNumber:
      return text_;
    case Kind::kString:
      return JsonString(text_);
    case Kind::kArray: {
      std::string out = "[";
      for (size_t i = 0; i < items_.size(); i++) out += (i ? ", " : "") + items_[i].ToText();
      return out + "]";
    }
    case Kind::kObject: {
      std::string out = "{";
      for (size_t i = 0; i < fields_.size(); i++)
        out += (i ? ", " : "") + JsonString(fields_[i].first) + ": " + fields_[i].second.ToText();
      return out + "}";
    }
  }
  return "null";
}

bool Json::operator==(const Json& other) const {
  if (kind_ != other.kind_) return false;
  switch (kind_) {
    case Kind::kNull:
      return true;
    case Kind::kBool:
      return bool_ == other.bool_;
    case Kind::kNumber:
    case Kind::kString:
      return text_ == other.text_;
    case Kind::kArray:
      return items_ == other.items_;
    case Kind::kObject:
      if (fields_.size() != other.fields_.size()) return false;
      for (const auto& [k, v] : fields_) {
        const Json* o = other.Find(k);
        if (!o || *o != v) return false;
      }
      return true;
  }
  return false;
}

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

}  // namespace pkonline
