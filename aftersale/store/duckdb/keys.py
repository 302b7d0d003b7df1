"""Signing keys shared by every process on this database: the first to ask stores one
(DuckDB)."""

from __future__ import annotations

from datetime import datetime

from aftersale.store.duckdb.connection import Connection
from aftersale.store.rows import to_db


class Keys(Connection):
    def signing_key(self, name: str, candidate: str, now: datetime) -> str:
        self.execute(
            "INSERT INTO signing_keys (name, value, created_at) VALUES (?, ?, ?) "
            "ON CONFLICT (name) DO NOTHING",
            [name, candidate, to_db(now)],
        )
        row = self.one("SELECT value FROM signing_keys WHERE name = ?", [name])
        assert row is not None
        return str(row[0])
