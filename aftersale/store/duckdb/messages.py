"""The messages table (DuckDB): what differs from the statements written once
(aftersale/store/queries/messages.py): how the claim guarantee is held, and which
messages are due or stuck.

One writer process holds the file, and a claim moves only messages still `pending` to
`sending` in one transaction (two runs cannot both claim: DuckDB aborts the second writer
of a row).

Cost stays flat per message however large the table grows: every batch statement finds
its rows by message id (or idempotency key) alone, so DuckDB looks them up in the key's
index. A filter on any other column (`AND state = 'pending'`) makes it scan the whole
table instead, so the expected state is checked on the few rows found (`_states`), and
the UPDATE then names exactly those. Batches travel as Arrow tables joined on message_id
(`update_rows`); DuckDB turns such a join into an index lookup for up to
`dynamic_or_filter_threshold` keys, which the connection raises to cover a whole page
(duckdb/connection.py). The columns a claim and a result write are stored uncompressed
(migration 13): writing into DuckDB's compressed text, and the checkpoint compressing it
again, cost more the more messages the table held. A dispatch batch is one transaction of
one read and up to three updates (close, record, claim).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from aftersale.store.duckdb.connection import Connection
from aftersale.store.queries import messages
from aftersale.store.queries.messages import PENDING, SENDING, UNKNOWN
from aftersale.store.records import Claim, Closure, DueCursor, MessageResult, MessageRow
from aftersale.store.rows import MESSAGE_COLS, message_from_row, to_db


class Messages(messages.Messages, Connection):
    def due_messages(
        self, now: datetime, *, limit: int, after: DueCursor | None = None
    ) -> list[MessageRow]:
        sql = f"SELECT {MESSAGE_COLS} FROM messages WHERE state = ? AND due_at <= ?"
        params: list[Any] = [PENDING, to_db(now)]
        if after is not None:
            sql += " AND (due_at, message_id) > (?, ?)"
            params += [to_db(after[0]), after[1]]
        sql += " ORDER BY due_at, message_id LIMIT ?"
        return [message_from_row(r) for r in self.rows(sql, [*params, limit])]

    # A claim, a result or a closure alone is a batch too: its states are read first.
    def claim_messages(self, claims: Sequence[Claim], *, run_id: str, now: datetime) -> set[str]:
        return self.record_and_claim([], claims, run_id=run_id, now=now)

    def record_results(self, results: Sequence[MessageResult], now: datetime) -> None:
        self.record_and_claim(results, [], run_id="", now=now)

    def close_messages(self, closures: Sequence[Closure], now: datetime) -> None:
        self.record_and_claim([], [], closures=closures, run_id="", now=now)

    def _still_due(
        self,
        closures: Sequence[Closure],
        results: Sequence[MessageResult],
        claims: Sequence[Claim],
    ) -> tuple[list[Closure], list[MessageResult], list[Claim]]:
        # one read of all three lists' states: each statement costs DuckDB ~1-2 ms
        states = self._states(
            "message_id",
            [c.message_id for c in closures]
            + [r.message_id for r in results]
            + [c.message_id for c in claims],
        )
        return (
            [c for c in closures if states.get(c.message_id) == PENDING],
            [r for r in results if states.get(r.message_id) == SENDING],
            [c for c in claims if states.get(c.message_id) == PENDING],
        )

    def _claim_terms(self) -> tuple[str, str, dict[str, Any]]:
        return "", "", {}  # the claims were found `pending` in this transaction

    def _found_in(self, state: str) -> str:
        return ""  # the batch was found in `state` in this transaction

    def _move(
        self, key: str, values: Sequence[str], state: str, sets: str, params: list[Any]
    ) -> int:
        with self.transaction():
            found = [m for m, current in self._states(key, values).items() if current == state]
            if found:
                self.execute(
                    f"UPDATE messages SET {sets} WHERE message_id IN (SELECT unnest(?))",
                    [*params, found],
                )
        return len(found)

    def _states(self, key: str, values: Sequence[str]) -> dict[str, str]:
        """The state of each message whose `key` (message_id or idempotency_key) is one of
        `values`, by message id. Selected by the key alone, so DuckDB uses its index (see
        the module docstring)."""
        return dict(
            self.rows(
                f"SELECT message_id, state FROM messages WHERE {key} IN (SELECT unnest(?))",
                [list(values)],
            )
        )

    def mark_stuck_unknown(
        self, reason: str, *, claimed_before: datetime | None = None
    ) -> list[MessageRow]:
        # updated_at stays the claim's time: providers are asked what they got since then
        sql = "UPDATE messages SET state = ?, error_text = ? WHERE state = ?"
        params: list[Any] = [UNKNOWN, reason, SENDING]
        if claimed_before is not None:
            sql += " AND updated_at < ?"
            params.append(to_db(claimed_before))
        rows = self.rows(f"{sql} RETURNING {MESSAGE_COLS}", params)
        return sorted((message_from_row(r) for r in rows), key=lambda m: m.message_id)
