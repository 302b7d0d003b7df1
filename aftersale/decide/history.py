"""Read what `decide` needs to know about earlier messages (keys, recent sends, pending)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from aftersale.decide.engine import PendingMessage, SendHistory, SentRecord
from aftersale.models import ChannelKind
from aftersale.store.duckdb.store import Store, from_db, to_db

#: Sends older than this never count against a frequency cap.
CAP_LOOKBACK = timedelta(days=31)


def load_send_history(store: Store, customer_ids: Iterable[str], now: datetime) -> SendHistory:
    ids = list(set(customer_ids))
    if not ids:
        return SendHistory()
    rows = store.con.execute(
        "SELECT idempotency_key, customer_id, channel, rule_id, marketing, state, "
        "coalesce(sent_at, due_at), shipment_id, due_at FROM messages "
        "WHERE customer_id IN (SELECT unnest(?))",
        [ids],
    ).fetchall()
    since = to_db(now - CAP_LOOKBACK)
    recent: dict[tuple[str, ChannelKind], list[SentRecord]] = {}
    pending = []
    for key, customer, channel, rule_id, marketing, state, at, shipment_id, due_at in rows:
        if state in ("sent", "sending", "unknown", "pending") and at >= since:
            recent.setdefault((customer, ChannelKind(channel)), []).append(
                SentRecord(from_db(at), rule_id, marketing)  # type: ignore[arg-type]
            )
        if state == "pending":
            pending.append(PendingMessage(key, rule_id, shipment_id, from_db(due_at)))  # type: ignore[arg-type]
    return SendHistory(
        used_keys=frozenset(r[0] for r in rows),
        recent={k: tuple(sorted(v, key=lambda r: r.at)) for k, v in recent.items()},
        pending=tuple(pending),
    )
