"""Shipments' tracking state, their scans, poll failures and carrier candidates. Which
due shipments a worker takes is each backend's own (duckdb/shipments.py: one writer;
postgres/shipments.py: leases)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from aftersale.models import ShipmentState, Status, TrackingEvent
from aftersale.store.backend import Backend, Dialect
from aftersale.store.rows import (
    SHIPMENT_COLS,
    STATUSES,
    TERMINAL,
    from_db,
    shipment_from_row,
    shipment_update,
    to_db,
)


def due(d: Dialect) -> str:
    """SQL true when shipment `s` is due for a poll (named parameters `terminal`, `now`)."""
    return (
        f"{d.not_in_list('s.status', d.named('terminal'))} "
        f"AND (s.next_check_at IS NULL OR s.next_check_at <= {d.named('now')})"
    )


class Shipments(Backend):
    def due_shipments(self, now: datetime, limit: int | None = None) -> list[ShipmentState]:
        d = self.dialect
        sql = (
            f"SELECT {SHIPMENT_COLS} FROM shipments s WHERE {due(d)} "
            "ORDER BY next_check_at, shipment_id"
        )
        params: dict[str, Any] = {"terminal": TERMINAL, "now": to_db(now)}
        if limit is not None:
            sql += f" LIMIT {d.named('limit')}"
            params["limit"] = limit
        return [shipment_from_row(r) for r in self.rows(sql, params)]

    def carrier_candidates(self, shipment_ids: Iterable[str]) -> dict[str, list[str]]:
        rows = self.rows_in(
            "SELECT shipment_id, carrier_candidates FROM shipments",
            "shipment_id",
            shipment_ids,
            f"AND {self.dialect.length('carrier_candidates')} > 1",
        )
        return {r[0]: list(r[1]) for r in rows}

    def poll_failures(self, shipment_ids: Iterable[str]) -> dict[str, int]:
        rows = self.rows_in(
            "SELECT shipment_id, poll_failures FROM shipments",
            "shipment_id",
            shipment_ids,
            "AND poll_failures > 0",
        )
        return {r[0]: int(r[1]) for r in rows}

    def shipments_of(
        self, order_ids: Iterable[str], *, leaving_out: Collection[str] = ()
    ) -> dict[str, ShipmentState]:
        rest, params = "", []
        if leaving_out:
            rest, params = f"AND {self.dialect.not_in_list('shipment_id')}", [list(leaving_out)]
        rows = self.rows_in(
            f"SELECT {SHIPMENT_COLS} FROM shipments", "order_id", order_ids, rest, params
        )
        return {r[0]: shipment_from_row(r) for r in rows}

    def load_shipment(self, shipment_id: str) -> ShipmentState | None:
        r = self.one(
            f"SELECT {SHIPMENT_COLS} FROM shipments WHERE shipment_id = {self.dialect.param}",
            [shipment_id],
        )
        return shipment_from_row(r) if r else None

    def list_shipments(self) -> list[ShipmentState]:
        rows = self.rows(f"SELECT {SHIPMENT_COLS} FROM shipments ORDER BY 1")
        return [shipment_from_row(r) for r in rows]

    def save_shipment_states(
        self, states: Sequence[ShipmentState], poll_failures: Mapping[str, int] | None = None
    ) -> None:
        """Write polled states back in one bulk UPDATE, releasing their leases."""
        if not states:
            return
        failures = poll_failures or {}
        # in id order: two workers writing the same shipments lock them in the same order
        rows = sorted(
            (shipment_update(s, failures.get(s.shipment_id, 0)) for s in states),
            key=lambda r: r["shipment_id"],
        )
        sets = ", ".join(f"{c} = u.{c}" for c in rows[0] if c != "shipment_id")
        self.update_rows("shipments", rows, sets + self.dialect.release_lease)

    def save_tracking_events(
        self, events: Sequence[tuple[str, TrackingEvent]], now: datetime
    ) -> int:
        recorded_at = to_db(now)
        rows = [
            {
                "shipment_id": sid,
                "occurred_at": to_db(e.occurred_at),
                "code": e.code,
                "location": e.location or "",
                "status": e.status.value if e.status else None,
                "description": e.description,
                "recorded_at": recorded_at,
            }
            for sid, e in events
        ]
        unique = {(r["shipment_id"], r["occurred_at"], r["code"], r["location"]): r for r in rows}
        ordered = [unique[k] for k in sorted(unique)]
        return self.insert_count("tracking_events", ordered, "ON CONFLICT DO NOTHING")

    def tracking_events(self, shipment_id: str) -> list[TrackingEvent]:
        return self.tracking_events_of([shipment_id]).get(shipment_id, [])

    def tracking_events_of(self, shipment_ids: Iterable[str]) -> dict[str, list[TrackingEvent]]:
        rows = self.rows_in(
            "SELECT shipment_id, occurred_at, status, code, description, location "
            "FROM tracking_events",
            "shipment_id",
            shipment_ids,
            "ORDER BY shipment_id, occurred_at",
        )
        out: dict[str, list[TrackingEvent]] = {}
        for r in rows:
            out.setdefault(r[0], []).append(
                TrackingEvent(
                    from_db(r[1]), STATUSES[r[2]] if r[2] else None, r[3], r[4], r[5] or None
                )
            )
        return out

    def expire_stale_shipments(self, now: datetime, silent_since: datetime) -> list[str]:
        d = self.dialect
        p = d.param
        rows = self.rows(
            f"UPDATE shipments SET status = {p}, status_since = {p}, next_check_at = NULL "
            f"WHERE {d.not_in_list('status')} AND coalesce(last_event_at, created_at) < {p} "
            "RETURNING shipment_id",
            [Status.EXPIRED.value, to_db(now), TERMINAL, to_db(silent_since)],
        )
        return sorted(r[0] for r in rows)
