"""Orders, their customers and items, rejected rows, and which orders have date-based
events due (DuckDB)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from aftersale.models import EventKind, Order
from aftersale.store.duckdb.connection import Connection
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
        # Within one batch the last row for an id would silently win in DuckDB 2.0: dedupe.
        unique: dict[str, Order] = {}
        for order in orders:
            if order.order_id not in known:
                unique.setdefault(order.order_id, order)
        fresh = list(unique.values())
        rows = order_rows(fresh, source=source, now=now, candidates=candidates or {})
        with self.transaction():
            self.insert_rows("customers", rows.customers, CUSTOMER_UPSERT)
            self.insert_rows("customer_changes", customer_change_rows(changes, now))
            self.insert_rows("orders", rows.orders, "ON CONFLICT DO NOTHING")
            self.insert_rows("items", rows.items, "ON CONFLICT DO NOTHING")
            self.insert_rows("shipments", rows.shipments, "ON CONFLICT DO NOTHING")
        return len(fresh), len(orders) - len(fresh)

    def update_customers(
        self, customers: Sequence[StoredCustomer], changes: Sequence[CustomerChange], now: datetime
    ) -> None:
        # within the caller's transaction (the platform update that brought the change)
        self.insert_rows("customers", customer_rows(customers), CUSTOMER_UPSERT)
        self.insert_rows("customer_changes", customer_change_rows(changes, now))

    def load_customers(self, customer_ids: Iterable[str]) -> dict[str, StoredCustomer]:
        ids = list(set(customer_ids))
        if not ids:
            return {}
        rows = self.rows(
            f"SELECT {CUSTOMER_COLS} FROM customers WHERE customer_id IN (SELECT unnest(?))",
            [ids],
        )
        return {r[0]: stored_customer_from_row(r) for r in rows}

    def known_order_ids(self, order_ids: Iterable[str]) -> set[str]:
        ids = list(set(order_ids))
        if not ids:
            return set()
        rows = self.rows("SELECT order_id FROM orders WHERE order_id IN (SELECT unnest(?))", [ids])
        return {r[0] for r in rows}

    def known_tracking_numbers(self, numbers: Iterable[str]) -> dict[str, str]:
        nums = list(set(numbers))
        if not nums:
            return {}
        rows = self.rows(
            "SELECT tracking_number, order_id FROM shipments "
            "WHERE tracking_number IN (SELECT unnest(?))",
            [nums],
        )
        return {r[0]: r[1] for r in rows}

    def record_rejections(self, rejections: Sequence[Rejection], now: datetime) -> None:
        self.insert_rows(
            "rejections",
            [
                {"source": r.source, "line": r.line, "reason": r.reason, "rejected_at": to_db(now)}
                for r in rejections
            ],
        )

    def load_orders(self, order_ids: Iterable[str]) -> dict[str, Order]:
        ids = list(set(order_ids))
        if not ids:
            return {}
        where = "WHERE order_id IN (SELECT unnest(?))"
        return orders_from_rows(
            self.rows(
                f"SELECT {ORDER_COLS} FROM orders o JOIN customers c USING (customer_id) "
                "WHERE o.order_id IN (SELECT unnest(?))",
                [ids],
            ),
            self.rows(f"SELECT {ITEM_COLS} FROM items {where} ORDER BY order_id, line", [ids]),
            self.rows(
                f"SELECT {REF_COLS} FROM shipments {where} AND return_id IS NULL "
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
        rows = self.rows(
            "SELECT order_id, customer_id FROM orders WHERE order_id IN (SELECT unnest(?))",
            [ids],
        )
        return {r[0]: r[1] for r in rows}

    def orders_without_event(
        self, kind: EventKind, *, among: Iterable[str] | None = None
    ) -> list[str]:
        sql = (
            "SELECT order_id FROM orders o WHERE NOT EXISTS (SELECT 1 FROM domain_events e "
            "WHERE e.order_id = o.order_id AND e.kind = ?)"
        )
        params: list[Any] = [kind.value]
        if among is not None:
            sql += " AND order_id IN (SELECT unnest(?))"
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
        # Each event's time is computed as tracking.detect computes it (delivered_at + N days;
        # warranty from the last delivery, else the purchase, + M months - N days), and an
        # order whose event is already stored at that exact time is left out: the set stays
        # what is due now, not every order ever delivered.
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
            # (carrier, N) pairs; a NULL carrier's N apply to carriers without their own
            parts.append(
                "SELECT s.order_id FROM shipments s, "
                "(SELECT unnest($carriers) AS carrier, unnest($days) AS days) t "
                "WHERE s.status = 'delivered' AND s.delivered_at IS NOT NULL "
                "AND s.return_id IS NULL "
                "AND (t.carrier = s.carrier OR (t.carrier IS NULL "
                "AND (s.carrier IS NULL OR s.carrier NOT IN (SELECT unnest($own))))) "
                "AND s.delivered_at + to_days(t.days) <= $now "
                "AND NOT EXISTS (SELECT 1 FROM domain_events e "
                "WHERE e.kind = 'delivered_ago' AND e.shipment_id = s.shipment_id "
                "AND e.occurred_at = s.delivered_at + to_days(t.days))"
            )
        if warranty_ending_days:
            parts.append(
                "SELECT w.order_id FROM ("
                "SELECT i.order_id, i.sku, "
                "coalesce(max(s.delivered_at), any_value(o.placed_at)) "
                "+ to_months(any_value(i.warranty_months)) AS ends "
                "FROM items i JOIN orders o USING (order_id) "
                "LEFT JOIN shipments s ON s.order_id = i.order_id AND s.return_id IS NULL "
                "WHERE i.warranty_months > 0 GROUP BY i.order_id, i.line, i.sku) w, "
                "(SELECT unnest($warranty_days) AS days) d "
                "WHERE w.ends > $now AND w.ends - to_days(d.days) <= $now "
                "AND NOT EXISTS (SELECT 1 FROM domain_events e "
                "WHERE e.kind = 'warranty_ending' AND e.order_id = w.order_id "
                "AND e.item_sku = w.sku AND e.occurred_at = w.ends - to_days(d.days))"
            )
        if active_shipments:
            parts.append(
                "SELECT order_id FROM shipments WHERE status NOT IN (SELECT unnest($terminal))"
            )
        if not parts:
            return []
        sql = " UNION ".join(parts)
        used = {name: value for name, value in params.items() if f"${name}" in sql}
        return sorted(r[0] for r in self.rows(sql, used))
