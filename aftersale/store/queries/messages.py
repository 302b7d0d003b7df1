"""The messages table, written once for both backends: queue, claim, record results,
close, settle and release, and every lookup.

Exactly-once rests on two facts: the idempotency key is UNIQUE (a decision made twice, by
anyone, queues one message), and a message moves on only from the state it was found in
(a claim only `pending -> sending`, a result only on a message still `sending`), inside
one transaction per dispatch batch. How a backend holds the second fact is its own, in the
hooks below (duckdb/messages.py, postgres/messages.py): DuckDB, one writer, checks each
message's state in the UPDATE's SET and aborts the batch if one is not as expected (a
filter on the state in an UPDATE would make it scan the table), then writes it again
with the states read first; PostgreSQL, several workers, puts the state and the worker's
lease in each UPDATE's WHERE.

Batch statements find their rows by message id (or idempotency key) alone: each
backend's `update_rows` joins its batch to the table on the key, so a batch costs the
same however large the table grows (bench/messages.py).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from aftersale.models import ChannelKind, MessageState
from aftersale.store.backend import Backend, Dialect
from aftersale.store.records import (
    Claim,
    Closure,
    MessageCount,
    MessageResult,
    MessageRow,
    NewMessage,
    PastMessage,
)
from aftersale.store.rows import (
    CHANNELS,
    ENGAGEMENT_COLUMNS,
    MESSAGE_COLS,
    MESSAGE_STATES,
    from_db,
    message_from_row,
    new_message_row,
    to_db,
)

PENDING, SENDING, SENT, UNKNOWN, CANCELLED = (
    MessageState.PENDING.value,
    MessageState.SENDING.value,
    MessageState.SENT.value,
    MessageState.UNKNOWN.value,
    MessageState.CANCELLED.value,
)


def in_state(state: str) -> str:
    """SQL true when the message being updated (`t`) is in `state` (a fixed name)."""
    return f"t.state = '{MessageState(state).value}'"


def claim_row(c: Claim) -> dict[str, Any]:
    """What a claim writes on its message: to whom it is about to go out, and by whom."""
    return {
        "message_id": c.message_id,
        "recipient": c.recipient,
        "sms_segments": c.sms_segments,
        "provider": c.provider,
    }


def text_row(c: Claim, now: datetime) -> dict[str, Any]:
    """What a claimed attempt sends, kept apart from its message (migration 14)."""
    return {
        "message_id": c.message_id,
        "attempt": c.attempt,
        "subject": c.subject,
        "body_text": c.body_text,
        "written_at": to_db(now),
    }


def result_row(r: MessageResult, now: datetime) -> dict[str, Any]:
    """What a provider's answer writes on its message."""
    return {
        "message_id": r.message_id,
        "state": r.state.value,
        "provider_id": r.provider_id,
        "error_code": r.error_code,
        "error_text": r.error_text,
        "sent_at": to_db(now) if r.state is MessageState.SENT else None,
        "due_at": to_db(r.retry_at),
    }


def closure_row(c: Closure) -> dict[str, Any]:
    return {"message_id": c.message_id, "state": c.state.value, "error_text": c.reason}


def claim_sets(d: Dialect, state: str) -> str:
    """`pending -> sending` (`state`: the SQL it sets the state to), counting the attempt
    (named parameters `run_id`, `now`); the batch row is a `claim_row`."""
    return (
        f"state = {state}, recipient = u.recipient, "
        "sms_segments = u.sms_segments, provider = u.provider, "
        f"attempts = t.attempts + 1, run_id = {d.named('run_id')}, "
        f"updated_at = {d.named('now')}"
    )


def result_sets(d: Dialect, *, settle: bool, state: str = "u.state") -> str:
    """A `result_row` written (named parameter `now`; `state`: the SQL it sets the state
    to). Settling a doubt keeps the provider id a message already has when the provider
    gives none, and its error code."""
    provider_id = "coalesce(u.provider_id, t.provider_id)" if settle else "u.provider_id"
    error_code = "" if settle else "error_code = u.error_code, "
    return (
        f"state = {state}, provider_id = {provider_id}, {error_code}error_text = u.error_text, "
        "sent_at = coalesce(u.sent_at, t.sent_at), due_at = coalesce(u.due_at, t.due_at), "
        f"updated_at = {d.named('now')}{d.release_lease}"
    )


class Messages(Backend):
    # --- what each backend does its own way ------------------------------------

    @abstractmethod
    def _claim_terms(self) -> tuple[str, str, dict[str, Any]]:
        """What a claim's UPDATE adds to hold the claim guarantee: (more SET assignments,
        its WHERE condition on `t`, their named parameters)."""

    def _still_due(
        self,
        closures: Sequence[Closure],
        results: Sequence[MessageResult],
        claims: Sequence[Claim],
    ) -> tuple[Sequence[Closure], Sequence[MessageResult], Sequence[Claim]]:
        """A dispatch batch's closures and claims of messages still `pending` and results
        of messages still `sending`, inside its transaction. All of them where each
        UPDATE checks the state itself (`_found_in`, `_claim_terms`); DuckDB reads them
        when a batch written without reading met a message not as expected."""
        return closures, results, claims

    @abstractmethod
    def _found_in(self, state: str) -> str:
        """The WHERE condition on `t` an UPDATE of a batch of messages meets so it moves
        only messages in `state`; '' where the batch was checked before."""

    def _state_to(self, state: str, found: str) -> str:
        """The SQL a batch UPDATE sets a message's state to: `state` (SQL), the message
        being in state `found`, which `_found_in` holds where it is a WHERE condition
        (DuckDB checks it here instead)."""
        return state

    def _wrote(self, answer: list[tuple[Any, ...]], rows: int) -> None:
        """What a batch UPDATE of `rows` rows with no WHERE condition of `_found_in`
        answered (DuckDB checks that it wrote every row)."""

    @abstractmethod
    def _move(
        self, key: str, values: Sequence[str], state: str, sets: str, params: list[Any]
    ) -> int:
        """Apply `sets` (positional `params`) to the messages whose `key` (message_id or
        idempotency_key) is one of `values` and whose state is `state`; how many."""

    # --- queue, claim, record, close ---------------------------------------------

    def queue_messages(self, messages: Sequence[NewMessage], now: datetime) -> list[str]:
        unique: dict[str, NewMessage] = {}
        for m in messages:
            unique.setdefault(m.idempotency_key, m)
        # in key order: two workers queueing the same keys lock them in the same order
        rows = [new_message_row(unique[k], now) for k in sorted(unique)]
        queued = self.insert_new("messages", rows, "idempotency_key")
        return [m.message_id for key, m in unique.items() if key in queued]

    def cancel_pending_messages(
        self, idempotency_keys: Sequence[str], reason: str, now: datetime
    ) -> int:
        if not idempotency_keys:
            return 0
        d = self.dialect
        sets = f"state = {d.param}, error_text = {d.param}, updated_at = {d.param}"
        return self._move(
            "idempotency_key",
            idempotency_keys,
            PENDING,
            sets + d.release_lease,
            [CANCELLED, reason, to_db(now)],
        )

    def claim_messages(self, claims: Sequence[Claim], *, run_id: str, now: datetime) -> set[str]:
        return self._claim(claims, run_id, now)

    def record_results(self, results: Sequence[MessageResult], now: datetime) -> None:
        self._record(results, now)

    def close_messages(self, closures: Sequence[Closure], now: datetime) -> None:
        self._close(closures, now)

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
            closures, results, claims = self._still_due(closures, results, claims)
            self._close(closures, now)
            self._record(results, now)
            return self._claim(claims, run_id, now)

    def _claim(self, claims: Sequence[Claim], run_id: str, now: datetime) -> set[str]:
        """`pending -> sending` for these claims; the ids claimed."""
        lease, where, params = self._claim_terms()
        # in id order: two workers updating the same messages lock them in the same order
        claimed = self._update_batch(
            [claim_row(c) for c in sorted(claims, key=lambda c: c.message_id)],
            claim_sets(self.dialect, self._state_to(self.dialect.named("sending"), PENDING))
            + lease,
            where,
            {"sending": SENDING, "run_id": run_id, "now": to_db(now), **params},
            # claims found `pending` beforehand are all claimed: RETURNING costs DuckDB a
            # scan-like pass as the table grows (bench/messages.py)
            returning="t.message_id" if where else "",
        )
        taken = {r[0] for r in claimed} if where else {c.message_id for c in claims}
        texts = [text_row(c, now) for c in claims if c.message_id in taken]
        if texts:
            self.insert("message_texts", texts)
        return taken

    def _record(self, results: Sequence[MessageResult], now: datetime) -> None:
        """Record these outcomes of messages still `sending` (even if a lease ran out
        meanwhile: the truth is recorded)."""
        self._update_batch(
            [result_row(r, now) for r in sorted(results, key=lambda r: r.message_id)],
            result_sets(self.dialect, settle=False, state=self._state_to("u.state", SENDING)),
            self._found_in(SENDING),
            {"now": to_db(now)},
        )

    def _close(self, closures: Sequence[Closure], now: datetime) -> None:
        """Close these messages still `pending`, each with its reason."""
        self._update_batch(
            [closure_row(c) for c in sorted(closures, key=lambda c: c.message_id)],
            f"state = {self._state_to('u.state', PENDING)}, error_text = u.error_text, "
            f"updated_at = {self.dialect.named('now')}{self.dialect.release_lease}",
            self._found_in(PENDING),
            {"now": to_db(now)},
        )

    def _update_batch(
        self,
        rows: list[dict[str, Any]],
        sets: str,
        where: str,
        params: dict[str, Any],
        *,
        returning: str = "",
    ) -> list[tuple[Any, ...]]:
        """One dispatch batch's UPDATE of `messages`. With no `where` (`_found_in`: the
        backend checks the state in `sets` instead) it must have written every row
        (`_wrote`)."""
        answer = self.update_rows(
            "messages", rows, sets, where=where, params=params, returning=returning
        )
        if not where:
            self._wrote(answer, len(rows))
        return answer

    # --- messages in doubt ---------------------------------------------------------

    def settle_unknown(self, results: Sequence[MessageResult], now: datetime) -> set[str]:
        settled = self.update_rows(
            "messages",
            [result_row(r, now) for r in sorted(results, key=lambda r: r.message_id)],
            result_sets(self.dialect, settle=True),
            where=in_state(UNKNOWN),
            params={"now": to_db(now)},
            returning="t.message_id",
        )
        return {r[0] for r in settled}

    def release_unknown(self, message_ids: Sequence[str], *, resend: bool, now: datetime) -> int:
        if not message_ids:
            return 0
        p = self.dialect.param
        return self._move(
            "message_id",
            message_ids,
            UNKNOWN,
            f"state = {p}, error_text = {p}, updated_at = {p}",
            [
                PENDING if resend else SENT,
                "released by an operator" if resend else "confirmed sent by an operator",
                to_db(now),
            ],
        )

    # --- what providers said later ---------------------------------------------------

    def set_delivery_state(self, message_id: str, state: str, problem: str | None) -> None:
        p = self.dialect.param
        self.execute(
            f"UPDATE messages SET delivery_state = {p}, error_text = coalesce({p}, error_text) "
            f"WHERE message_id = {p}",
            [state, problem, message_id],
        )

    def record_engagement(self, message_id: str, kind: str, at: datetime) -> None:
        column = ENGAGEMENT_COLUMNS[kind]  # a fixed name: safe to format into the SQL
        p = self.dialect.param
        self.execute(
            f"UPDATE messages SET {column} = coalesce({column}, {p}) WHERE message_id = {p}",
            [to_db(at), message_id],
        )

    # --- lookups -----------------------------------------------------------------------

    def load_message(self, message_id: str) -> MessageRow | None:
        row = self.one(
            f"SELECT {MESSAGE_COLS} FROM messages WHERE message_id = {self.dialect.param}",
            [message_id],
        )
        return self._messages([row])[0] if row else None

    def messages_in_state(self, state: MessageState) -> list[MessageRow]:
        rows = self.rows(
            f"SELECT {MESSAGE_COLS} FROM messages WHERE state = {self.dialect.param} "
            "ORDER BY updated_at, message_id",
            [MessageState(state).value],
        )
        return self._messages(rows)

    def list_messages(self) -> list[MessageRow]:
        rows = self.rows(f"SELECT {MESSAGE_COLS} FROM messages ORDER BY created_at, message_id")
        return self._messages(rows)

    def _messages(self, rows: Sequence[tuple[Any, ...]]) -> list[MessageRow]:
        """The messages of `rows` (MESSAGE_COLS), in their order, each with the subject and
        text of its latest attempt (table `message_texts`, read for these messages only)."""
        messages = [message_from_row(r) for r in rows]
        if not messages:
            return messages
        latest: dict[str, tuple[int, str | None, str | None]] = {}
        for message_id, attempt, subject, body_text in self.rows_in(
            "SELECT message_id, attempt, subject, body_text FROM message_texts",
            "message_id",
            [m.message_id for m in messages],
        ):
            if message_id not in latest or attempt > latest[message_id][0]:
                latest[message_id] = (attempt, subject, body_text)
        return [
            replace(m, subject=text[1], body_text=text[2])
            if (text := latest.get(m.message_id))
            else m
            for m in messages
        ]

    def count_messages(self, state: MessageState) -> int:
        row = self.one(
            f"SELECT count(*) FROM messages WHERE state = {self.dialect.param}", [state.value]
        )
        return int(row[0]) if row else 0

    def message_counts(self) -> list[MessageCount]:
        rows = self.rows(
            "SELECT template, channel, state, count(*) FROM messages "
            "GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
        )
        return [MessageCount(r[0], ChannelKind(r[1]), MessageState(r[2]), int(r[3])) for r in rows]

    def past_messages(self, customer_ids: Iterable[str]) -> list[PastMessage]:
        rows = self.rows_in(
            "SELECT idempotency_key, customer_id, channel, rule_id, marketing, state, "
            "coalesce(sent_at, due_at), shipment_id, due_at FROM messages",
            "customer_id",
            customer_ids,
        )
        return [
            PastMessage(
                idempotency_key=r[0],
                customer_id=r[1],
                channel=CHANNELS[r[2]],
                rule_id=r[3],
                marketing=r[4],
                state=MESSAGE_STATES[r[5]],
                at=from_db(r[6]),
                shipment_id=r[7],
                due_at=from_db(r[8]),
            )
            for r in rows
        ]

    def find_messages(
        self,
        *,
        order_id: str | None = None,
        customer_id: str | None = None,
        since: datetime | None = None,
        limit: int = 500,
    ) -> list[MessageRow]:
        p = self.dialect.param
        where, params = ["TRUE"], []
        for clause, value in (
            (f"order_id = {p}", order_id),
            (f"customer_id = {p}", customer_id),
            (f"updated_at >= {p}", to_db(since)),
        ):
            if value is not None:
                where.append(clause)
                params.append(value)
        rows = self.rows(
            f"SELECT {MESSAGE_COLS} FROM messages WHERE {' AND '.join(where)} "
            f"ORDER BY updated_at DESC, message_id LIMIT {p}",
            [*params, limit],
        )
        return self._messages(rows)
