"""Carriers' and channels' health from run to run, and each carrier's backlog."""

from __future__ import annotations

from collections.abc import Sequence

from aftersale.store.backend import Backend
from aftersale.store.records import CarrierBacklog, HealthRecord
from aftersale.store.rows import (
    HEALTH_COLS,
    TERMINAL,
    from_db,
    health_from_row,
    health_row,
)

_UPDATED = ", ".join(
    f"{c} = excluded.{c}" for c in HEALTH_COLS.split(", ") if c not in ("component", "name")
)


class Health(Backend):
    def load_health(self) -> list[HealthRecord]:
        rows = self.rows(f"SELECT {HEALTH_COLS} FROM health ORDER BY component, name")
        return [health_from_row(r) for r in rows]

    def save_health(self, records: Sequence[HealthRecord]) -> None:
        self.insert(
            "health",
            [health_row(h) for h in records],
            f"ON CONFLICT (component, name) DO UPDATE SET {_UPDATED}",
        )

    def carrier_backlog(self) -> list[CarrierBacklog]:
        rows = self.rows(
            "SELECT carrier, count(*), count(*) FILTER (WHERE poll_failures > 0), "
            "coalesce(min(next_check_at) FILTER (WHERE poll_failures > 0), min(next_check_at)) "
            f"FROM shipments WHERE carrier IS NOT NULL AND {self.dialect.not_in_list('status')} "
            "GROUP BY carrier ORDER BY carrier",
            [TERMINAL],
        )
        return [CarrierBacklog(r[0], int(r[1]), int(r[2]), from_db(r[3])) for r in rows]
