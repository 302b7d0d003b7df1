"""Daily housekeeping of the store: expire stale shipments, report messages stuck in
`sending`, and purge old tracking scans and customers' personal data past retention.

Each step is one batch statement; `now` is injected. Nothing here sends or resends: a
message left in `sending` becomes `unknown`, for a human to check and release.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aftersale.dispatch import messages as msgs
from aftersale.masking import mask_recipient
from aftersale.models import TERMINAL_STATUSES, Status
from aftersale.store.duckdb.store import Store, to_db
from aftersale.tracking.schedule import PollSchedule

_TERMINAL = [s.value for s in TERMINAL_STATUSES]
#: Message states in which the recipient and body are still needed.
_OPEN_MESSAGE_STATES = [msgs.PENDING, msgs.SENDING, msgs.UNKNOWN]
ERASED = "(erased)"


@dataclass(frozen=True, slots=True)
class Retention:
    """How long data is kept. Personal data stays while an order is still live (a parcel
    on its way, a message not settled, a warranty running) however old the order is."""

    tracking_events_days: int = 180
    personal_data_days: int = 365
    stuck_sending_after: timedelta = timedelta(minutes=30)

    def __post_init__(self) -> None:
        if self.tracking_events_days < 1 or self.personal_data_days < 1:
            raise ValueError("retention periods are whole days, at least 1")


@dataclass
class HousekeepingReport:
    expired: list[str] = field(default_factory=list)  # shipment ids
    stuck: list[dict[str, str]] = field(default_factory=list)  # made unknown (masked)
    unknown_total: int = 0
    purged_tracking_events: int = 0
    erased_customers: int = 0
    scrubbed_messages: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "expired": len(self.expired),
            "stuck_to_unknown": len(self.stuck),
            "unknown_total": self.unknown_total,
            "purged_tracking_events": self.purged_tracking_events,
            "erased_customers": self.erased_customers,
            "scrubbed_messages": self.scrubbed_messages,
        }

    def markdown(self, now: datetime, retention: Retention) -> str:
        d = self.as_dict()
        lines = [
            f"# housekeeping {now:%Y-%m-%d %H:%M}",
            "",
            "| step | count |",
            "|---|---|",
            f"| shipments expired (no news for too long) | {d['expired']} |",
            f"| messages stuck in `sending` -> `unknown` | {d['stuck_to_unknown']} |",
            f"| messages in `unknown` (need a human) | {d['unknown_total']} |",
            f"| tracking scans purged (> {retention.tracking_events_days} d, parcel settled) "
            f"| {d['purged_tracking_events']} |",
            f"| customers' personal data erased (> {retention.personal_data_days} d, "
            f"nothing live) | {d['erased_customers']} |",
            f"| sent/closed messages scrubbed of recipient and body | {d['scrubbed_messages']} |",
            "",
        ]
        if self.stuck:
            lines += ["## Stuck messages", "", "| message | rule | channel | order | recipient |"]
            lines += ["|---|---|---|---|---|"]
            cols = ("message", "rule", "channel", "order", "recipient")
            lines += ["| " + " | ".join(s[c] for c in cols) + " |" for s in self.stuck]
            lines += [
                "",
                "Check each at the provider, then `aftersale messages release --mark-sent ID` "
                "or `--resend ID`.",
                "",
            ]
        return "\n".join(lines)


def run_housekeeping(
    store: Store,
    now: datetime,
    retention: Retention | None = None,
    schedule: PollSchedule | None = None,
) -> HousekeepingReport:
    retention = retention or Retention()
    schedule = schedule or PollSchedule()
    report = HousekeepingReport()
    with store.transaction():
        report.expired = expire_stale(store, now, schedule.expire_after)
        report.stuck = stuck_to_unknown(store, now, retention.stuck_sending_after)
        report.purged_tracking_events = purge_tracking_events(
            store, now - timedelta(days=retention.tracking_events_days)
        )
        report.erased_customers, report.scrubbed_messages = erase_personal_data(
            store, now, now - timedelta(days=retention.personal_data_days)
        )
    row = store.con.execute(
        "SELECT count(*) FROM messages WHERE state = ?", [msgs.UNKNOWN]
    ).fetchone()
    report.unknown_total = int(row[0]) if row else 0
    return report


def expire_stale(store: Store, now: datetime, expire_after: timedelta) -> list[str]:
    """Non-terminal shipments with no scan for `expire_after` stop being polled. The cycle
    does the same for shipments it polls; this catches those it never reaches."""
    rows = store.con.execute(
        "UPDATE shipments SET status = ?, status_since = ?, next_check_at = NULL "
        "WHERE status NOT IN (SELECT unnest(?)) AND coalesce(last_event_at, created_at) < ? "
        "RETURNING shipment_id",
        [Status.EXPIRED.value, to_db(now), _TERMINAL, to_db(now - expire_after)],
    ).fetchall()
    return sorted(r[0] for r in rows)


def stuck_to_unknown(store: Store, now: datetime, older_than: timedelta) -> list[dict[str, str]]:
    """`sending` for longer than any send takes: the run died between claim and result."""
    rows = store.con.execute(
        "UPDATE messages SET state = ?, error_text = ?, updated_at = ? "
        "WHERE state = ? AND updated_at < ? "
        "RETURNING message_id, rule_id, channel, order_id, recipient",
        [
            msgs.UNKNOWN,
            "left in sending (found by housekeeping): check the provider, then "
            "`aftersale messages release`",
            to_db(now),
            msgs.SENDING,
            to_db(now - older_than),
        ],
    ).fetchall()
    return [
        {
            "message": r[0],
            "rule": r[1],
            "channel": r[2],
            "order": r[3],
            "recipient": mask_recipient(r[4] or ""),
        }
        for r in sorted(rows)
    ]


def purge_tracking_events(store: Store, before: datetime) -> int:
    """Raw scans older than `before` of parcels that are settled (terminal)."""
    rows = store.con.execute(
        "DELETE FROM tracking_events t WHERE t.occurred_at < ? AND EXISTS "
        "(SELECT 1 FROM shipments s WHERE s.shipment_id = t.shipment_id "
        "AND s.status IN (SELECT unnest(?))) RETURNING 1",
        [to_db(before), _TERMINAL],
    ).fetchall()
    return len(rows)


def erase_personal_data(store: Store, now: datetime, before: datetime) -> tuple[int, int]:
    """Erase name, email and phone of customers with nothing live, and the recipient and
    body of their settled messages. Orders, items and message states stay (counts,
    once-only keys). Returns (customers erased, messages scrubbed)."""
    live = (
        "SELECT DISTINCT o.customer_id FROM orders o "
        "LEFT JOIN shipments s USING (order_id) LEFT JOIN items i USING (order_id) "
        "WHERE o.placed_at >= $before "
        "OR (s.shipment_id IS NOT NULL AND s.status NOT IN (SELECT unnest($terminal))) "
        "OR (i.warranty_months > 0 AND o.placed_at + to_months(i.warranty_months) >= $now) "
        "UNION SELECT customer_id FROM messages WHERE state IN (SELECT unnest($open))"
    )
    params = {
        "before": to_db(before),
        "now": to_db(now),
        "terminal": _TERMINAL,
        "open": _OPEN_MESSAGE_STATES,
    }
    erased = store.con.execute(
        f"UPDATE customers SET name = '{ERASED}', email = NULL, phone = NULL, tags = [] "
        f"WHERE customer_id NOT IN ({live}) AND (email IS NOT NULL OR phone IS NOT NULL "
        f"OR name <> '{ERASED}') RETURNING customer_id",
        params,
    ).fetchall()
    scrubbed = store.con.execute(
        "UPDATE messages SET recipient = NULL, subject = NULL, body_text = NULL "
        f"WHERE customer_id NOT IN ({live}) AND state NOT IN (SELECT unnest($open)) "
        "AND (recipient IS NOT NULL OR body_text IS NOT NULL) RETURNING message_id",
        params,
    ).fetchall()
    return len(erased), len(scrubbed)
