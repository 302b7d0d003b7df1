"""A return's news, chosen in SQL on both backends: a return asked for is told once as
`return_requested`, a declined one once as `return_declined` (also after the request was
told), and a return declined before any cycle saw it only as declined."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from aftersale.models import Customer, EventKind, Item, Order
from aftersale.store import Store, open_store
from aftersale.store.records import ReturnRecord
from aftersale.tracking.shop_events import detect_return

NOW = datetime(2027, 3, 18, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


@pytest.fixture
def store(store_target: str) -> Iterator[Store]:
    s = open_store(store_target)
    customer = Customer("C-1", "Ala", "ala@example.pl", None, "pl", "Europe/Warsaw", True, False)
    item = Item("SKU-1", "Kettle", "kitchen", 1, Decimal("99"), "PLN")
    orders = [Order(oid, NOW - timedelta(days=9), customer, (item,), ()) for oid in ("A", "B")]
    s.save_orders(orders, source="t", now=NOW - timedelta(days=9))
    yield s
    s.close()


def news(store: Store, at: datetime) -> list[tuple[str, EventKind, datetime]]:
    """What a cycle at `at` tells of returns, recorded as the cycle records it."""
    events = [detect_return(r) for r in store.returns_without_event()]
    store.record_domain_events(events, run_id=f"r-{at:%H%M}", now=at)
    return [(e.order_id, e.kind, e.occurred_at) for e in events]


def test_a_declined_return_is_told_once_after_its_request(store: Store) -> None:
    asked = NOW - 5 * HOUR
    store.save_returns([ReturnRecord("A", "R1", "requested", asked, asked)])
    assert news(store, NOW - 4 * HOUR) == [("A", EventKind.RETURN_REQUESTED, asked)]
    assert news(store, NOW - 3 * HOUR) == []
    declined = NOW - 2 * HOUR
    store.save_returns([ReturnRecord("A", "R1", "declined", asked, declined)])
    assert news(store, NOW - HOUR) == [("A", EventKind.RETURN_DECLINED, declined)]
    assert news(store, NOW) == []


def test_a_return_declined_before_any_cycle_is_only_told_as_declined(store: Store) -> None:
    asked, declined = NOW - 3 * HOUR, NOW - 2 * HOUR
    store.save_returns([ReturnRecord("B", "R2", "declined", asked, declined)])
    assert news(store, NOW - HOUR) == [("B", EventKind.RETURN_DECLINED, declined)]
    assert news(store, NOW) == []


def test_closed_and_cancelled_returns_tell_nothing_new(store: Store) -> None:
    asked = NOW - 3 * HOUR
    store.save_returns(
        [
            ReturnRecord("A", "R3", "closed", asked, asked + HOUR),
            ReturnRecord("B", "R4", "cancelled", asked, asked + HOUR),
        ]
    )
    assert news(store, NOW) == []
