"""Purges past retention (DuckDB): old scans of settled parcels, personal data of
customers with nothing live. Each is one statement; housekeeping decides when."""

from __future__ import annotations

from datetime import datetime

from aftersale.models import MessageState
from aftersale.store.duckdb.connection import Connection
from aftersale.store.records import ERASED
from aftersale.store.rows import TERMINAL, to_db

#: Message states in which the recipient and body are still needed.
_OPEN = [MessageState.PENDING.value, MessageState.SENDING.value, MessageState.UNKNOWN.value]
#: Customers with something live: a recent order, a parcel moving, a warranty running, a
#: message not settled. Their personal data stays however old their first order is.
_LIVE = (
    "SELECT DISTINCT o.customer_id FROM orders o "
    "LEFT JOIN shipments s USING (order_id) LEFT JOIN items i USING (order_id) "
    "WHERE o.placed_at >= $before "
    "OR (s.shipment_id IS NOT NULL AND s.status NOT IN (SELECT unnest($terminal))) "
    "OR (i.warranty_months > 0 AND o.placed_at + to_months(i.warranty_months) >= $now) "
    "UNION SELECT customer_id FROM messages WHERE state IN (SELECT unnest($open))"
)


class Retention(Connection):
    def purge_tracking_events(self, before: datetime) -> int:
        rows = self.rows(
            "DELETE FROM tracking_events t WHERE t.occurred_at < ? AND EXISTS "
            "(SELECT 1 FROM shipments s WHERE s.shipment_id = t.shipment_id "
            "AND s.status IN (SELECT unnest(?))) RETURNING 1",
            [to_db(before), TERMINAL],
        )
        return len(rows)

    def erase_personal_data(self, now: datetime, placed_before: datetime) -> tuple[int, int]:
        params = {
            "before": to_db(placed_before),
            "now": to_db(now),
            "terminal": TERMINAL,
            "open": _OPEN,
        }
        erased = self.rows(
            f"UPDATE customers SET name = '{ERASED}', email = NULL, phone = NULL, tags = [] "
            f"WHERE customer_id NOT IN ({_LIVE}) AND (email IS NOT NULL OR phone IS NOT NULL "
            f"OR name <> '{ERASED}') RETURNING customer_id",
            params,
        )
        # the history of a customer's changes is their personal data too
        self.execute(
            "DELETE FROM customer_changes WHERE customer_id IN (SELECT unnest(?))",
            [[r[0] for r in erased]],
        )
        scrubbed = self.rows(
            "UPDATE messages SET recipient = NULL, subject = NULL, body_text = NULL "
            f"WHERE customer_id NOT IN ({_LIVE}) AND state NOT IN (SELECT unnest($open)) "
            "AND (recipient IS NOT NULL OR body_text IS NOT NULL) RETURNING message_id",
            params,
        )
        return len(erased), len(scrubbed)
