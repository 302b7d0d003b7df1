"""Erasing one customer's personal data on request (GDPR art. 17), in one transaction.

Rows stay (orders, items, parcels, messages and their states are the shop's counts);
what names, reaches or quotes the person goes: name, email, phone, tags, country, the
history of their changes, recipients, subjects and bodies of their messages, and their
data quoted in rejected-row reasons. The customer id becomes `erased-<hash>` everywhere,
since an id may be the email address itself. A row in `erasures` records that it
happened (the id's hash, when, the counts), so a second request is answered.
"""

from __future__ import annotations

from datetime import datetime

from aftersale.models import MessageState
from aftersale.store.backend import Backend
from aftersale.store.records import ERASED, Erasure
from aftersale.store.rows import erased_id, from_db, from_json, subject_hash, to_db, to_json


class Privacy(Backend):
    def erase_customer(self, customer_id: str, now: datetime) -> Erasure | None:
        d = self.dialect
        p = d.param
        digest = subject_hash(customer_id)
        done = self.one(
            f"SELECT erased_at, counts FROM erasures WHERE subject_hash = {p}", [digest]
        )
        if done is not None:
            return Erasure(digest, from_db(done[0]), from_json(done[1]), already=True)
        found = self.one(
            f"SELECT name, email, phone FROM customers WHERE customer_id = {p}", [customer_id]
        )
        if found is None:
            return None
        name, email, phone = found
        new_id = erased_id(customer_id)
        quoted = [v for v in (email, phone, name, customer_id) if v and len(v) >= 4]
        with self.transaction():
            message_ids = [
                r[0]
                for r in self.rows(
                    f"SELECT message_id FROM messages WHERE customer_id = {p} ORDER BY message_id",
                    [customer_id],
                )
            ]
            cancelled = self.rows(
                f"UPDATE messages SET state = {p}, error_text = {p}, updated_at = {p} "
                f"WHERE customer_id = {p} AND state = {p} RETURNING message_id",
                [
                    MessageState.CANCELLED.value,
                    "customer's personal data erased on request",
                    to_db(now),
                    customer_id,
                    MessageState.PENDING.value,
                ],
            )
            self.execute(
                "DELETE FROM message_texts WHERE message_id IN "
                f"(SELECT message_id FROM messages WHERE customer_id = {p})",
                [customer_id],
            )
            self.execute(
                f"UPDATE messages SET recipient = NULL, customer_id = {p} WHERE customer_id = {p}",
                [new_id, customer_id],
            )
            orders = self.rows(
                f"UPDATE orders SET customer_id = {p} WHERE customer_id = {p} RETURNING order_id",
                [new_id, customer_id],
            )
            history = self.rows(
                f"DELETE FROM customer_changes WHERE customer_id = {p} RETURNING 1", [customer_id]
            )
            self.execute(f"DELETE FROM customers WHERE customer_id = {p}", [customer_id])
            self.execute(
                "INSERT INTO customers (customer_id, name, email, phone, locale, time_zone, "
                "consent_email, consent_sms, country, tags, updated_at) "
                f"VALUES ({p}, {p}, NULL, NULL, 'en', 'UTC', FALSE, FALSE, NULL, "
                f"{d.empty_list}, {p})",
                [new_id, ERASED, to_db(now)],
            )
            scrubbed_rejections = 0
            for value in quoted:
                scrubbed_rejections += len(
                    self.rows(
                        f"UPDATE rejections SET reason = replace(reason, {p}, {p}) "
                        f"WHERE strpos(reason, {p}) > 0 RETURNING 1",
                        [value, ERASED, value],
                    )
                )
            counts = {
                "orders": len(orders),
                "messages": len(message_ids),
                "pending_cancelled": len(cancelled),
                "history_rows": len(history),
                "rejections_scrubbed": scrubbed_rejections,
            }
            self.execute(
                "INSERT INTO erasures (subject_hash, erased_id, erased_at, counts) "
                f"VALUES ({d.params(4)})",
                [digest, new_id, to_db(now), to_json(counts)],
            )
        return Erasure(
            digest,
            now,
            counts,
            already=False,
            erased_id=new_id,
            message_ids=tuple(message_ids),
            addresses=tuple(v for v in (email, phone) if v),
        )
