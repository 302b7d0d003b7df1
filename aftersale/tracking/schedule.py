"""When to poll a shipment next, and when to give up on it (`expired`).

Pure: `now` is an argument. The poll interval follows the status (a parcel out for
delivery changes within the hour; a label can sit for a day) and doubles for every
`backoff_after` without a new scan, up to `max_interval`; terminal shipments are never
due again; a shipment with no news for `expire_after` (30 days) becomes `expired`.
Every interval is a setting: `PollSchedule.from_env` reads AFTERSALE_POLL_EVERY_<STATUS>
(e.g. AFTERSALE_POLL_EVERY_IN_TRANSIT=2h), AFTERSALE_POLL_BACKOFF_AFTER,
AFTERSALE_POLL_MAX_INTERVAL, AFTERSALE_POLL_EXPIRE_AFTER and AFTERSALE_POLL_RETRY_AFTER_FAILURE,
each a duration such as 90s, 30m, 2h, 1d or 1h30m.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from types import MappingProxyType

from aftersale.errors import ConfigError
from aftersale.models import TERMINAL_STATUSES, ShipmentState, Status

DEFAULT_INTERVALS: Mapping[Status, timedelta] = MappingProxyType(
    {
        Status.PENDING: timedelta(hours=1),  # the carrier may know it any minute
        Status.LABEL_CREATED: timedelta(hours=6),
        Status.IN_TRANSIT: timedelta(hours=2),
        Status.OUT_FOR_DELIVERY: timedelta(minutes=30),
        Status.AVAILABLE_FOR_PICKUP: timedelta(hours=3),
        Status.DELIVERY_ATTEMPTED: timedelta(hours=2),
        Status.EXCEPTION: timedelta(hours=4),  # many exceptions resolve: keep looking
        Status.UNKNOWN: timedelta(hours=6),
    }
)
_FALLBACK = timedelta(hours=6)
_MAX_DOUBLINGS = 8
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_duration(text: str) -> timedelta:
    """'90s', '30m', '2h', '1d', '1h30m' -> timedelta; ValueError on anything else."""
    match = _DURATION.match(text.strip().lower())
    if not text.strip() or match is None or not any(match.groups()):
        raise ValueError(f"{text!r} is not a duration like 30m, 2h, 1d or 1h30m")
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    value = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    if value <= timedelta(0):
        raise ValueError(f"{text!r}: a poll interval must be longer than zero")
    return value


@dataclass(frozen=True, slots=True)
class PollSchedule:
    intervals: Mapping[Status, timedelta] = field(default_factory=lambda: DEFAULT_INTERVALS)
    #: After this long without a new scan the interval doubles, once per such period.
    backoff_after: timedelta = timedelta(days=2)
    max_interval: timedelta = timedelta(hours=24)
    #: No news for this long: the shipment becomes `expired` and is never polled again.
    expire_after: timedelta = timedelta(days=30)
    #: After a failed poll (outage), try again after this long, doubling per failure.
    retry_after_failure: timedelta = timedelta(minutes=15)

    def interval(self, state: ShipmentState, now: datetime) -> timedelta:
        """The wait before the next check of a non-terminal shipment."""
        interval = self.intervals.get(state.status) or self.intervals.get(Status.UNKNOWN, _FALLBACK)
        quiet_since = state.last_event_at or state.created_at
        if quiet_since is not None and now - quiet_since > self.backoff_after:
            periods = int((now - quiet_since) / self.backoff_after)
            interval = interval * 2 ** min(periods, _MAX_DOUBLINGS)
        return min(interval, self.max_interval)

    def next_check(self, state: ShipmentState, now: datetime) -> datetime | None:
        if state.status in TERMINAL_STATUSES:
            return None
        return now + self.interval(state, now)

    def after_failure(self, failures: int, now: datetime) -> datetime:
        doublings = min(max(failures - 1, 0), _MAX_DOUBLINGS)
        return now + min(self.retry_after_failure * 2**doublings, self.max_interval)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> PollSchedule:
        """Defaults, overridden by AFTERSALE_POLL_* variables; ConfigError names the bad one."""
        env = os.environ if env is None else env
        intervals = dict(DEFAULT_INTERVALS)
        for status in intervals:
            name = f"AFTERSALE_POLL_EVERY_{status.value.upper()}"
            if env.get(name):
                intervals[status] = _duration(env, name)
        unknown = sorted(
            k for k in env
            if k.startswith("AFTERSALE_POLL_EVERY_")
            and k.removeprefix("AFTERSALE_POLL_EVERY_").lower() not in {s.value for s in intervals}
        )  # fmt: skip
        if unknown:
            polled = ", ".join(s.value.upper() for s in intervals)
            raise ConfigError(f"{unknown[0]}: no such polled status (one of {polled})")
        others = {
            field_name: _duration(env, f"AFTERSALE_POLL_{field_name.upper()}")
            for field_name in (
                "backoff_after",
                "max_interval",
                "expire_after",
                "retry_after_failure",
            )
            if env.get(f"AFTERSALE_POLL_{field_name.upper()}")
        }
        return cls(intervals=MappingProxyType(intervals), **others)


def _duration(env: Mapping[str, str], name: str) -> timedelta:
    try:
        return parse_duration(env[name])
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc}") from None


def schedule_after_poll(
    state: ShipmentState, now: datetime, schedule: PollSchedule
) -> ShipmentState:
    """Set the next check of a freshly polled state, expiring it after long silence."""
    return _maybe_expire(
        replace(state, next_check_at=schedule.next_check(state, now)), now, schedule
    )


def apply_failure(
    previous: ShipmentState, error: str, failures: int, now: datetime, schedule: PollSchedule
) -> ShipmentState:
    """A failed poll (outage, refused credentials, circuit open): retry soon, then back off."""
    state = replace(
        previous,
        last_polled_at=now,
        problem=error,
        next_check_at=schedule.after_failure(failures, now),
    )
    return _maybe_expire(state, now, schedule)


def _maybe_expire(state: ShipmentState, now: datetime, schedule: PollSchedule) -> ShipmentState:
    quiet_since = state.last_event_at or state.created_at
    if (
        state.status not in TERMINAL_STATUSES
        and quiet_since is not None
        and now - quiet_since > schedule.expire_after
    ):
        return replace(state, status=Status.EXPIRED, status_since=now, next_check_at=None)
    return state
