"""Message records: queued from decisions, claimed before sending, marked after.

Exactly-once rests on two facts of the store: the idempotency key is UNIQUE (a
decision made twice queues one message), and a claim is a conditional UPDATE from
`pending` to `sending` (two runs cannot both claim). A crash between claim and mark
leaves `sending`; the next cycle turns that into `unknown` and reports it instead of
resending (a human checks the provider and runs `aftersale messages release`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa

from aftersale.models import Decision, SendResult
from aftersale.store.duckdb.store import MessageRow, Store, from_db, to_db

PENDING, SENDING, SENT, FAILED, UNKNOWN, CANCELLED, SUPPRESSED = (
    "pending",
    "sending",
    "sent",
    "failed",
    "unknown",
    "cancelled",
    "suppressed",
)

_COLS = (
    "message_id, idempotency_key, rule_id, template, channel, marketing, order_id, "
    "shipment_id, item_sku, customer_id, event_id, state, due_at, attempts, recipient, "
    "provider_id, error_code, error_text"
)


def message_id_for(idempotency_key: str) -> str:
    return "m-" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:20]


def _row(r: tuple[Any, ...]) -> MessageRow:
    return MessageRow(
        message_id=r[0],
        idempotency_key=r[1],
        rule_id=r[2],
        template=r[3],
        channel=r[4],
        marketing=r[5],
        order_id=r[6],
        shipment_id=r[7],
        item_sku=r[8],
        customer_id=r[9],
        event_id=r[10],
        state=r[11],
        due_at=from_db(r[12]),
        attempts=r[13],
        recipient=r[14],
        provider_id=r[15],
        error_code=r[16],
        error_text=r[17],
    )


def queue_decisions(
    store: Store,
    decisions: Sequence[Decision],
    customer_of: Mapping[str, str],
    *,
    run_id: str,
    now: datetime,
) -> list[str]:
    """Insert decisions as pending messages; returns the ids actually inserted (new keys)."""
    rows: dict[str, dict[str, Any]] = {}
    for d in decisions:
        rows.setdefault(
            d.idempotency_key,
            {
                "message_id": message_id_for(d.idempotency_key),
                "idempotency_key": d.idempotency_key,
                "rule_id": d.rule_id,
                "template": d.template,
                "channel": d.channel.value,
                "marketing": d.marketing,
                "order_id": d.order_id,
                "shipment_id": d.shipment_id,
                "item_sku": d.item_sku,
                "customer_id": customer_of[d.order_id],
                "event_id": d.event.event_id,
                "state": PENDING,
                "due_at": to_db(d.due_at),
                "created_at": to_db(now),
                "updated_at": to_db(now),
                "attempts": 0,
                "run_id": run_id,
                "test": False,
            },
        )
    if not rows:
        return []
    known = {
        r[0]
        for r in store.con.execute(
            "SELECT idempotency_key FROM messages WHERE idempotency_key IN (SELECT unnest(?))",
            [list(rows)],
        ).fetchall()
    }
    fresh = [row for key, row in rows.items() if key not in known]
    store.insert_rows("messages", fresh, "ON CONFLICT DO NOTHING")
    return [row["message_id"] for row in fresh]


def cancel_pending(store: Store, keys: Sequence[str], reason: str, now: datetime) -> int:
    if not keys:
        return 0
    rows = store.con.execute(
        "UPDATE messages SET state = ?, error_text = ?, updated_at = ? "
        "WHERE idempotency_key IN (SELECT unnest(?)) AND state = ? RETURNING message_id",
        [CANCELLED, reason, to_db(now), list(keys), PENDING],
    ).fetchall()
    return len(rows)


def due_messages(store: Store, now: datetime, limit: int = 10_000) -> list[MessageRow]:
    rows = store.con.execute(
        f"SELECT {_COLS} FROM messages WHERE state = ? AND due_at <= ? "
        "ORDER BY due_at, message_id LIMIT ?",
        [PENDING, to_db(now), limit],
    ).fetchall()
    return [_row(r) for r in rows]


def messages_by_state(store: Store, state: str) -> list[MessageRow]:
    rows = store.con.execute(
        f"SELECT {_COLS} FROM messages WHERE state = ? ORDER BY updated_at", [state]
    ).fetchall()
    return [_row(r) for r in rows]


@dataclass(frozen=True, slots=True)
class Claim:
    """What is about to go out for one message, recorded with its claim."""

    message_id: str
    recipient: str
    subject: str | None
    body_text: str
    sms_segments: int | None
    provider: str


def claim_many(store: Store, claims: Sequence[Claim], *, run_id: str, now: datetime) -> set[str]:
    """pending -> sending for a batch, recording what is about to go out; returns the ids
    this run now holds (a message another run claimed first is not among them)."""
    if not claims:
        return set()
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
    with _batch(store, rows, _CLAIM_SCHEMA):
        claimed = store.con.execute(
            "UPDATE messages SET state = ?, recipient = b.recipient, subject = b.subject, "
            "body_text = b.body_text, sms_segments = b.sms_segments, provider = b.provider, "
            "attempts = attempts + 1, run_id = ?, updated_at = ? FROM _batch b "
            "WHERE messages.message_id = b.message_id AND messages.state = ? "
            "RETURNING messages.message_id",
            [SENDING, run_id, to_db(now), PENDING],
        ).fetchall()
    return {r[0] for r in claimed}


def mark_results(
    store: Store,
    results: Sequence[tuple[str, SendResult]],
    now: datetime,
    *,
    retry_in: timedelta,
) -> dict[str, str]:
    """Record the channels' answers for a batch of claimed messages; a transient failure
    goes back to pending, due again after `retry_in`. Returns message id -> new state."""
    if not results:
        return {}
    rows: list[dict[str, Any]] = []
    for message_id, result in results:
        if result.ok:
            state, due = SENT, None
        elif result.transient:
            state, due = PENDING, now + retry_in
        else:
            state, due = FAILED, None
        rows.append(
            {
                "message_id": message_id,
                "state": state,
                "provider_id": result.provider_id,
                "error_code": result.error_code,
                "error_text": result.error_text,
                "sent_at": to_db(now) if result.ok else None,
                "due_at": to_db(due),
            }
        )
    with _batch(store, rows, _RESULT_SCHEMA):
        store.con.execute(
            "UPDATE messages SET state = b.state, provider_id = b.provider_id, "
            "error_code = b.error_code, error_text = b.error_text, "
            "sent_at = coalesce(b.sent_at, messages.sent_at), "
            "due_at = coalesce(b.due_at, messages.due_at), updated_at = ? FROM _batch b "
            "WHERE messages.message_id = b.message_id AND messages.state = ?",
            [to_db(now), SENDING],
        )
    return {r["message_id"]: r["state"] for r in rows}


def close_many(store: Store, closures: Sequence[tuple[str, str, str]], now: datetime) -> None:
    """pending -> failed / suppressed, each with its reason (render error, opt-out, …)."""
    if not closures:
        return
    rows = [{"message_id": m, "state": st, "reason": why} for m, st, why in closures]
    with _batch(store, rows, _CLOSE_SCHEMA):
        store.con.execute(
            "UPDATE messages SET state = b.state, error_text = b.reason, updated_at = ? "
            "FROM _batch b WHERE messages.message_id = b.message_id AND messages.state = ?",
            [to_db(now), PENDING],
        )


@contextmanager
def _batch(store: Store, rows: list[dict[str, Any]], schema: pa.Schema) -> Iterator[None]:
    store.con.register("_batch", pa.Table.from_pylist(rows, schema=schema))
    try:
        yield
    finally:
        store.con.unregister("_batch")


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


def mark_stuck_unknown(store: Store, now: datetime) -> list[MessageRow]:
    """Messages left in `sending` by a crashed run: we cannot know if they went out."""
    rows = store.con.execute(
        f"UPDATE messages SET state = ?, error_text = 'run ended between claim and result: "
        f"check the provider, then `aftersale messages release`', updated_at = ? "
        f"WHERE state = ? RETURNING {_COLS}",
        [UNKNOWN, to_db(now), SENDING],
    ).fetchall()
    return [_row(r) for r in rows]


def release_unknown(
    store: Store, message_ids: Sequence[str], *, resend: bool, now: datetime
) -> int:
    """After a human check: resend (back to pending) or close as sent."""
    state = PENDING if resend else SENT
    rows = store.con.execute(
        "UPDATE messages SET state = ?, error_text = ?, updated_at = ? "
        "WHERE message_id IN (SELECT unnest(?)) AND state = ? RETURNING message_id",
        [
            state,
            "released by an operator" if resend else "confirmed sent by an operator",
            to_db(now),
            list(message_ids),
            UNKNOWN,
        ],
    ).fetchall()
    return len(rows)


def is_suppressed(store: Store, address: str, channel: str) -> str | None:
    return suppressions_for(store, [(address, channel)]).get((address.lower(), channel))


def suppressions_for(
    store: Store, addresses: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], str]:
    """(address lower-cased, channel) -> reason, for the given recipients that are suppressed."""
    wanted = list({a.lower() for a, _ in addresses})
    if not wanted:
        return {}
    rows = store.con.execute(
        "SELECT address, channel, reason FROM suppressions WHERE address IN (SELECT unnest(?))",
        [wanted],
    ).fetchall()
    return {(r[0], r[1]): r[2] for r in rows}
