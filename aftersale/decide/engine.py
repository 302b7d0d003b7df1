"""Decide which messages events cause: rules, conditions, once-only keys, windows, caps, consent.

Pure: the store's knowledge comes in as a `SendHistory`, `now` is injected, and the
rules were compiled once by `load_ruleset` (no validation here). Every event that sends
nothing gets a `Skip` with a plain-English reason.

Collapsing is decided from the cycle's events alone, never from the history, so a
replayed cycle picks the same winners and sends nothing new: among the *news* events of
one shipment (shipped, status changes, carrier delays, slipped estimates) only the rules
with the highest priority, newest event first, go out. Recurring due events (arriving
tomorrow, scan-less delays, delivered + N days) are re-emitted every cycle and never
collapse; `supersedes` keeps them quiet once something newer was decided.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from aftersale.decide.conditions import Condition
from aftersale.decide.ruleset import RuleSet
from aftersale.decide.schema import Cap, OnceScope, Rule
from aftersale.dispatch.channels.kinds import spec_of
from aftersale.models import (
    ChannelKind,
    Decision,
    DelayReason,
    DomainEvent,
    EventKind,
    Item,
    Order,
    ShipmentState,
)

_NEWS_DELAYS = frozenset({DelayReason.EXCEPTION, DelayReason.ETA_SLIPPED})
#: Which of a shipment's delays found in one cycle speaks for all of them: the carrier's
#: own report first, then a new date, then what we inferred (one incident, one message).
_DELAY_RANK = {
    DelayReason.UNDELIVERABLE: 6,
    DelayReason.EXCEPTION: 5,
    DelayReason.ETA_SLIPPED: 4,
    DelayReason.NO_FIRST_SCAN: 3,
    DelayReason.ETA_MISSED: 2,
    DelayReason.STALE: 1,
    DelayReason.PICKUP_WAITING: 0,
}


@dataclass(frozen=True, slots=True)
class SentRecord:
    """A message sent (or pending) to a customer over a channel, for frequency caps."""

    at: datetime  # sent at, or due at for a pending message
    rule_id: str
    marketing: bool = False


@dataclass(frozen=True, slots=True)
class PendingMessage:
    """A decided message not sent yet: a newer event may cancel it (`supersedes`)."""

    idempotency_key: str
    rule_id: str
    shipment_id: str | None
    due_at: datetime


@dataclass(frozen=True, slots=True)
class SendHistory:
    """What the store already knows about messages, as `decide` needs it."""

    used_keys: frozenset[str] = frozenset()  # every key ever decided (sent, pending, cancelled)
    recent: Mapping[tuple[str, ChannelKind], tuple[SentRecord, ...]] = field(
        default_factory=dict
    )  # (customer_id, channel) -> sends within the longest cap window, pending included
    pending: tuple[PendingMessage, ...] = ()


class SkipWhy(StrEnum):
    """Why an event, or one rule for it, sent nothing, in a word the run summary counts by
    (the `Skip.reason` says it in full)."""

    NO_RULE = "no rule listens"
    NO_ORDER = "order not stored"
    CONDITION = "condition false"
    COLLAPSED = "newer news in the same cycle"
    SUPERSEDED = "superseded"
    ONCE_ONLY = "already sent (once only)"
    NO_ADDRESS = "no address"
    CONSENT = "no consent"
    CAP = "frequency cap"
    TOO_LATE = "too late"
    FALLBACK = "sent on the fallback channel"


@dataclass(frozen=True, slots=True)
class Skip:
    """An event, or one rule for it, that sends nothing, and why."""

    event: DomainEvent
    rule_id: str | None
    reason: str
    channel: ChannelKind | None = None
    why: SkipWhy = field(kw_only=True)

    def __str__(self) -> str:
        who = f"rule '{self.rule_id}'" if self.rule_id else "no rule"
        via = f" ({self.channel})" if self.channel else ""
        return f"{describe(self.event)} for order {self.event.order_id}: {who}{via}: {self.reason}"


@dataclass(frozen=True, slots=True)
class DecideOutcome:
    decisions: list[Decision]
    skipped: list[Skip]
    cancel_keys: list[str]


def describe(event: DomainEvent) -> str:
    if event.status is not None and event.kind is EventKind.STATUS_CHANGED:
        return f"status_changed({event.status})"
    if event.reason is not None and event.kind is EventKind.DELAYED:
        return f"delayed({event.reason})"
    if "days" in event.facts:
        return f"{event.kind}({event.facts['days']}d)"
    return str(event.kind)


def idempotency_key(rule: Rule, event: DomainEvent, channel: ChannelKind) -> str:
    return f"{rule.id}|{once_subject(rule.once, event)}|{channel}"


def once_subject(once: OnceScope, event: DomainEvent) -> str:
    if once is OnceScope.ORDER:
        return event.order_id
    if once is OnceScope.ITEM:
        return f"{event.order_id}/{event.item_sku}"
    if once is OnceScope.REASON:
        return f"{event.order_id}/{event.shipment_id}/{event.reason}"
    if once is OnceScope.INCIDENT:
        # detection names the incident (tracking/detect.py `incident_of`); a delay stored
        # before incidents were named counts as one per reason
        incident = event.facts.get("incident") or event.reason
        return f"{event.order_id}/{event.shipment_id}/{incident}"
    if once is OnceScope.DELIVERY_DAY:
        # stored before the day was named: one per parcel
        return f"{event.order_id}/{event.facts.get('delivered_on') or event.shipment_id}"
    return f"{event.order_id}/{event.shipment_id}"


def is_news(event: DomainEvent) -> bool:
    """Emitted once, when a poll reveals it (as opposed to re-emitted every cycle)."""
    kind = event.kind
    return (
        kind is EventKind.SHIPPED
        or kind is EventKind.STATUS_CHANGED
        or (kind is EventKind.DELAYED and event.reason in _NEWS_DELAYS)
    )


@dataclass(slots=True)
class _Candidate:
    event: DomainEvent
    rule: Rule
    order: Order
    subject: str  # the once-only scope's subject, part of every key
    news: bool  # `is_news(event)`, computed once for collapsing


def decide(
    events: Sequence[DomainEvent],
    orders: Mapping[str, Order],
    shipments: Mapping[str, ShipmentState],
    ruleset: RuleSet,
    now: datetime,
    history: SendHistory,
) -> DecideOutcome:
    """Decisions (what to send, over which channel, when), skips with reasons, cancellations."""
    matched: list[Skip] = []
    candidates = _match(events, orders, shipments, ruleset, matched)
    candidates = _collapse(candidates, matched)
    candidates = _one_delay_per_shipment(candidates, matched)
    # A decision superseded later in this cycle must not use up a cap another message then
    # misses (replayed, that message would be decided after all): decide again without the
    # beaten ones until nothing new is beaten. Rare, and each pass can only beat more.
    beaten: dict[tuple[str, str], str] = {}  # (shipment id, rule id) -> the rule beating it
    while True:
        skipped = list(matched)
        decisions = _resolve_all(candidates, beaten, ruleset, now, history, skipped)
        newly = _beaten_in_cycle(decisions, ruleset)
        if newly.keys() <= beaten.keys():
            break
        beaten |= newly
    cancel_keys = _cancelled_pending(decisions, ruleset, history)
    return DecideOutcome(decisions, skipped, cancel_keys)


def _match(
    events: Sequence[DomainEvent],
    orders: Mapping[str, Order],
    shipments: Mapping[str, ShipmentState],
    ruleset: RuleSet,
    skipped: list[Skip],
) -> list[_Candidate]:
    out: list[_Candidate] = []
    listening_to = ruleset.listening
    for event in events:
        listening = listening_to(event)
        if not listening:
            skipped.append(
                Skip(event, None, f"no rule listens to {describe(event)}", why=SkipWhy.NO_RULE)
            )
            continue
        order = orders.get(event.order_id)
        if order is None:
            missing = f"order {event.order_id} is not in the store"
            skipped.append(Skip(event, None, missing, why=SkipWhy.NO_ORDER))
            continue
        sid = event.shipment_id
        shipment = shipments.get(sid) if sid else None
        items: Sequence[Item] = order.items
        if event.item_sku is not None:
            items = [i for i in order.items if i.sku == event.item_sku]
        news = is_news(event)
        for rule in listening:
            conditions = rule.conditions
            failed = _first_false(conditions, order, shipment, event, items) if conditions else None
            if failed is None:
                subject = once_subject(rule.once, event)
                out.append(_Candidate(event, rule, order, subject, news))
            else:
                actual = failed.get(order, shipment, event, items)
                if isinstance(actual, list | tuple):
                    actual = "[" + ", ".join(map(str, actual)) + "]"
                skipped.append(
                    Skip(
                        event,
                        rule.id,
                        f"condition '{failed.text}' is false ({failed.field} = {actual})",
                        why=SkipWhy.CONDITION,
                    )
                )
    return out


def _first_false(
    conditions: tuple[Condition, ...],
    order: Order,
    shipment: ShipmentState | None,
    event: DomainEvent,
    items: Sequence[Item],
) -> Condition | None:
    for cond in conditions:
        if not cond.test(order, shipment, event, items):
            return cond
    return None


def _collapse(candidates: list[_Candidate], skipped: list[Skip]) -> list[_Candidate]:
    best: dict[str, tuple[int, datetime, str]] = {}
    for c in candidates:
        sid = c.event.shipment_id
        if c.news and sid and c.rule.collapse:
            rank = (c.rule.priority, c.event.occurred_at, c.rule.id)
            current = best.get(sid)
            if current is None or rank[:2] > current[:2]:
                best[sid] = rank
    if not best:
        return candidates
    kept: list[_Candidate] = []
    for c in candidates:
        sid = c.event.shipment_id
        top = best.get(sid) if c.news and sid and c.rule.collapse else None
        if top is None or (c.rule.priority, c.event.occurred_at) == top[:2]:
            kept.append(c)
        else:
            reason = f"collapsed: '{top[2]}' is the newest message for shipment {sid} in this cycle"
            skipped.append(Skip(c.event, c.rule.id, reason, why=SkipWhy.COLLAPSED))
    return kept


def _one_delay_per_shipment(candidates: list[_Candidate], skipped: list[Skip]) -> list[_Candidate]:
    """Several delays of one shipment found in one cycle (a slipped date and the carrier's
    exception, a missed promise and a stale scan) are one incident: one rule's message
    speaks for all of them, the best-informed one (`_DELAY_RANK`, then the newest)."""
    best: dict[tuple[str, str], _Candidate] = {}
    for c in candidates:
        sid = c.event.shipment_id
        if c.event.kind is not EventKind.DELAYED or sid is None:
            continue
        key = (sid, c.rule.id)
        current = best.get(key)
        if current is None or _delay_rank(c) > _delay_rank(current):
            best[key] = c
    if len(best) == sum(1 for c in candidates if c.event.kind is EventKind.DELAYED):
        return candidates
    kept = []
    for c in candidates:
        sid = c.event.shipment_id
        winner = best.get((sid, c.rule.id)) if sid and c.event.kind is EventKind.DELAYED else None
        if winner is None or winner is c:
            kept.append(c)
        else:
            reason = f"one incident, one message: the {winner.event.reason} delay speaks for it"
            skipped.append(Skip(c.event, c.rule.id, reason, why=SkipWhy.COLLAPSED))
    return kept


def _delay_rank(c: _Candidate) -> tuple[int, datetime]:
    return _DELAY_RANK.get(DelayReason(c.event.reason or "stale"), 0), c.event.occurred_at


class _CycleState:
    """Keys and sends decided so far in this call, on top of the history."""

    def __init__(self, history: SendHistory, ruleset: RuleSet, now: datetime) -> None:
        self.history = history
        self.used = history.used_keys
        self.ruleset = ruleset
        self.now = now
        self.decided: set[str] = set()
        self.sent: dict[tuple[str, ChannelKind], list[SentRecord]] = {}
        # (rule id, channel) -> the caps that count its messages, each with its window as
        # a fixed length (None: business days); a message no cap counts is not recorded
        self.caps: dict[tuple[str, ChannelKind], tuple[tuple[Cap, timedelta | None], ...]] = {
            (rule.id, ch): tuple(
                (c, c.per.delta)
                for c in ruleset.caps
                if c.channel is ch
                and not (rule.id in c.exempt or (c.marketing_only and not rule.marketing))
            )
            for rule in ruleset.rules
            for ch in ChannelKind
        }
        # rule id -> (newer rule id, its key suffixes) for the once-per-shipment rules
        # superseding it: the keys to look for, built once per call rather than per event
        self.newer_keys: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
            rule_id: tuple(
                (
                    newer.id,
                    tuple(
                        dict.fromkeys(
                            f"|{ch}" for ch in (*newer.channels, *newer.fallback.values())
                        )
                    ),
                )
                for newer in newer_rules
                if newer.once is OnceScope.SHIPMENT
            )
            for rule_id, newer_rules in ruleset.superseded_by.items()
        }

    def superseded(self, cand: _Candidate) -> str | None:
        """A rule that supersedes this one already went out for the shipment."""
        event = cand.event
        newer_keys = self.newer_keys.get(cand.rule.id)
        if event.shipment_id is None or not newer_keys:
            return None
        used, decided = self.used, self.decided
        subject = f"{event.order_id}/{event.shipment_id}"
        for newer_id, suffixes in newer_keys:
            head = f"{newer_id}|{subject}"
            for suffix in suffixes:
                key = head + suffix
                if key in used or key in decided:
                    return f"superseded: '{newer_id}' was already decided for this shipment"
        return None

    def resolve(
        self, cand: _Candidate, channel: ChannelKind, skipped: list[Skip]
    ) -> Decision | None:
        rule, event = cand.rule, cand.event
        customer = cand.order.customer
        used, decided, now = self.used, self.decided, self.now
        head = f"{rule.id}|{cand.subject}|"
        tried: list[str] = []
        first_why: SkipWhy | None = None  # what stopped the rule's own channel
        current: ChannelKind | None = channel
        while current is not None:
            key = head + current
            if key in used or key in decided:
                done = f"already sent (key {key})"
                if tried and current in rule.channels:
                    done = f"the {current} message of this rule covers it"
                why = first_why or SkipWhy.ONCE_ONLY
                skipped.append(Skip(event, rule.id, "; ".join([*tried, done]), channel, why=why))
                return None
            spec = spec_of(current)
            problem = spec.contact_problem(customer, rule.marketing)
            if problem is not None:
                why = SkipWhy.CONSENT if spec.recipient(customer) else SkipWhy.NO_ADDRESS
            else:
                # when it would go out: after the delay, not before now, inside the window
                tz = customer.time_zone
                occurred = event.occurred_at
                if rule.after is None:
                    due, held = occurred, []
                else:
                    due = rule.after.add(occurred, tz)
                    held = [f"waits {rule.after} after the event"] if due > now else []
                if due < now:
                    due = now
                window = rule.windows.get(current)
                if window is not None:
                    opens = window.next_open(due, tz)
                    if opens != due:
                        held.append(f"quiet hours: {current} goes out {window} {tz}")
                    due = opens
                before = rule.before
                if before is not None and due > before.add(occurred, tz):
                    why = SkipWhy.TOO_LATE
                    problem = (
                        f"too late: it would go out at {due:%Y-%m-%d %H:%M} UTC, more than "
                        f"{before} after the event "
                        f"({occurred:%Y-%m-%d %H:%M} UTC)"
                    )
                elif caps := self.caps[rule.id, current]:
                    why = SkipWhy.CAP
                    problem = self._cap_problem(customer.customer_id, current, due, caps)
                    if problem is None:
                        self.sent.setdefault((customer.customer_id, current), []).append(
                            SentRecord(due, rule.id, rule.marketing)
                        )
                if problem is None:
                    decided.add(key)
                    if tried:
                        skipped.append(
                            Skip(
                                event,
                                rule.id,
                                "; ".join(tried) + f"; fell back to {current}",
                                channel,
                                why=SkipWhy.FALLBACK,
                            )
                        )
                    # positional, in field order (rule_id, template, channel, order_id,
                    # idempotency_key, due_at, event, marketing, shipment_id, item_sku)
                    return Decision(
                        rule.id,
                        rule.template,
                        current,
                        event.order_id,
                        key,
                        due,
                        event,
                        rule.marketing,
                        event.shipment_id,
                        event.item_sku,
                        held="; ".join(held) or None,
                    )
            first_why = first_why or why
            tried.append(f"{current}: {problem}")
            nxt = rule.fallback.get(current)
            current = nxt if nxt is not None and nxt not in (channel, current) else None
        skipped.append(Skip(event, rule.id, "; ".join(tried), channel, why=first_why or why))
        return None

    def _cap_problem(
        self,
        customer_id: str,
        channel: ChannelKind,
        due: datetime,
        caps: tuple[tuple[Cap, timedelta | None], ...],
    ) -> str | None:
        for cap, fixed in caps:
            per = fixed if fixed is not None else cap.per.add(due, "UTC") - due
            count = 0
            for records in (
                self.history.recent.get((customer_id, channel), ()),
                self.sent.get((customer_id, channel), ()),
            ):
                for r in records:
                    if r.rule_id in cap.exempt or (cap.marketing_only and not r.marketing):
                        continue
                    if abs(r.at - due) < per:
                        count += 1
            if count >= cap.max:
                what = "marketing " if cap.marketing_only else ""
                return f"cap hit: at most {cap.max} {what}{channel} per {cap.per} ({cap.source})"
        return None


def _resolve_all(
    candidates: list[_Candidate],
    beaten: Mapping[tuple[str, str], str],
    ruleset: RuleSet,
    now: datetime,
    history: SendHistory,
    skipped: list[Skip],
) -> list[Decision]:
    state = _CycleState(history, ruleset, now)
    decisions: list[Decision] = []
    newer_keys = state.newer_keys
    for cand in candidates:
        sid, rule = cand.event.shipment_id, cand.rule
        winner = beaten.get((sid, rule.id)) if sid and beaten else None
        if winner is not None:
            beaten_by = f"superseded by '{winner}' in this cycle"
            for channel in rule.channels:
                skipped.append(
                    Skip(cand.event, rule.id, beaten_by, channel, why=SkipWhy.SUPERSEDED)
                )
            continue
        newer = state.superseded(cand) if rule.id in newer_keys else None
        if newer:
            skipped.append(Skip(cand.event, rule.id, newer, why=SkipWhy.SUPERSEDED))
            continue
        for channel in rule.channels:
            decision = state.resolve(cand, channel, skipped)
            if decision is not None:
                decisions.append(decision)
    return decisions


def _beaten_in_cycle(decisions: list[Decision], ruleset: RuleSet) -> dict[tuple[str, str], str]:
    """(shipment id, rule id) of the decisions another decision of this cycle supersedes."""
    by_id = ruleset.by_id
    winners: dict[tuple[str, str], str] = {}
    for d in decisions:
        if d.shipment_id:
            for victim in by_id[d.rule_id].supersedes:
                winners.setdefault((d.shipment_id, victim), d.rule_id)
    return {
        (d.shipment_id, d.rule_id): winners[d.shipment_id, d.rule_id]
        for d in decisions
        if d.shipment_id and (d.shipment_id, d.rule_id) in winners
    }


def _cancelled_pending(
    decisions: list[Decision], ruleset: RuleSet, history: SendHistory
) -> list[str]:
    """Keys of pending messages that a decision of this cycle supersedes."""
    by_id = ruleset.by_id
    victims: dict[str, set[str]] = {}  # shipment id -> superseded rule ids
    for d in decisions:
        supersedes = by_id[d.rule_id].supersedes
        if supersedes and d.shipment_id:
            victims.setdefault(d.shipment_id, set()).update(supersedes)
    if not victims:
        return []
    return [
        p.idempotency_key
        for p in history.pending
        if p.shipment_id in victims and p.rule_id in victims[p.shipment_id]
    ]


def history_after(
    history: SendHistory, outcome: DecideOutcome, orders: Mapping[str, Order]
) -> SendHistory:
    """The history once `outcome` is stored: its keys used, its messages pending (for replays)."""
    recent = {k: list(v) for k, v in history.recent.items()}
    for d in outcome.decisions:
        customer_id = orders[d.order_id].customer.customer_id
        recent.setdefault((customer_id, d.channel), []).append(
            SentRecord(d.due_at, d.rule_id, d.marketing)
        )
    cancelled = set(outcome.cancel_keys)
    pending = tuple(p for p in history.pending if p.idempotency_key not in cancelled) + tuple(
        PendingMessage(d.idempotency_key, d.rule_id, d.shipment_id, d.due_at)
        for d in outcome.decisions
    )
    return SendHistory(
        used_keys=history.used_keys | {d.idempotency_key for d in outcome.decisions},
        recent={k: tuple(v) for k, v in recent.items()},
        pending=pending,
    )
