"""Time windows: a send window is a daytime range, quiet hours may wrap midnight, and
neither may let a message out at night in the recipient's time zone."""

from __future__ import annotations

import pytest

from aftersale.decide.conditions import parse_window, window_problem


@pytest.mark.parametrize(
    ("text", "quiet", "expected"),
    [
        ("08:00-20:00", False, None),
        ("07:00-22:00", False, None),
        ("21:00-08:00", True, None),
        ("22:00-07:00", True, None),
        ("20:00-08:00", False,
         "send window '20:00-08:00' runs overnight: a send window is a daytime range, start "
         "before end (did you mean '08:00-20:00'?)"),
        ("08:00-21:00", True,
         "quiet hours '08:00-21:00' are daytime hours: messages would wait through the day and "
         "go out at night (22:00-07:00 in the recipient's time zone); quiet hours run from "
         "evening to morning (did you mean '21:00-08:00'?)"),
        ("23:00-06:00", True,
         "quiet hours '23:00-06:00' let messages out at night (22:00-23:00 and 06:00-07:00 in "
         "the recipient's time zone): keep sending within 07:00-22:00"),
        ("06:00-23:00", False,
         "send window '06:00-23:00' lets messages out at night (22:00-23:00 and 06:00-07:00 in "
         "the recipient's time zone): keep sending within 07:00-22:00"),
    ],
)  # fmt: skip
def test_window_problems(text: str, quiet: bool, expected: str | None) -> None:
    window = parse_window(text)
    assert window is not None
    assert window_problem(window, quiet=quiet) == expected
