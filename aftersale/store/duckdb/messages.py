"""The messages table (DuckDB): queue, claim, record results, close, recover.

Exactly-once rests on two facts: the idempotency key is UNIQUE (a decision made twice
queues one message), and a claim moves only messages still `pending` to `sending`, in one
transaction (two runs cannot both claim: DuckDB aborts the second writer of a row).

Cost stays flat per message however large the table grows: every batch statement finds
its rows by message id (or idempotency key) alone, so DuckDB looks them up in the key's
index. A filter on any other column (`AND state = 'pending'`) makes it scan the whole
table instead, so the expected state is checked on the few rows found (`_in_state`), and
the UPDATE then names exactly those. Batches travel as Arrow tables joined on message_id;
DuckDB turns such a join into an index lookup for up to `dynamic_or_filter_threshold`
keys, which the connection raises to cover a whole page (duckdb/connection.py). A dispatch
batch is one transaction of one read and up to three updates (close, record, claim).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import pyarrow as pa

from aftersale.models import ChannelKind, MessageState
from aftersale.store.duckdb.connection import Connection
from aftersale.store.records import (
    Claim,
    Closure,
    DueCursor,
    MessageCount,
    MessageResult,
    MessageRow,
    NewMessage,
    PastMessage,
)
from aftersale.store.rows import (
    ENGAGEMENT_COLUMNS,
    MESSAGE_COLS,
    from_db,
    message_from_row,
    new_message_row,
    to_db,
)

PENDING, SENDING, SENT, UNKNOWN = (
    MessageState.PENDING.value,
    MessageState.SENDING.value,
    MessageState.SENT.value,
    MessageState.UNKNOWN.value,
)
_CLAIM_SCHEMA = pa.schema(
    [
        ("message_id", pa.string()),
        ("recipient", pa.string()),
        ("subject", pa.string()),
        ("body_text", pa.string()),
        ("sms_segments", pa.int32()),
        ("provider", pa.string()),
    ]
)
_RESULT_SCHEMA = pa.schema(
    [
        ("message_id", pa.string()),
        ("state", pa.string()),
        ("provider_id", pa.string()),
        ("error_code", pa.string()),
        ("error_text", pa.string()),
        ("sent_at", pa.timestamp("us")),
        ("due_at", pa.timestamp("us")),
    ]
)
_CLOSE_SCHEMA = pa.schema(
    [("message_id", pa.string()), ("state", pa.string()), ("reason", pa.string())]
)


class Messages(Connection):
    def queue_messages(self, messages: Sequence[NewMessage], now: datetime) -> list[str]:
        unique: dict[str, NewMessage] = {}
        for m in messages:
            unique.setdefault(m.idempotency_key, m)
        if not unique:
            return []
        known = {
            r[0]
            for r in self.rows(
                "SELECT idempotency_key FROM messages WHERE idempotency_key IN (SELECT unnest(?))",
                [list(unique)],
            )
        }
        fresh = [m for key, m in unique.items() if key not in known]
        self.insert_rows(
            "messages",
            [new_message_row(m, now) for m in fresh],
            "ON CONFLICT DO NOTHING",
        )
        return [m.message_id for m in fresh]

    def cancel_pending_messages(
        self, idempotency_keys: Sequence[str], reason: str, now: datetime
    ) -> int:
        if not idempotency_keys:
            return 0
        with self.transaction():
            pending = self._in_state("idempotency_key", idempotency_keys, PENDING)
            self._set_by_id(
                pending,
                "state = ?, error_text = ?, updated_at = ?",
                [MessageState.CANCELLED.value, reason, to_db(now)],
            )
        return len(pending)

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

    def claim_messages(self, claims: Sequence[Claim], *, run_id: str, now: datetime) -> set[str]:
        return self.record_and_claim([], claims, run_id=run_id, now=now)

    def record_results(self, results: Sequence[MessageResult], now: datetime) -> None:
        self.record_and_claim(results, [], run_id="", now=now)

    def close_messages(self, closures: Sequence[Closure], now: datetime) -> None:
        self.record_and_claim([], [], closures=closures, run_id="", now=now)

    def record_and_claim(
        self,
        results: Sequence[MessageResult],
        claims: Sequence[Claim],
        *,
        closures: Sequence[Closure] = (),
        run_id: str,
        now: datetime,
    ) -> set[str]:
        if not results and not claims and not closures:
            return set()
        with self.transaction():
            # one read of all three lists' states: each statement costs DuckDB ~1-2 ms
            states = self._states(
                [c.message_id for c in closures]
                + [r.message_id for r in results]
                + [c.message_id for c in claims]
            )
            self._close([c for c in closures if states.get(c.message_id) == PENDING], now)
            self._record([r for r in results if states.get(r.message_id) == SENDING], now)
            pending = {c.message_id for c in claims if states.get(c.message_id) == PENDING}
            self._claim([c for c in claims if c.message_id in pending], run_id, now)
        return pending

    def _claim(self, claims: Sequence[Claim], run_id: str, now: datetime) -> None:
        """`pending -> sending` for these claims (all found `pending`)."""
        if claims:
            rows = [
                {
                    "message_id": c.message_id,
                    "recipient": c.recipient,
                    "subject": c.subject,
                    "body_text": c.body_text,
                    "sms_segments": c.sms_segments,
                    "provider": c.provider,
                }
                for c in claims
            ]
            self._update_from(
                rows,
                _CLAIM_SCHEMA,
                "state = ?, recipient = b.recipient, subject = b.subject, "
                "body_text = b.body_text, sms_segments = b.sms_segments, provider = b.provider, "
                "attempts = attempts + 1, run_id = ?, updated_at = ?",
                [SENDING, run_id, to_db(now)],
            )

    def _record(self, results: Sequence[MessageResult], now: datetime) -> None:
        """Record these outcomes (of messages all found `sending`)."""
        if results:
            rows = [
                {
                    "message_id": r.message_id,
                    "state": r.state.value,
                    "provider_id": r.provider_id,
                    "error_code": r.error_code,
                    "error_text": r.error_text,
                    "sent_at": to_db(now) if r.state is MessageState.SENT else None,
                    "due_at": to_db(r.retry_at),
                }
                for r in results
            ]
            self._update_from(
                rows,
                _RESULT_SCHEMA,
                "state = b.state, provider_id = b.provider_id, error_code = b.error_code, "
                "error_text = b.error_text, sent_at = coalesce(b.sent_at, messages.sent_at), "
                "due_at = coalesce(b.due_at, messages.due_at), updated_at = ?",
                [to_db(now)],
            )

    def _close(self, closures: Sequence[Closure], now: datetime) -> None:
        """Close these messages (all found `pending`), each with its reason."""
        if closures:
            rows = [
                {"message_id": c.message_id, "state": c.state.value, "reason": c.reason}
                for c in closures
            ]
            self._update_from(
                rows,
                _CLOSE_SCHEMA,
                "state = b.state, error_text = b.reason, updated_at = ?",
                [to_db(now)],
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

    def settle_unknown(self, results: Sequence[MessageResult], now: datetime) -> set[str]:
        if not results:
            return set()
        batch = pa.Table.from_pylist(
            [
                {
                    "message_id": r.message_id,
                    "state": r.state.value,
                    "provider_id": r.provider_id,
                    "error_code": r.error_code,
                    "error_text": r.error_text,
                    "sent_at": to_db(now) if r.state is MessageState.SENT else None,
                    "due_at": to_db(r.retry_at),
                }
                for r in results
            ],
            schema=_RESULT_SCHEMA,
        )
        with self.arrow("_batch", batch):
            rows = self.rows(
                "UPDATE messages SET state = b.state, "
                "provider_id = coalesce(b.provider_id, messages.provider_id), "
                "error_text = b.error_text, sent_at = coalesce(b.sent_at, messages.sent_at), "
                "due_at = coalesce(b.due_at, messages.due_at), updated_at = ? FROM _batch b "
                "WHERE messages.message_id = b.message_id AND messages.state = ? "
                "RETURNING messages.message_id",
                [to_db(now), UNKNOWN],
            )
        return {r[0] for r in rows}

    def release_unknown(self, message_ids: Sequence[str], *, resend: bool, now: datetime) -> int:
        if not message_ids:
            return 0
        with self.transaction():
            unknown = self._in_state("message_id", message_ids, UNKNOWN)
            self._set_by_id(
                unknown,
                "state = ?, error_text = ?, updated_at = ?",
                [
                    PENDING if resend else SENT,
                    "released by an operator" if resend else "confirmed sent by an operator",
                    to_db(now),
                ],
            )
        return len(unknown)

    def _states(self, message_ids: Sequence[str]) -> dict[str, str]:
        """The state of each of these messages, found by message id alone (the index)."""
        return dict(
            self.rows(
                "SELECT message_id, state FROM messages WHERE message_id IN (SELECT unnest(?))",
                [list(message_ids)],
            )
        )

    def _in_state(self, key: str, values: Sequence[str], state: str) -> list[str]:
        """The ids of the messages whose `key` (message_id or idempotency_key) is one of
        `values` and whose state is `state`. Selected by the key alone, so DuckDB uses its
        index (see the module docstring); the state is checked on the rows found."""
        rows = self.rows(
            f"SELECT message_id, state FROM messages WHERE {key} IN (SELECT unnest(?))",
            [list(values)],
        )
        return [message_id for message_id, current in rows if current == state]

    def _set_by_id(self, message_ids: Sequence[str], assignments: str, params: list[Any]) -> None:
        """The same assignments for each of these messages."""
        if message_ids:
            self.execute(
                f"UPDATE messages SET {assignments} WHERE message_id IN (SELECT unnest(?))",
                [*params, list(message_ids)],
            )

    def _update_from(
        self, rows: list[dict[str, Any]], schema: pa.Schema, assignments: str, params: list[Any]
    ) -> None:
        """Assignments that may read each message's own values as `b.<column>` of `rows`."""
        if rows:
            with self.arrow("_batch", pa.Table.from_pylist(rows, schema=schema)):
                self.execute(
                    f"UPDATE messages SET {assignments} FROM _batch b "
                    "WHERE messages.message_id = b.message_id",
                    params,
                )

    def load_message(self, message_id: str) -> MessageRow | None:
        row = self.one(f"SELECT {MESSAGE_COLS} FROM messages WHERE message_id = ?", [message_id])
        return message_from_row(row) if row else None

    def messages_in_state(self, state: MessageState) -> list[MessageRow]:
        rows = self.rows(
            f"SELECT {MESSAGE_COLS} FROM messages WHERE state = ? ORDER BY updated_at, message_id",
            [MessageState(state).value],
        )
        return [message_from_row(r) for r in rows]

    def list_messages(self) -> list[MessageRow]:
        rows = self.rows(f"SELECT {MESSAGE_COLS} FROM messages ORDER BY created_at, message_id")
        return [message_from_row(r) for r in rows]

    def count_messages(self, state: MessageState) -> int:
        row = self.one("SELECT count(*) FROM messages WHERE state = ?", [state.value])
        return int(row[0]) if row else 0

    def message_counts(self) -> list[MessageCount]:
        rows = self.rows(
            "SELECT template, channel, state, count(*) FROM messages GROUP BY ALL ORDER BY 1, 2, 3"
        )
        return [MessageCount(r[0], ChannelKind(r[1]), MessageState(r[2]), int(r[3])) for r in rows]

    def past_messages(self, customer_ids: Iterable[str]) -> list[PastMessage]:
        ids = list(set(customer_ids))
        if not ids:
            return []
        rows = self.rows(
            "SELECT idempotency_key, customer_id, channel, rule_id, marketing, state, "
            "coalesce(sent_at, due_at), shipment_id, due_at FROM messages "
            "WHERE customer_id IN (SELECT unnest(?))",
            [ids],
        )
        return [
            PastMessage(
                idempotency_key=r[0],
                customer_id=r[1],
                channel=ChannelKind(r[2]),
                rule_id=r[3],
                marketing=r[4],
                state=MessageState(r[5]),
                at=from_db(r[6]),
                shipment_id=r[7],
                due_at=from_db(r[8]),
            )
            for r in rows
        ]

    def set_delivery_state(self, message_id: str, state: str, problem: str | None) -> None:
        self.execute(
            "UPDATE messages SET delivery_state = ?, error_text = coalesce(?, error_text) "
            "WHERE message_id = ?",
            [state, problem, message_id],
        )

    def record_engagement(self, message_id: str, kind: str, at: datetime) -> None:
        column = ENGAGEMENT_COLUMNS[kind]  # a fixed name: safe to format into the SQL
        self.execute(
            f"UPDATE messages SET {column} = coalesce({column}, ?) WHERE message_id = ?",
            [to_db(at), message_id],
        )

    def find_messages(
        self,
        *,
        order_id: str | None = None,
        customer_id: str | None = None,
        since: datetime | None = None,
        limit: int = 500,
    ) -> list[MessageRow]:
        where, params = ["TRUE"], []
        for clause, value in (
            ("order_id = ?", order_id),
            ("customer_id = ?", customer_id),
            ("updated_at >= ?", to_db(since)),
        ):
            if value is not None:
                where.append(clause)
                params.append(value)
        rows = self.rows(
            f"SELECT {MESSAGE_COLS} FROM messages WHERE {' AND '.join(where)} "
            "ORDER BY updated_at DESC, message_id LIMIT ?",
            [*params, limit],
        )
        return [message_from_row(r) for r in rows]
