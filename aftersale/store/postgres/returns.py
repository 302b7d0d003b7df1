"""Refunds and returns a shop platform reported, parcels sent back, and the orders whose
shop promises (dispatch, return period) may be due (PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from aftersale.models import EventKind, Status
from aftersale.store.postgres.connection import Connection
from aftersale.store.postgres.orders import SHIPMENT_TYPES
from aftersale.store.records import RefundRecord, ReturnParcel, ReturnRecord
from aftersale.store.rows import (
    OPEN_RETURN_STATUSES,
    from_db,
    refund_rows,
    return_parcel_rows,
    return_rows,
    to_db,
)

_REFUND_TYPES = {
    "order_id": "varchar",
    "refund_id": "varchar",
    "amount": "varchar",
    "currency": "varchar",
    "created_at": "timestamp",
}
_RETURN_TYPES = {
    "order_id": "varchar",
    "return_id": "varchar",
    "status": "varchar",
    "requested_at": "timestamp",
    "updated_at": "timestamp",
}
_RETURN_COLS = ", ".join(_RETURN_TYPES)


class Returns(Connection):
    def order_ids_by_platform_id(self, platform: str, ids: Iterable[str]) -> dict[str, str]:
        wanted = list(set(ids))
        if not wanted:
            return {}
        rows = self.rows(
            "SELECT platform_order_id, order_id FROM platform_orders "
            "WHERE platform = %s AND platform_order_id = ANY(%s)",
            [platform, wanted],
        )
        return {r[0]: r[1] for r in rows}

    def save_refunds(self, refunds: Sequence[RefundRecord]) -> int:
        rows = sorted(refund_rows(refunds), key=lambda r: (r["order_id"], r["refund_id"]))
        return len(
            self.insert_unnest(
                "order_refunds", _REFUND_TYPES, rows, "ON CONFLICT DO NOTHING RETURNING order_id"
            )
        )

    def save_returns(self, returns: Sequence[ReturnRecord]) -> int:
        # one row per key in a statement (ON CONFLICT cannot touch a row twice): newest last
        latest: dict[tuple[str, str], dict[str, Any]] = {}
        for row in sorted(return_rows(returns), key=lambda r: r["updated_at"]):
            latest[(row["order_id"], row["return_id"])] = row
        return len(
            self.insert_unnest(
                "order_returns",
                _RETURN_TYPES,
                [latest[k] for k in sorted(latest)],
                "ON CONFLICT (order_id, return_id) DO UPDATE SET status = excluded.status, "
                "updated_at = excluded.updated_at "
                "WHERE excluded.updated_at > order_returns.updated_at "
                "OR (excluded.updated_at = order_returns.updated_at "
                "AND excluded.status <> order_returns.status) RETURNING order_id",
            )
        )

    def returns_by_id(self, return_ids: Iterable[str]) -> dict[str, ReturnRecord]:
        ids = list(set(return_ids))
        if not ids:
            return {}
        rows = self.rows(
            f"SELECT {_RETURN_COLS} FROM order_returns WHERE return_id = ANY(%s)", [ids]
        )
        return {r[1]: _return(r) for r in rows}

    def refunds_and_returns_of(
        self, order_ids: Iterable[str]
    ) -> tuple[list[RefundRecord], list[ReturnRecord]]:
        ids = list(set(order_ids))
        if not ids:
            return [], []
        refunds = self.rows(
            "SELECT order_id, refund_id, amount, currency, created_at FROM order_refunds "
            "WHERE order_id = ANY(%s) ORDER BY created_at, refund_id",
            [ids],
        )
        returns = self.rows(
            f"SELECT {_RETURN_COLS} FROM order_returns WHERE order_id = ANY(%s) "
            "ORDER BY requested_at, return_id",
            [ids],
        )
        return (
            [RefundRecord(r[0], r[1], Decimal(r[2]), r[3], from_db(r[4])) for r in refunds],
            [_return(r) for r in returns],
        )

    def add_return_parcels(self, parcels: Sequence[ReturnParcel], now: datetime) -> int:
        types = {**SHIPMENT_TYPES, "return_id": "varchar"}
        rows = [{**r, "items": None} for r in return_parcel_rows(parcels, now)]
        inserted = self.insert_unnest(
            "shipments", types, rows, "ON CONFLICT DO NOTHING RETURNING shipment_id"
        )
        return len(inserted)

    def refunds_without_event(self) -> list[RefundRecord]:
        rows = self.rows(
            "SELECT order_id, refund_id, amount, currency, created_at FROM order_refunds r "
            "WHERE NOT EXISTS (SELECT 1 FROM domain_events e WHERE e.kind = %s "
            "AND e.order_id = r.order_id AND e.reason = r.refund_id) ORDER BY created_at",
            [EventKind.REFUND_ISSUED.value],
        )
        return [RefundRecord(r[0], r[1], Decimal(r[2]), r[3], from_db(r[4])) for r in rows]

    def returns_without_event(self) -> list[ReturnRecord]:
        rows = self.rows(
            f"SELECT {_RETURN_COLS} FROM order_returns r WHERE "
            "(status = ANY(%s) AND NOT EXISTS (SELECT 1 FROM domain_events e "
            "WHERE e.kind = %s AND e.order_id = r.order_id AND e.reason = r.return_id)) "
            "OR (status = %s AND NOT EXISTS (SELECT 1 FROM domain_events e "
            "WHERE e.kind = %s AND e.order_id = r.order_id AND e.reason = r.return_id)) "
            "ORDER BY requested_at",
            [
                list(OPEN_RETURN_STATUSES),
                EventKind.RETURN_REQUESTED.value,
                "declined",
                EventKind.RETURN_DECLINED.value,
            ],
        )
        return [_return(r) for r in rows]

    def cancelled_orders(self, order_ids: Iterable[str]) -> set[str]:
        ids = list(set(order_ids))
        if not ids:
            return set()
        rows = self.rows(
            "SELECT order_id FROM platform_orders WHERE cancelled_at IS NOT NULL "
            "AND order_id = ANY(%s)",
            [ids],
        )
        return {r[0] for r in rows}

    def orders_due_for_shop_promises(
        self,
        now: datetime,
        *,
        dispatch_days: int | None,
        return_days: int | None,
        return_window_days: Sequence[int],
    ) -> list[str]:
        # As the DuckDB backend: a superset, the exact times computed in detection.
        params: dict[str, Any] = {"now": to_db(now)}
        parts = []
        if dispatch_days is not None:
            params |= {"dispatch": dispatch_days, "kind": EventKind.FULFILMENT_DELAYED.value}
            parts.append(
                # only a shop platform's orders gain tracking numbers after they are stored
                "SELECT o.order_id FROM orders o JOIN platform_orders p USING (order_id) "
                "WHERE o.placed_at + make_interval(days => %(dispatch)s) <= %(now)s "
                "AND NOT EXISTS (SELECT 1 FROM shipments s "
                "WHERE s.order_id = o.order_id AND s.return_id IS NULL) "
                "AND NOT EXISTS (SELECT 1 FROM domain_events e "
                "WHERE e.order_id = o.order_id AND e.kind = %(kind)s)"
            )
        if return_days is not None and return_window_days:
            params |= {
                "lead": return_days - max(return_window_days) - 1,
                "ends": return_days + 2,
                "delivered": Status.DELIVERED.value,
                "asked": ["requested", "open", "closed"],
            }
            parts.append(
                # a customer who asked to return the items needs no reminder
                "SELECT order_id FROM shipments WHERE return_id IS NULL "
                "AND order_id NOT IN (SELECT order_id FROM order_returns "
                "WHERE status IN (SELECT unnest(%(asked)s::varchar[]))) "
                "GROUP BY order_id HAVING bool_and(status = %(delivered)s) "
                "AND max(delivered_at) + make_interval(days => %(lead)s) <= %(now)s "
                "AND max(delivered_at) + make_interval(days => %(ends)s) > %(now)s"
            )
        if not parts:
            return []
        sql = (
            f"SELECT order_id FROM ({' UNION '.join(parts)}) due WHERE NOT EXISTS "
            "(SELECT 1 FROM platform_orders p WHERE p.order_id = due.order_id "
            "AND p.cancelled_at IS NOT NULL)"
        )
        return sorted(r[0] for r in self.rows(sql, params))


def _return(r: tuple[Any, ...]) -> ReturnRecord:
    return ReturnRecord(r[0], r[1], r[2], from_db(r[3]), from_db(r[4]))
