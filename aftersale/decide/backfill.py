"""Re-evaluate the stored events of a date range against the current rule set (a backfill
after a rule was fixed or added, or a replay to see what a range would have sent).

Events are replayed cycle by cycle, as detected, through `decide` with the store's send
history: a key ever decided (sent, pending, cancelled, unknown) is never decided again,
so nothing that went out goes out twice. New decisions are only reported unless `apply`;
with `apply`, those still timely are queued for the next cycle, stale ones are not.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import groupby
from typing import Any

from aftersale.decide.engine import decide, describe, history_after
from aftersale.decide.history import load_send_history
from aftersale.decide.ruleset import RuleSet
from aftersale.dispatch import messages as msgs
from aftersale.store.protocols import Store

#: A backfill covers at most this much history in one run.
MAX_RANGE = timedelta(days=92)


@dataclass(frozen=True, slots=True)
class BackfillLine:
    """A new decision the current rules make for a stored event."""

    detected_at: datetime
    order_id: str
    event: str
    rule_id: str
    channel: str
    template: str
    due_at: datetime
    verdict: str  # "queued" | "would queue" | "too late"


@dataclass
class BackfillReport:
    start: datetime
    end: datetime
    apply: bool
    cycles: int = 0
    events: int = 0
    lines: list[BackfillLine] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    #: every event or rule that sends nothing, and why: (cycle time, plain-English line)
    why_not: list[tuple[datetime, str]] = field(default_factory=list)

    def count(self, verdict: str) -> int:
        return sum(1 for line in self.lines if line.verdict == verdict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "apply": self.apply,
            "cycles": self.cycles,
            "events": self.events,
            "new_decisions": len(self.lines),
            "queued": self.count("queued"),
            "would_queue": self.count("would queue"),
            "too_late": self.count("too late"),
            "already_decided": self.skipped.get("already decided", 0),
        }

    def rows(self) -> list[dict[str, str]]:
        return [
            {
                "detected_at": f"{line.detected_at:%Y-%m-%d %H:%M}",
                "order": line.order_id,
                "event": line.event,
                "rule": line.rule_id,
                "channel": line.channel,
                "template": line.template,
                "due_at": f"{line.due_at:%Y-%m-%d %H:%M}",
                "verdict": line.verdict,
            }
            for line in self.lines
        ]

    def text(self) -> str:
        """For the terminal: each new decision, then each non-send with its reason."""
        out = [
            f"{line.detected_at:%Y-%m-%d %H:%M} UTC  {line.verdict.upper():11} "
            f"{line.rule_id:20} {line.channel:5} order {line.order_id}: {line.event}"
            for line in self.lines
        ]
        out += [f"{at:%Y-%m-%d %H:%M} UTC  NO SEND     {why}" for at, why in self.why_not]
        d = self.as_dict()
        out.append(
            f"{d['events']} stored events re-evaluated: {d['new_decisions']} new decisions, "
            f"{len(self.why_not)} events or rules send nothing "
            f"({d['already_decided']} of them because they were decided before)."
        )
        return "\n".join(out)

    def markdown(self) -> str:
        d = self.as_dict()
        mode = "applied: timely decisions queued" if self.apply else "report only: nothing queued"
        out = [
            f"# replay {self.start:%Y-%m-%d %H:%M} → {self.end:%Y-%m-%d %H:%M} ({mode})",
            "",
            f"{d['events']} stored events in {d['cycles']} cycles re-evaluated with the current "
            f"rules: {d['new_decisions']} new decisions ({d['queued']} queued, "
            f"{d['would_queue']} would queue, {d['too_late']} too late to send); "
            f"{d['already_decided']} already decided earlier (never sent again).",
            "",
        ]
        by_rule = Counter((line.rule_id, line.channel, line.verdict) for line in self.lines)
        if by_rule:
            out += ["| rule | channel | verdict | count |", "|---|---|---|---|"]
            out += [f"| {r} | {c} | {v} | {n} |" for (r, c, v), n in sorted(by_rule.items())]
            out.append("")
        if self.skipped:
            out += ["## Events that send nothing now", "", "| reason | count |", "|---|---|"]
            out += [f"| {reason} | {n} |" for reason, n in self.skipped.most_common(20)]
            out.append("")
        return "\n".join(out)


def check_range(start: datetime, end: datetime) -> None:
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end need a UTC offset, like 2026-11-23T00:00:00+00:00")
    if not start < end:
        raise ValueError(f"start {start.isoformat()} must be before end {end.isoformat()}")
    if end - start > MAX_RANGE:
        raise ValueError(f"a replay covers at most {MAX_RANGE.days} days; split the range")


def backfill(
    store: Store,
    ruleset: RuleSet,
    start: datetime,
    end: datetime,
    now: datetime,
    *,
    apply: bool = False,
    max_late: timedelta = timedelta(hours=24),
    run_id: str = "replay",
) -> BackfillReport:
    """Replay the events that occurred in [start, end); see the module docstring."""
    check_range(start, end)
    report = BackfillReport(start, end, apply)
    stored = store.domain_events_between(start, end)
    report.events = len(stored)
    customers = store.customer_ids_of({e.order_id for _, e in stored}).values()
    history = load_send_history(store, customers, now)
    for detected_at, group in groupby(stored, key=lambda pair: pair[0]):
        events = [e for _, e in group]
        report.cycles += 1
        orders = store.load_orders({e.order_id for e in events})
        shipments = store.shipments_of(orders)
        outcome = decide(events, orders, shipments, ruleset, detected_at, history)
        history = history_after(history, outcome, orders)
        for skip in outcome.skipped:
            report.skipped[_skip_kind(skip.reason)] += 1
            report.why_not.append((detected_at, str(skip)))
        timely = []
        for d in outcome.decisions:
            late = d.due_at < now - max_late
            verdict = "too late" if late else ("queued" if apply else "would queue")
            report.lines.append(
                BackfillLine(
                    detected_at,
                    d.order_id,
                    describe(d.event),
                    d.rule_id,
                    d.channel.value,
                    d.template,
                    d.due_at,
                    verdict,
                )
            )
            if not late:
                timely.append(d)
        if apply and timely:
            customer_of = {oid: o.customer.customer_id for oid, o in orders.items()}
            with store.transaction():
                msgs.queue_decisions(store, timely, customer_of, run_id=run_id, now=now)
    return report


def _skip_kind(reason: str) -> str:
    if reason.startswith("already sent") or "was already decided" in reason:
        return "already decided"
    return reason.split(" (", 1)[0].split(":", 1)[0]
