"""`orders_due_for_time_events` selects in SQL exactly the orders whose delivered-N-days-ago
or warranty-ending event tracking.detect would emit now and the store has not recorded."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from aftersale.models import (
    Customer,
    EventKind,
    Item,
    Order,
    ShipmentRef,
    Status,
)
from aftersale.store import Store, open_store
from aftersale.tracking.detect import DelayThresholds, delay_watch, detect_due

NOW = datetime(2027, 3, 15, 12, 0, tzinfo=UTC)
DATED = {EventKind.DELIVERED_AGO, EventKind.WARRANTY_ENDING}
THRESHOLDS = DelayThresholds(
    delivered_ago_days=(3, 7),
    warranty_ending_days=(30, 7),
    carriers={"inpost": {"delivered_ago_days": (1,)}},
)
#: order id -> (carrier, delivered this long before NOW (None: still moving), placed
#: this long before NOW, warranty months)
CASES = {
    "DELIVERED-2D": ("dhl", timedelta(days=2), timedelta(days=5), None),  # 3 days not yet
    "DELIVERED-5D": ("dhl", timedelta(days=5), timedelta(days=8), None),  # 3 days due
    "DELIVERED-9D": ("dpd", timedelta(days=9), timedelta(days=12), None),  # 3 and 7 due
    "INPOST-2D": ("inpost", timedelta(days=2), timedelta(days=4), None),  # its own 1 day due
    "INPOST-12H": ("inpost", timedelta(hours=12), timedelta(days=2), None),  # 1 day not yet
    "MOVING": ("ups", None, timedelta(days=1), None),
    # warranty from the purchase (no delivery): 24 months end in 20 days -> 30 days due
    "WARRANTY-ENDING": ("dhl", None, timedelta(days=2 * 365 - 20), 24),
    # 12 months from the delivery 340 days ago: ends in ~25 days -> 30 days due
    "WARRANTY-FROM-DELIVERY": ("dpd", timedelta(days=340), timedelta(days=400), 12),
    "WARRANTY-OVER": ("dhl", timedelta(days=800), timedelta(days=800), 24),
    "WARRANTY-FAR": ("dhl", timedelta(days=400), timedelta(days=400), 36),
}


def order(order_id: str, carrier: str, placed_ago: timedelta, months: int | None) -> Order:
    customer = Customer(
        f"C-{order_id}", "Ala", "ala@example.pl", None, "pl", "Europe/Warsaw", True, False, "PL"
    )
    item = Item("SKU-1", "Kettle", "kitchen", 1, Decimal("99"), "PLN", months)
    return Order(
        order_id, NOW - placed_ago, customer, (item,), (ShipmentRef(f"N-{order_id}", carrier),)
    )


@pytest.fixture
def store(store_target: str) -> Iterator[Store]:
    s = open_store(store_target)
    for oid, (carrier, delivered_ago, placed_ago, months) in CASES.items():
        s.save_orders([order(oid, carrier, placed_ago, months)], source="t", now=NOW - placed_ago)
        if delivered_ago is not None:
            state = s.load_shipment(f"N-{oid}")
            assert state is not None
            delivered = replace(state, status=Status.DELIVERED, delivered_at=NOW - delivered_ago)
            s.save_shipment_states([delivered])
            if delivered_ago > timedelta(days=30):  # its delivered-N-days notes went out then
                o = order(oid, carrier, placed_ago, months)
                notes = detect_due(o, [delivered], NOW, THRESHOLDS)
                s.record_domain_events(
                    [e for e in notes if e.kind is EventKind.DELIVERED_AGO], run_id="old", now=NOW
                )
    yield s
    s.close()


def due_in_sql(store: Store, now: datetime = NOW, moving: bool = False) -> set[str]:
    return set(
        store.orders_due_for_time_events(
            now,
            delivered_ago_days=THRESHOLDS.delivered_ago_by_carrier(),
            warranty_ending_days=THRESHOLDS.warranty_ending_days,
            moving=delay_watch(THRESHOLDS, now) if moving else None,
        )
    )


def due_in_python(store: Store, now: datetime = NOW) -> set[str]:
    """What detect_due finds for every stored order, minus the events already stored."""
    orders = store.load_orders(CASES)
    shipments = store.shipments_of(orders)
    due = set()
    for oid, o in orders.items():
        events = detect_due(
            o, [s for s in shipments.values() if s.order_id == oid], now, THRESHOLDS
        )
        dated = [e for e in events if e.kind in DATED]
        if len(store.load_domain_events(e.event_id for e in dated)) < len(dated):
            due.add(oid)
    return due


def test_the_sql_agrees_with_detection_before_and_after_the_events_are_recorded(
    store: Store,
) -> None:
    expected = {
        "DELIVERED-5D",
        "DELIVERED-9D",
        "INPOST-2D",
        "WARRANTY-ENDING",
        "WARRANTY-FROM-DELIVERY",
    }
    assert due_in_python(store) == expected
    assert due_in_sql(store) == expected
    # once this cycle's events are stored, nothing is due until the next date passes
    orders = store.load_orders(expected)
    shipments = store.shipments_of(orders)
    for oid, o in orders.items():
        mine = [s for s in shipments.values() if s.order_id == oid]
        events = [e for e in detect_due(o, mine, NOW, THRESHOLDS) if e.kind in DATED]
        store.record_domain_events(events, run_id="r", now=NOW)
    assert due_in_python(store) == due_in_sql(store) == set()
    # two weeks on: DELIVERED-5D's 7-day mark, DELIVERED-2D's and INPOST-12H's first, and
    # WARRANTY-ENDING's 7-days-before-the-end note
    later = NOW + timedelta(days=14)
    assert due_in_python(store, later) == due_in_sql(store, later)
    assert {"DELIVERED-5D", "DELIVERED-2D", "INPOST-12H", "WARRANTY-ENDING"} <= due_in_sql(
        store, later
    )


def test_a_parcel_moving_is_selected_once_its_first_scan_is_late(store: Store) -> None:
    """MOVING's label was made a day before NOW: its first scan is late 48 hours on (the
    other checks a moving parcel has are in tests/store/test_delay_watch.py)."""
    assert "MOVING" not in due_in_sql(store, moving=True)
    assert "MOVING" in due_in_sql(store, NOW + timedelta(days=1), moving=True)
    assert "MOVING" not in due_in_sql(store, NOW + timedelta(days=1))


def test_no_thresholds_and_nothing_moving_select_nothing(store: Store) -> None:
    assert store.orders_due_for_time_events(
        NOW, delivered_ago_days={}, warranty_ending_days=()
    ) == []
