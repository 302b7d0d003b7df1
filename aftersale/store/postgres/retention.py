"""Purges past retention (PostgreSQL): old scans of settled parcels, personal data of
customers with nothing live. Each is one statement; housekeeping decides when."""

from __future__ import annotations

from datetime import datetime

from aftersale.models import MessageState
from aftersale.store.postgres.connection import Connection
from aftersale.store.records import ERASED
from aftersale.store.rows import TERMINAL, to_db

#: Message states in which the recipient and body are still needed.
_OPEN = [MessageState.PENDING.value, MessageState.SENDING.value, MessageState.UNKNOWN.value]
#: Customers with something live: a recent order, a parcel moving, a warranty running, a
#: message not settled. Their personal data stays however old their first order is.
_LIVE = (
    "SELECT o.customer_id FROM orders o "
    "LEFT JOIN shipments s USING (order_id) LEFT JOIN items i USING (order_id) "
    "WHERE o.placed_at >= %(before)s "
    "OR (s.shipment_id IS NOT NULL AND s.status <> ALL(%(terminal)s)) "
    "OR (i.warranty_months > 0 "
    "AND o.placed_at + make_interval(months => i.warranty_months) >= %(now)s) "
    "UNION SELECT customer_id FROM messages WHERE state = ANY(%(open)s)"
)


class Retention(Connection):
    def purge_tracking_events(self, before: datetime) -> int:
        rows = self.rows(
            "DELETE FROM tracking_events t WHERE t.occurred_at < %s AND EXISTS "
            "(SELECT 1 FROM shipments s WHERE s.shipment_id = t.shipment_id "
            "AND s.status = ANY(%s)) RETURNING 1",
            [to_db(before), TERMINAL],
        )
        return len(rows)

    def erase_personal_data(self, now: datetime, placed_before: datetime) -> tuple[int, int]:
        params = {
            "before": to_db(placed_before),
            "now": to_db(now),
            "terminal": TERMINAL,
            "open": _OPEN,
            "erased": ERASED,
        }
        erased = self.rows(
            "UPDATE customers SET name = %(erased)s, email = NULL, phone = NULL, tags = '{}' "
            f"WHERE customer_id NOT IN ({_LIVE}) AND (email IS NOT NULL OR phone IS NOT NULL "
            "OR name <> %(erased)s) RETURNING customer_id",
            params,
        )
        # the history of a customer's changes is their personal data too
        self.execute(
            "DELETE FROM customer_changes WHERE customer_id = ANY(%s)", [[r[0] for r in erased]]
        )
        scrubbed = self.rows(
            "UPDATE messages SET recipient = NULL, subject = NULL, body_text = NULL "
            f"WHERE customer_id NOT IN ({_LIVE}) AND state <> ALL(%(open)s) "
            "AND (recipient IS NOT NULL OR body_text IS NOT NULL) RETURNING message_id",
            params,
        )
        return len(erased), len(scrubbed)
