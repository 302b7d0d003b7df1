"""`orders_due_for_shop_promises` selects in SQL every order whose dispatch promise or
return-period reminder tracking/shop_events.py would emit now (a superset by at most a day:
detection decides the exact moment), never a cancelled order nor, for the dispatch promise,
a file's order (it cannot gain a tracking number), and leaves out what was told."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from aftersale.models import Customer, EventKind, Item, Order, ShipmentRef, Status
from aftersale.store import Store, open_store
from aftersale.store.records import PlatformOrderRecord, ReturnParcel, ReturnRecord
from aftersale.tracking.shop_events import ShopPromises, detect_promises

NOW = datetime(2027, 3, 18, 12, 0, tzinfo=UTC)  # a Thursday
PROMISES = ShopPromises("Europe/Warsaw", dispatch_days=2, return_days=30, return_window_days=(5,))
#: order id -> (placed this long before NOW, its parcel delivered this long before NOW
#: (None: no parcel; "moving": a parcel not delivered yet), cancelled, sent back)
CASES = {
    "NO-PARCEL-MON": (timedelta(days=3, hours=3), None, False, False),  # Mon: due Thu 00:00
    "NO-PARCEL-TUE": (timedelta(days=2), None, False, False),  # Tue: due Fri 00:00
    # from a file, not a shop platform: it can never gain a tracking number, so no promise
    "FILE-NO-PARCEL": (timedelta(days=9), None, False, False),
    "NO-PARCEL-CANCELLED": (timedelta(days=9), None, True, False),
    "SHIPPED": (timedelta(days=9), "moving", False, False),
    "DELIVERED-26D": (timedelta(days=30), timedelta(days=26), False, False),  # ends in ~4 days
    "DELIVERED-20D": (timedelta(days=24), timedelta(days=20), False, False),  # ends in ~10
    "DELIVERED-33D": (timedelta(days=37), timedelta(days=33), False, False),  # over
    "DELIVERED-26D-SENT-BACK": (timedelta(days=30), timedelta(days=26), False, True),
    "DELIVERED-26D-RETURN-ASKED": (timedelta(days=30), timedelta(days=26), False, False),
}


def order(order_id: str, placed_ago: timedelta, parcel: bool) -> Order:
    customer = Customer(
        f"C-{order_id}", "Ala", "ala@example.pl", None, "pl", "Europe/Warsaw", True, False, "PL"
    )
    item = Item("SKU-1", "Kettle", "kitchen", 1, Decimal("99"), "PLN")
    refs = (ShipmentRef(f"N-{order_id}", "dhl"),) if parcel else ()
    return Order(order_id, NOW - placed_ago, customer, (item,), refs)


@pytest.fixture
def store(store_target: str) -> Iterator[Store]:
    s = open_store(store_target)
    for oid, (placed_ago, delivered, cancelled, sent_back) in CASES.items():
        placed = NOW - placed_ago
        s.save_orders([order(oid, placed_ago, delivered is not None)], source="t", now=placed)
        if isinstance(delivered, timedelta):
            state = s.load_shipment(f"N-{oid}")
            assert state is not None
            done = replace(state, status=Status.DELIVERED, delivered_at=NOW - delivered)
            s.save_shipment_states([done])
        if not oid.startswith("FILE-"):
            s.save_platform_orders(
                [
                    PlatformOrderRecord(
                        oid, "shopify", oid, placed, cancelled_at=placed if cancelled else None
                    )
                ]
            )
        if sent_back:
            s.add_return_parcels([ReturnParcel(oid, "R1", f"B-{oid}", "dhl")], NOW)
        if oid.endswith("RETURN-ASKED"):
            s.save_returns([ReturnRecord(oid, "R2", "requested", NOW, NOW)])
    yield s
    s.close()


def due_in_sql(store: Store, now: datetime = NOW) -> set[str]:
    return set(
        store.orders_due_for_shop_promises(
            now,
            dispatch_days=PROMISES.dispatch_days,
            return_days=PROMISES.return_days,
            return_window_days=PROMISES.return_window_days,
        )
    )


def due_in_detection(store: Store, ids: set[str], now: datetime = NOW) -> set[str]:
    orders = store.load_orders(ids)
    parcels = store.shipments_of(orders)
    return {
        oid
        for oid, o in orders.items()
        if detect_promises(o, [p for p in parcels.values() if p.order_id == oid], now, PROMISES)
    }


def test_sql_selects_what_detection_emits(store: Store) -> None:
    selected = due_in_sql(store)
    # detection knows nothing of cancellations: the store leaves cancelled orders out
    assert due_in_detection(store, set(CASES)) == {
        "NO-PARCEL-MON",
        "NO-PARCEL-CANCELLED",
        "FILE-NO-PARCEL",
        "DELIVERED-26D",
        "DELIVERED-26D-RETURN-ASKED",  # the store knows of the return, detection does not
    }
    # a superset of what is due (detection decides the exact moment), nothing cancelled
    assert {"NO-PARCEL-MON", "DELIVERED-26D"} <= selected
    assert not selected & {
        "NO-PARCEL-CANCELLED",
        "FILE-NO-PARCEL",
        "SHIPPED",
        "DELIVERED-20D",
        "DELIVERED-33D",
        "DELIVERED-26D-RETURN-ASKED",
    }
    assert due_in_detection(store, selected) == {"NO-PARCEL-MON", "DELIVERED-26D"}


def test_a_dispatch_delay_told_is_not_selected_again(store: Store) -> None:
    orders = store.load_orders(["NO-PARCEL-MON"])
    events = detect_promises(orders["NO-PARCEL-MON"], [], NOW, PROMISES)
    assert [e.kind for e in events] == [EventKind.FULFILMENT_DELAYED]
    store.record_domain_events(events, run_id="r", now=NOW)
    assert "NO-PARCEL-MON" not in due_in_sql(store, NOW + timedelta(days=1))


def test_no_promises_no_orders(store: Store) -> None:
    assert (
        store.orders_due_for_shop_promises(
            NOW, dispatch_days=None, return_days=None, return_window_days=()
        )
        == []
    )
