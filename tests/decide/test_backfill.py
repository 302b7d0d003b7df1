"""Backfill range checks (the replay itself runs end to end in tests/flows/test_ops_flows.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from aftersale.decide.backfill import check_range

START = datetime(2026, 11, 20, tzinfo=UTC)


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        (START, START, "must be before end"),
        (START + timedelta(days=1), START, "must be before end"),
        (START, START + timedelta(days=93), "at most 92 days"),
        (START.replace(tzinfo=None), START + timedelta(days=1), "need a UTC offset"),
    ],
)
def test_a_bad_range_is_refused_with_the_reason(
    start: datetime, end: datetime, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        check_range(start, end)


def test_a_good_range_passes() -> None:
    check_range(START, START + timedelta(days=92))
