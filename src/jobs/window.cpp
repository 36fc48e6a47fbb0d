// Run windows (see include/pkonline/jobs/window.hpp).
#include "pkonline/jobs/window.hpp"

#include <algorithm>
#include <cctype>
#include <stdexcept>

namespace pkonline::jobs {

namespace {

std::string Trim(const std::string& s) {
  const size_t a = s.find_first_not_of(" \t");
  if (a == std::string::npos) return "";
  return s.substr(a, s.find_last_not_of(" \t") - a + 1);
}

// "HH:MM" or "HH:MM:SS" into seconds since midnight ("24:00" is midnight at the end of the day).
int TimeOfDay(const std::string& text, const std::string& span) {
  int parts[3] = {0, 0, 0};
  int n = 0;
  size_t i = 0;
  while (i <= text.size() && n < 3) {
    size_t j = i;
    while (j < text.size() && std::isdigit(static_cast<unsigned char>(text[j]))) j++;
    if (j == i || j - i > 2) break;
    parts[n++] = std::stoi(text.substr(i, j - i));
    if (j == text.size()) {
      i = j + 1;
      break;
    }
    if (text[j] != ':') break;
    i = j + 1;
  }
  if (n < 2 || i != text.size() + 1 || parts[1] > 59 || parts[2] > 59 || parts[0] > 24 ||
      (parts[0] == 24 && (parts[1] != 0 || parts[2] != 0)))
    throw std::invalid_argument("\"" + text + "\" in \"" + span +
                                "\" is not a time of day HH:MM or HH:MM:SS");
  return parts[0] * 3600 + parts[1] * 60 + parts[2];
}

// Seconds from a to b going forward around the clock.
int Forward(int a, int b) { return ((b - a) % RunWindow::kDay + RunWindow::kDay) % RunWindow::kDay; }

}  // namespace

RunWindow RunWindow::Parse(const std::string& text) {
  RunWindow w;
  if (Trim(text).empty()) return w;
  size_t start = 0;
  for (;;) {
    const size_t comma = text.find(',', start);
    const std::string span =
        Trim(text.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    const size_t dash = span.find('-');
    if (span.empty() || dash == std::string::npos)
      throw std::invalid_argument("\"" + span + "\" is not a span HH:MM-HH:MM");
    const int from = TimeOfDay(Trim(span.substr(0, dash)), span) % kDay;
    const int end = TimeOfDay(Trim(span.substr(dash + 1)), span);
    if (from == 0 && end == kDay) return RunWindow();  // the whole day
    const int to = end % kDay;
    if (from == to) throw std::invalid_argument("\"" + span + "\" is empty: it starts where it ends");
    if (Forward(from, to) < kMinSpan)
      throw std::invalid_argument("\"" + span +
                                  "\" is shorter than a minute (the worker looks once a second)");
    w.spans_.emplace_back(from, to);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return w;
}

bool RunWindow::Inside(int now) const { return always() || SpanLength(now) > 0; }

int RunWindow::SpanLength(int now) const {
  if (always()) return kDay;
  for (const auto& [from, to] : spans_)
    if (Forward(from, now) < Forward(from, to)) return Forward(from, to);
  return 0;
}

int RunWindow::SecondsLeft(int now) const {
  if (always()) return kDay;
  // Spans that touch or overlap make one: follow them to the end of the last.
  int left = 0;
  for (bool grew = true; grew && left < kDay;) {
    grew = false;
    const int at = (now + left) % kDay;
    for (const auto& [from, to] : spans_)
      if (Forward(from, at) < Forward(from, to) && Forward(at, to) > 0) {
        left += Forward(at, to);
        grew = true;
        break;
      }
  }
  return std::min(left, static_cast<int>(kDay));
}

int RunWindow::SecondsUntilOpen(int now) const {
  if (Inside(now)) return 0;
  int best = kDay;
  for (const auto& [from, to] : spans_) best = std::min(best, Forward(now, from));
  return best;
}

}  // namespace pkonline::jobs
