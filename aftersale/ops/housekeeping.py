"""Daily housekeeping of the store: expire stale shipments, report messages stuck in
`sending`, and purge old tracking scans and customers' personal data past retention.

Each step is one batch statement in the store, all in one transaction; `now` is injected.
Nothing here sends or resends: a message left in `sending` becomes `unknown`, for a human
to check and release.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aftersale.masking import mask_recipient
from aftersale.models import MessageState
from aftersale.store.protocols import Store
from aftersale.tracking.schedule import PollSchedule

#: Why housekeeping turns a message left in `sending` into `unknown`.
STUCK_REASON = (
    "left in sending (found by housekeeping): check the provider, then `aftersale messages release`"
)


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
        # The cycle expires the shipments it polls; this catches those it never reaches.
        report.expired = store.expire_stale_shipments(now, now - schedule.expire_after)
        stuck = store.mark_stuck_unknown(
            STUCK_REASON, claimed_before=now - retention.stuck_sending_after
        )
        report.stuck = [
            {
                "message": m.message_id,
                "rule": m.rule_id,
                "channel": m.channel.value,
                "order": m.order_id,
                "recipient": mask_recipient(m.recipient or ""),
            }
            for m in stuck
        ]
        report.purged_tracking_events = store.purge_tracking_events(
            now - timedelta(days=retention.tracking_events_days)
        )
        report.erased_customers, report.scrubbed_messages = store.erase_personal_data(
            now, now - timedelta(days=retention.personal_data_days)
        )
    report.unknown_total = store.count_messages(MessageState.UNKNOWN)
    return report
