"""The suppression list (DuckDB). Which reason wins, and how addresses are normalised, is
decided in aftersale.dispatch.suppressions; this stores and finds entries."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aftersale.models import ChannelKind
from aftersale.store.duckdb.connection import Connection, from_db, to_db
from aftersale.store.records import Suppression

_COLS = "address, channel, reason, created_at"


def _suppression(r: tuple[Any, ...]) -> Suppression:
    return Suppression(str(r[0]), ChannelKind(r[1]), str(r[2]), from_db(r[3]))


class Suppressions(Connection):
    def get_suppression(self, address: str, channel: ChannelKind) -> Suppression | None:
        row = self.one(
            f"SELECT {_COLS} FROM suppressions WHERE address = ? AND channel = ?",
            [address, channel.value],
        )
        return _suppression(row) if row else None

    def put_suppression(self, entry: Suppression) -> None:
        self.execute(
            f"INSERT INTO suppressions ({_COLS}) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (address, channel) DO UPDATE SET reason = excluded.reason, "
            "created_at = excluded.created_at",
            [entry.address, entry.channel.value, entry.reason, to_db(entry.created_at)],
        )

    def delete_suppression(self, address: str, channel: ChannelKind) -> None:
        self.execute(
            "DELETE FROM suppressions WHERE address = ? AND channel = ?", [address, channel.value]
        )

    def list_suppressions(
        self, *, channel: ChannelKind | None = None, reason: str | None = None
    ) -> list[Suppression]:
        sql = f"SELECT {_COLS} FROM suppressions WHERE 1 = 1"
        params: list[object] = []
        if channel is not None:
            sql += " AND channel = ?"
            params.append(channel.value)
        if reason is not None:
            sql += " AND reason = ?"
            params.append(reason)
        sql += " ORDER BY created_at DESC, address"
        return [_suppression(r) for r in self.rows(sql, params)]

    def suppression_reasons(self, addresses: Iterable[str]) -> dict[tuple[str, str], str]:
        wanted = list(set(addresses))
        if not wanted:
            return {}
        rows = self.rows(
            "SELECT address, channel, reason FROM suppressions WHERE address IN (SELECT unnest(?))",
            [wanted],
        )
        return {(r[0], r[1]): r[2] for r in rows}
