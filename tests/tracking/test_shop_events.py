"""Events from the shop's side of an order, purely: the dispatch promise in business days
on the shop's calendar, the return period's reminder, and a return parcel's journey told
as the customer's return."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from aftersale.models import (
    Customer,
    DomainEvent,
    EventKind,
    Item,
    Order,
    ShipmentRef,
    ShipmentState,
    Status,
)
from aftersale.store.records import RefundRecord
from aftersale.tracking.shop_events import (
    ShopPromises,
    as_return_events,
    detect_promises,
    detect_refund,
    dispatch_deadline,
    without_aftercare,
)

WARSAW = "Europe/Warsaw"
CUSTOMER = Customer("C-1", "Anna Nowak", "a@example.com", None, "pl", WARSAW, True, True)
ITEM = Item("NW-1", "Headphones", "headphones", 1, Decimal("399"), "PLN")


def order(placed_at: datetime, *numbers: str) -> Order:
    refs = tuple(ShipmentRef(n, "dhl") for n in numbers)
    return Order("NW-1", placed_at, CUSTOMER, (ITEM,), refs)


def parcel(number: str, status: Status, delivered_at=None, return_id=None) -> ShipmentState:
    return ShipmentState(
        number, "NW-1", "dhl", number, status, delivered_at=delivered_at, return_id=return_id
    )


@pytest.mark.parametrize(
    ("placed", "days", "last_day"),
    [
        ("2026-03-02T09:00:00+01:00", 2, date(2026, 3, 4)),  # Monday -> Wednesday
        ("2026-03-05T09:00:00+01:00", 2, date(2026, 3, 9)),  # Thursday -> Monday
        ("2026-03-07T09:00:00+01:00", 2, date(2026, 3, 10)),  # Saturday -> Tuesday
        ("2026-03-01T23:30:00+00:00", 1, date(2026, 3, 3)),  # already Monday in Warsaw
        ("2026-03-02T09:00:00+01:00", 0, date(2026, 3, 2)),  # the same day
    ],
)
def test_dispatch_deadline_counts_weekdays_on_the_shop_calendar(placed, days, last_day) -> None:
    assert dispatch_deadline(datetime.fromisoformat(placed), days, WARSAW) == last_day


def test_fulfilment_delayed_at_the_end_of_the_promise_and_only_without_a_parcel() -> None:
    promises = ShopPromises(WARSAW, dispatch_days=2)
    placed = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    end = datetime(2026, 3, 4, 23, 0, tzinfo=UTC)  # Thursday 00:00 in Warsaw
    assert detect_promises(order(placed), [], end - timedelta(seconds=1), promises) == []
    [event] = detect_promises(order(placed), [], end, promises)
    assert (event.kind, event.occurred_at) == (EventKind.FULFILMENT_DELAYED, end)
    assert dict(event.facts) == {"dispatch_by": "2026-03-04", "business_days": 2}
    # the same event every cycle after (the store keeps it once)
    assert detect_promises(order(placed), [], end + timedelta(days=3), promises) == [event]
    shipped = [parcel("JJD1", Status.LABEL_CREATED)]
    assert detect_promises(order(placed, "JJD1"), shipped, end, promises) == []
    # a parcel sent back is not a parcel to the customer (an odd case, but not "shipped")
    back = [parcel("JJD9", Status.PENDING, return_id="R1")]
    assert [e.kind for e in detect_promises(order(placed), back, end, promises)] == [
        EventKind.FULFILMENT_DELAYED
    ]
    assert detect_promises(order(placed), [], end, ShopPromises(WARSAW)) == []


def test_return_window_reminder_before_the_period_ends() -> None:
    promises = ShopPromises(WARSAW, return_days=30, return_window_days=(5,))
    placed = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    delivered = [
        parcel("JJD1", Status.DELIVERED, datetime(2026, 3, 2, 12, tzinfo=UTC)),
        parcel("JJD2", Status.DELIVERED, datetime(2026, 3, 3, 23, 30, tzinfo=UTC)),  # 4 March
    ]
    ends = datetime(2026, 4, 3, 22, 0, tzinfo=UTC)  # end of 3 April in Warsaw (summer time)
    at = ends - timedelta(days=5)
    o = order(placed, "JJD1", "JJD2")
    assert detect_promises(o, delivered, at - timedelta(seconds=1), promises) == []
    [event] = detect_promises(o, delivered, at, promises)
    assert (event.kind, event.occurred_at) == (EventKind.RETURN_WINDOW_ENDING, at)
    assert dict(event.facts) == {"days": 5, "return_by": "2026-04-03"}
    assert detect_promises(o, delivered, ends, promises) == []  # too late to remind
    moving = [delivered[0], parcel("JJD2", Status.IN_TRANSIT)]
    assert detect_promises(o, moving, at, promises) == []  # not all delivered yet
    sent_back = [*delivered, parcel("JJD9", Status.IN_TRANSIT, return_id="R1")]
    assert detect_promises(o, sent_back, at, promises) == []


def test_a_return_parcel_tells_transit_then_arrival() -> None:
    back = parcel("JJD9", Status.IN_TRANSIT, return_id="R1")
    at = datetime(2026, 3, 10, 9, tzinfo=UTC)
    shipped = DomainEvent(EventKind.SHIPPED, "NW-1", at, "JJD9")
    moved = DomainEvent(EventKind.STATUS_CHANGED, "NW-1", at, "JJD9", status=Status.IN_TRANSIT)
    [transit] = as_return_events([shipped, moved], back)
    assert (transit.kind, transit.shipment_id, transit.facts["return_id"]) == (
        EventKind.RETURN_IN_TRANSIT,
        "JJD9",
        "R1",
    )
    arrived = DomainEvent(
        EventKind.STATUS_CHANGED, "NW-1", at, "JJD9", status=Status.DELIVERED, facts={"x": 1}
    )
    late = DomainEvent(EventKind.DELAYED, "NW-1", at, "JJD9", reason="stale")
    [received] = as_return_events([shipped, arrived, late], back)
    assert (received.kind, received.status, dict(received.facts)) == (
        EventKind.RETURN_RECEIVED,
        None,
        {"x": 1, "return_id": "R1"},
    )
    assert as_return_events([late], back) == []


def test_a_refund_is_one_event_per_refund_id() -> None:
    at = datetime(2026, 3, 10, 9, tzinfo=UTC)
    one = detect_refund(RefundRecord("NW-1", "R1", Decimal("20.00"), "EUR", at))
    two = detect_refund(RefundRecord("NW-1", "R2", Decimal("20.00"), "EUR", at))
    assert (one.kind, one.reason, dict(one.facts)) == (
        EventKind.REFUND_ISSUED,
        "R1",
        {"amount": "20.00", "currency": "EUR"},
    )
    assert one.event_id != two.event_id


def test_a_poll_keeps_a_parcel_sent_back_one() -> None:
    from aftersale.models import Tracking
    from aftersale.tracking.detect import advance_state

    back = parcel("JJD9", Status.PENDING, return_id="R1")
    at = datetime(2026, 3, 10, 9, tzinfo=UTC)
    polled = advance_state(back, Tracking("dhl", "JJD9", Status.IN_TRANSIT), at)
    assert (polled.status, polled.return_id) == (Status.IN_TRANSIT, "R1")


def test_an_order_sent_back_hears_no_tips_or_review_but_the_rest_stays() -> None:
    at = datetime(2026, 3, 10, 9, tzinfo=UTC)
    tip = DomainEvent(EventKind.DELIVERED_AGO, "NW-1", at, facts={"days": 7})
    other_tip = DomainEvent(EventKind.DELIVERED_AGO, "NW-2", at, facts={"days": 7})
    warranty = DomainEvent(EventKind.WARRANTY_ENDING, "NW-1", at, facts={"days": 30})
    assert without_aftercare([tip, other_tip, warranty], {"NW-1"}) == [other_tip, warranty]
