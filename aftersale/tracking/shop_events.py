"""Events from the shop's side of an order: refunds and returns the platform reported, the
parcel a customer sends back, and the shop's own promises (dispatch within N business
days, returns accepted for N days after delivery).

Pure functions with `now` injected. Each event carries the time of the fact behind it
(the refund's time, the moment a promise ran out), never `now`, so the same fact gives
the same event every cycle and the store keeps it once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

from aftersale.models import DomainEvent, EventKind, Order, ShipmentState, Status
from aftersale.store.records import RefundRecord, ReturnRecord
from aftersale.tracking.detect import local_midnight, zone

#: Return states under which the customer has asked to send the items back (declined and
#: cancelled returns leave the order as it was).
ASKED_RETURN_STATUSES = frozenset({"requested", "open", "closed"})


def without_aftercare(events: Sequence[DomainEvent], sending_back: set[str]) -> list[DomainEvent]:
    """No setup tips or review request (`delivered_ago`) for an order whose customer asked
    to return the items: tips for a product on its way back, or a review of it, would read
    as if nobody listened."""
    return [
        e for e in events if not (e.kind is EventKind.DELIVERED_AGO and e.order_id in sending_back)
    ]


@dataclass(frozen=True, slots=True)
class ShopPromises:
    """What the shop promises every customer (shop.yaml, docs/shops.md)."""

    time_zone: str = "UTC"  # whose calendar business days and return periods run on
    dispatch_days: int | None = None  # business days from order to tracking number
    return_days: int | None = None  # days after delivery a return is accepted
    return_window_days: tuple[int, ...] = ()  # remind this many days before it ends


def detect_refund(refund: RefundRecord) -> DomainEvent:
    facts = {"amount": str(refund.amount), "currency": refund.currency}
    return DomainEvent(
        EventKind.REFUND_ISSUED,
        refund.order_id,
        refund.created_at,
        reason=refund.refund_id,
        facts=facts,
    )


def detect_return_requested(ret: ReturnRecord) -> DomainEvent:
    return DomainEvent(
        EventKind.RETURN_REQUESTED, ret.order_id, ret.requested_at, reason=ret.return_id
    )


def detect_return_declined(ret: ReturnRecord) -> DomainEvent:
    """The shop said no to a return: told at the time it did (the return's last update)."""
    return DomainEvent(
        EventKind.RETURN_DECLINED, ret.order_id, ret.updated_at, reason=ret.return_id
    )


def detect_return(ret: ReturnRecord) -> DomainEvent:
    """What the customer hears of a return the store has no event for yet: declined, or
    asked for (requested or approved). A return declined before any cycle saw it is only
    told as declined: "we have your request" and "we cannot accept it" at once would be
    one message too many."""
    if ret.status == "declined":
        return detect_return_declined(ret)
    return detect_return_requested(ret)


def as_return_events(events: Sequence[DomainEvent], parcel: ShipmentState) -> list[DomainEvent]:
    """A return parcel's poll in the customer's words: handed to the carrier (`shipped`)
    becomes `return_in_transit`, delivered (to the shop) `return_received`; the rest of
    its journey (delays, pickup points) is the shop's business, not the customer's. When
    both happen in one poll only the arrival is news."""
    facts = {"return_id": parcel.return_id}
    received = [
        replace(e, kind=EventKind.RETURN_RECEIVED, status=None, facts={**e.facts, **facts})
        for e in events
        if e.kind is EventKind.STATUS_CHANGED and e.status is Status.DELIVERED
    ]
    if received:
        return received
    return [
        replace(e, kind=EventKind.RETURN_IN_TRANSIT, facts={**e.facts, **facts})
        for e in events
        if e.kind is EventKind.SHIPPED
    ]


def detect_promises(
    order: Order, shipments: Sequence[ShipmentState], now: datetime, promises: ShopPromises
) -> list[DomainEvent]:
    """`fulfilment_delayed` when no parcel has a tracking number by the end of the
    dispatch promise's last business day; `return_window_ending` N days before the return
    period (from the last parcel's delivery, to the end of its last day) ends."""
    outbound = [s for s in shipments if s.return_id is None]
    events = []
    if promises.dispatch_days is not None and not outbound:
        last_day = dispatch_deadline(order.placed_at, promises.dispatch_days, promises.time_zone)
        at = local_midnight(last_day + timedelta(days=1), promises.time_zone)
        if at <= now:
            facts = {"dispatch_by": last_day.isoformat(), "business_days": promises.dispatch_days}
            events.append(
                DomainEvent(EventKind.FULFILMENT_DELAYED, order.order_id, at, facts=facts)
            )
    sent_back = any(s.return_id is not None for s in shipments)
    if promises.return_days is not None and outbound and not sent_back:
        delivered = [s.delivered_at for s in outbound if s.status is Status.DELIVERED]
        if len(delivered) == len(outbound) and all(delivered):
            last = max(d for d in delivered if d is not None)
            ends_on = last.astimezone(zone(promises.time_zone)).date() + timedelta(
                days=promises.return_days
            )
            ends = local_midnight(ends_on + timedelta(days=1), promises.time_zone)
            for days in promises.return_window_days:
                at = ends - timedelta(days=days)
                if at <= now < ends:
                    facts = {"days": days, "return_by": ends_on.isoformat()}
                    events.append(
                        DomainEvent(EventKind.RETURN_WINDOW_ENDING, order.order_id, at, facts=facts)
                    )
    return events


def dispatch_deadline(placed_at: datetime, business_days: int, tz: str) -> date:
    """The last day (local) a promise to dispatch within `business_days` Monday-to-Friday
    days of `placed_at` allows: an order on Saturday with 2 days -> Tuesday."""
    day = placed_at.astimezone(zone(tz)).date()
    left = business_days
    while left > 0:
        day += timedelta(days=1)
        if day.weekday() < 5:
            left -= 1
    return day
