"""Domain events, stored once each by their id (DuckDB)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from aftersale.models import DomainEvent
from aftersale.store.duckdb.connection import Connection
from aftersale.store.rows import (
    EVENT_COLS,
    domain_event_from_row,
    domain_event_row,
    from_db,
    to_db,
)


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
            [domain_event_row(e, run_id=run_id, now=now) for e in fresh],
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
            f"SELECT event_id, {EVENT_COLS} FROM domain_events "
            "WHERE event_id IN (SELECT unnest(?))",
            [ids],
        )
        return {r[0]: domain_event_from_row(r[1:]) for r in rows}

    def domain_events_between(
        self, start: datetime, end: datetime
    ) -> list[tuple[datetime, DomainEvent]]:
        rows = self.rows(
            f"SELECT detected_at, {EVENT_COLS} FROM domain_events "
            "WHERE occurred_at >= ? AND occurred_at < ? "
            "ORDER BY detected_at, occurred_at, event_id",
            [to_db(start), to_db(end)],
        )
        return [(from_db(r[0]), domain_event_from_row(r[1:])) for r in rows]
