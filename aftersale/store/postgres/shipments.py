"""Shipments' tracking state, their scans, poll failures and carrier candidates
(PostgreSQL), and the leases that let several workers share the polling.

A worker claims the due shipments of a page of orders with `SELECT … FOR UPDATE SKIP
LOCKED` and a lease (owner, expiry): another worker skips them until the page is written
back (which releases the lease and moves `next_check_at` on), the lease expires, or the
owner's sessions are gone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from aftersale.models import ShipmentState, Status, TrackingEvent
from aftersale.store.postgres.connection import Connection, lease_free, lease_until
from aftersale.store.rows import (
    SHIPMENT_COLS,
    TERMINAL,
    from_db,
    shipment_from_row,
    shipment_update,
    to_db,
)

_DUE = "s.status <> ALL(%(terminal)s) AND (s.next_check_at IS NULL OR s.next_check_at <= %(now)s)"
_UPDATE_TYPES = {
    "shipment_id": "varchar",
    "carrier": "varchar",
    "status": "varchar",
    "code": "varchar",
    "description": "varchar",
    "estimated_delivery": "date",
    "first_estimate": "date",
    "window_start": "timestamp",
    "window_end": "timestamp",
    "delivered_at": "timestamp",
    "pickup_point": "varchar",
    "last_event_at": "timestamp",
    "status_since": "timestamp",
    "last_polled_at": "timestamp",
    "next_check_at": "timestamp",
    "problem": "varchar",
    "poll_failures": "integer",
    "delivery_type": "varchar",
    "pickup_deadline": "timestamp",
    "pickup_hours": "varchar",
}
_SCAN_TYPES = {
    "shipment_id": "varchar",
    "occurred_at": "timestamp",
    "code": "varchar",
    "location": "varchar",
    "status": "varchar",
    "description": "varchar",
    "recorded_at": "timestamp",
}
_COLS_S = ", ".join(f"s.{c.strip()}" for c in SHIPMENT_COLS.split(","))


class Shipments(Connection):
    def due_shipments(self, now: datetime, limit: int | None = None) -> list[ShipmentState]:
        sql = f"SELECT {_COLS_S} FROM shipments s WHERE {_DUE} ORDER BY next_check_at, shipment_id"
        params: dict[str, Any] = {"terminal": TERMINAL, "now": to_db(now)}
        if limit is not None:
            sql += " LIMIT %(limit)s"
            params["limit"] = limit
        return [shipment_from_row(r) for r in self.rows(sql, params)]

    def due_order_ids(self, now: datetime, *, limit: int, after: str | None = None) -> list[str]:
        sql = f"SELECT DISTINCT s.order_id FROM shipments s WHERE {_DUE} AND {lease_free('s')}"
        params = self.lease_params(terminal=TERMINAL, now=to_db(now), limit=limit)
        if after is not None:
            sql += " AND s.order_id > %(after)s"
            params["after"] = after
        return [r[0] for r in self.rows(f"{sql} ORDER BY 1 LIMIT %(limit)s", params)]

    def claim_shipments(self, order_ids: Sequence[str], now: datetime) -> list[ShipmentState]:
        if not order_ids:
            return []
        rows = self.rows(
            "WITH picked AS (SELECT s.shipment_id FROM shipments s "
            f"WHERE s.order_id = ANY(%(orders)s) AND {_DUE} AND {lease_free('s')} "
            "FOR UPDATE SKIP LOCKED) "
            f"UPDATE shipments s SET lease_owner = %(me)s, lease_until = {lease_until()} "
            f"FROM picked WHERE s.shipment_id = picked.shipment_id RETURNING {_COLS_S}",
            self.lease_params(orders=list(order_ids), terminal=TERMINAL, now=to_db(now)),
        )
        return sorted(
            (shipment_from_row(r) for r in rows), key=lambda s: (s.order_id, s.shipment_id)
        )

    def carrier_candidates(self, shipment_ids: Iterable[str]) -> dict[str, list[str]]:
        ids = list(set(shipment_ids))
        if not ids:
            return {}
        rows = self.rows(
            "SELECT shipment_id, carrier_candidates FROM shipments "
            "WHERE shipment_id = ANY(%s) AND cardinality(carrier_candidates) > 1",
            [ids],
        )
        return {r[0]: list(r[1]) for r in rows}

    def poll_failures(self, shipment_ids: Iterable[str]) -> dict[str, int]:
        ids = list(set(shipment_ids))
        if not ids:
            return {}
        rows = self.rows(
            "SELECT shipment_id, poll_failures FROM shipments "
            "WHERE shipment_id = ANY(%s) AND poll_failures > 0",
            [ids],
        )
        return {r[0]: int(r[1]) for r in rows}

    def shipments_of(self, order_ids: Iterable[str]) -> dict[str, ShipmentState]:
        ids = list(set(order_ids))
        if not ids:
            return {}
        rows = self.rows(f"SELECT {SHIPMENT_COLS} FROM shipments WHERE order_id = ANY(%s)", [ids])
        return {r[0]: shipment_from_row(r) for r in rows}

    def load_shipment(self, shipment_id: str) -> ShipmentState | None:
        r = self.one(f"SELECT {SHIPMENT_COLS} FROM shipments WHERE shipment_id = %s", [shipment_id])
        return shipment_from_row(r) if r else None

    def list_shipments(self) -> list[ShipmentState]:
        rows = self.rows(f"SELECT {SHIPMENT_COLS} FROM shipments ORDER BY 1")
        return [shipment_from_row(r) for r in rows]

    def save_shipment_states(
        self, states: Sequence[ShipmentState], poll_failures: Mapping[str, int] | None = None
    ) -> None:
        """Write polled states back in one UPDATE … FROM unnest, releasing their leases."""
        failures = poll_failures or {}
        rows = sorted(
            (shipment_update(s, failures.get(s.shipment_id, 0)) for s in states),
            key=lambda r: r["shipment_id"],
        )
        sets = ", ".join(f"{c} = u.{c}" for c in _UPDATE_TYPES if c != "shipment_id")
        self.update_unnest(
            "shipments", _UPDATE_TYPES, rows, f"{sets}, lease_owner = NULL, lease_until = NULL"
        )

    def save_tracking_events(
        self, events: Sequence[tuple[str, TrackingEvent]], now: datetime
    ) -> int:
        rows = [
            {
                "shipment_id": sid,
                "occurred_at": to_db(e.occurred_at),
                "code": e.code,
                "location": e.location or "",
                "status": e.status.value if e.status else None,
                "description": e.description,
                "recorded_at": to_db(now),
            }
            for sid, e in events
        ]
        unique = {(r["shipment_id"], r["occurred_at"], r["code"], r["location"]): r for r in rows}
        ordered = [unique[k] for k in sorted(unique)]
        inserted = self.insert_unnest(
            "tracking_events", _SCAN_TYPES, ordered, "ON CONFLICT DO NOTHING RETURNING 1"
        )
        return len(inserted)

    def tracking_events(self, shipment_id: str) -> list[TrackingEvent]:
        return self.tracking_events_of([shipment_id]).get(shipment_id, [])

    def tracking_events_of(self, shipment_ids: Iterable[str]) -> dict[str, list[TrackingEvent]]:
        ids = list(set(shipment_ids))
        if not ids:
            return {}
        rows = self.rows(
            "SELECT shipment_id, occurred_at, status, code, description, location "
            "FROM tracking_events WHERE shipment_id = ANY(%s) ORDER BY shipment_id, occurred_at",
            [ids],
        )
        out: dict[str, list[TrackingEvent]] = {}
        for r in rows:
            out.setdefault(r[0], []).append(
                TrackingEvent(
                    from_db(r[1]), Status(r[2]) if r[2] else None, r[3], r[4], r[5] or None
                )
            )
        return out

    def expire_stale_shipments(self, now: datetime, silent_since: datetime) -> list[str]:
        rows = self.rows(
            "UPDATE shipments SET status = %s, status_since = %s, next_check_at = NULL "
            "WHERE status <> ALL(%s) AND coalesce(last_event_at, created_at) < %s "
            "RETURNING shipment_id",
            [Status.EXPIRED.value, to_db(now), TERMINAL, to_db(silent_since)],
        )
        return sorted(r[0] for r in rows)
