"""What a carrier's answer may not make us believe, checked against the cycle's clock.

A scan dated in the future (beyond a small clock skew) is a carrier's mistake, not news:
it is dropped with a recorded problem, and when it was the scan behind the parcel's
status, the status falls back to the newest scan left. Pure: `now` is an argument.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from aftersale.models import Status, Tracking

#: How far a carrier's clock may run ahead of ours (time zones read wrongly included).
CLOCK_SKEW = timedelta(hours=1)


def drop_future_scans(tracking: Tracking, now: datetime, skew: timedelta = CLOCK_SKEW) -> Tracking:
    """`tracking` without its scans dated after `now + skew`; the status, code and
    delivery time they carried are recomputed from what is left."""
    limit = now + skew
    future = [e for e in tracking.events if e.occurred_at > limit]
    late_delivery = tracking.delivered_at is not None and tracking.delivered_at > limit
    if not future and not late_delivery:
        return tracking
    kept = tuple(e for e in tracking.events if e.occurred_at <= limit)
    problems = list(tracking.problems)
    if future:
        newest = max(e.occurred_at for e in future)
        problems.append(
            f"{len(future)} scan(s) dated in the future ignored (newest {newest.isoformat()}, "
            f"now {now.isoformat()})"
        )
    status: Status = tracking.status
    code, description = tracking.code, tracking.description
    behind_status = any(e.status is tracking.status and e.code == tracking.code for e in future)
    if behind_status or late_delivery:
        latest = next((e for e in reversed(kept) if e.status is not None), None)
        if latest is None:
            status, code, description = Status.UNKNOWN, None, None
        else:
            status = latest.status or Status.UNKNOWN
            code, description = latest.code, latest.description
    delivered_at = tracking.delivered_at if status is Status.DELIVERED else None
    if status is Status.DELIVERED and late_delivery:
        delivered_at = next(
            (e.occurred_at for e in reversed(kept) if e.status is Status.DELIVERED), None
        )
        if delivered_at is None:
            status, code, description = Status.UNKNOWN, None, None
    unusable = tracking.unusable
    if status is Status.UNKNOWN and tracking.status is not Status.UNKNOWN:
        unusable = "the only status the carrier gives is dated in the future"
    return replace(
        tracking,
        status=status,
        code=code,
        description=description,
        events=kept,
        delivered_at=delivered_at,
        problems=tuple(dict.fromkeys(problems)),
        unusable=unusable,
    )
