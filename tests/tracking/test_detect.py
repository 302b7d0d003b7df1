"""Detection tables: stored state and a poll in, domain events out; due events at thresholds."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from aftersale.models import (
    Customer,
    DelayReason,
    EventKind,
    Item,
    Order,
    ShipmentRef,
    ShipmentState,
    Status,
    Tracking,
    TrackingEvent,
)
from aftersale.tracking.detect import (
    DelayThresholds,
    add_business_hours,
    advance_state,
    default_thresholds,
    detect_changes,
    detect_due,
    detect_order_placed,
)
from carriers.registry import DIRECTORY

S = Status
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)  # a Monday, 09:00 in Warsaw
TH = DelayThresholds()


def h(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def order(promised: date | None = None, warranty: int | None = 24) -> Order:
    customer = Customer("C-1", "Anna", "anna@example.com", "+48500100200", "en",
                        "Europe/Warsaw", True, True, "PL")  # fmt: skip
    item = Item("NW-ANC-700", "ANC 700", "headphones", 1, Decimal("899"), "PLN", warranty)
    return Order("O-1", T0 - timedelta(hours=1), customer, (item,),
                 (ShipmentRef("TN1", "inpost"),), promised_delivery=promised)  # fmt: skip


def state(status: Status = S.PENDING, **kw: object) -> ShipmentState:
    base = ShipmentState("S-1", "O-1", "inpost", "TN1", status, created_at=T0 - timedelta(hours=1))
    return replace(base, **kw)  # type: ignore[arg-type]


def tracking(*scans: tuple[float, Status | None], **kw: object) -> Tracking:
    events = tuple(TrackingEvent(h(at), st, str(st or "info"), "") for at, st in scans)
    current = next((e.status for e in reversed(events) if e.status), S.UNKNOWN)
    delivered = next((e.occurred_at for e in events if e.status is S.DELIVERED), None)
    fields: dict[str, object] = {"status": current, "events": events, "delivered_at": delivered}
    fields.update(kw)
    return Tracking("inpost", "TN1", **fields)  # type: ignore[arg-type]


def kinds(events: list) -> list[str]:
    return [f"{e.kind}:{e.status or e.reason or ''}".rstrip(":") for e in events]


# (name, previous state, tracking, now (hours), expected events)
CHANGES = [
    (
        "first poll in transit: shipped + status",
        state(),
        tracking((0, S.LABEL_CREATED), (2, S.IN_TRANSIT)),
        3,
        ["shipped", "status_changed:in_transit"],
    ),
    (
        "label only: status change, nothing shipped",
        state(),
        tracking((0, S.LABEL_CREATED)),
        1,
        ["status_changed:label_created"],
    ),
    (
        "label straight to delivered: shipped and delivered (decide collapses)",
        state(S.LABEL_CREATED, last_event_at=h(0), status_since=h(0)),
        tracking((0, S.LABEL_CREATED), (20, S.DELIVERED)),
        21,
        ["shipped", "status_changed:delivered"],
    ),
    (
        "first seen already delivered: no shipped",
        state(),
        tracking((0, S.IN_TRANSIT), (20, S.DELIVERED)),
        200,
        ["status_changed:delivered"],
    ),
    (
        "first seen out for delivery: shipped + out for delivery",
        state(),
        tracking((0, S.IN_TRANSIT), (20, S.OUT_FOR_DELIVERY)),
        21,
        ["shipped", "status_changed:out_for_delivery"],
    ),
    (
        "repeated scan: nothing",
        state(S.IN_TRANSIT, last_event_at=h(2), status_since=h(2)),
        tracking((2, S.IN_TRANSIT), (5, S.IN_TRANSIT)),
        6,
        [],
    ),
    (
        "older status from a lagging replica: nothing",
        state(S.OUT_FOR_DELIVERY, last_event_at=h(20), status_since=h(20)),
        tracking((2, S.IN_TRANSIT)),
        21,
        [],
    ),
    (
        "step back with a newer scan is news (back to depot)",
        state(S.OUT_FOR_DELIVERY, last_event_at=h(20), status_since=h(20)),
        tracking((20, S.OUT_FOR_DELIVERY), (26, S.IN_TRANSIT)),
        27,
        ["status_changed:in_transit"],
    ),
    (
        "terminal is final",
        state(S.DELIVERED, last_event_at=h(20), status_since=h(20)),
        tracking((30, S.IN_TRANSIT)),
        31,
        [],
    ),
    (
        "unknown code never replaces a known status",
        state(S.IN_TRANSIT, last_event_at=h(2), status_since=h(2)),
        tracking((2, S.IN_TRANSIT), (5, S.UNKNOWN)),
        6,
        [],
    ),
    ("not found: nothing", state(), Tracking("inpost", "TN1", S.UNKNOWN, found=False), 1, []),
    (
        "exception: status change + delay with the carrier's code",
        state(S.IN_TRANSIT, last_event_at=h(2), status_since=h(2)),
        tracking((2, S.IN_TRANSIT), (10, S.EXCEPTION)),
        11,
        ["status_changed:exception", "delayed:exception"],
    ),
    (
        "late scan forward is still news, with its own time",
        state(S.IN_TRANSIT, last_event_at=h(2), status_since=h(2)),
        tracking((2, S.IN_TRANSIT), (3, S.OUT_FOR_DELIVERY)),
        60,
        ["status_changed:out_for_delivery"],
    ),
]


@pytest.mark.parametrize(("name", "prev", "track", "now", "expected"), CHANGES,
                         ids=[c[0] for c in CHANGES])  # fmt: skip
def test_detect_changes(name: str, prev, track, now: float, expected: list[str]) -> None:
    assert kinds(detect_changes(prev, track, order(), h(now), TH)) == expected


def test_late_scan_keeps_scan_time_and_age() -> None:
    prev = state(S.IN_TRANSIT, last_event_at=h(2), status_since=h(2))
    [event] = detect_changes(prev, tracking((2, S.IN_TRANSIT), (3, S.OUT_FOR_DELIVERY)),
                             order(), h(60), TH)  # fmt: skip
    assert event.occurred_at == h(3)
    assert event.facts["age_hours"] == 57.0


def test_first_seen_delivered_is_marked() -> None:
    [event] = detect_changes(state(), tracking((0, S.IN_TRANSIT), (20, S.DELIVERED)),
                             order(), h(200), TH)  # fmt: skip
    assert event.facts["first_seen"] is True
    assert event.occurred_at == h(20)


def test_detection_is_stable_and_advance_state_stops_repeats() -> None:
    prev, track = state(), tracking((0, S.LABEL_CREATED), (2, S.IN_TRANSIT))
    first = detect_changes(prev, track, order(), h(3), TH)
    assert [e.event_id for e in first] == [
        e.event_id for e in detect_changes(prev, track, order(), h(5), TH)
    ]
    after = advance_state(prev, track, h(3))
    assert (after.status, after.status_since, after.last_event_at) == (S.IN_TRANSIT, h(2), h(2))
    assert detect_changes(after, track, order(), h(4), TH) == []


def test_delay_code_on_a_moving_parcel() -> None:
    prev = state(S.IN_TRANSIT, last_event_at=h(2), status_since=h(2))
    events = (TrackingEvent(h(2), S.IN_TRANSIT, "taken_by_courier", ""),
              TrackingEvent(h(9), S.IN_TRANSIT, "delay_in_delivery", "delayed"))  # fmt: skip
    track = Tracking("inpost", "TN1", S.IN_TRANSIT, events=events)
    out = detect_changes(prev, track, order(), h(10), default_thresholds(DIRECTORY))
    assert kinds(out) == ["delayed:exception"]
    assert out[0].facts["code"] == "delay_in_delivery"
    assert detect_changes(prev, track, order(), h(10), TH) == []  # not a delay code for TH


@pytest.mark.parametrize(
    ("old", "new", "promised", "expected"),
    [
        (date(2026, 3, 4), date(2026, 3, 5), None, ["delayed:eta_slipped"]),
        (date(2026, 3, 4), date(2026, 3, 4), None, []),
        (date(2026, 3, 5), date(2026, 3, 4), None, []),  # earlier is good news
        (None, date(2026, 3, 6), date(2026, 3, 5), ["delayed:eta_slipped"]),
        (None, date(2026, 3, 5), date(2026, 3, 5), []),
    ],
)
def test_eta_slipped(old, new, promised, expected) -> None:
    prev = state(S.IN_TRANSIT, last_event_at=h(2), status_since=h(2), estimated_delivery=old,
                 first_estimate=old)  # fmt: skip
    track = tracking((2, S.IN_TRANSIT), (6, S.IN_TRANSIT), estimated_delivery=new)
    assert kinds(detect_changes(prev, track, order(promised), h(7), TH)) == expected


def due(s: ShipmentState, now: datetime, o: Order | None = None, th: DelayThresholds = TH):
    return kinds(detect_due(o or order(warranty=None), [s], now, th))


# each delay reason exactly at its threshold fires, a minute before it does not
DUE = [
    (
        "no first scan: 48 h after the label",
        state(S.LABEL_CREATED, status_since=h(0), last_event_at=h(0)),
        h(48),
        "delayed:no_first_scan",
    ),
    (
        "no first scan: carrier never heard of it, from import",
        state(S.PENDING),
        h(47),
        "delayed:no_first_scan",
    ),
    (
        "stale: 48 business hours (Mon 09:00 -> Wed 09:00 Warsaw)",
        state(S.IN_TRANSIT, status_since=h(0), last_event_at=h(0)),
        h(48),
        "delayed:stale",
    ),
    (
        "stale: the weekend does not count (Fri 09:00 -> Tue 09:00)",
        state(S.IN_TRANSIT, status_since=h(96), last_event_at=h(96)),
        h(96 + 96),
        "delayed:stale",
    ),
    (
        "pickup waiting: 72 h by default",
        state(S.AVAILABLE_FOR_PICKUP, status_since=h(0), last_event_at=h(0)),
        h(72),
        "delayed:pickup_waiting",
    ),
]


@pytest.mark.parametrize(("name", "s", "at", "expected"), DUE, ids=[d[0] for d in DUE])
def test_delay_thresholds(name: str, s: ShipmentState, at: datetime, expected: str) -> None:
    assert expected in due(s, at)
    assert expected not in due(s, at - timedelta(minutes=1))


def test_pickup_waiting_inpost_override() -> None:
    s = state(S.AVAILABLE_FOR_PICKUP, status_since=h(0), last_event_at=h(0))
    th = default_thresholds(DIRECTORY)
    assert th.for_carrier("inpost").pickup_wait_hours == 24
    assert "delayed:pickup_waiting" in due(s, h(24), th=th)
    assert "delayed:pickup_waiting" not in due(replace(s, carrier="ups"), h(24), th=th)


def test_eta_missed_at_local_midnight_after_the_promise() -> None:
    s = state(S.IN_TRANSIT, status_since=h(0), last_event_at=h(40))
    o = order(promised=date(2026, 3, 3), warranty=None)
    midnight = datetime(2026, 3, 3, 23, 0, tzinfo=UTC)  # 00:00 on the 4th in Warsaw
    assert "delayed:eta_missed" in due(s, midnight, o)
    assert "delayed:eta_missed" not in due(s, midnight - timedelta(minutes=1), o)
    assert "delayed:eta_missed" not in due(replace(s, status=S.DELIVERED), midnight, o)


def test_eta_missed_falls_back_to_the_estimate() -> None:
    s = state(S.IN_TRANSIT, status_since=h(0), last_event_at=h(40),
              estimated_delivery=date(2026, 3, 3))  # fmt: skip
    assert "delayed:eta_missed" in due(s, datetime(2026, 3, 3, 23, 0, tzinfo=UTC))


def test_each_delay_names_its_incident() -> None:
    """A label never scanned is one incident whichever rule finds it (and a replay names
    it the same); a missed date while moving, or a new date from the carrier, is its own."""
    o = order(promised=date(2026, 3, 3), warranty=None)
    label = state(S.LABEL_CREATED, status_since=h(0), last_event_at=h(0))
    later = datetime(2026, 3, 4, 9, 0, tzinfo=UTC)
    delays = [e for e in detect_due(o, [label], later, TH) if e.kind is EventKind.DELAYED]
    assert {e.reason: e.facts["incident"] for e in delays} == {
        DelayReason.NO_FIRST_SCAN: f"label_created@{h(0).isoformat()}",
        DelayReason.ETA_MISSED: f"label_created@{h(0).isoformat()}",
    }
    moving = replace(label, status=S.IN_TRANSIT, last_event_at=later - timedelta(hours=1))
    (missed,) = [e for e in detect_due(o, [moving], later, TH) if e.kind is EventKind.DELAYED]
    assert missed.facts["incident"] == "missed:2026-03-03"
    prev = state(S.IN_TRANSIT, last_event_at=h(2), status_since=h(2))
    track = tracking((2, S.IN_TRANSIT), (6, S.IN_TRANSIT), estimated_delivery=date(2026, 3, 6))
    (slipped,) = [
        e for e in detect_changes(prev, track, o, h(7), TH) if e.kind is EventKind.DELAYED
    ]
    assert slipped.facts["incident"] == "eta:2026-03-06"


def test_terminal_and_moving_parcels_have_no_delays() -> None:
    s = state(S.DELIVERED, status_since=h(0), last_event_at=h(0), delivered_at=h(0))
    assert [k for k in due(s, h(500)) if k.startswith("delayed")] == []


def test_arriving_tomorrow_window_and_stability() -> None:
    window = (datetime(2026, 3, 4, 9, tzinfo=UTC), datetime(2026, 3, 4, 13, tzinfo=UTC))
    s = state(S.IN_TRANSIT, status_since=h(0), last_event_at=h(0),
              estimated_delivery=date(2026, 3, 4), estimated_window=window)  # fmt: skip
    day_before = datetime(2026, 3, 2, 23, 0, tzinfo=UTC)  # Tuesday 00:00 Warsaw
    assert "arriving_tomorrow" not in due(s, day_before - timedelta(minutes=1))
    a = detect_due(order(warranty=None), [s], day_before + timedelta(hours=9), TH)
    b = detect_due(order(warranty=None), [s], day_before + timedelta(hours=15), TH)
    [ev] = [e for e in a if e.kind is EventKind.ARRIVING_TOMORROW]
    assert ev.occurred_at == day_before
    assert ev.facts["window_start"] == window[0].isoformat()
    assert [e.event_id for e in a] == [e.event_id for e in b]
    assert "arriving_tomorrow" not in due(s, datetime(2026, 3, 3, 23, 0, tzinfo=UTC))


def test_delivered_ago_days() -> None:
    s = state(S.DELIVERED, status_since=h(0), last_event_at=h(0), delivered_at=h(0))
    events = detect_due(order(warranty=None), [s], h(24 * 7), TH)
    assert [(e.kind, e.facts["days"], e.occurred_at) for e in events] == [
        (EventKind.DELIVERED_AGO, 3, h(72)),
        (EventKind.DELIVERED_AGO, 7, h(168)),
    ]
    assert len(detect_due(order(warranty=None), [s], h(24 * 7) - timedelta(seconds=1), TH)) == 1


def test_warranty_from_delivery_else_purchase() -> None:
    delivered = state(S.DELIVERED, delivered_at=datetime(2026, 3, 31, 12, tzinfo=UTC))
    o = order(warranty=1)
    ends = datetime(2026, 4, 30, 12, tzinfo=UTC)  # March 31 + 1 month, clamped
    at = ends - timedelta(days=30)
    [ev] = [e for e in detect_due(o, [delivered], at, TH) if e.kind is EventKind.WARRANTY_ENDING]
    assert (ev.item_sku, ev.occurred_at, ev.facts["warranty_ends"]) == (
        "NW-ANC-700",
        at,
        "2026-04-30",
    )
    assert not [e for e in detect_due(o, [delivered], at - timedelta(seconds=1), TH)
                if e.kind is EventKind.WARRANTY_ENDING]  # fmt: skip
    assert not [e for e in detect_due(o, [delivered], ends, TH)
                if e.kind is EventKind.WARRANTY_ENDING]  # fmt: skip
    pending = state(S.IN_TRANSIT)
    from_purchase = [e for e in detect_due(o, [pending], o.placed_at + timedelta(days=5), TH)
                     if e.kind is EventKind.WARRANTY_ENDING]  # fmt: skip
    assert from_purchase[0].facts["warranty_from"] == o.placed_at.date().isoformat()


def test_order_placed() -> None:
    ev = detect_order_placed(order())
    assert (ev.kind, ev.occurred_at) == (EventKind.ORDER_PLACED, order().placed_at)


def test_business_hours_across_dst() -> None:
    # Friday 27 March 2026 12:00 Warsaw (CET) + 24 business hours = Monday 30 March 12:00 (CEST)
    start = datetime(2026, 3, 27, 11, 0, tzinfo=UTC)
    assert add_business_hours(start, 24, "Europe/Warsaw", TH.business_days) == datetime(
        2026, 3, 30, 10, 0, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("pickup_time_expired", DelayReason.UNDELIVERABLE),  # not collected: it goes back
        ("undelivered_unknown_receiver", DelayReason.UNDELIVERABLE),
        ("undelivered_wrong_address", DelayReason.EXCEPTION),  # the courier asks and retries
    ],
)
def test_an_exception_that_sends_the_parcel_back_is_undeliverable(code, reason) -> None:
    prev = state(S.IN_TRANSIT, last_event_at=h(2), status_since=h(2))
    track = replace(tracking((2, S.IN_TRANSIT), (6, S.EXCEPTION)), code=code)
    th = default_thresholds(DIRECTORY)
    delays = [
        e for e in detect_changes(prev, track, order(), h(7), th) if e.kind is EventKind.DELAYED
    ]
    assert [e.reason for e in delays] == [reason]
