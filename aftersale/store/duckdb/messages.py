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
again, cost more the more messages the table held.

A dispatch batch is one transaction of up to three updates (close, record, claim) and,
almost always, no read: its messages were read in the states it expects just before,
and this process alone writes the file. So each UPDATE checks every message's state as
it writes it (`_state_to`: one found otherwise aborts the statement) and that it wrote
them all (`_wrote`); if any was not as expected, the transaction is rolled back and the
batch is written the careful way: the states read first (`_still_due`), only the
messages found as expected written. The read costs DuckDB as much as an UPDATE (~9 ms
for the 1,000 messages of a batch, bench/store.py), so sparing it spares a third of a
batch's cost.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import duckdb

from aftersale.store.duckdb.connection import Connection
from aftersale.store.queries import messages
from aftersale.store.queries.messages import PENDING, SENDING, UNKNOWN, in_state
from aftersale.store.records import (
    Claim,
    Closure,
    DueCursor,
    DueMessage,
    MessageResult,
    MessageRow,
)
from aftersale.store.rows import (
    DUE_COLS,
    MESSAGE_COLS,
    due_message_from_row,
    to_db,
)

#: What aborts a batch UPDATE that met a message not in the state its batch expects.
_NOT_AS_READ = "aftersale: a message of the batch is no longer in the state it was read in"


class _NotAsRead(Exception):
    """A batch met a message not in the state it expects (or no longer stored)."""


class Messages(messages.Messages, Connection):
    def due_messages(
        self, now: datetime, *, limit: int, after: DueCursor | None = None
    ) -> list[DueMessage]:
        sql = f"SELECT {DUE_COLS} FROM messages WHERE state = ? AND due_at <= ?"
        params: list[Any] = [PENDING, to_db(now)]
        if after is not None:
            sql += " AND (due_at, order_id, message_id) > (?, ?, ?)"
            params += [to_db(after.due_at), after.order_id, after.message_id]
        sql += " ORDER BY due_at, order_id, message_id LIMIT ?"
        return [due_message_from_row(r) for r in self.rows(sql, [*params, limit])]

    def record_and_claim(
        self,
        results: Sequence[MessageResult],
        claims: Sequence[Claim],
        *,
        closures: Sequence[Closure] = (),
        run_id: str,
        now: datetime,
    ) -> set[str]:
        # Inside a caller's transaction a failed UPDATE would abort theirs: the careful way.
        if self._depth or not (results or claims or closures):
            return super().record_and_claim(
                results, claims, closures=closures, run_id=run_id, now=now
            )
        try:
            with self.transaction():
                self._close(closures, now)
                self._record(results, now)
                return self._claim(claims, run_id, now)
        except _NotAsRead:
            pass
        except duckdb.InvalidInputException as exc:
            if _NOT_AS_READ not in str(exc):
                raise
        return super().record_and_claim(results, claims, closures=closures, run_id=run_id, now=now)

    # A claim, a result or a closure alone is a batch too.
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
        # a filter on the state would make DuckDB scan the table: `_state_to` checks it
        return ""

    def _state_to(self, state: str, found: str) -> str:
        return f"CASE WHEN {in_state(found)} THEN {state} ELSE error('{_NOT_AS_READ}') END"

    def _wrote(self, answer: list[tuple[Any, ...]], rows: int) -> None:
        if rows and answer != [(rows,)]:
            raise _NotAsRead

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
        return sorted(self._messages(rows), key=lambda m: m.message_id)
