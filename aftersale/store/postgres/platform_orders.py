"""Shop platform facts per order, and the updates a newer platform copy brings
(PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from aftersale.models import MessageState, Order
from aftersale.store.postgres.connection import Connection
from aftersale.store.postgres.orders import SHIPMENT_TYPES
from aftersale.store.records import PlatformOrderRecord
from aftersale.store.rows import from_db, order_rows, to_db

_TYPES = {
    "order_id": "varchar",
    "platform": "varchar",
    "platform_order_id": "varchar",
    "updated_at": "timestamp",
    "cancelled_at": "timestamp",
    "cancel_reason": "varchar",
    "refunded": "varchar",
    "refund_currency": "varchar",
}
_COLS = ", ".join(_TYPES)


class PlatformOrders(Connection):
    def platform_orders(self, order_ids: Iterable[str]) -> dict[str, PlatformOrderRecord]:
        ids = list(set(order_ids))
        if not ids:
            return {}
        rows = self.rows(f"SELECT {_COLS} FROM platform_orders WHERE order_id = ANY(%s)", [ids])
        return {r[0]: _record(r) for r in rows}

    def save_platform_orders(self, records: Sequence[PlatformOrderRecord]) -> None:
        rows = [
            {
                "order_id": r.order_id,
                "platform": r.platform,
                "platform_order_id": r.platform_order_id,
                "updated_at": to_db(r.updated_at),
                "cancelled_at": to_db(r.cancelled_at),
                "cancel_reason": r.cancel_reason,
                "refunded": str(r.refunded),
                "refund_currency": r.refund_currency,
            }
            for r in sorted(records, key=lambda r: r.order_id)
        ]
        sets = ", ".join(f"{c} = excluded.{c}" for c in _TYPES if c != "order_id")
        self.insert_unnest(
            "platform_orders", _TYPES, rows, f"ON CONFLICT (order_id) DO UPDATE SET {sets}"
        )

    def add_shipments(
        self, orders: Sequence[Order], *, now: datetime, candidates: Mapping[str, list[str]]
    ) -> int:
        rows = order_rows(orders, source="", now=now, candidates=candidates).shipments
        inserted = self.insert_unnest(
            "shipments", SHIPMENT_TYPES, rows, "ON CONFLICT DO NOTHING RETURNING shipment_id"
        )
        return len(inserted)

    def cancel_pending_of_orders(self, order_ids: Sequence[str], reason: str, now: datetime) -> int:
        if not order_ids:
            return 0
        rows = self.rows(
            "UPDATE messages SET state = %s, error_text = %s, updated_at = %s, "
            "lease_owner = NULL, lease_until = NULL "
            "WHERE order_id = ANY(%s) AND state = %s RETURNING message_id",
            [
                MessageState.CANCELLED.value,
                reason,
                to_db(now),
                list(order_ids),
                MessageState.PENDING.value,
            ],
        )
        return len(rows)


def _record(r: tuple[Any, ...]) -> PlatformOrderRecord:
    return PlatformOrderRecord(
        order_id=r[0],
        platform=r[1],
        platform_order_id=r[2],
        updated_at=from_db(r[3]),
        cancelled_at=from_db(r[4]),
        cancel_reason=r[5],
        refunded=Decimal(r[6]),
        refund_currency=r[7],
    )
