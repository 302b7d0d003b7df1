"""Signing keys shared by every process on this database: the first to ask stores one."""

from __future__ import annotations

from datetime import datetime

from aftersale.store.backend import Backend
from aftersale.store.rows import to_db


class Keys(Backend):
    def signing_key(self, name: str, candidate: str, now: datetime) -> str:
        d = self.dialect
        self.execute(
            f"INSERT INTO signing_keys (name, value, created_at) VALUES ({d.params(3)}) "
            "ON CONFLICT (name) DO NOTHING",
            [name, candidate, to_db(now)],
        )
        row = self.one(f"SELECT value FROM signing_keys WHERE name = {d.param}", [name])
        assert row is not None
        return str(row[0])
