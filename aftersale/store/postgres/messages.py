"""The messages table (PostgreSQL): what differs from the statements written once
(aftersale/store/queries/messages.py): the leases that let several workers share it.

Exactly-once with several workers rests on three facts: the idempotency key is UNIQUE
(a decision made twice, by anyone, queues one message); a page of due messages is
leased to one worker (`FOR UPDATE SKIP LOCKED`, owner + expiry), so workers render and
send disjoint pages; and a claim is one conditional UPDATE from `pending` to `sending`
that honours the lease, so two workers can never both claim (results and closures are
conditional on the state too). A message left in `sending` by a worker that is gone (its
sessions closed, or its lease expired) becomes `unknown`: never sent again without a
human.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from aftersale.store.postgres.connection import Connection, lease_free, lease_until
from aftersale.store.queries import messages
from aftersale.store.queries.messages import PENDING, SENDING, UNKNOWN, in_state
from aftersale.store.records import DueCursor, DueMessage, MessageRow
from aftersale.store.rows import (
    DUE_COLS,
    MESSAGE_COLS,
    due_message_from_row,
    to_db,
)


def _of_m(cols: str) -> str:
    return ", ".join(f"m.{c.strip()}" for c in cols.split(","))


_COLS_M = _of_m(MESSAGE_COLS)


class Messages(messages.Messages, Connection):
    def due_messages(
        self, now: datetime, *, limit: int, after: DueCursor | None = None
    ) -> list[DueMessage]:
        """Lease one page of due messages to this worker: messages another live worker
        holds are skipped, and it skips these until they are sent or the lease ends."""
        where = f"m.state = %(pending)s AND m.due_at <= %(now)s AND {lease_free('m')}"
        params = self.lease_params(pending=PENDING, now=to_db(now), limit=limit)
        if after is not None:
            where += (
                " AND (m.due_at, m.order_id, m.message_id) "
                "> (%(after_due)s, %(after_order)s, %(after_id)s)"
            )
            params.update(
                after_due=to_db(after.due_at), after_order=after.order_id, after_id=after.message_id
            )
        rows = self.rows(
            f"WITH picked AS (SELECT m.message_id FROM messages m WHERE {where} "
            "ORDER BY m.due_at, m.order_id, m.message_id LIMIT %(limit)s "
            "FOR UPDATE SKIP LOCKED) "
            f"UPDATE messages m SET lease_owner = %(me)s, lease_until = {lease_until()} "
            f"FROM picked WHERE m.message_id = picked.message_id RETURNING {_of_m(DUE_COLS)}",
            params,
        )
        return sorted((due_message_from_row(r) for r in rows), key=DueCursor.of)

    def _claim_terms(self) -> tuple[str, str, dict[str, Any]]:
        # the claim takes the lease (or keeps this worker's), and only a free one
        return (
            f", lease_owner = %(me)s, lease_until = {lease_until()}",
            f"{in_state(PENDING)} AND {lease_free('t')}",
            self.lease_params(),
        )

    def _found_in(self, state: str) -> str:
        return in_state(state)

    def _move(
        self, key: str, values: Sequence[str], state: str, sets: str, params: list[Any]
    ) -> int:
        rows = self.rows(
            f"UPDATE messages SET {sets} WHERE {key} = ANY(%s) AND state = %s RETURNING message_id",
            [*params, list(values), state],
        )
        return len(rows)

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
        return sorted(self._messages(rows), key=lambda m: m.message_id)
