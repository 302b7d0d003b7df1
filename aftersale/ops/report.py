"""What a run tells its operator: a readable name, a markdown summary, a table of messages
and the alerts that need a human. Pure: built from a `CycleSummary`, no Prefect, no I/O.

Recipients in the rows are already masked by dispatch; free-text reasons are masked again
here (a provider may quote an address back), so nothing in an artifact reaches a customer.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aftersale.cycle import CycleSummary
from aftersale.dispatch.send import Outcome
from aftersale.masking import mask_text
from aftersale.models import EventKind

#: Order of outcomes in every table: the ones that need attention first.
OUTCOME_ORDER = ("failed", "unknown", "deferred", "suppressed", "skipped", "would_send", "sent")
#: Provider answers meaning "the credentials are wrong": SendGrid/Twilio HTTP 401/403,
#: Twilio's 20003 ("authenticate"). They come back as deferred (the message waits).
_AUTH_CODES = ("http_401", "http_403", "20003")
#: Carrier poll errors that mean a circuit breaker stopped the calls (carriers/poll.py).
_CARRIER_AUTH_WORDS = ("credentials refused", "http 401", "http 403")
#: At most this many distinct error texts per carrier in the summary.
MAX_ERRORS_SHOWN = 5


@dataclass(frozen=True, slots=True)
class Alert:
    """Something an operator must act on, emitted as a Prefect event by the flow."""

    event: str  # e.g. "aftersale.carrier.breaker-open"
    resource_id: str  # e.g. "aftersale.carrier.dhl"
    message: str
    payload: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RunReport:
    name: str
    markdown: str
    messages: list[dict[str, str]]
    failed: list[dict[str, str]]
    alerts: list[Alert]


def build_report(
    summary: CycleSummary,
    *,
    kind: str = "cycle",
    unknown_total: int | None = None,
    open_breakers: Iterable[str] | None = None,
) -> RunReport:
    """Everything the run publishes. `unknown_total`: messages in `unknown` in the whole
    store (not only this run's); `open_breakers`: carrier slugs, or derived from errors."""
    breakers = sorted(
        set(open_breakers if open_breakers is not None else summary.poll.breakers_open)
    )
    rows = message_rows(summary.dispatch.outcomes)
    return RunReport(
        name=run_name(kind, summary.now, len(summary.poll.results), summary.dispatch.count("sent")),
        markdown=summary_markdown(summary, kind=kind, open_breakers=breakers),
        messages=rows,
        failed=[r for r in rows if r["outcome"] in ("failed", "unknown")],
        alerts=find_alerts(summary, unknown_total=unknown_total, open_breakers=breakers),
    )


def run_name(kind: str, clock: datetime, polled: int, sent: int) -> str:
    """`cycle 2026-11-22 10:15 · 412 polled · 37 sent` (clock in UTC)."""
    return f"{kind} {clock:%Y-%m-%d %H:%M} · {polled} polled · {sent} sent"


def message_rows(outcomes: Sequence[Outcome]) -> list[dict[str, str]]:
    """One row per message this run touched, attention first; recipients masked."""
    rank = {o: i for i, o in enumerate(OUTCOME_ORDER)}
    ordered = sorted(outcomes, key=lambda o: (rank.get(o.outcome, -1), o.rule_id, o.message_id))
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
        for o in ordered
    ]


def errors_by_carrier(summary: CycleSummary) -> dict[str, Counter[str]]:
    table: dict[str, Counter[str]] = {}
    for r in summary.poll.results:
        if r.error:
            table.setdefault(r.carrier or "(none)", Counter())[_error_kind(r.error)] += 1
    return dict(sorted(table.items()))


def _error_kind(error: str) -> str:
    """Drop the 'carrier number:' prefix so identical faults group together."""
    head, sep, rest = error.partition(": ")
    return rest if sep and " " in head else error


def find_alerts(
    summary: CycleSummary,
    *,
    unknown_total: int | None = None,
    open_breakers: Sequence[str] = (),
) -> list[Alert]:
    alerts = [
        Alert(
            "aftersale.carrier.breaker-open",
            f"aftersale.carrier.{slug}",
            f"{slug}: circuit breaker open, polling stopped for this carrier",
            {"carrier": slug},
        )
        for slug in open_breakers
    ]
    for slug, errors in errors_by_carrier(summary).items():
        auth = sum(n for e, n in errors.items() if any(w in e.lower() for w in _CARRIER_AUTH_WORDS))
        if auth:
            alerts.append(
                Alert(
                    "aftersale.carrier.auth-failed",
                    f"aftersale.carrier.{slug}",
                    f"{slug}: the carrier refused our credentials ({auth} shipments)",
                    {"carrier": slug, "shipments": auth},
                )
            )
    refused: dict[str, list[Outcome]] = {}
    for o in summary.dispatch.outcomes:
        if o.outcome in ("failed", "deferred") and (o.reason or "").startswith(_AUTH_CODES):
            refused.setdefault(o.provider or o.channel, []).append(o)
    for provider, outs in sorted(refused.items()):
        alerts.append(
            Alert(
                "aftersale.provider.auth-failed",
                f"aftersale.provider.{provider}",
                f"{provider}: the provider refused our credentials ({len(outs)} messages "
                f"waiting): {mask_text(outs[0].reason or '')}",
                {"provider": provider, "messages": len(outs)},
            )
        )
    new_unknown = summary.dispatch.count("unknown")
    total = max(unknown_total or 0, new_unknown)
    if total:
        alerts.append(
            Alert(
                "aftersale.messages.unknown",
                "aftersale.messages",
                f"{total} messages in `unknown` ({new_unknown} new this run): check the "
                "provider, then `aftersale messages release`",
                {"unknown": total, "new": new_unknown},
            )
        )
    return alerts


def ruleset_alert(problems: Sequence[str]) -> Alert:
    """The rule set does not load: nothing is decided or sent until it is fixed."""
    shown = "; ".join(problems[:3]) + (f" (+{len(problems) - 3} more)" if len(problems) > 3 else "")
    return Alert(
        "aftersale.ruleset.invalid",
        "aftersale.ruleset",
        f"rule set invalid, {len(problems)} problem(s): {shown}",
        {"problems": list(problems[:20])},
    )


# --- markdown ----------------------------------------------------------------


def summary_markdown(
    summary: CycleSummary, *, kind: str = "cycle", open_breakers: Sequence[str] = ()
) -> str:
    d = summary.as_dict()
    out = [
        f"# {run_name(kind, summary.now, d['polled'], d['sent'])}",
        "",
        f"Clock {summary.now:%Y-%m-%d %H:%M} UTC. Imported {d['imported']} orders "
        f"({d['rejected_rows']} rows rejected); polled {d['polled']} shipments; "
        f"{d['events']} new events; {d['queued']} messages queued, {d['cancelled']} cancelled; "
        + _outcome_phrase(summary.dispatch.outcomes)
        + ".",
        "",
    ]
    out += _carriers_section(summary, open_breakers)
    out += _counter_section("Status changes", "status", d["status_changes"])
    out += _counter_section("Delays", "reason", d["delays_by_reason"])
    events = Counter(
        e.kind.value for e in summary.detect.events if e.kind is not EventKind.STATUS_CHANGED
    )
    out += _counter_section("Other events", "event", dict(events))
    out += _messages_section(summary.dispatch.outcomes)
    out += _failed_section(summary.dispatch.outcomes)
    return "\n".join(out).rstrip() + "\n"


def _outcome_phrase(outcomes: Sequence[Outcome]) -> str:
    counts = Counter(o.outcome for o in outcomes)
    order = ("sent", "would_send", "deferred", "suppressed", "skipped", "unknown", "failed")
    return ", ".join(f"{counts[o]} {o}" for o in order if counts[o]) or "nothing dispatched"


def _table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines + [""]


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _carriers_section(summary: CycleSummary, open_breakers: Sequence[str]) -> list[str]:
    by = summary.poll.by_carrier()
    errors = errors_by_carrier(summary)
    out = ["## Carriers", ""]
    if not by:
        return out + ["No shipment was due for a check.", ""]
    out += _table(
        ("carrier", "polled", "errors", "not found", "with problems", "breaker"),
        (
            (
                slug,
                row.get("polled", 0),
                row.get("errors", 0),
                row.get("not_found", 0),
                row.get("with_problems", 0),
                "**open**" if slug in open_breakers else "closed",
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


def _messages_section(outcomes: Sequence[Outcome]) -> list[str]:
    out = ["## Messages by rule, channel and outcome", ""]
    if not outcomes:
        return out + ["No message was due.", ""]
    cube = Counter((o.rule_id, o.channel, o.outcome) for o in outcomes)
    present = [o for o in OUTCOME_ORDER if any(k[2] == o for k in cube)]
    present += sorted({k[2] for k in cube} - set(present))
    pairs = sorted({(r, c) for r, c, _ in cube})
    return out + _table(
        ("rule", "channel", *present),
        ((r, c, *(cube[(r, c, o)] or "" for o in present)) for r, c in pairs),
    )


def _failed_section(outcomes: Sequence[Outcome]) -> list[str]:
    bad = [o for o in outcomes if o.outcome in ("failed", "unknown")]
    if not bad:
        return []
    return ["## Failed and unknown messages", ""] + _table(
        ("message", "outcome", "rule", "channel", "order", "recipient", "reason"),
        (
            (o.message_id, o.outcome, o.rule_id, o.channel, o.order_id, o.recipient)
            + (mask_text(o.reason or ""),)
            for o in sorted(bad, key=lambda o: (o.outcome, o.message_id))
        ),
    )
