"""A `Tracking` as one plain JSON object: what `aftersale track --json` prints and what the
recorded-payload tests compare against. Times are ISO 8601 in UTC with a `Z`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aftersale.models import Tracking


def format_utc(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def tracking_to_json(t: Tracking) -> dict[str, Any]:
    """Every field of `t` as JSON-ready values (str, None, lists, bool); `unusable` and
    the handover facts (`delivery_type`, `pickup_deadline`, `pickup_hours`) only when set."""
    window = t.estimated_window
    out = {
        "tracking_number": t.tracking_number,
        "carrier": t.carrier,
        "found": t.found,
        "status": str(t.status),
        "code": t.code,
        "description": t.description,
        "estimated_delivery": t.estimated_delivery.isoformat() if t.estimated_delivery else None,
        "estimated_window": [format_utc(window[0]), format_utc(window[1])] if window else None,
        "delivered_at": format_utc(t.delivered_at),
        "pickup_point": t.pickup_point,
        "events": [
            {
                "occurred_at": format_utc(e.occurred_at),
                "status": str(e.status) if e.status is not None else None,
                "code": e.code,
                "description": e.description,
                "location": e.location,
            }
            for e in t.events
        ],
        "problems": list(t.problems),
    }
    if t.delivery_type is not None:
        out["delivery_type"] = str(t.delivery_type)
    if t.pickup_deadline is not None:
        out["pickup_deadline"] = format_utc(t.pickup_deadline)
    if t.pickup_hours is not None:
        out["pickup_hours"] = t.pickup_hours
    if t.unusable is not None:
        out["unusable"] = t.unusable
    return out
