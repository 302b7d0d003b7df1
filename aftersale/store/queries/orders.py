"""Orders, their customers and items, rejected rows, and which orders have date-based
events due."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from aftersale.models import EventKind, Order
from aftersale.store.backend import Backend
from aftersale.store.records import CustomerChange, DelayWatch, Rejection, StoredCustomer
from aftersale.store.rows import (
    CUSTOMER_COLS,
    CUSTOMER_UPSERT,
    ITEM_COLS,
    ORDER_COLS,
    REF_COLS,
    customer_change_rows,
    customer_rows,
    order_rows,
    orders_from_rows,
    stored_customer_from_row,
    to_db,
)


class Orders(Backend):
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
        # Keys in a fixed order: two imports at once lock rows in the same order, no deadlock.
        rows.customers.sort(key=lambda r: r["customer_id"])
        with self.transaction():
            self.insert("customers", rows.customers, CUSTOMER_UPSERT)
            self.insert("customer_changes", customer_change_rows(changes, now))
            self.insert("orders", rows.orders, "ON CONFLICT DO NOTHING")
            self.insert("items", rows.items, "ON CONFLICT DO NOTHING")
            self.insert("shipments", rows.shipments, "ON CONFLICT DO NOTHING")
        return len(fresh), len(orders) - len(fresh)

    def update_customers(
        self, customers: Sequence[StoredCustomer], changes: Sequence[CustomerChange], now: datetime
    ) -> None:
        # within the caller's transaction (the platform update that brought the change)
        self.insert("customers", customer_rows(customers), CUSTOMER_UPSERT)
        self.insert("customer_changes", customer_change_rows(changes, now))

    def load_customers(self, customer_ids: Iterable[str]) -> dict[str, StoredCustomer]:
        rows = self.rows_in(f"SELECT {CUSTOMER_COLS} FROM customers", "customer_id", customer_ids)
        return {r[0]: stored_customer_from_row(r) for r in rows}

    def known_order_ids(self, order_ids: Iterable[str]) -> set[str]:
        return {r[0] for r in self.rows_in("SELECT order_id FROM orders", "order_id", order_ids)}

    def known_tracking_numbers(self, numbers: Iterable[str]) -> dict[str, str]:
        rows = self.rows_in(
            "SELECT tracking_number, order_id FROM shipments", "tracking_number", numbers
        )
        return {r[0]: r[1] for r in rows}

    def record_rejections(self, rejections: Sequence[Rejection], now: datetime) -> None:
        self.insert(
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
        return orders_from_rows(
            self.rows_in(
                f"SELECT {ORDER_COLS} FROM orders o JOIN customers c USING (customer_id)",
                "o.order_id",
                ids,
            ),
            self.rows_in(
                f"SELECT {ITEM_COLS} FROM items", "order_id", ids, "ORDER BY order_id, line"
            ),
            self.rows_in(
                f"SELECT {REF_COLS} FROM shipments",
                "order_id",
                ids,
                "AND return_id IS NULL ORDER BY order_id, created_at, shipment_id",
            ),
        )

    def load_order(self, order_id: str) -> Order | None:
        return self.load_orders([order_id]).get(order_id)

    def customer_ids_of(self, order_ids: Iterable[str]) -> dict[str, str]:
        rows = self.rows_in("SELECT order_id, customer_id FROM orders", "order_id", order_ids)
        return {r[0]: r[1] for r in rows}

    def orders_without_event(
        self, kind: EventKind, *, among: Iterable[str] | None = None
    ) -> list[str]:
        d = self.dialect
        sql = (
            "SELECT order_id FROM orders o WHERE NOT EXISTS (SELECT 1 FROM domain_events e "
            f"WHERE e.order_id = o.order_id AND e.kind = {d.param})"
        )
        params: list[Any] = [kind.value]
        if among is not None:
            sql += f" AND {d.in_list('order_id')}"
            params.append(list(among))
        rows = self.rows(f"{sql} ORDER BY placed_at", params)
        return [r[0] for r in rows]

    def orders_due_for_time_events(
        self,
        now: datetime,
        *,
        delivered_ago_days: Mapping[str | None, Sequence[int]],
        warranty_ending_days: Sequence[int],
        moving: DelayWatch | None = None,
    ) -> list[str]:
        # Each event's time is computed as tracking.detect computes it (delivered_at + N days;
        # warranty from the last delivery, else the purchase, + M months - N days), and an
        # order whose event is already stored at that exact time is left out: the set stays
        # what is due now, not every order ever delivered.
        d = self.dialect
        now_ = d.named("now")
        pairs = [(c, days) for c, all_days in delivered_ago_days.items() for days in all_days]
        # DuckDB refuses a named parameter the statement does not use: each part adds its own
        params: dict[str, Any] = {}
        parts = []
        if pairs:
            # (carrier, N) pairs; a NULL carrier's N apply to carriers without their own
            params |= {
                "now": to_db(now),
                "own": [c for c in delivered_ago_days if c is not None],
                "carriers": [c for c, _ in pairs],
                "days": [days for _, days in pairs],
            }
            pairs_table = d.unnest(
                "t", {"carrier": ("carriers", "varchar"), "days": ("days", "int")}
            )
            not_own = d.not_in_list("s.carrier", d.named("own", "varchar[]"))
            after = f"s.delivered_at + {d.interval('t.days', 'days')}"
            parts.append(
                f"SELECT s.order_id FROM shipments s, {pairs_table} "
                "WHERE s.status = 'delivered' AND s.delivered_at IS NOT NULL "
                "AND s.return_id IS NULL "
                "AND (t.carrier = s.carrier OR (t.carrier IS NULL "
                f"AND (s.carrier IS NULL OR {not_own}))) "
                f"AND {after} <= {now_} "
                "AND NOT EXISTS (SELECT 1 FROM domain_events e "
                "WHERE e.kind = 'delivered_ago' AND e.shipment_id = s.shipment_id "
                f"AND e.occurred_at = {after})"
            )
        if warranty_ending_days:
            params |= {"now": to_db(now), "warranty_days": list(warranty_ending_days)}
            before = f"w.ends - {d.interval('d.days', 'days')}"
            parts.append(
                "SELECT w.order_id FROM ("
                "SELECT i.order_id, i.sku, "
                "coalesce(max(s.delivered_at), min(o.placed_at)) "
                f"+ {d.interval('min(i.warranty_months)', 'months')} AS ends "
                "FROM items i JOIN orders o USING (order_id) "
                "LEFT JOIN shipments s ON s.order_id = i.order_id AND s.return_id IS NULL "
                "WHERE i.warranty_months > 0 GROUP BY i.order_id, i.line, i.sku) w, "
                f"{d.unnest('d', {'days': ('warranty_days', 'int')})} "
                f"WHERE w.ends > {now_} AND {before} <= {now_} "
                "AND NOT EXISTS (SELECT 1 FROM domain_events e "
                "WHERE e.kind = 'warranty_ending' AND e.order_id = w.order_id "
                f"AND e.item_sku = w.sku AND e.occurred_at = {before})"
            )
        if moving is not None:
            params |= {
                "not_shipped": list(moving.not_shipped),
                "first_scan_by": to_db(moving.first_scan_by),
                "stale": list(moving.stale),
                "stale_by": to_db(moving.stale_by),
                "pickup": list(moving.pickup),
                "pickup_by": to_db(moving.pickup_by),
                "eta": list(moving.eta),
                "eta_by": moving.eta_by,
                "arriving": list(moving.arriving),
                "arriving_by": moving.arriving_by,
            }

            def among(name: str) -> str:
                return d.in_list("s.status", d.named(name, "varchar[]"))

            # since its label when it has one, else since the shop created it
            label_or_made = (
                "coalesce(CASE WHEN s.status = 'label_created' THEN s.status_since END, "
                "s.created_at)"
            )
            parts.append(
                "SELECT s.order_id FROM shipments s JOIN orders o USING (order_id) WHERE "
                f"({among('not_shipped')} AND {label_or_made} <= {d.named('first_scan_by')}) "
                f"OR ({among('stale')} AND s.last_event_at <= {d.named('stale_by')}) "
                f"OR ({among('pickup')} AND s.status_since <= {d.named('pickup_by')}) "
                f"OR ({among('eta')} AND (s.estimated_delivery <= {d.named('eta_by')} "
                f"OR o.promised_delivery <= {d.named('eta_by')})) "
                f"OR ({among('arriving')} AND s.estimated_delivery <= {d.named('arriving_by')})"
            )
        if not parts:
            return []
        return sorted(r[0] for r in self.rows(" UNION ".join(parts), params))
