"""What `decide` needs to know about earlier messages (keys, recent sends, pending),
built from the store's record of them."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from aftersale.decide.engine import PendingMessage, SendHistory, SentRecord
from aftersale.models import ChannelKind, MessageState
from aftersale.store.protocols import MessageStore
from aftersale.store.records import PastMessage

#: Sends older than this never count against a frequency cap.
CAP_LOOKBACK = timedelta(days=31)
#: States in which a message counts against a cap: it went out, may have, or will.
_COUNTED = frozenset(
    {MessageState.SENT, MessageState.SENDING, MessageState.UNKNOWN, MessageState.PENDING}
)


def load_send_history(
    store: MessageStore, customer_ids: Iterable[str], now: datetime
) -> SendHistory:
    ids = set(customer_ids)
    if not ids:
        return SendHistory()
    return send_history(store.past_messages(ids), now)


def send_history(past: Iterable[PastMessage], now: datetime) -> SendHistory:
    """The keys used, the sends within the cap lookback and the pending messages."""
    since = now - CAP_LOOKBACK
    keys: set[str] = set()
    recent: dict[tuple[str, ChannelKind], list[SentRecord]] = {}
    pending = []
    for m in past:
        keys.add(m.idempotency_key)
        if m.state in _COUNTED and m.at >= since:
            recent.setdefault((m.customer_id, m.channel), []).append(
                SentRecord(m.at, m.rule_id, m.marketing)
            )
        if m.state is MessageState.PENDING:
            pending.append(PendingMessage(m.idempotency_key, m.rule_id, m.shipment_id, m.due_at))
    return SendHistory(
        used_keys=frozenset(keys),
        recent={k: tuple(sorted(v, key=lambda r: r.at)) for k, v in recent.items()},
        pending=tuple(pending),
    )
