"""The adaptive poll schedule: interval by status, back-off, terminal, expiry, settings."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from aftersale.errors import ConfigError
from aftersale.models import ShipmentState, Status
from aftersale.tracking.schedule import (
    PollSchedule,
    apply_failure,
    parse_duration,
    schedule_after_poll,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
SCHEDULE = PollSchedule()


def state(status: Status, quiet: timedelta = timedelta(hours=1), **kw) -> ShipmentState:
    return ShipmentState(
        "s1", "o1", "dhl", "3318810014", status,
        last_event_at=NOW - quiet, created_at=NOW - quiet - timedelta(hours=1), **kw,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("status", "wait"),
    [
        (Status.OUT_FOR_DELIVERY, timedelta(minutes=30)),
        (Status.IN_TRANSIT, timedelta(hours=2)),
        (Status.LABEL_CREATED, timedelta(hours=6)),
        (Status.PENDING, timedelta(hours=1)),
        (Status.AVAILABLE_FOR_PICKUP, timedelta(hours=3)),
        (Status.EXCEPTION, timedelta(hours=4)),
    ],
)
def test_interval_follows_the_status(status: Status, wait: timedelta) -> None:
    assert SCHEDULE.next_check(state(status), NOW) == NOW + wait


@pytest.mark.parametrize(
    "status", [Status.DELIVERED, Status.RETURNED_TO_SENDER, Status.CANCELLED, Status.EXPIRED]
)
def test_terminal_shipments_are_never_due_again(status: Status) -> None:
    assert SCHEDULE.next_check(state(status), NOW) is None
    assert schedule_after_poll(state(status), NOW, SCHEDULE).next_check_at is None


@pytest.mark.parametrize(
    ("quiet", "wait"),
    [
        (timedelta(days=1), timedelta(hours=2)),  # moving: the plain interval
        (timedelta(days=2, hours=1), timedelta(hours=4)),  # one quiet period: doubled
        (timedelta(days=5), timedelta(hours=8)),  # two periods
        (timedelta(days=12), timedelta(hours=24)),  # capped at max_interval
    ],
)
def test_no_movement_backs_off(quiet: timedelta, wait: timedelta) -> None:
    assert SCHEDULE.next_check(state(Status.IN_TRANSIT, quiet), NOW) == NOW + wait


def test_without_events_the_creation_time_counts() -> None:
    fresh = ShipmentState(
        "s1", "o1", "ups", "1Z", Status.PENDING, created_at=NOW - timedelta(days=3)
    )
    assert SCHEDULE.next_check(fresh, NOW) == NOW + timedelta(hours=2)


def test_thirty_days_of_silence_expires_the_shipment() -> None:
    old = schedule_after_poll(
        state(Status.IN_TRANSIT, timedelta(days=30, minutes=1)), NOW, SCHEDULE
    )
    assert old.status is Status.EXPIRED
    assert old.status_since == NOW and old.next_check_at is None

    recent = schedule_after_poll(state(Status.IN_TRANSIT, timedelta(days=29)), NOW, SCHEDULE)
    assert recent.status is Status.IN_TRANSIT and recent.next_check_at == NOW + timedelta(hours=24)


def test_a_delivered_parcel_never_expires() -> None:
    done = schedule_after_poll(state(Status.DELIVERED, timedelta(days=90)), NOW, SCHEDULE)
    assert done.status is Status.DELIVERED


def test_failures_retry_sooner_then_back_off_and_can_expire() -> None:
    base = state(Status.IN_TRANSIT)
    waits = [
        apply_failure(base, "dhl: HTTP 503", n, NOW, SCHEDULE).next_check_at - NOW
        for n in (1, 2, 3, 20)
    ]
    assert waits == [
        timedelta(minutes=15),
        timedelta(minutes=30),
        timedelta(hours=1),
        timedelta(hours=24),
    ]
    failed = apply_failure(base, "dhl: HTTP 503", 1, NOW, SCHEDULE)
    assert failed.problem == "dhl: HTTP 503" and failed.last_polled_at == NOW

    silent = apply_failure(
        state(Status.IN_TRANSIT, timedelta(days=31)), "timed out", 4, NOW, SCHEDULE
    )
    assert silent.status is Status.EXPIRED and silent.next_check_at is None


def test_settings_override_intervals_from_the_environment() -> None:
    schedule = PollSchedule.from_env(
        {
            "AFTERSALE_POLL_EVERY_OUT_FOR_DELIVERY": "15m",
            "AFTERSALE_POLL_EVERY_IN_TRANSIT": "1h30m",
            "AFTERSALE_POLL_EXPIRE_AFTER": "45d",
            "AFTERSALE_POLL_MAX_INTERVAL": "12h",
            "UNRELATED": "x",
        }
    )
    assert schedule.next_check(state(Status.OUT_FOR_DELIVERY), NOW) == NOW + timedelta(minutes=15)
    assert schedule.next_check(state(Status.IN_TRANSIT), NOW) == NOW + timedelta(minutes=90)
    assert schedule.next_check(state(Status.LABEL_CREATED), NOW) == NOW + timedelta(hours=6)
    assert schedule.expire_after == timedelta(days=45) and schedule.max_interval == timedelta(
        hours=12
    )
    assert PollSchedule.from_env({}) == PollSchedule()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"AFTERSALE_POLL_EVERY_IN_TRANSIT": "2 hours"},
            "AFTERSALE_POLL_EVERY_IN_TRANSIT: '2 hours' is not a duration like 30m, 2h, 1d "
            "or 1h30m",
        ),
        (
            {"AFTERSALE_POLL_EVERY_DELIVERED": "1h"},
            "AFTERSALE_POLL_EVERY_DELIVERED: no such polled status (one of PENDING, "
            "LABEL_CREATED, IN_TRANSIT, OUT_FOR_DELIVERY, AVAILABLE_FOR_PICKUP, "
            "DELIVERY_ATTEMPTED, EXCEPTION, UNKNOWN)",
        ),
        (
            {"AFTERSALE_POLL_EXPIRE_AFTER": "0m"},
            "AFTERSALE_POLL_EXPIRE_AFTER: '0m': a poll interval must be longer than zero",
        ),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        PollSchedule.from_env(env)
    assert str(caught.value) == message


def test_parse_duration() -> None:
    assert parse_duration("90s") == timedelta(seconds=90)
    assert parse_duration("1d2h") == timedelta(days=1, hours=2)
    for bad in ("", "h", "5", "-1h", "1w"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_custom_intervals_without_unknown_still_work() -> None:
    schedule = PollSchedule(intervals={Status.IN_TRANSIT: timedelta(hours=1)})
    assert schedule.next_check(state(Status.LABEL_CREATED), NOW) == NOW + timedelta(hours=6)
    assert schedule.next_check(replace(state(Status.IN_TRANSIT)), NOW) == NOW + timedelta(hours=1)
