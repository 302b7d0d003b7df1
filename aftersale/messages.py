"""Message records: queued from decisions, claimed before sending, marked after.

Exactly-once rests on two facts of the store: the idempotency key is UNIQUE (a
decision made twice queues one message), and a claim is a conditional UPDATE from
`pending` to `sending` (two runs cannot both claim). A crash between claim and mark
leaves `sending`; the next cycle turns that into `unknown` and reports it instead of
resending (a human checks the provider and runs `aftersale messages release`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from aftersale.models import Decision, SendResult
from aftersale.store import MessageRow, Store, from_db, to_db

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
    store._insert_arrow("messages", fresh, "ON CONFLICT DO NOTHING")
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


def claim(
    store: Store,
    message_id: str,
    *,
    recipient: str,
    subject: str | None,
    body_text: str,
    sms_segments: int | None,
    provider: str,
    run_id: str,
    now: datetime,
) -> bool:
    """pending -> sending, recording what is about to go out. False if someone else has it."""
    rows = store.con.execute(
        "UPDATE messages SET state = ?, recipient = ?, subject = ?, body_text = ?, "
        "sms_segments = ?, "
        "provider = ?, attempts = attempts + 1, run_id = ?, updated_at = ? "
        "WHERE message_id = ? AND state = ? RETURNING message_id",
        [
            SENDING,
            recipient,
            subject,
            body_text,
            sms_segments,
            provider,
            run_id,
            to_db(now),
            message_id,
            PENDING,
        ],
    ).fetchall()
    return bool(rows)


def mark_result(
    store: Store, message_id: str, result: SendResult, now: datetime, *, retry_in: timedelta
) -> str:
    """Record the channel's answer; a transient failure goes back to pending for a later cycle."""
    if result.ok:
        state, due = SENT, None
    elif result.transient:
        state, due = PENDING, now + retry_in
    else:
        state, due = FAILED, None
    store.con.execute(
        "UPDATE messages SET state = ?, provider_id = ?, error_code = ?, error_text = ?, "
        "sent_at = CASE WHEN ? THEN ? ELSE sent_at END, due_at = coalesce(?, due_at), "
        "updated_at = ? "
        "WHERE message_id = ? AND state = ?",
        [
            state,
            result.provider_id,
            result.error_code,
            result.error_text,
            result.ok,
            to_db(now),
            to_db(due),
            to_db(now),
            message_id,
            SENDING,
        ],
    )
    return state


def mark_without_sending(
    store: Store, message_id: str, state: str, reason: str, now: datetime
) -> None:
    """pending -> failed / suppressed / cancelled, with the reason (render error, opt-out, …)."""
    store.con.execute(
        "UPDATE messages SET state = ?, error_text = ?, updated_at = ? "
        "WHERE message_id = ? AND state = ?",
        [state, reason, to_db(now), message_id, PENDING],
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
    row = store.con.execute(
        "SELECT reason FROM suppressions WHERE address = ? AND channel = ?",
        [address.lower(), channel],
    ).fetchone()
    return row[0] if row else None
