"""Domain events, stored once each by their id (DuckDB)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from aftersale.models import DomainEvent, EventKind, Status
from aftersale.store.duckdb.connection import Connection, from_db, to_db

_COLS = "kind, order_id, occurred_at, shipment_id, item_sku, status, reason, facts"


def _domain_event(r: tuple[Any, ...]) -> DomainEvent:
    return DomainEvent(
        kind=EventKind(r[0]),
        order_id=r[1],
        occurred_at=from_db(r[2]),
        shipment_id=r[3],
        item_sku=r[4],
        status=Status(r[5]) if r[5] else None,
        reason=r[6],
        facts=json.loads(r[7]),
    )


def to_json(value: object, *, sort_keys: bool = False) -> str:
    """JSON for the store's JSON columns: dates as ISO 8601, decimals as strings."""
    return json.dumps(value, default=_json_default, sort_keys=sort_keys)


def _json_default(value: object) -> object:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    raise TypeError(f"cannot store {type(value).__name__} in JSON facts")


class Events(Connection):
    def record_domain_events(
        self, events: Sequence[DomainEvent], *, run_id: str, now: datetime
    ) -> list[DomainEvent]:
        unique = {e.event_id: e for e in events}
        if not unique:
            return []
        seen = {
            r[0]
            for r in self.rows(
                "SELECT event_id FROM domain_events WHERE event_id IN (SELECT unnest(?))",
                [list(unique)],
            )
        }
        fresh = [e for eid, e in unique.items() if eid not in seen]
        self.insert_rows(
            "domain_events",
            [
                {
                    "event_id": e.event_id,
                    "kind": e.kind.value,
                    "order_id": e.order_id,
                    "shipment_id": e.shipment_id,
                    "item_sku": e.item_sku,
                    "status": e.status.value if e.status else None,
                    "reason": e.reason,
                    "occurred_at": to_db(e.occurred_at),
                    "facts": to_json(dict(e.facts), sort_keys=True),
                    "run_id": run_id,
                    "detected_at": to_db(now),
                }
                for e in fresh
            ],
            "ON CONFLICT DO NOTHING",
        )
        return fresh

    def load_domain_event(self, event_id: str) -> DomainEvent | None:
        return self.load_domain_events([event_id]).get(event_id)

    def load_domain_events(self, event_ids: Iterable[str]) -> dict[str, DomainEvent]:
        ids = list(set(event_ids))
        if not ids:
            return {}
        rows = self.rows(
            f"SELECT event_id, {_COLS} FROM domain_events WHERE event_id IN (SELECT unnest(?))",
            [ids],
        )
        return {r[0]: _domain_event(r[1:]) for r in rows}

    def domain_events_between(
        self, start: datetime, end: datetime
    ) -> list[tuple[datetime, DomainEvent]]:
        rows = self.rows(
            f"SELECT detected_at, {_COLS} FROM domain_events "
            "WHERE occurred_at >= ? AND occurred_at < ? "
            "ORDER BY detected_at, occurred_at, event_id",
            [to_db(start), to_db(end)],
        )
        return [(from_db(r[0]), _domain_event(r[1:])) for r in rows]
