"""Message records: decisions become queued messages, channel answers become results.

Exactly-once rests on the store (aftersale.store.protocols.MessageStore): the
idempotency key is unique (a decision made twice queues one message), and a claim moves
`pending -> sending` in one conditional statement (two runs cannot both claim). A crash
between claim and result leaves `sending`; the next cycle turns that into `unknown`, never
resends it blindly, and asks the channels that can tell (the outbox, Twilio: dispatch/
send.py); the rest wait for a human, who checks the provider and runs `aftersale messages
release`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from aftersale.models import Decision, MessageState, SendResult
from aftersale.store.protocols import MessageStore
from aftersale.store.records import MessageResult, NewMessage

#: Why the dispatcher turns a message left in `sending` into `unknown`.
STUCK_REASON = (
    "run ended between claim and result: check the provider, then `aftersale messages release`"
)


def message_id_for(idempotency_key: str) -> str:
    return "m-" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:20]


def new_messages(
    decisions: Sequence[Decision], customer_of: Mapping[str, str], *, run_id: str
) -> list[NewMessage]:
    """The messages these decisions queue, one per idempotency key (the first wins)."""
    out: dict[str, NewMessage] = {}
    event, event_id = None, ""
    for d in decisions:
        key = d.idempotency_key
        if key in out:
            continue
        if d.event is not event:  # an event's decisions come together (one per channel)
            event, event_id = d.event, d.event.event_id
        # positional, in field order (message_id, idempotency_key, rule_id, template,
        # channel, marketing, order_id, shipment_id, item_sku, customer_id, event_id,
        # due_at, run_id): keywords cost a third of building a page's messages
        out[key] = NewMessage(
            message_id_for(key),
            key,
            d.rule_id,
            d.template,
            d.channel,
            d.marketing,
            d.order_id,
            d.shipment_id,
            d.item_sku,
            customer_of[d.order_id],
            event_id,
            d.due_at,
            run_id,
        )
    return list(out.values())


def queue_decisions(
    store: MessageStore,
    decisions: Sequence[Decision],
    customer_of: Mapping[str, str],
    *,
    run_id: str,
    now: datetime,
) -> list[str]:
    """Insert decisions as pending messages; returns the ids actually inserted (new keys)."""
    return store.queue_messages(new_messages(decisions, customer_of, run_id=run_id), now)


def cancel_pending(store: MessageStore, keys: Sequence[str], reason: str, now: datetime) -> int:
    """Cancel the still-pending messages of these idempotency keys (superseded)."""
    return store.cancel_pending_messages(keys, reason, now)


def message_result(
    message_id: str, result: SendResult, now: datetime, *, retry_in: timedelta
) -> MessageResult:
    """What a channel's answer makes of a claimed message: sent, failed, `unknown` (the
    provider may have it: never resent blindly), or (a transient failure that surely did
    not reach the provider) pending again, due after `retry_in`."""
    if result.ok:
        state, retry_at = MessageState.SENT, None
    elif result.in_doubt:
        state, retry_at = MessageState.UNKNOWN, None
    elif result.transient:
        state, retry_at = MessageState.PENDING, now + retry_in
    else:
        state, retry_at = MessageState.FAILED, None
    return MessageResult(
        message_id, state, result.provider_id, result.error_code, result.error_text, retry_at
    )
