"""Shipments' tracking state, their scans, poll failures and carrier candidates (DuckDB)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import pyarrow as pa

from aftersale.models import ShipmentState, Status, TrackingEvent
from aftersale.store.duckdb.connection import Connection
from aftersale.store.rows import (
    SHIPMENT_COLS,
    TERMINAL,
    from_db,
    shipment_from_row,
    shipment_update,
    to_db,
)

_UPDATE_SCHEMA = pa.schema(
    [
        ("shipment_id", pa.string()),
        ("carrier", pa.string()),
        ("status", pa.string()),
        ("code", pa.string()),
        ("description", pa.string()),
        ("estimated_delivery", pa.date32()),
        ("first_estimate", pa.date32()),
        ("window_start", pa.timestamp("us")),
        ("window_end", pa.timestamp("us")),
        ("delivered_at", pa.timestamp("us")),
        ("pickup_point", pa.string()),
        ("last_event_at", pa.timestamp("us")),
        ("status_since", pa.timestamp("us")),
        ("last_polled_at", pa.timestamp("us")),
        ("next_check_at", pa.timestamp("us")),
        ("problem", pa.string()),
        ("poll_failures", pa.int32()),
        ("delivery_type", pa.string()),
        ("pickup_deadline", pa.timestamp("us")),
        ("pickup_hours", pa.string()),
    ]
)


class Shipments(Connection):
    def due_shipments(self, now: datetime, limit: int | None = None) -> list[ShipmentState]:
        sql = (
            f"SELECT {SHIPMENT_COLS} FROM shipments WHERE status NOT IN (SELECT unnest(?)) "
            "AND (next_check_at IS NULL OR next_check_at <= ?) ORDER BY next_check_at, shipment_id"
        )
        params: list[Any] = [TERMINAL, to_db(now)]
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [shipment_from_row(r) for r in self.rows(sql, params)]

    def due_order_ids(self, now: datetime, *, limit: int, after: str | None = None) -> list[str]:
        sql = (
            "SELECT DISTINCT order_id FROM shipments WHERE status NOT IN (SELECT unnest(?)) "
            "AND (next_check_at IS NULL OR next_check_at <= ?)"
        )
        params: list[Any] = [TERMINAL, to_db(now)]
        if after is not None:
            sql += " AND order_id > ?"
            params.append(after)
        return [r[0] for r in self.rows(f"{sql} ORDER BY 1 LIMIT ?", [*params, limit])]

    def claim_shipments(self, order_ids: Sequence[str], now: datetime) -> list[ShipmentState]:
        """One writer process: the due shipments are this one's, no lease to take."""
        if not order_ids:
            return []
        rows = self.rows(
            f"SELECT {SHIPMENT_COLS} FROM shipments WHERE order_id IN (SELECT unnest(?)) "
            "AND status NOT IN (SELECT unnest(?)) "
            "AND (next_check_at IS NULL OR next_check_at <= ?) ORDER BY order_id, shipment_id",
            [list(order_ids), TERMINAL, to_db(now)],
        )
        return [shipment_from_row(r) for r in rows]

    def carrier_candidates(self, shipment_ids: Iterable[str]) -> dict[str, list[str]]:
        ids = list(set(shipment_ids))
        if not ids:
            return {}
        rows = self.rows(
            "SELECT shipment_id, carrier_candidates FROM shipments "
            "WHERE shipment_id IN (SELECT unnest(?)) AND len(carrier_candidates) > 1",
            [ids],
        )
        return {r[0]: list(r[1]) for r in rows}

    def poll_failures(self, shipment_ids: Iterable[str]) -> dict[str, int]:
        ids = list(set(shipment_ids))
        if not ids:
            return {}
        rows = self.rows(
            "SELECT shipment_id, poll_failures FROM shipments "
            "WHERE shipment_id IN (SELECT unnest(?)) AND poll_failures > 0",
            [ids],
        )
        return {r[0]: int(r[1]) for r in rows}

    def shipments_of(self, order_ids: Iterable[str]) -> dict[str, ShipmentState]:
        ids = list(set(order_ids))
        if not ids:
            return {}
        rows = self.rows(
            f"SELECT {SHIPMENT_COLS} FROM shipments WHERE order_id IN (SELECT unnest(?))", [ids]
        )
        return {r[0]: shipment_from_row(r) for r in rows}

    def load_shipment(self, shipment_id: str) -> ShipmentState | None:
        r = self.one(f"SELECT {SHIPMENT_COLS} FROM shipments WHERE shipment_id = ?", [shipment_id])
        return shipment_from_row(r) if r else None

    def list_shipments(self) -> list[ShipmentState]:
        rows = self.rows(f"SELECT {SHIPMENT_COLS} FROM shipments ORDER BY 1")
        return [shipment_from_row(r) for r in rows]

    def save_shipment_states(
        self, states: Sequence[ShipmentState], poll_failures: Mapping[str, int] | None = None
    ) -> None:
        """Write polled states back (one UPDATE … FROM batch)."""
        if not states:
            return
        failures = poll_failures or {}
        rows = [shipment_update(s, failures.get(s.shipment_id, 0)) for s in states]
        batch = pa.Table.from_pylist(rows, schema=_UPDATE_SCHEMA)
        sets = ", ".join(f"{c} = u.{c}" for c in batch.column_names if c != "shipment_id")
        with self.arrow("_states", batch):
            self.execute(
                f"UPDATE shipments SET {sets} FROM _states u "
                "WHERE shipments.shipment_id = u.shipment_id"
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
        return self.insert_rows("tracking_events", list(unique.values()), "ON CONFLICT DO NOTHING")

    def tracking_events(self, shipment_id: str) -> list[TrackingEvent]:
        return self.tracking_events_of([shipment_id]).get(shipment_id, [])

    def tracking_events_of(self, shipment_ids: Iterable[str]) -> dict[str, list[TrackingEvent]]:
        ids = list(set(shipment_ids))
        if not ids:
            return {}
        rows = self.rows(
            "SELECT shipment_id, occurred_at, status, code, description, location "
            "FROM tracking_events WHERE shipment_id IN (SELECT unnest(?)) "
            "ORDER BY shipment_id, occurred_at",
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
            "UPDATE shipments SET status = ?, status_since = ?, next_check_at = NULL "
            "WHERE status NOT IN (SELECT unnest(?)) AND coalesce(last_event_at, created_at) < ? "
            "RETURNING shipment_id",
            [Status.EXPIRED.value, to_db(now), TERMINAL, to_db(silent_since)],
        )
        return sorted(r[0] for r in rows)
