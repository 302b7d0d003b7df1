"""Orders, their customers and items, rejected rows, and which orders have date-based
events due (DuckDB)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from aftersale.models import (
    TERMINAL_STATUSES,
    Customer,
    EventKind,
    Item,
    Order,
    ShipmentRef,
    Status,
)
from aftersale.store.duckdb.connection import Connection, from_db, to_db
from aftersale.store.records import Rejection

_TERMINAL = sorted(s.value for s in TERMINAL_STATUSES)


class Orders(Connection):
    def save_orders(
        self,
        orders: Sequence[Order],
        *,
        source: str,
        now: datetime,
        candidates: Mapping[str, list[str]] | None = None,
    ) -> tuple[int, int]:
        candidates = candidates or {}
        known = self.known_order_ids([o.order_id for o in orders])
        # Within one batch the last row for an id would silently win in DuckDB 2.0: dedupe.
        unique: dict[str, Order] = {}
        for order in orders:
            if order.order_id not in known:
                unique.setdefault(order.order_id, order)
        fresh = list(unique.values())
        customers: dict[str, dict[str, Any]] = {}
        order_rows, item_rows, shipment_rows = [], [], []
        for o in fresh:
            c = o.customer
            customers[c.customer_id] = {
                "customer_id": c.customer_id,
                "name": c.name,
                "email": c.email,
                "phone": c.phone,
                "locale": c.locale,
                "time_zone": c.time_zone,
                "consent_email": c.consent_email,
                "consent_sms": c.consent_sms,
                "country": c.country,
                "tags": list(c.tags),
            }
            order_rows.append(
                {
                    "order_id": o.order_id,
                    "customer_id": c.customer_id,
                    "placed_at": to_db(o.placed_at),
                    "promised_delivery": o.promised_delivery,
                    "shipping_country": o.shipping_country,
                    "source": source,
                    "imported_at": to_db(now),
                }
            )
            for line, item in enumerate(o.items, start=1):
                item_rows.append(
                    {
                        "order_id": o.order_id,
                        "line": line,
                        "sku": item.sku,
                        "name": item.name,
                        "category": item.category,
                        "quantity": item.quantity,
                        "price": item.price,
                        "currency": item.currency,
                        "warranty_months": item.warranty_months,
                    }
                )
            for ref in o.shipments:
                shipment_rows.append(
                    {
                        "shipment_id": ref.tracking_number,
                        "order_id": o.order_id,
                        "carrier": ref.carrier,
                        "carrier_candidates": candidates.get(ref.tracking_number, []),
                        "tracking_number": ref.tracking_number,
                        "status": Status.PENDING.value,
                        "created_at": to_db(now),
                        "next_check_at": to_db(now),
                        "poll_failures": 0,
                    }
                )
        with self.transaction():
            self.insert_rows(
                "customers",
                list(customers.values()),
                "ON CONFLICT (customer_id) DO UPDATE SET name = excluded.name, "
                "email = excluded.email, phone = excluded.phone, locale = excluded.locale, "
                "time_zone = excluded.time_zone, consent_email = excluded.consent_email, "
                "consent_sms = excluded.consent_sms, country = excluded.country, "
                "tags = excluded.tags",
            )
            self.insert_rows("orders", order_rows, "ON CONFLICT DO NOTHING")
            self.insert_rows("items", item_rows, "ON CONFLICT DO NOTHING")
            self.insert_rows("shipments", shipment_rows, "ON CONFLICT DO NOTHING")
        return len(fresh), len(orders) - len(fresh)

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
        order_rows = self.rows(
            "SELECT o.order_id, o.placed_at, o.promised_delivery, o.shipping_country, "
            "c.customer_id, c.name, c.email, c.phone, c.locale, c.time_zone, c.consent_email, "
            "c.consent_sms, c.country, c.tags "
            "FROM orders o JOIN customers c USING (customer_id) "
            "WHERE o.order_id IN (SELECT unnest(?))",
            [ids],
        )
        items: dict[str, list[Item]] = {}
        for r in self.rows(
            "SELECT order_id, sku, name, category, quantity, price, currency, warranty_months "
            "FROM items WHERE order_id IN (SELECT unnest(?)) ORDER BY order_id, line",
            [ids],
        ):
            items.setdefault(r[0], []).append(
                Item(r[1], r[2], r[3], r[4], Decimal(r[5]), r[6], r[7])
            )
        refs: dict[str, list[ShipmentRef]] = {}
        for r in self.rows(
            "SELECT order_id, tracking_number, carrier FROM shipments "
            "WHERE order_id IN (SELECT unnest(?)) ORDER BY order_id, created_at, shipment_id",
            [ids],
        ):
            refs.setdefault(r[0], []).append(ShipmentRef(r[1], r[2]))
        orders = {}
        for r in order_rows:
            customer = Customer(
                customer_id=r[4],
                name=r[5],
                email=r[6],
                phone=r[7],
                locale=r[8],
                time_zone=r[9],
                consent_email=r[10],
                consent_sms=r[11],
                country=r[12],
                tags=tuple(r[13]),
            )
            orders[r[0]] = Order(
                order_id=r[0],
                placed_at=from_db(r[1]),
                customer=customer,
                items=tuple(items.get(r[0], ())),
                shipments=tuple(refs.get(r[0], ())),
                promised_delivery=r[2],
                shipping_country=r[3],
            )
        return orders

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

    def orders_without_event(self, kind: EventKind) -> list[str]:
        rows = self.rows(
            "SELECT order_id FROM orders o WHERE NOT EXISTS (SELECT 1 FROM domain_events e "
            "WHERE e.order_id = o.order_id AND e.kind = ?) ORDER BY placed_at",
            [kind.value],
        )
        return [r[0] for r in rows]

    def orders_with_time_based_events(self, now: datetime, recent_days: int = 60) -> list[str]:
        rows = self.rows(
            "SELECT DISTINCT o.order_id FROM orders o "
            "LEFT JOIN shipments s USING (order_id) "
            "WHERE s.shipment_id IS NULL "
            "OR s.status NOT IN (SELECT unnest(?)) "
            "OR s.delivered_at >= ? - to_days(?) "
            "OR EXISTS (SELECT 1 FROM items i "
            "WHERE i.order_id = o.order_id AND i.warranty_months > 0) "
            "ORDER BY o.order_id",
            [_TERMINAL, to_db(now), recent_days],
        )
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
            "terminal": _TERMINAL,
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
                "LEFT JOIN shipments s USING (order_id) "
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
