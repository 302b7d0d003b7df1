"""What a run keeps of its pages for its summary and report: counts, and the few things an
operator reads by name (errors, failed messages, late orders, held messages), each list
bounded. A run of 100 or 100,000 shipments holds the same few kilobytes here; every
message, event and skip itself is in the store (and the logs), not in the summary.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Generic, TypeVar

from aftersale.decide.engine import DecideOutcome, Skip, describe
from aftersale.dispatch.send import Outcome
from aftersale.models import Decision, DomainEvent, EventKind, PollResult
from aftersale.ops.health import Observation, observe_carriers, observe_channels

#: Order of outcomes in every table: the ones that need attention first (an outcome not
#: listed, like `cancelled` or `reconciled_sent`, comes before all of them).
OUTCOME_ORDER = ("failed", "unknown", "deferred", "suppressed", "skipped", "would_send", "sent")
#: Messages a run lists by name (the `messages` table artifact), attention first; the
#: rest are counted. Failed and unknown ones come first, so all of them are listed unless
#: more than this many failed.
MAX_MESSAGE_ROWS = 2000
#: Raw poll errors, carrier corrections and late orders listed by name; the rest counted.
MAX_LISTED = 100
#: Messages queued for later listed by name, soonest first.
MAX_HELD = 50
#: Distinct error texts kept per carrier; further ones count as OTHER_ERRORS.
MAX_ERROR_TEXTS = 50
OTHER_ERRORS = "(other errors)"

T = TypeVar("T")


class Smallest(Generic[T]):
    """The `limit` smallest of all items added, by `key`, and how many were added."""

    def __init__(self, limit: int, key: Callable[[T], Any]) -> None:
        self.limit, self.key, self.total = limit, key, 0
        self._items: list[T] = []

    def add(self, items: Iterable[T]) -> None:
        for item in items:
            self.total += 1
            self._items.append(item)
            if len(self._items) >= 2 * self.limit:
                self._trim()

    def items(self) -> list[T]:
        """The kept items, smallest first."""
        self._trim()
        return list(self._items)

    def _trim(self) -> None:
        self._items.sort(key=self.key)
        del self._items[self.limit :]


def outcome_rank(outcome: Outcome) -> tuple[int, str, str]:
    """Where a message's row goes in the run's tables: attention first, then by rule."""
    return (_RANK.get(outcome.outcome, -1), outcome.rule_id, outcome.message_id)


_RANK = {o: i for i, o in enumerate(OUTCOME_ORDER)}


def error_text(error: str) -> str:
    """A poll error without its 'carrier number:' prefix, so identical faults group."""
    head, sep, rest = error.partition(": ")
    return rest if sep and " " in head else error


def merge_observations(into: dict[str, Observation], observed: Iterable[Observation]) -> None:
    """Add one page's (one batch's) observations to the run's, per carrier or channel."""
    for o in observed:
        before = into.get(o.name)
        into[o.name] = o if before is None else before.plus(o)


@dataclass
class PollTally:
    """What a run keeps of its polls: counts per carrier, errors grouped by text (the raw
    ones and carrier corrections up to MAX_LISTED), and what the carriers' health needs."""

    polled: int = 0
    counts: dict[str, Counter[str]] = field(default_factory=dict)  # polled, errors, ...
    errors: dict[str, Counter[str]] = field(default_factory=dict)  # carrier -> text -> n
    first_errors: list[str] = field(default_factory=list)
    breakers_open: set[str] = field(default_factory=set)
    corrections: dict[str, str] = field(default_factory=dict)  # shipment id -> carrier
    observed: dict[str, Observation] = field(default_factory=dict)

    def add(
        self,
        results: Sequence[PollResult],
        breakers_open: Iterable[str] = (),
        corrections: Mapping[str, str] | None = None,
    ) -> None:
        self.polled += len(results)
        for r in results:
            slug = r.carrier or "(none)"
            row = self.counts.setdefault(slug, Counter())
            row["polled"] += 1
            if r.error:
                row["errors"] += 1
                self._error(slug, r.error)
            elif r.tracking is not None and not r.tracking.found:
                row["not_found"] += 1
            elif r.tracking is not None and r.tracking.problems:
                row["with_problems"] += 1
        self.breakers_open.update(breakers_open)
        for shipment_id, carrier in (corrections or {}).items():
            if len(self.corrections) < MAX_LISTED:
                self.corrections[shipment_id] = carrier
        merge_observations(self.observed, observe_carriers(results, breakers_open))

    def _error(self, slug: str, error: str) -> None:
        if len(self.first_errors) < MAX_LISTED:
            self.first_errors.append(error)
        texts = self.errors.setdefault(slug, Counter())
        text = error_text(error)
        texts[text if text in texts or len(texts) < MAX_ERROR_TEXTS else OTHER_ERRORS] += 1

    def by_carrier(self) -> dict[str, dict[str, int]]:
        return {slug: dict(row) for slug, row in sorted(self.counts.items())}

    def observations(self) -> list[Observation]:
        """Per carrier this run polled; its breaker counts as opened if any page opened it."""
        return [
            replace(o, breaker_opened=o.name in self.breakers_open)
            for _, o in sorted(self.observed.items())
        ]


@dataclass
class EventTally:
    """What a run keeps of its new domain events: counts by kind, status and delay
    reason, and the orders not shipped in time (up to MAX_LISTED, by id)."""

    count: int = 0
    changed_states: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    status_changes: Counter[str] = field(default_factory=Counter)
    delays: Counter[str | None] = field(default_factory=Counter)  # by reason
    late_orders: Smallest[str] = field(default_factory=lambda: Smallest(MAX_LISTED, str))

    def add(self, events: Iterable[DomainEvent], changed_states: int = 0) -> None:
        self.changed_states += changed_states
        for e in events:
            self.count += 1
            self.by_kind[e.kind.value] += 1
            if e.kind is EventKind.STATUS_CHANGED and e.status:
                self.status_changes[e.status.value] += 1
            elif e.kind is EventKind.DELAYED:
                self.delays[e.reason] += 1
            elif e.kind is EventKind.FULFILMENT_DELAYED:
                self.late_orders.add([e.order_id])


@dataclass
class NotSent:
    """Events (or one rule for them) that sent nothing, grouped by rule and why."""

    count: int = 0
    example: str = ""  # the first one's reason in full


@dataclass
class DecideTally:
    """What a run keeps of its decisions: how many were queued and cancelled, why the
    rest sent nothing (per rule, with one reason in full), and the soonest held ones."""

    queued: int = 0
    cancelled: int = 0
    skipped: int = 0
    skipped_by_reason: Counter[str] = field(default_factory=Counter)
    not_sent: dict[tuple[str, str], NotSent] = field(default_factory=dict)
    held: Smallest[Decision] = field(
        default_factory=lambda: Smallest(MAX_HELD, lambda d: (d.due_at, d.rule_id, d.order_id))
    )

    def add(self, queued: int, cancelled: int, outcome: DecideOutcome, now: datetime) -> None:
        self.queued += queued
        self.cancelled += cancelled
        self.held.add(d for d in outcome.decisions if d.due_at > now)
        for skip in outcome.skipped:
            self.skipped += 1
            self.skipped_by_reason[skip.why.value] += 1
            group = self.not_sent.setdefault(skip_group(skip), NotSent(example=skip.reason))
            group.count += 1


def skip_group(skip: Skip) -> tuple[str, str]:
    """(the rule, or `(no rule) <event>` without one; why): what the report counts by."""
    return (skip.rule_id or f"(no rule) {describe(skip.event)}", skip.why.value)


@dataclass
class MessageTally:
    """What a run keeps of its dispatch, fed batch by batch (`dispatch_due`'s `into`):
    counts per rule, channel and outcome, the first MAX_MESSAGE_ROWS messages in the
    tables' order (attention first), and what the channels' health needs."""

    counts: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    rows: Smallest[Outcome] = field(
        default_factory=lambda: Smallest(MAX_MESSAGE_ROWS, outcome_rank)
    )
    observed: dict[str, Observation] = field(default_factory=dict)

    def add(self, outcomes: Sequence[Outcome]) -> None:
        self.counts.update((o.rule_id, o.channel, o.outcome) for o in outcomes)
        self.rows.add(outcomes)
        merge_observations(self.observed, observe_channels(outcomes))

    @property
    def total(self) -> int:
        return self.rows.total

    def count(self, outcome: str) -> int:
        return sum(n for (_, _, o), n in self.counts.items() if o == outcome)

    def by_outcome(self) -> Counter[str]:
        totals: Counter[str] = Counter()
        for (_, _, outcome), n in self.counts.items():
            totals[outcome] += n
        return totals

    def listed(self) -> list[Outcome]:
        """The messages listed by name, attention first (all of them in a small run)."""
        return self.rows.items()

    def observations(self) -> list[Observation]:
        return [o for _, o in sorted(self.observed.items())]
