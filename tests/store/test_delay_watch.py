"""The due work reads only the orders whose moving parcel may have a delay or arrival event
due (`delay_watch` -> `orders_due_for_time_events(moving=…)`), not every order with a
parcel on its way: the SQL must hold every order `detect_due` finds such an event for,
whatever the parcel's state, dates and carrier, on both backends."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aftersale.models import Customer, EventKind, Item, Order, ShipmentRef, Status
from aftersale.store import Store, open_store
from aftersale.tracking.detect import DelayThresholds, delay_watch, detect_due

NOW = datetime(2027, 3, 17, 9, 30, tzinfo=UTC)  # a Wednesday
#: the events a moving parcel may have due by date (delivered-N-days and warranty ones are
#: selected by their own SQL: tests/store/test_time_events.py)
WATCHED = {EventKind.DELAYED, EventKind.ARRIVING_TOMORROW}
THRESHOLDS = DelayThresholds(
    carriers={
        "inpost": {"no_first_scan_hours": 24, "stale_business_hours": 24},
        "dhl": {"pickup_wait_hours": 24, "stale_business_hours": 96},
    }
)
CARRIERS = ("inpost", "dhl", "dpd", "ups")
MOVING = [s for s in Status if s not in (Status.DELIVERED, Status.RETURNED_TO_SENDER)]
_ids = itertools.count()

hours_ago = st.integers(min_value=0, max_value=24 * 12).map(lambda h: NOW - timedelta(hours=h))
days_from_now = st.integers(min_value=-6, max_value=6).map(lambda d: NOW.date() + timedelta(d))
parcels = st.fixed_dictionaries(
    {
        "carrier": st.sampled_from(CARRIERS),
        "status": st.sampled_from(MOVING),
        "created": hours_ago,
        "status_since": st.none() | hours_ago,
        "last_event_at": st.none() | hours_ago,
        "estimated_delivery": st.none() | days_from_now,
        "promised_delivery": st.none() | days_from_now,
        "time_zone": st.sampled_from(["Europe/Warsaw", "America/Los_Angeles", "Pacific/Auckland"]),
    }
)


@pytest.fixture
def store(store_target: str) -> Iterator[Store]:
    s = open_store(store_target)
    yield s
    s.close()


def stored(store: Store, parcel: dict[str, object]) -> tuple[Order, str]:
    """One order of one parcel in this state; returns it and its shipment id."""
    oid = f"W-{next(_ids):05d}"
    customer = Customer(
        f"C-{oid}", "Ala", "ala@example.pl", None, "pl", str(parcel["time_zone"]), True, False
    )
    item = Item("SKU-1", "Kettle", "kitchen", 1, Decimal("99"), "PLN", None)
    promised = parcel["promised_delivery"]
    assert promised is None or isinstance(promised, date)
    order = Order(
        oid,
        NOW - timedelta(days=20),
        customer,
        (item,),
        (ShipmentRef(f"N-{oid}", str(parcel["carrier"])),),
        promised_delivery=promised,
    )
    created = parcel["created"]
    assert isinstance(created, datetime)
    store.save_orders([order], source="t", now=created)
    state = store.load_shipment(f"N-{oid}")
    assert state is not None
    store.save_shipment_states(
        [
            replace(
                state,
                status=parcel["status"],  # type: ignore[arg-type]
                status_since=parcel["status_since"],  # type: ignore[arg-type]
                last_event_at=parcel["last_event_at"],  # type: ignore[arg-type]
                estimated_delivery=parcel["estimated_delivery"],  # type: ignore[arg-type]
            )
        ]
    )
    return order, state.shipment_id


def selected(store: Store, now: datetime = NOW) -> set[str]:
    return set(
        store.orders_due_for_time_events(
            now,
            delivered_ago_days={},
            warranty_ending_days=(),
            moving=delay_watch(THRESHOLDS, now),
        )
    )


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=st.lists(parcels, min_size=1, max_size=12))
def test_every_order_with_a_check_due_is_selected(store: Store, batch: list[dict]) -> None:
    orders = dict(stored(store, parcel) for parcel in batch)
    chosen = selected(store)
    shipments = store.shipments_of(o.order_id for o in orders)
    for order, sid in orders.items():
        due = detect_due(order, [shipments[sid]], NOW, THRESHOLDS)
        if any(e.kind in WATCHED for e in due):
            assert order.order_id in chosen, (shipments[sid], order.promised_delivery, due)


def test_a_parcel_on_its_way_with_nothing_due_is_not_read(store: Store) -> None:
    fresh = {
        "carrier": "dpd",
        "status": Status.IN_TRANSIT,
        "created": NOW - timedelta(hours=30),
        "status_since": NOW - timedelta(hours=20),
        "last_event_at": NOW - timedelta(hours=3),
        "estimated_delivery": NOW.date() + timedelta(days=4),
        "promised_delivery": NOW.date() + timedelta(days=5),
        "time_zone": "Europe/Warsaw",
    }
    quiet, _ = stored(store, fresh)
    stale, _ = stored(store, {**fresh, "last_event_at": NOW - timedelta(days=5)})
    late, _ = stored(store, {**fresh, "promised_delivery": NOW.date() - timedelta(days=1)})
    arriving, _ = stored(store, {**fresh, "estimated_delivery": NOW.date() + timedelta(days=1)})
    no_scan, _ = stored(
        store,
        {**fresh, "status": Status.LABEL_CREATED, "status_since": NOW - timedelta(days=3)},
    )
    pickup, _ = stored(
        store,
        {**fresh, "status": Status.AVAILABLE_FOR_PICKUP, "status_since": NOW - timedelta(days=4)},
    )
    assert selected(store) == {o.order_id for o in (stale, late, arriving, no_scan, pickup)}
    # A day on its last scan is 27 hours old: past InPost's 24-hour bound, the loosest of
    # all carriers', so it is read, and detect_due (DPD's 48 hours) finds nothing yet.
    later = NOW + timedelta(days=1)
    assert quiet.order_id in selected(store, later)
    parcels_now = list(store.shipments_of([quiet.order_id]).values())
    assert detect_due(quiet, parcels_now, later, THRESHOLDS) == []


def test_a_check_due_this_very_moment_is_selected(store: Store) -> None:
    """Each bound at its edge: the carrier's threshold has passed exactly now."""
    base = {
        "created": NOW - timedelta(days=2),
        "status_since": None,
        "last_event_at": None,
        "estimated_delivery": None,
        "promised_delivery": None,
        "time_zone": "Europe/Warsaw",
    }
    edges = [
        {**base, "carrier": "inpost", "status": Status.IN_TRANSIT,
         "last_event_at": NOW - timedelta(hours=24)},
        {**base, "carrier": "inpost", "status": Status.LABEL_CREATED,
         "status_since": NOW - timedelta(hours=24)},
        {**base, "carrier": "dhl", "status": Status.AVAILABLE_FOR_PICKUP,
         "status_since": NOW - timedelta(hours=24)},
    ]  # fmt: skip
    for parcel in edges:
        order, sid = stored(store, parcel)
        due = detect_due(order, [store.shipments_of([order.order_id])[sid]], NOW, THRESHOLDS)
        assert any(e.kind is EventKind.DELAYED for e in due), parcel
        assert order.order_id in selected(store), parcel
