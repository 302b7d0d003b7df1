"""Orders, their customers and items, rejected rows, and which orders have date-based
events due (PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from aftersale.models import EventKind, Order
from aftersale.store.postgres.connection import Connection
from aftersale.store.records import CustomerChange, Rejection, StoredCustomer
from aftersale.store.rows import (
    CUSTOMER_COLS,
    CUSTOMER_UPSERT,
    ITEM_COLS,
    ORDER_COLS,
    REF_COLS,
    TERMINAL,
    customer_change_rows,
    customer_rows,
    order_rows,
    orders_from_rows,
    stored_customer_from_row,
    to_db,
)

CUSTOMER_TYPES = {
    "customer_id": "varchar",
    "name": "varchar",
    "email": "varchar",
    "phone": "varchar",
    "locale": "varchar",
    "time_zone": "varchar",
    "consent_email": "boolean",
    "consent_sms": "boolean",
    "country": "varchar",
    "tags": "varchar[]",
    "updated_at": "timestamp",
}
CHANGE_TYPES = {
    "customer_id": "varchar",
    "order_id": "varchar",
    "source": "varchar",
    "as_of": "timestamp",
    "applied": "boolean",
    "changes": "json",
    "recorded_at": "timestamp",
}
ORDER_TYPES = {
    "order_id": "varchar",
    "customer_id": "varchar",
    "placed_at": "timestamp",
    "promised_delivery": "date",
    "shipping_country": "varchar",
    "source": "varchar",
    "imported_at": "timestamp",
}
ITEM_TYPES = {
    "order_id": "varchar",
    "line": "integer",
    "sku": "varchar",
    "name": "varchar",
    "category": "varchar",
    "quantity": "integer",
    "price": "numeric",
    "currency": "varchar",
    "warranty_months": "integer",
}
SHIPMENT_TYPES = {
    "shipment_id": "varchar",
    "order_id": "varchar",
    "carrier": "varchar",
    "carrier_candidates": "varchar[]",
    "tracking_number": "varchar",
    "items": "varchar[]",
    "status": "varchar",
    "created_at": "timestamp",
    "next_check_at": "timestamp",
    "poll_failures": "integer",
}
_REJECTION_TYPES = {
    "source": "varchar",
    "line": "integer",
    "reason": "varchar",
    "rejected_at": "timestamp",
}


class Orders(Connection):
    def save_orders(
        self,
        orders: Sequence[Order],
        *,
        source: str,
        now: datetime,
        candidates: Mapping[str, list[str]] | None = None,
        changes: Sequence[CustomerChange] = (),
    ) -> tuple[int, int]:
        known = self.known_order_ids([o.order_id for o in orders])
        unique: dict[str, Order] = {}
        for order in orders:
            if order.order_id not in known:
                unique.setdefault(order.order_id, order)
        fresh = list(unique.values())
        rows = order_rows(fresh, source=source, now=now, candidates=candidates or {})
        # Keys in a fixed order: two imports at once lock rows in the same order, no deadlock.
        rows.customers.sort(key=lambda r: r["customer_id"])
        with self.transaction():
            self.insert_unnest("customers", CUSTOMER_TYPES, rows.customers, CUSTOMER_UPSERT)
            self.insert_unnest("customer_changes", CHANGE_TYPES, customer_change_rows(changes, now))
            self.insert_unnest("orders", ORDER_TYPES, rows.orders, "ON CONFLICT DO NOTHING")
            self.insert_unnest("items", ITEM_TYPES, rows.items, "ON CONFLICT DO NOTHING")
            self.insert_unnest(
                "shipments", SHIPMENT_TYPES, rows.shipments, "ON CONFLICT DO NOTHING"
            )
        return len(fresh), len(orders) - len(fresh)

    def update_customers(
        self, customers: Sequence[StoredCustomer], changes: Sequence[CustomerChange], now: datetime
    ) -> None:
        # within the caller's transaction (the platform update that brought the change)
        rows = customer_rows(customers)
        self.insert_unnest("customers", CUSTOMER_TYPES, rows, CUSTOMER_UPSERT)
        self.insert_unnest("customer_changes", CHANGE_TYPES, customer_change_rows(changes, now))

    def load_customers(self, customer_ids: Iterable[str]) -> dict[str, StoredCustomer]:
        ids = list(set(customer_ids))
        if not ids:
            return {}
        rows = self.rows(
            f"SELECT {CUSTOMER_COLS} FROM customers WHERE customer_id = ANY(%s)", [ids]
        )
        return {r[0]: stored_customer_from_row(r) for r in rows}

    def known_order_ids(self, order_ids: Iterable[str]) -> set[str]:
        ids = list(set(order_ids))
        if not ids:
            return set()
        rows = self.rows("SELECT order_id FROM orders WHERE order_id = ANY(%s)", [ids])
        return {r[0] for r in rows}

    def known_tracking_numbers(self, numbers: Iterable[str]) -> dict[str, str]:
        nums = list(set(numbers))
        if not nums:
            return {}
        rows = self.rows(
            "SELECT tracking_number, order_id FROM shipments WHERE tracking_number = ANY(%s)",
            [nums],
        )
        return {r[0]: r[1] for r in rows}

    def record_rejections(self, rejections: Sequence[Rejection], now: datetime) -> None:
        self.insert_unnest(
            "rejections",
            _REJECTION_TYPES,
            [
                {"source": r.source, "line": r.line, "reason": r.reason, "rejected_at": to_db(now)}
                for r in rejections
            ],
        )

    def load_orders(self, order_ids: Iterable[str]) -> dict[str, Order]:
        ids = list(set(order_ids))
        if not ids:
            return {}
        return orders_from_rows(
            self.rows(
                f"SELECT {ORDER_COLS} FROM orders o JOIN customers c USING (customer_id) "
                "WHERE o.order_id = ANY(%s)",
                [ids],
            ),
            self.rows(
                f"SELECT {ITEM_COLS} FROM items WHERE order_id = ANY(%s) ORDER BY order_id, line",
                [ids],
            ),
            self.rows(
                f"SELECT {REF_COLS} FROM shipments WHERE order_id = ANY(%s) AND return_id IS NULL "
                "ORDER BY order_id, created_at, shipment_id",
                [ids],
            ),
        )

    def load_order(self, order_id: str) -> Order | None:
        return self.load_orders([order_id]).get(order_id)

    def customer_ids_of(self, order_ids: Iterable[str]) -> dict[str, str]:
        ids = list(set(order_ids))
        if not ids:
            return {}
        rows = self.rows("SELECT order_id, customer_id FROM orders WHERE order_id = ANY(%s)", [ids])
        return {r[0]: r[1] for r in rows}

    def orders_without_event(
        self, kind: EventKind, *, among: Iterable[str] | None = None
    ) -> list[str]:
        sql = (
            "SELECT order_id FROM orders o WHERE NOT EXISTS (SELECT 1 FROM domain_events e "
            "WHERE e.order_id = o.order_id AND e.kind = %s)"
        )
        params: list[Any] = [kind.value]
        if among is not None:
            sql += " AND order_id = ANY(%s)"
            params.append(list(among))
        rows = self.rows(f"{sql} ORDER BY placed_at", params)
        return [r[0] for r in rows]

    def orders_due_for_time_events(
        self,
        now: datetime,
        *,
        delivered_ago_days: Mapping[str | None, Sequence[int]],
        warranty_ending_days: Sequence[int],
        active_shipments: bool = True,
    ) -> list[str]:
        # As the DuckDB backend: each event's time computed as tracking.detect does, an
        # order whose event is stored at that exact time left out.
        pairs = [(c, days) for c, all_days in delivered_ago_days.items() for days in all_days]
        params: dict[str, Any] = {
            "now": to_db(now),
            "terminal": TERMINAL,
            "own": [c for c in delivered_ago_days if c is not None],
            "carriers": [c for c, _ in pairs],
            "days": [d for _, d in pairs],
            "warranty_days": list(warranty_ending_days),
        }
        parts = []
        if pairs:
            parts.append(
                "SELECT s.order_id FROM shipments s, "
                "unnest(%(carriers)s::varchar[], %(days)s::int[]) AS t(carrier, days) "
                "WHERE s.status = 'delivered' AND s.delivered_at IS NOT NULL "
                "AND s.return_id IS NULL "
                "AND (t.carrier = s.carrier OR (t.carrier IS NULL "
                "AND (s.carrier IS NULL OR s.carrier <> ALL(%(own)s::varchar[])))) "
                "AND s.delivered_at + make_interval(days => t.days) <= %(now)s "
                "AND NOT EXISTS (SELECT 1 FROM domain_events e "
                "WHERE e.kind = 'delivered_ago' AND e.shipment_id = s.shipment_id "
                "AND e.occurred_at = s.delivered_at + make_interval(days => t.days))"
            )
        if warranty_ending_days:
            parts.append(
                "SELECT w.order_id FROM ("
                "SELECT i.order_id, i.sku, "
                "coalesce(max(s.delivered_at), min(o.placed_at)) "
                "+ make_interval(months => min(i.warranty_months)) AS ends "
                "FROM items i JOIN orders o USING (order_id) "
                "LEFT JOIN shipments s ON s.order_id = i.order_id AND s.return_id IS NULL "
                "WHERE i.warranty_months > 0 GROUP BY i.order_id, i.line, i.sku) w, "
                "unnest(%(warranty_days)s::int[]) AS d(days) "
                "WHERE w.ends > %(now)s AND w.ends - make_interval(days => d.days) <= %(now)s "
                "AND NOT EXISTS (SELECT 1 FROM domain_events e "
                "WHERE e.kind = 'warranty_ending' AND e.order_id = w.order_id "
                "AND e.item_sku = w.sku AND e.occurred_at = w.ends - make_interval(days => d.days))"
            )
        if active_shipments:
            parts.append("SELECT order_id FROM shipments WHERE status <> ALL(%(terminal)s)")
        if not parts:
            return []
        return sorted(r[0] for r in self.rows(" UNION ".join(parts), params))
