"""Domain events, stored once each by their id: with several workers (PostgreSQL) the
insert decides who saw an event first, and only the events this one stored are new."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from aftersale.models import DomainEvent
from aftersale.store.backend import Backend
from aftersale.store.rows import (
    EVENT_COLS,
    domain_event_from_row,
    domain_event_row,
    from_db,
    to_db,
)


class Events(Backend):
    def record_domain_events(
        self, events: Sequence[DomainEvent], *, run_id: str, now: datetime
    ) -> list[DomainEvent]:
        unique = {e.event_id: e for e in events}
        # in id order: two workers inserting the same events lock them in the same order
        detected_at = to_db(now)
        rows = [
            domain_event_row(k, unique[k], run_id=run_id, detected_at=detected_at)
            for k in sorted(unique)
        ]
        inserted = self.insert_new("domain_events", rows, "event_id")
        return [e for eid, e in unique.items() if eid in inserted]

    def load_domain_event(self, event_id: str) -> DomainEvent | None:
        return self.load_domain_events([event_id]).get(event_id)

    def load_domain_events(self, event_ids: Iterable[str]) -> dict[str, DomainEvent]:
        rows = self.rows_in(
            f"SELECT event_id, {EVENT_COLS} FROM domain_events", "event_id", event_ids
        )
        return {r[0]: domain_event_from_row(r[1:]) for r in rows}

    def domain_events_between(
        self, start: datetime, end: datetime
    ) -> list[tuple[datetime, DomainEvent]]:
        p = self.dialect.param
        rows = self.rows(
            f"SELECT detected_at, {EVENT_COLS} FROM domain_events "
            f"WHERE occurred_at >= {p} AND occurred_at < {p} "
            "ORDER BY detected_at, occurred_at, event_id",
            [to_db(start), to_db(end)],
        )
        return [(from_db(r[0]), domain_event_from_row(r[1:])) for r in rows]
