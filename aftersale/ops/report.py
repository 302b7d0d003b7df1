"""What a run tells its operator: a readable name, a markdown summary, a table of messages,
the carriers' and channels' health, and the alerts that need a human. Pure: built from a
`CycleSummary` (counts, and bounded lists of what is read by name: aftersale/ops/tally.py),
no Prefect, no I/O.

Recipients in the rows are already masked by dispatch; free-text reasons are masked again
here (a provider may quote an address back), so nothing in an artifact reaches a customer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from aftersale.cycle import CycleSummary
from aftersale.dispatch.messages import message_id_for
from aftersale.dispatch.send import Outcome
from aftersale.masking import mask_text
from aftersale.models import EventKind
from aftersale.ops.alerts import Alert, unknown_alert
from aftersale.ops.health import FAILING, HealthUpdate, describe_outage, health_rows
from aftersale.ops.tally import OUTCOME_ORDER, MessageTally, outcome_rank

#: At most this many distinct error texts per carrier in the summary.
MAX_ERRORS_SHOWN = 5


@dataclass(frozen=True, slots=True)
class RunReport:
    name: str
    markdown: str
    #: the messages listed by name (all of them unless more than MAX_MESSAGE_ROWS), and
    #: how many there are in all
    messages: list[dict[str, str]]
    failed: list[dict[str, str]]
    message_total: int
    failed_total: int
    alerts: list[Alert]
    health: str  # the `carrier-health` artifact
    degraded: list[str]  # why the run is degraded; empty when it is not


def run_label(kind: str, clock: datetime, token: str) -> str:
    """A run's one name, fixed when it starts: `cycle 2026-11-22 10:15 · 3f9a2c` (clock in
    UTC; the token tells apart runs started in the same minute)."""
    return f"{kind} {clock:%Y-%m-%d %H:%M} · {token}"


def run_name(label: str, polled: int, sent: int) -> str:
    """What the run did, after its label:
    `cycle 2026-11-22 10:15 · 3f9a2c · 412 polled · 37 sent`."""
    return f"{label} · {polled} polled · {sent} sent"


def build_report(
    summary: CycleSummary, *, label: str, unknown_total: int | None = None
) -> RunReport:
    """Everything the run publishes. `unknown_total`: messages in `unknown` in the whole
    store (not only this run's)."""
    messages = summary.dispatch
    rows = message_rows(messages.listed())
    name = run_name(label, summary.poll.polled, messages.count("sent"))
    return RunReport(
        name=name,
        markdown=summary_markdown(summary, name),
        messages=rows,
        failed=[r for r in rows if r["outcome"] in _BAD],
        message_total=messages.total,
        failed_total=sum(messages.count(o) for o in _BAD),
        alerts=find_alerts(summary, unknown_total=unknown_total),
        health=health_markdown(summary.health, summary.now),
        degraded=summary.health.degraded(summary.now),
    )


_BAD = ("failed", "unknown")


def message_rows(outcomes: Sequence[Outcome]) -> list[dict[str, str]]:
    """One row per message, attention first; recipients masked."""
    return [
        {
            "message": o.message_id,
            "outcome": o.outcome,
            "rule": o.rule_id,
            "template": o.template,
            "channel": o.channel,
            "order": o.order_id,
            "recipient": o.recipient,
            "provider": o.provider or "",
            "provider_id": o.provider_id or "",
            "reason": mask_text(o.reason or ""),
        }
        for o in sorted(outcomes, key=outcome_rank)
    ]


def find_alerts(summary: CycleSummary, *, unknown_total: int | None = None) -> list[Alert]:
    """The health alerts (down, still down, back) and messages left in `unknown`."""
    alerts = list(summary.health.alerts)
    new_unknown = summary.dispatch.count("unknown")
    total = max(unknown_total or 0, new_unknown)
    if total:
        alerts.append(unknown_alert(total, new_unknown))
    return alerts


# --- markdown ----------------------------------------------------------------


def summary_markdown(summary: CycleSummary, name: str) -> str:
    d = summary.as_dict()
    out = [f"# {name}", ""]
    if d["degraded"]:
        out += ["**Degraded**:", ""] + [f"- {line}" for line in d["degraded"]] + [""]
    out += [
        f"Clock {summary.now:%Y-%m-%d %H:%M} UTC. Imported {d['imported']} orders "
        f"({d['rejected_rows']} rows rejected); polled {d['polled']} shipments; "
        f"{d['events']} new events; {d['queued']} messages queued "
        f"({d['queued_for_later']} for later), {d['cancelled']} cancelled; "
        + _outcome_phrase(summary.dispatch)
        + ".",
        "",
    ]
    out += _carriers_section(summary)
    out += _counter_section("Status changes", "status", d["status_changes"])
    out += _counter_section("Delays", "reason", d["delays_by_reason"])
    if d["not_shipped_past_promise"]:
        late = d["not_shipped_past_promise"]
        out += [
            "## Not shipped in time",
            "",
            f"{len(late)} order(s) have no tracking number past the shop's dispatch promise "
            f"(shop.yaml `dispatch_days`): {', '.join(late)}. Each customer was told "
            "(`fulfilment_delayed`); fulfil or contact them.",
            "",
        ]
    events = {k: n for k, n in summary.detect.by_kind.items() if k != EventKind.STATUS_CHANGED}
    out += _counter_section("Other events", "event", events)
    out += _messages_section(summary.dispatch)
    out += _not_sent_section(summary)
    out += _held_section(summary)
    out += _failed_section(summary.dispatch)
    return "\n".join(out).rstrip() + "\n"


def health_markdown(update: HealthUpdate, now: datetime) -> str:
    """The `carrier-health` artifact: each carrier and channel as the store knows it now."""
    out = [f"# carrier health {now:%Y-%m-%d %H:%M} UTC", ""]
    failing = [h for h in update.records if h.state == FAILING]
    if failing:
        out += [f"- **{describe_outage(h, now, update.backlog.get(h.name))}**" for h in failing]
    else:
        out += ["Every carrier and channel answered in its last run."]
    rows = health_rows(update, now)
    if rows:
        out += ["", *_table(list(rows[0]), (list(r.values()) for r in rows))]
    return "\n".join(out).rstrip() + "\n"


def _outcome_phrase(messages: MessageTally) -> str:
    counts = messages.by_outcome()
    order = ("sent", "would_send", "deferred", "suppressed", "skipped", "unknown", "failed")
    return ", ".join(f"{counts[o]} {o}" for o in order if counts[o]) or "nothing dispatched"


def _table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines + [""]


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _carriers_section(summary: CycleSummary) -> list[str]:
    by = summary.poll.by_carrier()
    errors = dict(sorted(summary.poll.errors.items()))
    opened = set(summary.poll.breakers_open)
    out = ["## Carriers", ""]
    if not by:
        out += ["No shipment was due for a check."]
        failing = [h.name for h in summary.health.failing if h.component == "carrier"]
        if failing:
            out += [f"Still down from earlier runs: {', '.join(failing)} (see carrier-health)."]
        return out + [""]
    out += _table(
        ("carrier", "polled", "errors", "not found", "with problems", "breaker"),
        (
            (
                slug,
                row.get("polled", 0),
                row.get("errors", 0),
                row.get("not_found", 0),
                row.get("with_problems", 0),
                "**open**" if slug in opened else "closed",
            )
            for slug, row in by.items()
        ),
    )
    if errors:
        out += ["### Carrier errors", ""]
        rows = [
            (slug, n, mask_text(text))
            for slug, counter in errors.items()
            for text, n in counter.most_common(MAX_ERRORS_SHOWN)
        ]
        out += _table(("carrier", "shipments", "error"), rows)
    return out


def _counter_section(title: str, column: str, counts: Mapping[str, int]) -> list[str]:
    if not counts:
        return [f"## {title}", "", "None.", ""]
    rows = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [f"## {title}", ""] + _table((column, "count"), rows)


def _messages_section(messages: MessageTally) -> list[str]:
    out = ["## Messages by rule, channel and outcome", ""]
    cube = messages.counts
    if not cube:
        return out + ["No message was due.", ""]
    present = [o for o in OUTCOME_ORDER if any(k[2] == o for k in cube)]
    present += sorted({k[2] for k in cube} - set(present))
    pairs = sorted({(r, c) for r, c, _ in cube})
    return out + _table(
        ("rule", "channel", *present),
        ((r, c, *(cube[(r, c, o)] or "" for o in present)) for r, c in pairs),
    )


def _not_sent_section(summary: CycleSummary) -> list[str]:
    """Per rule (or, without one, per event), how many sent nothing and why, with one
    reason in full; dispatch's suppressions are in the table above."""
    groups = summary.decide.not_sent
    out = ["## Why nothing was sent", ""]
    if not groups:
        return out + ["Every event that a rule listens to sent its message.", ""]
    rows = sorted(groups.items(), key=lambda kv: (kv[0][0], -kv[1].count, kv[0][1]))
    return out + _table(
        ("rule", "why", "count", "for example"),
        ((rule, why, g.count, mask_text(g.example)) for (rule, why), g in rows),
    )


def _held_section(summary: CycleSummary) -> list[str]:
    held, total = summary.decide.held.items(), summary.decide.held.total
    if not held:
        return []
    out = ["## Queued for later", ""]
    if total > len(held):
        out += [f"The first {len(held)} of {total}, soonest first.", ""]
    return out + _table(
        ("message", "rule", "channel", "order", "goes out (UTC)", "why later"),
        (
            (
                message_id_for(d.idempotency_key),
                d.rule_id,
                d.channel.value,
                d.order_id,
                f"{d.due_at:%Y-%m-%d %H:%M}",
                d.held or "",
            )
            for d in held
        ),
    )


def _failed_section(messages: MessageTally) -> list[str]:
    bad = [o for o in messages.listed() if o.outcome in _BAD]
    if not bad:
        return []
    out = ["## Failed and unknown messages", ""]
    total = sum(messages.count(o) for o in _BAD)
    if total > len(bad):
        out += [f"The first {len(bad)} of {total} (attention first, then by rule).", ""]
    return out + _table(
        ("message", "outcome", "rule", "channel", "order", "recipient", "reason"),
        (
            (o.message_id, o.outcome, o.rule_id, o.channel, o.order_id, o.recipient)
            + (mask_text(o.reason or ""),)
            for o in sorted(bad, key=lambda o: (o.outcome, o.message_id))
        ),
    )
