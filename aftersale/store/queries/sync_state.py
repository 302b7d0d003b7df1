"""How far each pull from a shop platform's API got: one checkpoint per source."""

from __future__ import annotations

from datetime import datetime

from aftersale.store.backend import Backend
from aftersale.store.rows import from_db, to_db


class SyncState(Backend):
    def sync_checkpoint(self, source: str) -> datetime | None:
        row = self.one(
            f"SELECT checkpoint FROM sync_state WHERE source = {self.dialect.param}", [source]
        )
        return from_db(row[0]) if row else None

    def save_sync_checkpoint(self, source: str, checkpoint: datetime, now: datetime) -> None:
        self.execute(
            "INSERT INTO sync_state (source, checkpoint, updated_at) "
            f"VALUES ({self.dialect.params(3)}) ON CONFLICT (source) DO UPDATE SET "
            "checkpoint = greatest(sync_state.checkpoint, excluded.checkpoint), "
            "updated_at = excluded.updated_at",
            [source, to_db(checkpoint), to_db(now)],
        )
