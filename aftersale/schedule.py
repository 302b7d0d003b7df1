"""When to poll a shipment next, and when to give up on it (`expired`).

Pure: `now` is an argument. The poll interval follows the status (a parcel out for
delivery changes within the hour; a label can sit for a day) and backs off while a
parcel does not move; terminal shipments are never due again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from aftersale.models import TERMINAL_STATUSES, ShipmentState, Status


def _minutes(m: float) -> timedelta:
    return timedelta(minutes=m)


@dataclass(frozen=True, slots=True)
class PollSchedule:
    intervals: Mapping[Status, timedelta] = field(
        default_factory=lambda: {
            Status.PENDING: _minutes(60),
            Status.LABEL_CREATED: _minutes(360),
            Status.IN_TRANSIT: _minutes(120),
            Status.OUT_FOR_DELIVERY: _minutes(30),
            Status.AVAILABLE_FOR_PICKUP: _minutes(180),
            Status.DELIVERY_ATTEMPTED: _minutes(120),
            Status.EXCEPTION: _minutes(240),
            Status.UNKNOWN: _minutes(360),
        }
    )
    #: After this long without a new scan the interval doubles, once per such period.
    backoff_after: timedelta = timedelta(days=2)
    max_interval: timedelta = timedelta(hours=24)
    #: No news for this long: the shipment becomes `expired` and is never polled again.
    expire_after: timedelta = timedelta(days=30)
    #: After a failed poll (outage), try again after this long, doubling per failure.
    retry_after_failure: timedelta = timedelta(minutes=15)

    def next_check(self, state: ShipmentState, now: datetime) -> datetime | None:
        if state.status in TERMINAL_STATUSES:
            return None
        interval = self.intervals.get(state.status, self.intervals[Status.UNKNOWN])
        quiet_since = state.last_event_at or state.created_at
        if quiet_since is not None and now - quiet_since > self.backoff_after:
            periods = int((now - quiet_since) / self.backoff_after)
            interval = interval * 2 ** min(periods, 8)
        return now + min(interval, self.max_interval)

    def after_failure(self, failures: int, now: datetime) -> datetime:
        return now + min(self.retry_after_failure * 2 ** max(failures - 1, 0), self.max_interval)


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
