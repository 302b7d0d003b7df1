"""The period report's figures, from the store's rows to numbers: messages per day, rule,
channel and outcome; what providers reported about them; on-time delivery and transit
times per carrier and lane; how often a delay message was followed by a late delivery.

Pure apart from `read_trends`, which asks the store (aftersale.store.protocols.ReportStore)
for [start, end). Days are UTC days; "on time" is by the customer's calendar: delivered
on or before the promised date (the shop's promise, else the carrier's first estimate).
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from aftersale.models import MessageState, Status
from aftersale.store.protocols import ReportStore
from aftersale.store.records import DelayNotice, DeliveredShipment, MessageStat
from aftersale.tracking.detect import zone

#: A place as carriers write it, ending in its country: "Warszawa, PL", "Poznań (PL)".
_COUNTRY = re.compile(r"(?:,\s*|\(\s*)([A-Z]{2})\s*\)?\s*$")
#: Provider reports counted as "did not reach the inbox/phone".
BOUNCED = frozenset({"bounced", "blocked", "dropped", "undelivered", "failed", "spam_report"})
#: Terminal parcel states that mean it never arrived.
NOT_DELIVERED = frozenset({Status.RETURNED_TO_SENDER, Status.CANCELLED, Status.EXPIRED})
UNKNOWN_PLACE = "?"


@dataclass(frozen=True, slots=True)
class LaneStats:
    """Delivered parcels of one carrier on one lane (origin -> destination country)."""

    carrier: str
    origin: str
    destination: str
    delivered: int
    on_time: int
    late: int
    transit_hours: tuple[float, ...]  # handover to delivery, sorted

    @property
    def lane(self) -> str:
        return f"{self.carrier} {self.origin}→{self.destination}"

    @property
    def on_time_rate(self) -> float | None:
        judged = self.on_time + self.late
        return self.on_time / judged if judged else None

    def percentile(self, p: float) -> float | None:
        """Nearest-rank percentile of the transit time in hours (None without data)."""
        values = self.transit_hours
        if not values:
            return None
        return values[max(0, math.ceil(p / 100 * len(values)) - 1)]


@dataclass(frozen=True, slots=True)
class DelayPrecision:
    """Delay messages sent for one carrier's parcels, by what became of the parcel."""

    carrier: str
    late: int = 0  # delivered after the promised day: the message was right
    not_delivered: int = 0  # returned, cancelled, expired: right as well
    on_time: int = 0  # delivered on time after all: a false alarm
    moving: int = 0  # not settled yet
    no_promise: int = 0  # nothing to compare with

    @property
    def notices(self) -> int:
        return self.late + self.not_delivered + self.on_time + self.moving + self.no_promise

    @property
    def precision(self) -> float | None:
        right = self.late + self.not_delivered
        judged = right + self.on_time
        return right / judged if judged else None


@dataclass(frozen=True, slots=True)
class ProviderDay:
    """One day's messages that went out, and what their providers reported later."""

    day: date
    sent: int = 0
    delivered: int = 0
    bounced: int = 0
    opened: int = 0
    clicked: int = 0


@dataclass(frozen=True)
class Trends:
    start: datetime
    end: datetime
    messages: list[MessageStat] = field(default_factory=list)
    lanes: list[LaneStats] = field(default_factory=list)
    delay: list[DelayPrecision] = field(default_factory=list)

    def days(self) -> list[date]:
        first, last = self.start.date(), (self.end - timedelta(microseconds=1)).date()
        return [first + timedelta(days=i) for i in range((last - first).days + 1)]

    def states(self) -> list[str]:
        """The message states present, the ones that need attention first."""
        order = [s.value for s in _STATE_ORDER]
        present = {m.state.value for m in self.messages}
        return [s for s in order if s in present] + sorted(present - set(order))

    def by_day(self) -> dict[date, Counter[str]]:
        """Messages per day and state (every day of the range, empty ones too)."""
        out: dict[date, Counter[str]] = {d: Counter() for d in self.days()}
        for m in self.messages:
            out.setdefault(m.day, Counter())[m.state.value] += m.count
        return out

    def by_rule_channel(self) -> dict[tuple[str, str], Counter[str]]:
        out: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
        for m in self.messages:
            out[(m.rule_id, m.channel.value)][m.state.value] += m.count
        return dict(sorted(out.items()))

    def by_day_rule_channel(self) -> dict[tuple[date, str, str], Counter[str]]:
        out: dict[tuple[date, str, str], Counter[str]] = defaultdict(Counter)
        for m in self.messages:
            out[(m.day, m.rule_id, m.channel.value)][m.state.value] += m.count
        return dict(sorted(out.items()))

    def provider_days(self) -> list[ProviderDay]:
        """Per day, the sent messages and what providers reported (SendGrid and Twilio
        webhooks: delivered, bounced; SendGrid also opened and clicked)."""
        days: dict[date, Counter[str]] = {d: Counter() for d in self.days()}
        for m in self.messages:
            if m.state is not MessageState.SENT:
                continue
            c = days.setdefault(m.day, Counter())
            c["sent"] += m.count
            if m.delivery_state == "delivered":
                c["delivered"] += m.count
            elif m.delivery_state in BOUNCED:
                c["bounced"] += m.count
            c["opened"] += m.opened
            c["clicked"] += m.clicked
        return [
            ProviderDay(d, c["sent"], c["delivered"], c["bounced"], c["opened"], c["clicked"])
            for d, c in sorted(days.items())
        ]

    def has_provider_reports(self) -> bool:
        return any(p.delivered or p.bounced or p.opened or p.clicked for p in self.provider_days())

    def total(self, state: str | None = None) -> int:
        return sum(m.count for m in self.messages if state is None or m.state.value == state)

    def on_time_rate(self) -> float | None:
        on_time = sum(lane.on_time for lane in self.lanes)
        judged = on_time + sum(lane.late for lane in self.lanes)
        return on_time / judged if judged else None

    def delay_precision(self) -> float | None:
        right = sum(d.late + d.not_delivered for d in self.delay)
        judged = right + sum(d.on_time for d in self.delay)
        return right / judged if judged else None


_STATE_ORDER = (
    MessageState.FAILED,
    MessageState.UNKNOWN,
    MessageState.SUPPRESSED,
    MessageState.CANCELLED,
    MessageState.PENDING,
    MessageState.SENDING,
    MessageState.SENT,
)


def read_trends(store: ReportStore, start: datetime, end: datetime) -> Trends:
    """Everything the report shows for [start, end)."""
    if end <= start:
        raise ValueError(f"the range is empty: --to {end:%Y-%m-%d} is not after --from")
    return Trends(
        start,
        end,
        store.message_stats(start, end),
        lane_stats(store.delivered_shipments(start, end)),
        delay_precision(store.delay_notices(start, end)),
    )


def country_of(place: str | None) -> str | None:
    """The ISO country code a carrier wrote at the end of a place, if it did."""
    match = _COUNTRY.search(place or "")
    return match.group(1) if match else None


def local_day(at: datetime, time_zone: str) -> date:
    return at.astimezone(zone(time_zone)).date()


def lane_stats(shipments: Iterable[DeliveredShipment]) -> list[LaneStats]:
    groups: dict[tuple[str, str, str], list[DeliveredShipment]] = defaultdict(list)
    for s in shipments:
        origin = country_of(s.first_location) or UNKNOWN_PLACE
        groups[(s.carrier, origin, s.destination or UNKNOWN_PLACE)].append(s)
    out = []
    for (carrier, origin, destination), group in sorted(groups.items()):
        judged = sum(1 for s in group if s.promised is not None)
        on_time = sum(
            1
            for s in group
            if s.promised is not None and local_day(s.delivered_at, s.time_zone) <= s.promised
        )
        hours = sorted(
            (s.delivered_at - s.handed_over_at).total_seconds() / 3600
            for s in group
            if s.handed_over_at is not None and s.handed_over_at <= s.delivered_at
        )
        out.append(
            LaneStats(
                carrier, origin, destination, len(group), on_time, judged - on_time, tuple(hours)
            )
        )
    return out


def delay_precision(notices: Sequence[DelayNotice]) -> list[DelayPrecision]:
    """Per carrier, what became of each parcel a delay message was sent about (one count
    per message: two delay messages for one late parcel are both right)."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for n in notices:
        counts[n.carrier][_fate(n)] += 1
    return [DelayPrecision(carrier, **dict(c)) for carrier, c in sorted(counts.items())]


def _fate(n: DelayNotice) -> str:
    status = Status(n.status)
    if status in NOT_DELIVERED:
        return "not_delivered"
    if n.delivered_at is None:
        return "moving"
    if n.promised is None:
        return "no_promise"
    return "late" if local_day(n.delivered_at, n.time_zone) > n.promised else "on_time"
