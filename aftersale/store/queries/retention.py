"""Purges past retention: old scans of settled parcels, personal data of customers with
nothing live. Each is one statement; housekeeping decides when."""

from __future__ import annotations

from datetime import datetime

from aftersale.models import MessageState
from aftersale.store.backend import Backend, Dialect
from aftersale.store.records import ERASED
from aftersale.store.rows import TERMINAL, to_db

#: Message states in which the recipient and body are still needed.
_OPEN = [MessageState.PENDING.value, MessageState.SENDING.value, MessageState.UNKNOWN.value]


def _live(d: Dialect) -> str:
    """Customers with something live: a recent order, a parcel moving, a warranty running,
    a message not settled. Their personal data stays however old their first order is."""
    return (
        "SELECT o.customer_id FROM orders o "
        "LEFT JOIN shipments s USING (order_id) LEFT JOIN items i USING (order_id) "
        f"WHERE o.placed_at >= {d.named('before')} "
        "OR (s.shipment_id IS NOT NULL "
        f"AND {d.not_in_list('s.status', d.named('terminal'))}) "
        "OR (i.warranty_months > 0 "
        f"AND o.placed_at + {d.interval('i.warranty_months', 'months')} >= {d.named('now')}) "
        f"UNION SELECT customer_id FROM messages WHERE {d.in_list('state', d.named('open'))}"
    )


class Retention(Backend):
    def purge_tracking_events(self, before: datetime) -> int:
        d = self.dialect
        rows = self.rows(
            f"DELETE FROM tracking_events t WHERE t.occurred_at < {d.param} AND EXISTS "
            "(SELECT 1 FROM shipments s WHERE s.shipment_id = t.shipment_id "
            f"AND {d.in_list('s.status')}) RETURNING 1",
            [to_db(before), TERMINAL],
        )
        return len(rows)

    def erase_personal_data(self, now: datetime, placed_before: datetime) -> tuple[int, int]:
        d = self.dialect
        live = _live(d)
        params = {
            "before": to_db(placed_before),
            "now": to_db(now),
            "terminal": TERMINAL,
            "open": _OPEN,
        }
        erased = self.rows(
            f"UPDATE customers SET name = {d.named('erased')}, email = NULL, phone = NULL, "
            f"tags = {d.empty_list} WHERE customer_id NOT IN ({live}) "
            f"AND (email IS NOT NULL OR phone IS NOT NULL OR name <> {d.named('erased')}) "
            "RETURNING customer_id",
            {**params, "erased": ERASED},
        )
        # the history of a customer's changes is their personal data too
        self.execute(
            f"DELETE FROM customer_changes WHERE {d.in_list('customer_id')}",
            [[r[0] for r in erased]],
        )
        closed = f"customer_id NOT IN ({live}) AND {d.not_in_list('state', d.named('open'))}"
        texts = self.rows(
            "DELETE FROM message_texts WHERE message_id IN "
            f"(SELECT message_id FROM messages WHERE {closed}) RETURNING message_id",
            params,
        )
        addressed = self.rows(
            f"UPDATE messages SET recipient = NULL WHERE {closed} AND recipient IS NOT NULL "
            "RETURNING message_id",
            params,
        )
        return len(erased), len({r[0] for r in texts} | {r[0] for r in addressed})
