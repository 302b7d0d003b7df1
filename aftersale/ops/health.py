"""Carriers' and channels' health across runs: each run's calls update what the store
remembers, so an outage stays known in runs that had nothing due for that carrier, its
alert repeats while it lasts, and its end is announced.

A carrier (a channel) is *failing* after a run in which most of its calls failed (polls
that errored or were not made because its circuit was open; sends the provider refused
or that timed out). It stays failing, whatever later runs that do not call it say, until
a run in which most calls succeed. A run ends *degraded* while anything is failing.

`update_health` is pure; `record_health` reads and writes the store around it.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from aftersale.dispatch.send import Outcome
from aftersale.masking import mask_text
from aftersale.models import PollResult
from aftersale.ops.alerts import (
    CARRIER_DOWN,
    CARRIER_RECOVERED,
    CHANNEL_DOWN,
    CHANNEL_RECOVERED,
    Alert,
)
from aftersale.store.protocols import HealthStore
from aftersale.store.records import CarrierBacklog, HealthRecord

CARRIER, CHANNEL = "carrier", "channel"
OK, FAILING = "ok", "failing"
#: How often an alert about an ongoing outage is repeated (AFTERSALE_ALERT_REPEAT_MINUTES).
DEFAULT_REPEAT = timedelta(hours=1)
#: Provider error codes that mean "the credentials are wrong" (SendGrid/Twilio HTTP
#: 401/403, Twilio 20003): the message waits (deferred) until someone fixes the key.
_AUTH_CODES = ("http_401", "http_403", "20003")
_HTTP = re.compile(r"\bHTTP (\d{3})\b")
_ATTEMPTS = re.compile(r" \((after \d+ attempts|not retried: [^)]*)\)$")
DOWN_EVENTS = {CARRIER: CARRIER_DOWN, CHANNEL: CHANNEL_DOWN}
RECOVERED_EVENTS = {CARRIER: CARRIER_RECOVERED, CHANNEL: CHANNEL_RECOVERED}


@dataclass(frozen=True, slots=True)
class Observation:
    """What one run saw of one carrier or channel: its calls and how many failed, why."""

    component: str
    name: str
    calls: int
    failures: int
    errors: Mapping[str, int] = field(default_factory=dict)  # error kind -> failed calls
    last_error: str | None = None
    breaker_opened: bool = False

    @property
    def failing(self) -> bool:
        return self.calls > 0 and self.failures * 2 > self.calls

    def plus(self, later: Observation) -> Observation:
        """This observation and a later one of the same thing (the next page, batch)."""
        return replace(
            self,
            calls=self.calls + later.calls,
            failures=self.failures + later.failures,
            errors=dict(Counter(self.errors) + Counter(later.errors)),
            last_error=later.last_error or self.last_error,
            breaker_opened=self.breaker_opened or later.breaker_opened,
        )


@dataclass(frozen=True, slots=True)
class HealthUpdate:
    """Every carrier's and channel's health after a run, what changed, and what to say."""

    records: list[HealthRecord] = field(default_factory=list)
    changed: list[HealthRecord] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    backlog: Mapping[str, CarrierBacklog] = field(default_factory=dict)

    @property
    def failing(self) -> list[HealthRecord]:
        return [h for h in self.records if h.state == FAILING]

    def degraded(self, now: datetime) -> list[str]:
        """Why the run is degraded, one line per failing carrier or channel (none: it is not)."""
        return [describe_outage(h, now, self.backlog.get(h.name)) for h in self.failing]


# --- observing one run ---------------------------------------------------------------


def carrier_error_kind(error: str) -> str:
    """A poll error as a kind that groups alike ones (no tracking number, no attempt count)."""
    text = error.lower()
    found = _HTTP.search(error)
    status = found.group(1) if found else None
    if "credentials refused" in text or status in ("401", "403"):
        return "credentials refused (HTTP 401/403)"
    if "circuit open" in text and "not polled" in text:
        return "not called: circuit open"
    if status is not None:
        return "rate limited (HTTP 429)" if status == "429" else f"HTTP {status}"
    if "timeout" in text or "timed out" in text:
        return "timeout"
    if "request failed" in text:
        return "connection failed"
    if "daily budget" in text:
        return "daily request budget used up"
    if "not configured" in text or "no carrier set" in text:
        return "no carrier configured"
    head, sep, rest = error.partition(": ")
    return _ATTEMPTS.sub("", rest if sep and " " in head else error)[:80]


def channel_error_kind(reason: str) -> str:
    """A send failure (`code: text`) as a kind: the provider's code, auth named as such."""
    code = reason.partition(":")[0].strip()
    if code.startswith(_AUTH_CODES):
        return f"credentials refused ({code})"
    return code[:40] or "failed"


def observe_carriers(
    results: Sequence[PollResult], breakers_open: Iterable[str]
) -> list[Observation]:
    """One observation per carrier this run polled (a result without carrier is skipped)."""
    calls: Counter[str] = Counter()
    kinds: dict[str, Counter[str]] = {}
    last: dict[str, str] = {}
    for r in results:
        if not r.carrier:
            continue
        calls[r.carrier] += 1
        if r.error:
            kinds.setdefault(r.carrier, Counter())[carrier_error_kind(r.error)] += 1
            last[r.carrier] = r.error
    opened = set(breakers_open)
    return [
        Observation(
            CARRIER,
            slug,
            n,
            sum(kinds.get(slug, Counter()).values()),
            dict(kinds.get(slug, {})),
            mask_text(last[slug]) if slug in last else None,
            slug in opened,
        )
        for slug, n in sorted(calls.items())
    ]


def observe_channels(outcomes: Sequence[Outcome]) -> list[Observation]:
    """One observation per channel that was handed messages this run (a send attempt has
    a provider; failures before it, like a template error, say nothing about the channel)."""
    calls: Counter[str] = Counter()
    kinds: dict[str, Counter[str]] = {}
    last: dict[str, str] = {}
    for o in outcomes:
        if o.provider is None or o.outcome not in ("sent", "deferred", "failed"):
            continue
        calls[o.channel] += 1
        if o.outcome != "sent":
            reason = o.reason or o.outcome
            kinds.setdefault(o.channel, Counter())[channel_error_kind(reason)] += 1
            last[o.channel] = f"{o.provider}: {reason}"
    return [
        Observation(
            CHANNEL,
            name,
            n,
            sum(kinds.get(name, Counter()).values()),
            dict(kinds.get(name, {})),
            mask_text(last[name]) if name in last else None,
        )
        for name, n in sorted(calls.items())
    ]


# --- the state across runs --------------------------------------------------------------


def update_health(
    previous: Sequence[HealthRecord],
    observations: Sequence[Observation],
    now: datetime,
    *,
    repeat: timedelta = DEFAULT_REPEAT,
    backlog: Mapping[str, CarrierBacklog] | None = None,
) -> HealthUpdate:
    """Fold this run's observations into the stored records; alert when something goes
    down, every `repeat` while it stays down (called or not), and when it is back."""
    backlog = dict(backlog or {})
    records = {(h.component, h.name): h for h in previous}
    changed: dict[tuple[str, str], HealthRecord] = {}
    alerts: list[Alert] = []
    for obs in observations:
        key = (obs.component, obs.name)
        before = records.get(key)
        after = _fold(before, obs, now)
        if before is not None and before.state == FAILING and after.state == OK:
            alerts.append(_recovered(before, now))
        records[key] = changed[key] = after
    for key, h in sorted(records.items()):
        if h.state == FAILING and (h.alerted_at is None or now - h.alerted_at >= repeat):
            alerts.append(_down(h, now, backlog.get(h.name)))
            records[key] = changed[key] = replace(h, alerted_at=now)
    return HealthUpdate(
        [records[k] for k in sorted(records)],
        [changed[k] for k in sorted(changed)],
        alerts,
        backlog,
    )


def _fold(before: HealthRecord | None, obs: Observation, now: datetime) -> HealthRecord:
    breaker = now if obs.breaker_opened else None
    if obs.failing:
        if before is not None and before.state == FAILING:
            errors = Counter(before.errors)
            errors.update(obs.errors)
            return replace(
                before,
                checked_at=now,
                calls=obs.calls,
                failures=before.failures + obs.failures,
                errors=dict(errors),
                last_error=obs.last_error or before.last_error,
                breaker_opened_at=breaker or before.breaker_opened_at,
            )
        return HealthRecord(
            obs.component,
            obs.name,
            FAILING,
            since=now,
            checked_at=now,
            last_ok_at=before.last_ok_at if before else None,
            calls=obs.calls,
            failures=obs.failures,
            errors=dict(obs.errors),
            last_error=obs.last_error,
            breaker_opened_at=breaker,
        )
    return HealthRecord(
        obs.component,
        obs.name,
        OK,
        since=before.since if before is not None and before.state == OK else now,
        checked_at=now,
        last_ok_at=now,
        calls=obs.calls,
        failures=obs.failures,
        errors=dict(obs.errors),
        last_error=obs.last_error,
        breaker_opened_at=breaker,
    )


def record_health(
    store: HealthStore,
    now: datetime,
    observations: Sequence[Observation],
    *,
    repeat: timedelta = DEFAULT_REPEAT,
) -> HealthUpdate:
    """Read the stored health, fold this run in, save what changed."""
    backlog = {b.carrier: b for b in store.carrier_backlog()}
    update = update_health(store.load_health(), observations, now, repeat=repeat, backlog=backlog)
    store.save_health(update.changed)
    return update


# --- words -----------------------------------------------------------------------------


def health_rows(update: HealthUpdate, now: datetime) -> list[dict[str, str]]:
    """One row per carrier and channel the store knows (and per carrier with parcels that
    was never called yet), failing first: for the `carrier-health` artifact and
    `aftersale health`."""
    rows = []
    known = {h.name for h in update.records if h.component == CARRIER}
    records = sorted(update.records, key=lambda h: (h.state != FAILING, h.component, h.name))
    for h in records:
        b = update.backlog.get(h.name) if h.component == CARRIER else None
        rows.append(
            {
                "": h.component,
                "name": h.name,
                "state": "**failing**" if h.state == FAILING else "ok",
                "since": _clock(h.since),
                "for": _span(now - h.since),
                "errors": _kinds(h.errors) if h.errors else "",
                "waiting / active": f"{b.waiting} / {b.active}" if b else "",
                "next check": _clock(b.next_check_at) if b and b.next_check_at else "",
                "breaker": f"opened {_clock(h.breaker_opened_at)}"
                if h.breaker_opened_at
                else "closed",
                "last ok": _clock(h.last_ok_at) if h.last_ok_at else "never",
                "last called": _clock(h.checked_at),
            }
        )
    for slug, b in sorted(update.backlog.items()):
        if slug not in known:
            rows.append(
                {
                    "": CARRIER,
                    "name": slug,
                    "state": "not called yet",
                    "since": "",
                    "for": "",
                    "errors": "",
                    "waiting / active": f"{b.waiting} / {b.active}",
                    "next check": _clock(b.next_check_at) if b.next_check_at else "",
                    "breaker": "closed",
                    "last ok": "",
                    "last called": "",
                }
            )
    return rows


def describe_outage(
    h: HealthRecord, now: datetime, backlog: CarrierBacklog | None, verb: str = "down"
) -> str:
    """`carrier dhl down since 2026-11-22 10:15 UTC (45 min): 33 failed polls so far,
    HTTP 503 ×33; last called in this run; 11 shipments wait, next check 2026-11-22 11:00 UTC`."""
    last_run = "this run" if h.checked_at == now else f"the run at {_clock(h.checked_at)}"
    text = (
        f"{h.component} {h.name} {verb} since {_clock(h.since)} ({_span(now - h.since)}): "
        f"{_failed(h)} so far, {_kinds(h.errors)}; last called in {last_run}"
    )
    if backlog is not None and backlog.waiting:
        waits = "1 shipment waits" if backlog.waiting == 1 else f"{backlog.waiting} shipments wait"
        text += f"; {waits}"
        if backlog.next_check_at is not None:
            text += f", next check {_clock(backlog.next_check_at)}"
    return text


def what_to_do(h: HealthRecord) -> str:
    if any(kind.startswith("credentials refused") for kind in h.errors):
        if h.component == CARRIER:
            return (
                "the carrier refuses our credentials: renew them in the worker's environment "
                "and restart the worker"
            )
        return (
            "the provider refuses our credentials: fix SENDGRID_API_KEY or TWILIO_* in the "
            "worker's environment and restart the worker; the messages wait"
        )
    if h.component == CARRIER:
        return (
            "check the carrier's status page; its shipments are polled again on their own "
            "when it answers"
        )
    return "check the provider's status page; deferred messages are retried on their own"


def _down(h: HealthRecord, now: datetime, backlog: CarrierBacklog | None) -> Alert:
    first = h.alerted_at is None
    verb = "down" if first else "still down"
    return Alert(
        DOWN_EVENTS[h.component],
        f"aftersale.{h.component}.{h.name}",
        f"{describe_outage(h, now, backlog, verb)}. {what_to_do(h)}",
        {
            h.component: h.name,
            "state": "down" if first else "still down",
            "since": h.since.isoformat(),
            "failures": h.failures,
            "errors": dict(h.errors),
            "waiting": backlog.waiting if backlog else 0,
        },
    )


def _recovered(before: HealthRecord, now: datetime) -> Alert:
    return Alert(
        RECOVERED_EVENTS[before.component],
        f"aftersale.{before.component}.{before.name}",
        f"{before.component} {before.name} is back at {_clock(now)} after "
        f"{_span(now - before.since)} down (since {_clock(before.since)}; "
        f"{_failed(before)}): the outage is over",
        {
            before.component: before.name,
            "state": "recovered",
            "since": before.since.isoformat(),
            "down_for_s": int((now - before.since).total_seconds()),
        },
    )


def _failed(h: HealthRecord) -> str:
    what = "poll" if h.component == CARRIER else "send"
    return f"{h.failures} failed {what}{'' if h.failures == 1 else 's'}"


def _kinds(errors: Mapping[str, int]) -> str:
    shown = sorted(errors.items(), key=lambda kv: (-kv[1], kv[0]))
    return ", ".join(f"{kind} ×{n}" for kind, n in shown[:3]) or "no error recorded"


def _clock(at: datetime) -> str:
    return f"{at:%Y-%m-%d %H:%M} UTC"


def _span(delta: timedelta) -> str:
    minutes = max(0, int(delta.total_seconds() // 60))
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{hours // 24} days {hours % 24} h"
