"""`erase_customer` on both backends: one transaction, counts kept, an erasure record, a
second request answered from that record (issue 15, GDPR art. 17)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from aftersale.dispatch import messages as msgs
from aftersale.models import (
    ChannelKind,
    Customer,
    Decision,
    DomainEvent,
    EventKind,
    Item,
    Order,
    ShipmentRef,
)
from aftersale.store import open_store
from aftersale.store.records import ERASED, Rejection

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def test_erase_customer_keeps_rows_and_counts_and_forgets_the_person(store_target: str) -> None:
    anna = Customer(
        "anna@example.pl",
        "Anna",
        "anna@example.pl",
        "+48601234567",
        "pl",
        "UTC",
        True,
        True,
        "PL",
        ("vip",),
    )
    order = Order(
        "O-1",
        NOW - timedelta(days=1),
        anna,
        (Item("S", "n", "tv", 1, Decimal("1"), "PLN"),),
        (ShipmentRef("1" * 24, "inpost"),),
    )
    event = DomainEvent(EventKind.ORDER_PLACED, "O-1", NOW - timedelta(days=1))
    with open_store(store_target) as store:
        store.save_orders([order], source="t", now=NOW)
        store.record_domain_events([event], run_id="r", now=NOW)
        msgs.queue_decisions(
            store,
            [
                Decision(
                    "thanks",
                    "thanks",
                    ChannelKind.EMAIL,
                    "O-1",
                    "k1",
                    NOW + timedelta(days=1),
                    event,
                )
            ],
            {"O-1": anna.customer_id},
            run_id="r",
            now=NOW,
        )
        store.record_rejections(
            [Rejection("f.ndjson", 3, "customer.email: 'anna@example.pl' is odd")], NOW
        )
        erasure = store.erase_customer("anna@example.pl", NOW)
        assert erasure is not None and not erasure.already
        assert dict(erasure.counts) == {
            "orders": 1,
            "messages": 1,
            "pending_cancelled": 1,
            "history_rows": 0,
            "rejections_scrubbed": 1,
        }
        kept = store.load_order("O-1")
        assert kept is not None and kept.customer.customer_id == erasure.erased_id
        assert (
            kept.customer.name,
            kept.customer.email,
            kept.customer.phone,
            kept.customer.tags,
        ) == (ERASED, None, None, ())
        assert (
            store.count("orders") == 1
            and store.count("messages") == 1
            and store.count("erasures") == 1
        )
        again = store.erase_customer("anna@example.pl", NOW + timedelta(days=1))
        assert again is not None and again.already and again.erased_at == NOW
        assert store.erase_customer("nobody", NOW) is None
