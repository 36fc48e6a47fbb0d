// JSON text for event details and catalog queries that take a list of names.
#include "pkonline/text.hpp"

#include <cstdio>
#include <stdexcept>

namespace pkonline {

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (char ch : s) {
    switch (ch) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(ch) < 0x20) {
          char buf[8];
          snprintf(buf, sizeof buf, "\\u%04x", ch);
          out += buf;
        } else {
          out += ch;
        }
    }
  }
  return out + "\"";
}

std::string JsonArray(const std::vector<std::string>& items) {
  std::string out = "[";
  for (size_t i = 0; i < items.size(); i++) out += (i ? ", " : "") + JsonString(items[i]);
  return out + "]";
}

std::vector<std::string> ParseJsonArray(const std::string& json) {
  std::vector<std::string> out;
  size_t i = 0;
  auto skip = [&]() {
    while (i < json.size() && (json[i] == ' ' || json[i] == '\n' || json[i] == '\t' || json[i] == '\r')) i++;
  };
  auto expect = [&](char c) {
    skip();
    if (i >= json.size() || json[i] != c) throw std::invalid_argument("bad JSON array: " + json);
    i++;
  };
  expect('[');
  skip();
  if (i < json.size() && json[i] == ']') return out;
  for (;;) {
    expect('"');
    std::string s;
    while (i < json.size() && json[i] != '"') {
      char c = json[i++];
      if (c != '\\') {
        s += c;
        continue;
      }
      if (i >= json.size()) break;
      char e = json[i++];
      switch (e) {
        case 'n':
          s += '\n';
          break;
        case 't':
          s += '\t';
          break;
        case 'r':
          s += '\r';
          break;
        case 'b':
          s += '\b';
          break;
        case 'f':
          s += '\f';
          break;
        case 'u': {
          if (i + 4 > json.size()) throw std::invalid_argument("bad JSON escape: " + json);
          const unsigned code = std::stoul(json.substr(i, 4), nullptr, 16);
          i += 4;
          if (code >= 0x80) throw std::invalid_argument("unexpected JSON escape: " + json);
          s += static_cast<char>(code);
          break;
        }
        default:
          s += e;  // \" \\ \/
      }
    }
    expect('"');
    out.push_back(s);
    skip();
    if (i < json.size() && json[i] == ',') {
      i++;
      continue;
    }
    expect(']');
    return out;
  }
}

}  // namespace pkonline
