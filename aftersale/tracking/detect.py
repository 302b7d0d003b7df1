"""Detection: what happened to a parcel, from the stored state and a fresh tracking.

Pure functions with `now` injected. `detect_changes` compares a poll with the stored
state; `detect_due` derives time-based events and scan-less delays from stored facts
every cycle; `advance_state` is the state update the store applies after a poll.

Choices worth knowing:
- Status order comes from the parcel's journey (label < in transit < out for delivery
  < pickup point < delivered). A step forward is accepted whatever its scan time (a scan
  reported late is still news); a step back only when its scan is newer than the
  current status (a lagging carrier replica is not news). `unknown` never replaces a
  known status, and terminal statuses are final.
- A parcel seen for the first time already delivered gets no `shipped` event (the
  story starts at the end): it gets `status_changed(delivered)` with the scan time as
  `occurred_at` and `first_seen` in facts, so the `delivered` rule's `before` window
  decides whether the news is still fresh. Its time-based events follow as usual.
- Every event carries the time of the fact behind it (scan time, threshold crossing),
  never `now`, so the same fact gives the same event on every cycle.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

from aftersale.carriers_meta import Carriers
from aftersale.models import (
    TERMINAL_STATUSES,
    DelayReason,
    DomainEvent,
    EventKind,
    Order,
    ShipmentState,
    Status,
    Tracking,
    TrackingEvent,
)
from aftersale.store.records import DelayWatch
from aftersale.tracking.together import delivered_on
from aftersale.tracking.warranty import add_months, warranty_ends, warranty_from

#: The forward journey; statuses not listed (exception, unknown, returned...) have no rank.
JOURNEY_RANK: Mapping[Status, int] = MappingProxyType(
    {
        Status.PENDING: 0,
        Status.LABEL_CREATED: 1,
        Status.IN_TRANSIT: 2,
        Status.OUT_FOR_DELIVERY: 3,
        Status.DELIVERY_ATTEMPTED: 3,
        Status.AVAILABLE_FOR_PICKUP: 4,
        Status.DELIVERED: 5,
    }
)
_NOT_SHIPPED = frozenset({Status.PENDING, Status.LABEL_CREATED})
_SHIPPED = frozenset(s for s, rank in JOURNEY_RANK.items() if rank >= 2)
_STALE_WATCH = frozenset(
    {Status.IN_TRANSIT, Status.OUT_FOR_DELIVERY, Status.DELIVERY_ATTEMPTED, Status.EXCEPTION}
)
_ETA_WATCH = frozenset(
    {
        Status.PENDING,
        Status.LABEL_CREATED,
        Status.IN_TRANSIT,
        Status.OUT_FOR_DELIVERY,
        Status.DELIVERY_ATTEMPTED,
        Status.EXCEPTION,
    }
)
_ARRIVING_WATCH = frozenset({Status.LABEL_CREATED, Status.IN_TRANSIT})
_ONE_DAY = timedelta(days=1)
_TWO_DAYS = timedelta(days=2)


@dataclass(frozen=True, slots=True)
class DelayThresholds:
    """When a parcel counts as late, and which time-based events are due. Per-carrier overrides."""

    no_first_scan_hours: float = 48.0
    stale_business_hours: float = 48.0
    eta_slip_days: int = 1  # an estimate this many days later than the baseline is a slip
    pickup_wait_hours: float = 72.0
    business_days: frozenset[int] = frozenset({0, 1, 2, 3, 4})  # Monday = 0
    business_tz: str = "Europe/Warsaw"  # whose weekdays count for `stale`
    delay_codes: frozenset[str] = frozenset()  # raw codes that mean "delayed" on a moving parcel
    #: raw exception codes that mean the parcel cannot reach the customer as things stand
    undeliverable_codes: frozenset[str] = frozenset()
    delivered_ago_days: tuple[int, ...] = (3, 7)  # DELIVERED_AGO events after delivery
    warranty_ending_days: tuple[int, ...] = (30,)  # WARRANTY_ENDING events before the end
    #: RETURN_WINDOW_ENDING events this many days before the shop's return period ends
    return_window_days: tuple[int, ...] = ()
    carriers: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # derived once from the fields above: `detect_due` runs for every shipment every cycle
    stale_after: timedelta = field(init=False, repr=False, compare=False, default=timedelta())
    no_first_scan_after: timedelta = field(
        init=False, repr=False, compare=False, default=timedelta()
    )
    pickup_wait_after: timedelta = field(init=False, repr=False, compare=False, default=timedelta())
    delivered_ago_after: tuple[tuple[int, timedelta], ...] = field(
        init=False, repr=False, compare=False, default=()
    )
    warranty_lead_days: int = field(init=False, repr=False, compare=False, default=0)
    _resolved: Mapping[str, DelayThresholds] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "stale_after", timedelta(hours=self.stale_business_hours))
        set_(self, "no_first_scan_after", timedelta(hours=self.no_first_scan_hours))
        set_(self, "pickup_wait_after", timedelta(hours=self.pickup_wait_hours))
        set_(
            self,
            "delivered_ago_after",
            tuple((days, timedelta(days=days)) for days in self.delivered_ago_days),
        )
        set_(self, "warranty_lead_days", max(self.warranty_ending_days, default=0))
        # resolved once: `for_carrier` is on the hot path of every poll
        resolved = {
            slug: replace(self, carriers={}, **dict(o)) for slug, o in self.carriers.items()
        }
        object.__setattr__(self, "_resolved", resolved)

    def for_carrier(self, slug: str | None) -> DelayThresholds:
        """These thresholds with the carrier's overrides applied (unknown carrier: as is)."""
        if slug is None:
            return self
        return self._resolved.get(slug, self)

    def delivered_ago_by_carrier(self) -> dict[str | None, tuple[int, ...]]:
        """DELIVERED_AGO days per carrier slug (None: every carrier without an override),
        as the store's `orders_due_for_time_events` takes them."""
        days: dict[str | None, tuple[int, ...]] = {None: self.delivered_ago_days}
        days.update({slug: t.delivered_ago_days for slug, t in self._resolved.items()})
        return days


def default_thresholds(carriers: Carriers) -> DelayThresholds:
    """The shipped defaults, with each carrier's own overrides from its META (an unknown
    field name there fails here, at startup)."""
    return DelayThresholds(
        carriers=MappingProxyType(
            {
                m.slug: MappingProxyType(dict(m.delay_thresholds))
                for m in carriers
                if m.delay_thresholds
            }
        )
    )


# --- business time ----------------------------------------------------------------


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def add_business_hours(
    start: datetime, hours: float, tz: str, business_days: frozenset[int]
) -> datetime:
    """`start` plus `hours` counted only on business days (local wall clock), in UTC."""
    local = start.astimezone(zone(tz)).replace(tzinfo=None)
    remaining = timedelta(hours=hours)
    cursor = local
    while True:
        day_end = datetime.combine(cursor.date() + timedelta(days=1), time())
        if cursor.weekday() in business_days:
            available = day_end - cursor
            if remaining <= available:
                return local_to_utc(cursor + remaining, tz)
            remaining -= available
        cursor = day_end
        if not business_days:
            raise ValueError("business_days is empty: business time never passes")


def add_business_days(start: datetime, days: int, tz: str) -> datetime:
    """`start` plus `days` weekdays (Monday-Friday) on the local calendar, in UTC."""
    local = start.astimezone(zone(tz)).replace(tzinfo=None)
    while days > 0:
        local += timedelta(days=1)
        if local.weekday() < 5:
            days -= 1
    return local_to_utc(local, tz)


def local_to_utc(naive_local: datetime, tz: str) -> datetime:
    """A wall-clock time in `tz` as UTC; a time skipped by DST resolves to after the jump."""
    return naive_local.replace(tzinfo=zone(tz)).astimezone(UTC)


@lru_cache(maxsize=4096)
def local_midnight(day: date, tz: str) -> datetime:
    return local_to_utc(datetime.combine(day, time()), tz)


# --- status changes ---------------------------------------------------------------


def _status_scan_time(tracking: Tracking) -> datetime | None:
    """When the carrier's current status was set: its newest scan with that status."""
    for event in reversed(tracking.events):
        if event.status is tracking.status or event.status == tracking.status:
            return event.occurred_at
    return None


def accepted_status(previous: ShipmentState, tracking: Tracking) -> tuple[Status, datetime | None]:
    """The status to keep after this poll, and the scan time behind it (None: unchanged)."""
    old, new = previous.status, tracking.status
    if not tracking.found or new == old or old in TERMINAL_STATUSES or new is Status.UNKNOWN:
        return old, None
    scan_at = _status_scan_time(tracking)
    old_rank, new_rank = JOURNEY_RANK.get(old), JOURNEY_RANK.get(new)
    if old_rank is not None and new_rank is not None and new_rank >= old_rank:
        return new, scan_at
    # a step back, or into/out of a side status: only when newer than what we have
    since = previous.status_since
    if scan_at is not None and since is not None and scan_at <= since:
        return old, None
    if scan_at is None and old_rank is not None and new_rank is not None:
        return old, None  # a step back with no scan to prove it is news
    return new, scan_at


def detect_changes(
    previous: ShipmentState,
    tracking: Tracking,
    order: Order,
    now: datetime,
    thresholds: DelayThresholds,
) -> list[DomainEvent]:
    """Events from one poll: shipped, status_changed, and delays a new scan reveals."""
    if not tracking.found:
        return []
    limits = thresholds.for_carrier(tracking.carrier or previous.carrier)
    events: list[DomainEvent] = []
    status, scan_at = accepted_status(previous, tracking)
    first_seen = previous.last_event_at is None and previous.status in _NOT_SHIPPED
    oid, sid = order.order_id, previous.shipment_id
    if status != previous.status:
        at = scan_at or now
        facts: dict[str, Any] = {
            "previous_status": str(previous.status),
            "code": tracking.code,
            "description": tracking.description,
            "age_hours": round((now - at).total_seconds() / 3600, 1),
        }
        if first_seen:
            facts["first_seen"] = True
        if (
            previous.status in _NOT_SHIPPED
            and status in _SHIPPED
            and not (first_seen and status is Status.DELIVERED)
        ):
            shipped_at = _first_shipped_scan(tracking, at)
            events.append(DomainEvent(EventKind.SHIPPED, oid, shipped_at, sid))
        # positional, as in `_due_for_shipment`: (kind, order, at, shipment, sku, status, ...)
        events.append(
            DomainEvent(EventKind.STATUS_CHANGED, oid, at, sid, None, status, None, facts)
        )
        if status is Status.EXCEPTION:
            reason = (
                DelayReason.UNDELIVERABLE
                if tracking.code in limits.undeliverable_codes
                else DelayReason.EXCEPTION
            )
            facts = {"code": tracking.code, "description": tracking.description}
            facts["incident"] = incident_of(reason, facts, status, at)
            events.append(
                DomainEvent(
                    EventKind.DELAYED,
                    occurred_at=at,
                    reason=reason,
                    facts=facts,
                    order_id=oid,
                    shipment_id=sid,
                )
            )
    coded = _delay_code_event(previous, tracking, limits) if limits.delay_codes else None
    if coded is not None and status not in TERMINAL_STATUSES and status is not Status.EXCEPTION:
        since = (scan_at or now) if status != previous.status else previous.status_since
        coded_facts: dict[str, Any] = {"code": coded.code, "description": coded.description}
        coded_facts["incident"] = incident_of(DelayReason.EXCEPTION, coded_facts, status, since)
        events.append(
            DomainEvent(
                EventKind.DELAYED,
                occurred_at=coded.occurred_at,
                reason=DelayReason.EXCEPTION,
                facts=coded_facts,
                order_id=oid,
                shipment_id=sid,
            )
        )
    slipped = (
        _eta_slip(previous, tracking, order, limits, now)
        if tracking.estimated_delivery is not None
        else None
    )
    if slipped is not None and status not in TERMINAL_STATUSES:
        events.append(slipped)
    return events


def _first_shipped_scan(tracking: Tracking, fallback: datetime) -> datetime:
    for event in tracking.events:
        if event.status in _SHIPPED:
            return event.occurred_at
    return fallback


def _delay_code_event(
    previous: ShipmentState, tracking: Tracking, limits: DelayThresholds
) -> TrackingEvent | None:
    if not limits.delay_codes:
        return None
    for event in reversed(tracking.events):
        if previous.last_event_at is not None and event.occurred_at <= previous.last_event_at:
            return None
        if event.code in limits.delay_codes:
            return event
    return None


def _eta_slip(
    previous: ShipmentState,
    tracking: Tracking,
    order: Order,
    limits: DelayThresholds,
    now: datetime,
) -> DomainEvent | None:
    new = tracking.estimated_delivery
    old = previous.estimated_delivery
    if new is None or (old is not None and new <= old):
        return None  # no estimate, or not worse than before
    first = previous.first_estimate or old
    baseline, against = (
        (order.promised_delivery, "promised")
        if order.promised_delivery is not None
        else (first, "first_estimate")
    )
    if baseline is None or (new - baseline).days < limits.eta_slip_days:
        return None
    at = tracking.events[-1].occurred_at if tracking.events else now
    facts: dict[str, Any] = {
        "estimated_delivery": new.isoformat(),
        "previous_estimate": old.isoformat() if old else None,
        "baseline": baseline.isoformat(),
        "baseline_kind": against,
        "days_late": (new - baseline).days,
    }
    facts["incident"] = incident_of(DelayReason.ETA_SLIPPED, facts, previous.status, None)
    return DomainEvent(
        EventKind.DELAYED,
        order_id=order.order_id,
        shipment_id=previous.shipment_id,
        occurred_at=at,
        reason=DelayReason.ETA_SLIPPED,
        facts=facts,
    )


def advance_state(previous: ShipmentState, tracking: Tracking, now: datetime) -> ShipmentState:
    """The stored state after a poll; detection relies on exactly these field meanings."""
    if not tracking.found:
        problem = "; ".join(tracking.problems) or "not found"
        return replace(previous, last_polled_at=now, problem=problem)
    status, scan_at = accepted_status(previous, tracking)
    newest = tracking.events[-1].occurred_at if tracking.events else None
    last_event_at = previous.last_event_at
    if newest is not None and (last_event_at is None or newest > last_event_at):
        last_event_at = newest
    changed = status != previous.status
    # built field by field, in field order: `dataclasses.replace` (and even keyword
    # arguments) cost a good part of a poll
    return ShipmentState(
        previous.shipment_id,
        previous.order_id,
        previous.carrier or tracking.carrier,
        previous.tracking_number,
        status,
        tracking.code if changed or status == tracking.status else previous.code,  # code
        tracking.description if changed else previous.description,  # description
        tracking.estimated_delivery or previous.estimated_delivery,  # estimated_delivery
        previous.first_estimate or tracking.estimated_delivery,  # first_estimate
        tracking.estimated_window or previous.estimated_window,  # estimated_window
        tracking.delivered_at or previous.delivered_at,  # delivered_at
        tracking.pickup_point or previous.pickup_point,  # pickup_point
        last_event_at,
        (scan_at or now) if changed else previous.status_since,  # status_since
        now,  # last_polled_at
        previous.next_check_at,
        previous.created_at,
        "; ".join(tracking.problems) or None,  # problem
        # a parcel bound for a locker stays one once the carrier said so
        tracking.delivery_type or previous.delivery_type,  # delivery_type
        tracking.pickup_deadline or previous.pickup_deadline,  # pickup_deadline
        tracking.pickup_hours or previous.pickup_hours,  # pickup_hours
        previous.return_id,  # a parcel sent back stays one
    )


# --- time-based events ------------------------------------------------------------


def detect_order_placed(order: Order) -> DomainEvent:
    return DomainEvent(EventKind.ORDER_PLACED, order_id=order.order_id, occurred_at=order.placed_at)


def detect_due(
    order: Order,
    shipments: Sequence[ShipmentState],
    now: datetime,
    thresholds: DelayThresholds,
) -> list[DomainEvent]:
    """Events due from stored facts at `now`; the same fact gives the same event each cycle."""
    tz = order.customer.time_zone
    events: list[DomainEvent] = []
    today = now.date()
    for shipment in shipments:
        limits = thresholds.for_carrier(shipment.carrier)
        _due_for_shipment(order, shipment, shipments, now, today, limits, tz, events)
    if thresholds.warranty_ending_days:
        events.extend(_warranty_events(order, shipments, now, thresholds))
    return events


def delay_watch(thresholds: DelayThresholds, now: datetime) -> DelayWatch:
    """The parcels still moving that `detect_due` may find an event for at `now`, as bounds
    the store selects in SQL (`orders_due_for_time_events`): each bound is the loosest of
    the thresholds and every carrier's overrides, so the selection holds every such parcel
    (a few more is harmless: `detect_due` decides). Kept beside `_due_for_shipment`: a
    check added there needs its bound here."""
    every = [thresholds, *(thresholds.for_carrier(slug) for slug in thresholds.carriers)]
    today = now.date()  # as `detect_due` counts days
    return DelayWatch(
        not_shipped=_values(_NOT_SHIPPED),
        first_scan_by=now - min(t.no_first_scan_after for t in every),
        stale=_values(_STALE_WATCH),
        stale_by=now - min(t.stale_after for t in every),
        pickup=_values({Status.AVAILABLE_FOR_PICKUP}),
        pickup_by=now - min(t.pickup_wait_after for t in every),
        eta=_values(_ETA_WATCH),
        eta_by=today,
        arriving=_values(_ARRIVING_WATCH),
        arriving_by=today + _TWO_DAYS,
    )


def _values(statuses: Iterable[Status]) -> tuple[str, ...]:
    return tuple(sorted(s.value for s in statuses))


def incident_of(
    reason: DelayReason, facts: dict[str, Any], status: Status, since: datetime | None
) -> str:
    """Which incident a delay belongs to, named when it is detected (`once: incident` keys
    on it, so a replay names it the same): a new date the carrier gave (`eta:2026-11-27`),
    a date missed while the parcel moves (`missed:…`), or else the parcel's status and
    since when (`label_created@…`). A label never scanned is one incident, whether it is
    found by the missing first scan or by the missed promise two days later."""
    if reason is DelayReason.ETA_SLIPPED and facts.get("estimated_delivery"):
        return f"eta:{facts['estimated_delivery']}"
    if reason is DelayReason.ETA_MISSED and status not in _NOT_SHIPPED and facts.get("deadline"):
        return f"missed:{facts['deadline']}"
    return f"{status}@{since.isoformat() if since else 'start'}"


def _delayed(
    oid: str, s: ShipmentState, reason: DelayReason, at: datetime, facts: dict[str, Any]
) -> DomainEvent:
    facts["incident"] = incident_of(reason, facts, s.status, s.status_since)
    return DomainEvent(
        EventKind.DELAYED, oid, at, shipment_id=s.shipment_id, reason=reason, facts=facts
    )


def _due_for_shipment(
    order: Order,
    s: ShipmentState,
    parcels: Sequence[ShipmentState],
    now: datetime,
    today: date,
    limits: DelayThresholds,
    tz: str,
    out: list[DomainEvent],
) -> None:
    # DomainEvent positionally (kind, order_id, occurred_at, shipment_id, item_sku, status,
    # reason, facts) and no closures: this runs for every shipment every cycle
    status = s.status
    oid, sid = order.order_id, s.shipment_id
    estimate = s.estimated_delivery
    if estimate is not None and status in _ARRIVING_WATCH and today >= estimate - _TWO_DAYS:
        day_before = local_midnight(estimate - _ONE_DAY, tz)
        if day_before <= now < local_midnight(estimate, tz):
            window = s.estimated_window
            facts: dict[str, Any] = {
                "estimated_delivery": estimate.isoformat(),
                "window_start": window[0].isoformat() if window else None,
                "window_end": window[1].isoformat() if window else None,
            }
            out.append(
                DomainEvent(
                    EventKind.ARRIVING_TOMORROW, oid, day_before, sid, None, None, None, facts
                )
            )
    if status is Status.DELIVERED and s.delivered_at is not None:
        delivered_at = s.delivered_at
        for days, delta in limits.delivered_ago_after:
            at = delivered_at + delta
            if at <= now:
                # parcels delivered together are followed up together (tracking/together.py)
                day = delivered_on(s, parcels, tz)
                facts = {
                    "days": days,
                    "delivered_at": delivered_at.isoformat(),
                    "delivered_on": day.isoformat() if day else None,
                }
                out.append(
                    DomainEvent(EventKind.DELIVERED_AGO, oid, at, sid, None, None, None, facts)
                )
        return
    if status in TERMINAL_STATUSES:
        return
    if status in _NOT_SHIPPED:
        since = s.status_since if status is Status.LABEL_CREATED else None
        since = since or s.created_at
        if since is not None:
            at = since + limits.no_first_scan_after
            if at <= now:
                facts = {"since": since.isoformat(), "hours": limits.no_first_scan_hours}
                out.append(_delayed(oid, s, DelayReason.NO_FIRST_SCAN, at, facts))
    stale_from = s.last_event_at
    # business hours never pass faster than wall-clock hours: most parcels skip the count
    if status in _STALE_WATCH and stale_from is not None and now - stale_from >= limits.stale_after:
        at = add_business_hours(
            stale_from, limits.stale_business_hours, limits.business_tz, limits.business_days
        )
        if at <= now:
            facts = {
                "last_event_at": stale_from.isoformat(),
                "business_hours": limits.stale_business_hours,
            }
            out.append(_delayed(oid, s, DelayReason.STALE, at, facts))
    if status in _ETA_WATCH:
        # the date the customer was last given: the promise, or the carrier's later
        # estimate (a slip is news of its own; missing the old promise again is not)
        deadline, kind = (
            (order.promised_delivery, "promised")
            if order.promised_delivery is not None
            and (estimate is None or estimate <= order.promised_delivery)
            else (estimate, "estimated")
        )
        if deadline is not None and today >= deadline:
            at = local_midnight(deadline + _ONE_DAY, tz)
            if at <= now:
                facts = {
                    "deadline": deadline.isoformat(),
                    "deadline_kind": kind,
                    "days_late": (now - at).days + 1,
                }
                out.append(_delayed(oid, s, DelayReason.ETA_MISSED, at, facts))
    if status is Status.AVAILABLE_FOR_PICKUP and s.status_since is not None:
        at = s.status_since + limits.pickup_wait_after
        if at <= now:
            facts = {
                "since": s.status_since.isoformat(),
                "hours": limits.pickup_wait_hours,
                "pickup_point": s.pickup_point,
            }
            out.append(_delayed(oid, s, DelayReason.PICKUP_WAITING, at, facts))


def _warranty_events(
    order: Order,
    shipments: Sequence[ShipmentState],
    now: datetime,
    thresholds: DelayThresholds,
) -> list[DomainEvent]:
    shortest = 0
    for item in order.items:
        months = item.warranty_months
        if months and (not shortest or months < shortest):
            shortest = months
    if not shortest or not thresholds.warranty_ending_days:
        return []
    # a month is at least 28 days: skip the calendar arithmetic while every end is far off
    first_start = order.placed_at
    if now < first_start + timedelta(days=28 * shortest - thresholds.warranty_lead_days):
        return []
    out: list[DomainEvent] = []
    seen: set[str] = set()
    tz = order.customer.time_zone
    for item in order.items:
        if not item.warranty_months or item.sku in seen:
            continue
        seen.add(item.sku)
        start = warranty_from(order, item.sku, shipments)
        if start is None:
            continue  # its parcel is on the way, or went back: no cover to remind of
        # the reminder's time is the start plus whole months (an instant, the same every
        # cycle); the end date the customer reads is on their own calendar
        ends = datetime.combine(add_months(start.date(), item.warranty_months), start.timetz())
        if now >= ends:
            continue
        for days in thresholds.warranty_ending_days:
            at = ends - timedelta(days=days)
            if at <= now:
                facts = {
                    "days": days,
                    "warranty_ends": warranty_ends(start, item.warranty_months, tz).isoformat(),
                    "warranty_months": item.warranty_months,
                    "warranty_from": start.date().isoformat(),
                }
                out.append(
                    DomainEvent(
                        EventKind.WARRANTY_ENDING,
                        order.order_id,
                        at,
                        item_sku=item.sku,
                        facts=facts,
                    )
                )
    return out
