"""The messages table (PostgreSQL): queue, lease, claim, record results, close, recover.

Exactly-once with several workers rests on three facts: the idempotency key is UNIQUE
(a decision made twice, by anyone, queues one message); a page of due messages is
leased to one worker (`FOR UPDATE SKIP LOCKED`, owner + expiry), so workers render and
send disjoint pages; and a claim is one conditional UPDATE from `pending` to `sending`
that honours the lease, so two workers can never both claim. A message left in
`sending` by a worker that is gone (its sessions closed, or its lease expired) becomes
`unknown`: never sent again without a human.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from aftersale.models import ChannelKind, MessageState
from aftersale.store.postgres.connection import Connection, lease_free, lease_until
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
_COLS_M = ", ".join(f"m.{c.strip()}" for c in MESSAGE_COLS.split(","))
_NEW_TYPES = {
    "message_id": "varchar",
    "idempotency_key": "varchar",
    "rule_id": "varchar",
    "template": "varchar",
    "channel": "varchar",
    "marketing": "boolean",
    "order_id": "varchar",
    "shipment_id": "varchar",
    "item_sku": "varchar",
    "customer_id": "varchar",
    "event_id": "varchar",
    "state": "varchar",
    "due_at": "timestamp",
    "created_at": "timestamp",
    "updated_at": "timestamp",
    "attempts": "integer",
    "run_id": "varchar",
    "test": "boolean",
}
_CLAIM_TYPES = {
    "message_id": "varchar",
    "recipient": "varchar",
    "subject": "varchar",
    "body_text": "varchar",
    "sms_segments": "integer",
    "provider": "varchar",
}
_RESULT_TYPES = {
    "message_id": "varchar",
    "state": "varchar",
    "provider_id": "varchar",
    "error_code": "varchar",
    "error_text": "varchar",
    "sent_at": "timestamp",
    "due_at": "timestamp",
}
_CLOSE_TYPES = {"message_id": "varchar", "state": "varchar", "reason": "varchar"}


class Messages(Connection):
    def queue_messages(self, messages: Sequence[NewMessage], now: datetime) -> list[str]:
        unique: dict[str, NewMessage] = {}
        for m in messages:
            unique.setdefault(m.idempotency_key, m)
        # in key order: two workers queueing the same keys lock them in the same order
        rows = [new_message_row(unique[k], now) for k in sorted(unique)]
        inserted = {
            r[0]
            for r in self.insert_unnest(
                "messages", _NEW_TYPES, rows, "ON CONFLICT DO NOTHING RETURNING message_id"
            )
        }
        return [m.message_id for m in unique.values() if m.message_id in inserted]

    def cancel_pending_messages(
        self, idempotency_keys: Sequence[str], reason: str, now: datetime
    ) -> int:
        if not idempotency_keys:
            return 0
        rows = self.rows(
            "UPDATE messages SET state = %s, error_text = %s, updated_at = %s, "
            "lease_owner = NULL, lease_until = NULL "
            "WHERE idempotency_key = ANY(%s) AND state = %s RETURNING message_id",
            [MessageState.CANCELLED.value, reason, to_db(now), list(idempotency_keys), PENDING],
        )
        return len(rows)

    def due_messages(
        self, now: datetime, *, limit: int, after: DueCursor | None = None
    ) -> list[MessageRow]:
        """Lease one page of due messages to this worker: messages another live worker
        holds are skipped, and it skips these until they are sent or the lease ends."""
        where = f"m.state = %(pending)s AND m.due_at <= %(now)s AND {lease_free('m')}"
        params = self.lease_params(pending=PENDING, now=to_db(now), limit=limit)
        if after is not None:
            where += " AND (m.due_at, m.message_id) > (%(after_due)s, %(after_id)s)"
            params.update(after_due=to_db(after[0]), after_id=after[1])
        rows = self.rows(
            f"WITH picked AS (SELECT m.message_id FROM messages m WHERE {where} "
            "ORDER BY m.due_at, m.message_id LIMIT %(limit)s FOR UPDATE SKIP LOCKED) "
            f"UPDATE messages m SET lease_owner = %(me)s, lease_until = {lease_until()} "
            f"FROM picked WHERE m.message_id = picked.message_id RETURNING {_COLS_M}",
            params,
        )
        return sorted((message_from_row(r) for r in rows), key=lambda m: (m.due_at, m.message_id))

    def claim_messages(self, claims: Sequence[Claim], *, run_id: str, now: datetime) -> set[str]:
        rows = [
            {
                "message_id": c.message_id,
                "recipient": c.recipient,
                "subject": c.subject,
                "body_text": c.body_text,
                "sms_segments": c.sms_segments,
                "provider": c.provider,
            }
            for c in sorted(claims, key=lambda c: c.message_id)
        ]
        claimed = self.update_unnest(
            "messages",
            _CLAIM_TYPES,
            rows,
            "state = %(sending)s, recipient = u.recipient, subject = u.subject, "
            "body_text = u.body_text, sms_segments = u.sms_segments, provider = u.provider, "
            "attempts = t.attempts + 1, run_id = %(run_id)s, updated_at = %(now)s, "
            f"lease_owner = %(me)s, lease_until = {lease_until()}",
            where=f"t.state = %(pending)s AND {lease_free('t')}",
            params=self.lease_params(
                sending=SENDING, pending=PENDING, run_id=run_id, now=to_db(now)
            ),
            returning="t.message_id",
        )
        return {r[0] for r in claimed}

    def record_results(self, results: Sequence[MessageResult], now: datetime) -> None:
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
            for r in sorted(results, key=lambda r: r.message_id)
        ]
        # The truth is recorded even if the lease ran out meanwhile, while still `sending`.
        self.update_unnest(
            "messages",
            _RESULT_TYPES,
            rows,
            "state = u.state, provider_id = u.provider_id, error_code = u.error_code, "
            "error_text = u.error_text, sent_at = coalesce(u.sent_at, t.sent_at), "
            "due_at = coalesce(u.due_at, t.due_at), updated_at = %(now)s, "
            "lease_owner = NULL, lease_until = NULL",
            where="t.state = %(sending)s",
            params={"now": to_db(now), "sending": SENDING},
        )

    def record_and_claim(
        self,
        results: Sequence[MessageResult],
        claims: Sequence[Claim],
        *,
        closures: Sequence[Closure] = (),
        run_id: str,
        now: datetime,
    ) -> set[str]:
        with self.transaction():
            self.close_messages(closures, now)
            self.record_results(results, now)
            return self.claim_messages(claims, run_id=run_id, now=now)

    def settle_unknown(self, results: Sequence[MessageResult], now: datetime) -> set[str]:
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
            for r in sorted(results, key=lambda r: r.message_id)
        ]
        settled = self.update_unnest(
            "messages",
            _RESULT_TYPES,
            rows,
            "state = u.state, provider_id = coalesce(u.provider_id, t.provider_id), "
            "error_text = u.error_text, sent_at = coalesce(u.sent_at, t.sent_at), "
            "due_at = coalesce(u.due_at, t.due_at), updated_at = %(now)s, "
            "lease_owner = NULL, lease_until = NULL",
            where="t.state = %(unknown)s",
            params={"now": to_db(now), "unknown": UNKNOWN},
            returning="t.message_id",
        )
        return {r[0] for r in settled}

    def close_messages(self, closures: Sequence[Closure], now: datetime) -> None:
        rows = [
            {"message_id": c.message_id, "state": c.state.value, "reason": c.reason}
            for c in sorted(closures, key=lambda c: c.message_id)
        ]
        self.update_unnest(
            "messages",
            _CLOSE_TYPES,
            rows,
            "state = u.state, error_text = u.reason, updated_at = %(now)s, "
            "lease_owner = NULL, lease_until = NULL",
            where="t.state = %(pending)s",
            params={"now": to_db(now), "pending": PENDING},
        )

    def mark_stuck_unknown(
        self, reason: str, *, claimed_before: datetime | None = None
    ) -> list[MessageRow]:
        """`sending -> unknown` for messages whose worker is gone or whose lease ran out
        (a live worker's sends in flight are left alone). updated_at stays the claim's
        time: providers are asked what they got since then."""
        where = f"m.state = %(sending)s AND {lease_free('m')}"
        params = self.lease_params(unknown=UNKNOWN, reason=reason, sending=SENDING)
        if claimed_before is not None:
            where += " AND m.updated_at < %(before)s"
            params["before"] = to_db(claimed_before)
        rows = self.rows(
            "UPDATE messages m SET state = %(unknown)s, error_text = %(reason)s, "
            "lease_owner = NULL, lease_until = NULL "
            f"WHERE {where} RETURNING {_COLS_M}",
            params,
        )
        return sorted((message_from_row(r) for r in rows), key=lambda m: m.message_id)

    def release_unknown(self, message_ids: Sequence[str], *, resend: bool, now: datetime) -> int:
        rows = self.rows(
            "UPDATE messages SET state = %s, error_text = %s, updated_at = %s "
            "WHERE message_id = ANY(%s) AND state = %s RETURNING message_id",
            [
                PENDING if resend else SENT,
                "released by an operator" if resend else "confirmed sent by an operator",
                to_db(now),
                list(message_ids),
                UNKNOWN,
            ],
        )
        return len(rows)

    def load_message(self, message_id: str) -> MessageRow | None:
        row = self.one(f"SELECT {MESSAGE_COLS} FROM messages WHERE message_id = %s", [message_id])
        return message_from_row(row) if row else None

    def messages_in_state(self, state: MessageState) -> list[MessageRow]:
        rows = self.rows(
            f"SELECT {MESSAGE_COLS} FROM messages WHERE state = %s ORDER BY updated_at, message_id",
            [MessageState(state).value],
        )
        return [message_from_row(r) for r in rows]

    def list_messages(self) -> list[MessageRow]:
        rows = self.rows(f"SELECT {MESSAGE_COLS} FROM messages ORDER BY created_at, message_id")
        return [message_from_row(r) for r in rows]

    def count_messages(self, state: MessageState) -> int:
        row = self.one("SELECT count(*) FROM messages WHERE state = %s", [state.value])
        return int(row[0]) if row else 0

    def message_counts(self) -> list[MessageCount]:
        rows = self.rows(
            "SELECT template, channel, state, count(*) FROM messages "
            "GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
        )
        return [MessageCount(r[0], ChannelKind(r[1]), MessageState(r[2]), int(r[3])) for r in rows]

    def past_messages(self, customer_ids: Iterable[str]) -> list[PastMessage]:
        ids = list(set(customer_ids))
        if not ids:
            return []
        rows = self.rows(
            "SELECT idempotency_key, customer_id, channel, rule_id, marketing, state, "
            "coalesce(sent_at, due_at), shipment_id, due_at FROM messages "
            "WHERE customer_id = ANY(%s)",
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
            "UPDATE messages SET delivery_state = %s, error_text = coalesce(%s, error_text) "
            "WHERE message_id = %s",
            [state, problem, message_id],
        )

    def record_engagement(self, message_id: str, kind: str, at: datetime) -> None:
        column = ENGAGEMENT_COLUMNS[kind]  # a fixed name: safe to format into the SQL
        self.execute(
            f"UPDATE messages SET {column} = coalesce({column}, %s) WHERE message_id = %s",
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
            ("order_id = %s", order_id),
            ("customer_id = %s", customer_id),
            ("updated_at >= %s", to_db(since)),
        ):
            if value is not None:
                where.append(clause)
                params.append(value)
        rows = self.rows(
            f"SELECT {MESSAGE_COLS} FROM messages WHERE {' AND '.join(where)} "
            "ORDER BY updated_at DESC, message_id LIMIT %s",
            [*params, limit],
        )
        return [message_from_row(r) for r in rows]
