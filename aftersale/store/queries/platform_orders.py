"""Shop platform facts per order, and the updates a newer platform copy brings."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from aftersale.models import MessageState, Order
from aftersale.store.backend import Backend
from aftersale.store.records import PlatformOrderRecord
from aftersale.store.rows import from_db, order_rows, to_db

_COLS = (
    "order_id, platform, platform_order_id, updated_at, cancelled_at, cancel_reason, "
    "refunded, refund_currency"
)
_UPDATED = ", ".join(f"{c} = excluded.{c}" for c in _COLS.split(", ") if c != "order_id")


class PlatformOrders(Backend):
    def platform_orders(self, order_ids: Iterable[str]) -> dict[str, PlatformOrderRecord]:
        rows = self.rows_in(f"SELECT {_COLS} FROM platform_orders", "order_id", order_ids)
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
            # in id order: two workers upserting the same orders lock them in the same order
            for r in sorted(records, key=lambda r: r.order_id)
        ]
        self.insert("platform_orders", rows, f"ON CONFLICT (order_id) DO UPDATE SET {_UPDATED}")

    def add_shipments(
        self, orders: Sequence[Order], *, now: datetime, candidates: Mapping[str, list[str]]
    ) -> int:
        rows = order_rows(orders, source="", now=now, candidates=candidates).shipments
        return self.insert_count("shipments", rows, "ON CONFLICT DO NOTHING")

    def cancel_pending_of_orders(self, order_ids: Sequence[str], reason: str, now: datetime) -> int:
        if not order_ids:
            return 0
        d = self.dialect
        p = d.param
        rows = self.rows(
            f"UPDATE messages SET state = {p}, error_text = {p}, updated_at = {p}"
            f"{d.release_lease} WHERE {d.in_list('order_id')} AND state = {p} "
            "RETURNING message_id",
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
