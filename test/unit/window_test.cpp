// Unit tests of run windows (include/pkonline/jobs/window.hpp).
#include <stdexcept>
#include <string>

#include "check.hpp"
#include "pkonline/jobs/window.hpp"

using pkonline::jobs::RunWindow;
using unit::Check;

namespace {

int At(int h, int m, int s = 0) { return h * 3600 + m * 60 + s; }

bool Refused(const std::string& text, const std::string& says) {
  try {
    RunWindow::Parse(text);
  } catch (const std::invalid_argument& e) {
    return std::string(e.what()).find(says) != std::string::npos;
  }
  return false;
}

}  // namespace

void unit::WindowTests() {
  const RunWindow always = RunWindow::Parse("  ");
  Check(always.always() && always.Inside(At(13, 0)) && always.SecondsLeft(0) == RunWindow::kDay,
        "window: empty means always");

  const RunWindow night = RunWindow::Parse("01:00-05:00");
  Check(!night.Inside(At(0, 59, 59)) && night.Inside(At(1, 0)) && night.Inside(At(4, 59, 59)) &&
            !night.Inside(At(5, 0)),
        "window: 01:00-05:00 holds from 01:00 up to, not including, 05:00");
  Check(night.SecondsLeft(At(4, 58)) == 120 && night.SecondsUntilOpen(At(23, 0)) == At(2, 0) &&
            night.SecondsUntilOpen(At(5, 0)) == At(20, 0) && night.SpanLength(At(2, 0)) == At(4, 0),
        "window: seconds left, seconds until it opens (across midnight), span length");

  const RunWindow wrap = RunWindow::Parse("22:00-04:00");
  Check(wrap.Inside(At(23, 30)) && wrap.Inside(At(0, 0)) && wrap.Inside(At(3, 59)) &&
            !wrap.Inside(At(4, 0)) && !wrap.Inside(At(12, 0)) && wrap.SecondsLeft(At(23, 0)) == At(5, 0),
        "window: a span past midnight (22:00-04:00)");

  const RunWindow two = RunWindow::Parse("01:00-02:00, 13:30:15-14:00");
  Check(two.Inside(At(13, 30, 15)) && !two.Inside(At(13, 30, 14)) &&
            two.SecondsUntilOpen(At(2, 0)) == At(11, 30, 15),
        "window: several spans, to the second");
  Check(RunWindow::Parse("20:00-24:00").Inside(At(23, 59, 59)) && !RunWindow::Parse("20:00-24:00").Inside(0),
        "window: 24:00 ends a span at midnight");

  Check(RunWindow::Parse("00:00-24:00").always(), "window: 00:00-24:00 is the whole day");
  const RunWindow touching = RunWindow::Parse("22:00-00:00, 00:00-02:00");
  Check(touching.SecondsLeft(At(23, 58)) == At(2, 2) && touching.SecondsLeft(At(1, 0)) == At(1, 0),
        "window: spans that touch make one (seconds left run to the end of the last)");
  Check(Refused("01:00-01:00:59", "shorter than a minute") && !Refused("01:00-01:01", "shorter"),
        "window: a span shorter than a minute is refused");
  Check(Refused("1-5", "not a time of day") && Refused("01:00", "not a span") &&
            Refused("25:00-01:00", "not a time of day") && Refused("01:60-02:00", "not a time of day") &&
            Refused("03:00-03:00", "is empty") && Refused("01:00-02:00,", "not a span") &&
            Refused("01:00-02:00x", "not a time of day") && Refused("24:01-01:00", "not a time of day"),
        "window: malformed spans are refused, saying why");
}
