"""What a shop platform said about an order, on both backends: its record is replaced,
later fulfilments add shipments once, a cancellation cancels only pending messages."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

from aftersale.models import ChannelKind, ShipmentRef
from aftersale.store import open_store
from aftersale.store.records import NewMessage, PlatformOrderRecord
from tests.store.test_store import NOW, make_order


def message(key: str) -> NewMessage:
    return NewMessage(
        message_id=f"m-{key}",
        idempotency_key=key,
        rule_id="r",
        template="t",
        channel=ChannelKind.EMAIL,
        marketing=False,
        order_id="NW-1",
        shipment_id=None,
        item_sku=None,
        customer_id="C-1",
        event_id="e",
        due_at=NOW + timedelta(days=1),
        run_id="run",
    )


def test_platform_records_shipments_and_cancellation(store_target: str) -> None:
    with open_store(store_target) as store:
        order = make_order()
        store.save_orders([order], source="t", now=NOW)
        record = PlatformOrderRecord("NW-1", "shopify", "5745", NOW)
        store.save_platform_orders([record])
        later = replace(record, updated_at=NOW + timedelta(hours=1), refunded=Decimal("9.99"))
        store.save_platform_orders([later])
        assert store.platform_orders(["NW-1", "NW-2"]) == {"NW-1": later}

        split = replace(order, shipments=(ShipmentRef("1Z999AA10123456784", "ups"),))
        assert store.add_shipments([split], now=NOW, candidates={}) == 1
        assert store.add_shipments([split], now=NOW, candidates={}) == 0
        assert sorted(s.carrier or "" for s in store.shipments_of(["NW-1"]).values()) == [
            "inpost",
            "ups",
        ]

        store.queue_messages([message("a"), message("b")], NOW)
        assert store.cancel_pending_of_orders(["NW-1"], "order cancelled", NOW) == 2
        assert store.cancel_pending_of_orders(["NW-1"], "again", NOW) == 0
        assert store.load_message("m-a").state == "cancelled"  # type: ignore[union-attr]
