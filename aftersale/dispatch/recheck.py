"""True when sent: before a message goes out, the facts it states are checked against the
newest tracking. A message is decided from one poll and may wait hours for its send
window; by then the parcel may have moved on. What is still true goes out, rendered
from the newest tracking; what is no longer true is cancelled with the reason recorded.

The checks follow the event that caused the message (never the template's name, which
marketers choose): a status message while the parcel is still in that status; "arriving
tomorrow" while the estimate stands and it is still the day before, on the customer's
calendar; a delay while the delay still holds. Messages about the order itself (thank
you, tips, reviews, warranty) state no tracking fact and always go.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aftersale.models import (
    TERMINAL_STATUSES,
    DelayReason,
    DomainEvent,
    EventKind,
    Order,
    ShipmentState,
    Status,
)

_NOT_SHIPPED = frozenset({Status.PENDING, Status.LABEL_CREATED})
_BEFORE_DELIVERY = frozenset({Status.PENDING, Status.LABEL_CREATED, Status.IN_TRANSIT})
#: Statuses that mean a parcel in trouble is moving again.
_MOVING_ON = frozenset({Status.OUT_FOR_DELIVERY, Status.AVAILABLE_FOR_PICKUP, Status.DELIVERED})


def stale_reason(
    event: DomainEvent | None, shipment: ShipmentState | None, order: Order, now: datetime
) -> str | None:
    """Why the message `event` caused would no longer be true at `now`, or None."""
    if event is not None and event.kind is EventKind.FULFILMENT_DELAYED:
        # "not shipped yet" is false once a tracking number came in meanwhile
        return "a tracking number came in since" if order.shipments else None
    if event is None or shipment is None:
        return None
    kind, status = event.kind, shipment.status
    if kind is EventKind.SHIPPED:
        return _gone(status) if status in TERMINAL_STATUSES else None
    if kind is EventKind.STATUS_CHANGED:
        if event.status is None or event.status is Status.DELIVERED or status == event.status:
            return None
        return f"the parcel is {_words(status)} now, no longer {_words(event.status)}"
    if kind is EventKind.ARRIVING_TOMORROW:
        return _arriving_tomorrow(event.facts, shipment, order, now)
    if kind is EventKind.DELAYED:
        return _still_late(event, shipment, now)
    return None


def _arriving_tomorrow(
    facts: Any, shipment: ShipmentState, order: Order, now: datetime
) -> str | None:
    if shipment.status not in _BEFORE_DELIVERY:
        return f"the parcel is {_words(shipment.status)} already"
    promised = _date(facts.get("estimated_delivery"))
    if promised is not None and shipment.estimated_delivery != promised:
        new = shipment.estimated_delivery
        return f"the carrier now expects it on {new.isoformat()}" if new else "no estimate now"
    today = now.astimezone(ZoneInfo(order.customer.time_zone)).date()
    if promised is not None and today != promised - timedelta(days=1):
        return f"on the customer's calendar it is {today.isoformat()}, not the day before"
    return None


def _still_late(event: DomainEvent, shipment: ShipmentState, now: datetime) -> str | None:
    status, facts = shipment.status, event.facts
    if status in TERMINAL_STATUSES:
        return _gone(status)
    reason = event.reason
    if reason == DelayReason.NO_FIRST_SCAN and status not in _NOT_SHIPPED:
        return "the carrier has scanned the parcel in since"
    if reason == DelayReason.PICKUP_WAITING and status is not Status.AVAILABLE_FOR_PICKUP:
        return f"the parcel is {_words(status)} now, no longer waiting to be collected"
    deadline = shipment.pickup_deadline
    if reason == DelayReason.PICKUP_WAITING and deadline is not None and now >= deadline:
        return f"its collect-by time {deadline.isoformat()} has passed"
    if reason in (DelayReason.EXCEPTION, DelayReason.UNDELIVERABLE) and status in _MOVING_ON:
        return f"the parcel is {_words(status)} now"
    if reason == DelayReason.STALE:
        scanned = _datetime(facts.get("last_event_at"))
        if scanned and shipment.last_event_at and shipment.last_event_at > scanned:
            return "a new scan came in since"
    if reason == DelayReason.ETA_SLIPPED:
        baseline = _date(facts.get("baseline"))
        estimate = shipment.estimated_delivery
        if baseline is not None and (estimate is None or estimate <= baseline):
            return "the carrier's estimate is back on time"
    return None


def _gone(status: Status) -> str:
    return f"the parcel is {_words(status)} already"


def _words(status: Status) -> str:
    return str(status).replace("_", " ")


def _date(value: Any) -> date | None:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    try:
        return date.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


def _datetime(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None
