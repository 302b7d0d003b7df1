"""Signing keys shared by every process on this database: the first to ask stores one
(PostgreSQL)."""

from __future__ import annotations

from datetime import datetime

from aftersale.store.postgres.connection import Connection
from aftersale.store.rows import to_db


class Keys(Connection):
    def signing_key(self, name: str, candidate: str, now: datetime) -> str:
        self.execute(
            "INSERT INTO signing_keys (name, value, created_at) VALUES (%s, %s, %s) "
            "ON CONFLICT (name) DO NOTHING",
            [name, candidate, to_db(now)],
        )
        row = self.one("SELECT value FROM signing_keys WHERE name = %s", [name])
        assert row is not None
        return str(row[0])
