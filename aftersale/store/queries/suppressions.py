"""The suppression list. Which reason wins, and how addresses are normalised, is decided
in aftersale.dispatch.suppressions; this stores and finds entries."""

from __future__ import annotations

from collections.abc import Iterable

from aftersale.models import ChannelKind
from aftersale.store.backend import Backend
from aftersale.store.records import Suppression
from aftersale.store.rows import SUPPRESSION_COLS, suppression_from_row, to_db


class Suppressions(Backend):
    def get_suppression(self, address: str, channel: ChannelKind) -> Suppression | None:
        p = self.dialect.param
        row = self.one(
            f"SELECT {SUPPRESSION_COLS} FROM suppressions WHERE address = {p} AND channel = {p}",
            [address, channel.value],
        )
        return suppression_from_row(row) if row else None

    def put_suppression(self, entry: Suppression) -> None:
        self.execute(
            f"INSERT INTO suppressions ({SUPPRESSION_COLS}) VALUES ({self.dialect.params(4)}) "
            "ON CONFLICT (address, channel) DO UPDATE SET reason = excluded.reason, "
            "created_at = excluded.created_at",
            [entry.address, entry.channel.value, entry.reason, to_db(entry.created_at)],
        )

    def delete_suppression(self, address: str, channel: ChannelKind) -> None:
        p = self.dialect.param
        self.execute(
            f"DELETE FROM suppressions WHERE address = {p} AND channel = {p}",
            [address, channel.value],
        )

    def list_suppressions(
        self, *, channel: ChannelKind | None = None, reason: str | None = None
    ) -> list[Suppression]:
        p = self.dialect.param
        sql = f"SELECT {SUPPRESSION_COLS} FROM suppressions WHERE true"
        params: list[object] = []
        if channel is not None:
            sql += f" AND channel = {p}"
            params.append(channel.value)
        if reason is not None:
            sql += f" AND reason = {p}"
            params.append(reason)
        sql += " ORDER BY created_at DESC, address"
        return [suppression_from_row(r) for r in self.rows(sql, params)]

    def suppression_reasons(self, addresses: Iterable[str]) -> dict[tuple[str, str], str]:
        rows = self.rows_in(
            "SELECT address, channel, reason FROM suppressions", "address", addresses
        )
        return {(r[0], r[1]): r[2] for r in rows}
