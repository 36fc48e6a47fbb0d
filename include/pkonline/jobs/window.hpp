// Run windows: the times of day a job may work (pkonline.run_window), in the server's time zone.
// Plain C++: unit-tested without a server.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace pkonline::jobs {

class RunWindow {
 public:
  static constexpr int kDay = 24 * 3600;
  static constexpr int kMinSpan = 60;  // seconds: a span may not be shorter

  // "" (always), or spans "HH:MM[:SS]-HH:MM[:SS]" of a minute or more, separated by commas, e.g.
  // "01:00-05:00" or "22:00-04:00" (past midnight); "00:00-24:00" is always. Throws
  // std::invalid_argument saying what is wrong.
  static RunWindow Parse(const std::string& text);

  bool always() const { return spans_.empty(); }
  // `now`: seconds since midnight. Inside a span?
  bool Inside(int now) const;
  // Inside: seconds until the span ends (kDay when always). Outside: 0.
  int SecondsLeft(int now) const;
  // Outside: seconds until the next span opens. Inside: 0.
  int SecondsUntilOpen(int now) const;
  // The length of the span `now` is in (kDay when always; 0 outside).
  int SpanLength(int now) const;

 private:
  std::vector<std::pair<int, int>> spans_;  // [start, end) seconds since midnight; end < start wraps
};

}  // namespace pkonline::jobs
