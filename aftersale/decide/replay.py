"""Replay timed carrier scans through detection and decisions, as the scheduled cycle would.

The engine behind `aftersale simulate` and the rules files' example cases. It keeps its
own in-memory store (shipment states, used keys, pending messages): nothing is sent.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from aftersale.decide.engine import (
    SendHistory,
    decide,
    describe,
    history_after,
)
from aftersale.decide.ruleset import RuleSet
from aftersale.decide.schema import Case, ScanModel
from aftersale.models import (
    ChannelKind,
    Customer,
    DeliveryType,
    DomainEvent,
    Item,
    Order,
    ShipmentRef,
    ShipmentState,
    Status,
    Tracking,
    TrackingEvent,
)
from aftersale.store.records import RefundRecord, ReturnRecord
from aftersale.tracking.detect import (
    DelayThresholds,
    advance_state,
    detect_changes,
    detect_due,
    detect_order_placed,
    zone,
)
from aftersale.tracking.shop_events import (
    ShopPromises,
    as_return_events,
    detect_promises,
    detect_refund,
    detect_return_declined,
    detect_return_requested,
    without_aftercare,
)


@dataclass(frozen=True, slots=True)
class Parcel:
    shipment_id: str
    carrier: str | None
    tracking_number: str
    scans: tuple[ScanModel, ...]
    delivery: DeliveryType | None = None  # where the carrier hands it over (None: not said)
    items: tuple[str, ...] = ()  # the SKUs it carries, when the order ships in several


@dataclass(frozen=True, slots=True)
class SimReturn:
    """A return asked for at `requested_at`, and the parcel sent back (None: not yet), or
    declined by the shop at `declined_at`."""

    return_id: str
    requested_at: datetime
    parcel: Parcel | None = None
    declined_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class SimOrder:
    order: Order
    parcels: tuple[Parcel, ...]
    refunds: tuple[RefundRecord, ...] = ()
    returns: tuple[SimReturn, ...] = ()


@dataclass(frozen=True, slots=True)
class SimLine:
    """One line of a simulation: a message sent, cancelled, or an event that sends nothing."""

    at: datetime  # UTC: when it goes out (send), is cancelled, or was decided (skip)
    kind: str  # "send", "cancel", "skip"
    order_id: str
    event: str  # e.g. "status_changed(out_for_delivery)"
    rule_id: str | None = None
    channel: ChannelKind | None = None
    template: str | None = None
    reason: str | None = None
    shipment_id: str | None = None
    item_sku: str | None = None
    time_zone: str = "UTC"

    @property
    def local(self) -> str:
        return self.at.astimezone(zone(self.time_zone)).strftime("%a %H:%M")


def _utc(value: datetime) -> datetime:
    return datetime(*value.timetuple()[:6], value.microsecond, tzinfo=value.tzinfo).astimezone(UTC)


def tracking_at(parcel: Parcel, t: datetime) -> Tracking | None:
    """What the carrier shows at `t`: the scans reported by then (None: not known yet)."""
    visible = [s for s in parcel.scans if _utc(s.reported_at or s.at) <= t]
    if not visible:
        return None
    ordered = sorted(visible, key=lambda s: _utc(s.at))
    events = tuple(
        TrackingEvent(
            _utc(s.at), s.status, s.code or str(s.status or "info"), s.description or "", s.location
        )  # fmt: skip
        for s in ordered
    )
    status_scans = [s for s in ordered if s.status is not None]
    current = status_scans[-1] if status_scans else None
    latest_report = sorted(visible, key=lambda s: _utc(s.reported_at or s.at))
    estimate = next((s for s in reversed(latest_report) if s.estimated_delivery), None)
    window = next((s.window for s in reversed(latest_report) if s.window), None)
    delivered = next((s for s in reversed(ordered) if s.status is Status.DELIVERED), None)
    return Tracking(
        carrier=parcel.carrier or "",  # a case may name no carrier
        tracking_number=parcel.tracking_number,
        status=current.status if current and current.status else Status.UNKNOWN,
        code=current.code if current else None,
        description=current.description if current else None,
        events=events,
        estimated_delivery=estimate.estimated_delivery if estimate else None,
        estimated_window=(_utc(window[0]), _utc(window[1]))
        if window and len(window) == 2
        else None,
        delivered_at=_utc(delivered.at) if delivered else None,
        pickup_point=next(
            (s.location for s in reversed(ordered) if s.status is Status.AVAILABLE_FOR_PICKUP), None
        ),  # fmt: skip
        delivery_type=parcel.delivery,
    )


@dataclass
class ReplayResult:
    lines: list[SimLine] = field(default_factory=list)
    pending: dict[str, SimLine] = field(default_factory=dict)  # key -> not yet due at the end


def replay(
    orders: Sequence[SimOrder],
    ruleset: RuleSet,
    start: datetime,
    end: datetime,
    step: timedelta,
    thresholds: DelayThresholds,
    promises: ShopPromises | None = None,
) -> ReplayResult:
    """Run cycles from `start` to `end` every `step`, plus at every scan and due message.
    `thresholds` are the cycle's (the carriers' own, asked for the rules' day counts);
    `promises` the shop's (dispatch, return period), if it makes any."""
    orders_by_id = {o.order.order_id: o.order for o in orders}
    tz_of = {o.order.order_id: o.order.customer.time_zone for o in orders}
    states = {
        p.shipment_id: ShipmentState(
            p.shipment_id,
            o.order.order_id,
            p.carrier,
            p.tracking_number,
            Status.PENDING,
            created_at=o.order.placed_at,
        )  # fmt: skip
        for o in orders
        for p in o.parcels
    }
    told: set[str] = set()  # refunds and returns already turned into events
    ticks: list[datetime] = []
    t = start
    while t <= end:
        ticks.append(t)
        t += step
    for o in orders:
        ticks.append(o.order.placed_at)
        ticks.extend(_utc(s.reported_at or s.at) for p in o.parcels for s in p.scans)
        ticks.extend(r.created_at for r in o.refunds)
        for ret in o.returns:
            ticks.append(ret.requested_at)
            if ret.declined_at is not None:
                ticks.append(ret.declined_at)
            if ret.parcel is not None:
                ticks.extend(_utc(s.reported_at or s.at) for s in ret.parcel.scans)
    ticks = [x for x in ticks if start <= x <= end] + [end]
    heapq.heapify(ticks)
    history = SendHistory()
    result = ReplayResult()
    placed: set[str] = set()
    seen_scans: dict[str, int] = {}
    explained: set[tuple[str, str | None, str]] = set()
    done: datetime | None = None
    while ticks:
        now = heapq.heappop(ticks)
        if now == done:
            continue
        done = now
        history = _send_due(history, result, now)
        events: list[DomainEvent] = []
        for sim in orders:
            order = sim.order
            if order.placed_at > now:
                continue
            if order.order_id not in placed:
                placed.add(order.order_id)
                events.append(detect_order_placed(order))
            for parcel in sim.parcels:
                tracking = tracking_at(parcel, now)
                if tracking is None or seen_scans.get(parcel.shipment_id) == len(tracking.events):
                    continue
                seen_scans[parcel.shipment_id] = len(tracking.events)
                prev = states[parcel.shipment_id]
                events.extend(detect_changes(prev, tracking, order, now, thresholds))
                states[parcel.shipment_id] = advance_state(prev, tracking, now)
            due = detect_due(order, [states[p.shipment_id] for p in sim.parcels], now, thresholds)
            asked = any(
                r.requested_at <= now and (r.declined_at is None or r.declined_at > now)
                for r in sim.returns
            )
            events.extend(without_aftercare(due, {order.order_id} if asked else set()))
            events.extend(_shop_side(sim, now, states, seen_scans, told, thresholds))
            if promises is not None:
                parcels = [s for s in states.values() if s.order_id == order.order_id]
                events.extend(detect_promises(order, parcels, now, promises))
        if not events:
            continue
        outcome = decide(events, orders_by_id, states, ruleset, now, history)
        history = history_after(history, outcome, orders_by_id)
        for key in outcome.cancel_keys:
            line = result.pending.pop(key, None)
            if line is not None:
                result.lines.append(
                    SimLine(
                        now,
                        "cancel",
                        line.order_id,
                        line.event,
                        line.rule_id,
                        line.channel,
                        line.template,
                        "superseded by a newer event",
                        line.shipment_id,
                        line.item_sku,
                        line.time_zone,
                    )  # fmt: skip
                )
        for d in outcome.decisions:
            result.pending[d.idempotency_key] = SimLine(
                d.due_at, "send", d.order_id, describe(d.event), d.rule_id, d.channel,
                d.template, _why_sent(d.event), d.shipment_id, d.item_sku, tz_of[d.order_id],
            )  # fmt: skip
            if d.due_at <= end:
                heapq.heappush(ticks, d.due_at)
        for skip in outcome.skipped:
            if skip.reason.startswith("already sent"):
                continue  # the once-only key at work on a recurring event
            mark = (skip.event.event_id, skip.rule_id, skip.reason)
            if mark in explained:
                continue
            explained.add(mark)
            result.lines.append(
                SimLine(
                    now,
                    "skip",
                    skip.event.order_id,
                    describe(skip.event),
                    skip.rule_id,
                    skip.channel,
                    None,
                    skip.reason,
                    skip.event.shipment_id,
                    skip.event.item_sku,
                    tz_of.get(skip.event.order_id, "UTC"),
                )  # fmt: skip
            )
        history = _send_due(history, result, now)
    result.lines.sort(key=lambda x: (x.at, x.order_id, x.kind != "send"))
    return result


def _shop_side(
    sim: SimOrder,
    now: datetime,
    states: dict[str, ShipmentState],
    seen_scans: dict[str, int],
    told: set[str],
    thresholds: DelayThresholds,
) -> list[DomainEvent]:
    """Refunds and returns reported by `now`, and the return parcels' news."""
    order, events = sim.order, []
    for refund in sim.refunds:
        if refund.created_at <= now and refund.refund_id not in told:
            told.add(refund.refund_id)
            events.append(detect_refund(refund))
    for ret in sim.returns:
        if ret.requested_at > now:
            continue
        if ret.return_id not in told:
            told.add(ret.return_id)
            record = ReturnRecord(
                order.order_id, ret.return_id, "requested", ret.requested_at, ret.requested_at
            )
            events.append(detect_return_requested(record))
        declined = f"{ret.return_id}/declined"
        if ret.declined_at is not None and ret.declined_at <= now and declined not in told:
            told.add(declined)
            record = ReturnRecord(
                order.order_id, ret.return_id, "declined", ret.requested_at, ret.declined_at
            )
            events.append(detect_return_declined(record))
        parcel = ret.parcel
        if parcel is None:
            continue
        if parcel.shipment_id not in states:
            states[parcel.shipment_id] = ShipmentState(
                parcel.shipment_id, order.order_id, parcel.carrier, parcel.tracking_number,
                Status.PENDING, created_at=ret.requested_at, return_id=ret.return_id,
            )  # fmt: skip
        tracking = tracking_at(parcel, now)
        if tracking is None or seen_scans.get(parcel.shipment_id) == len(tracking.events):
            continue
        seen_scans[parcel.shipment_id] = len(tracking.events)
        prev = states[parcel.shipment_id]
        changes = detect_changes(prev, tracking, order, now, thresholds)
        events.extend(as_return_events(changes, prev))
        states[parcel.shipment_id] = advance_state(prev, tracking, now)
    return events


def _why_sent(event: DomainEvent) -> str:
    return f"event at {event.occurred_at:%Y-%m-%d %H:%M} UTC"


def _send_due(history: SendHistory, result: ReplayResult, now: datetime) -> SendHistory:
    due = [k for k, line in result.pending.items() if line.at <= now]
    if not due:
        return history
    for key in due:
        result.lines.append(result.pending.pop(key))
    gone = set(due)
    pending = tuple(p for p in history.pending if p.idempotency_key not in gone)
    return SendHistory(history.used_keys, history.recent, pending)


# --- example cases in rules files -------------------------------------------------------


def case_order(case: Case) -> SimOrder:
    m = case.model
    first_scan = min((_utc(s.at) for s in m.scans), default=None)
    now = _utc(m.now)
    placed = m.order.placed_at
    placed_at = _utc(placed) if placed else (first_scan or now) - timedelta(hours=2)
    customer = customer_from(m.customer, "C-1")
    items = items_from(m.order.items)
    parcels = (
        (Parcel("CASE-1/1", m.carrier, "CASE0000001", tuple(m.scans), m.delivery),)
        if m.scans
        else ()
    )
    order = Order(
        "CASE-1",
        placed_at,
        customer,
        items,
        tuple(ShipmentRef(p.tracking_number, p.carrier, p.items) for p in parcels),
        promised_delivery=m.order.promised_delivery,
    )
    refunds = tuple(
        RefundRecord(
            "CASE-1",
            f"R{n}",
            Decimal(str(r.amount)),
            r.currency or items[0].currency,
            _utc(r.at),
        )
        for n, r in enumerate(m.refunds, start=1)
    )
    returns = tuple(
        SimReturn(
            f"RET{n}",
            _utc(r.at),
            Parcel(f"CASE-1/R{n}", r.carrier, f"CASE000009{n}", tuple(r.scans))
            if r.scans
            else None,
            _utc(r.declined_at) if r.declined_at else None,
        )
        for n, r in enumerate(m.returns, start=1)
    )
    return SimOrder(order, parcels, refunds, returns)


def case_promises(case: Case, thresholds: DelayThresholds) -> ShopPromises:
    shop = case.model.shop
    return ShopPromises(
        shop.time_zone, shop.dispatch_days, shop.return_days, thresholds.return_window_days
    )


@dataclass(frozen=True, slots=True)
class CaseResult:
    name: str
    source: str
    sent: tuple[str, ...]  # rule:channel of every message the case would send
    failures: tuple[str, ...]  # empty when the case passed

    @property
    def ok(self) -> bool:
        return not self.failures


def run_cases(ruleset: RuleSet, thresholds: DelayThresholds) -> list[CaseResult]:
    """Replay every rules file's example cases; each result says what went wrong, if anything."""
    return [run_case(case, ruleset, thresholds) for case in ruleset.cases]


def run_case(case: Case, ruleset: RuleSet, thresholds: DelayThresholds) -> CaseResult:
    sim = case_order(case)
    now = _utc(case.model.now)
    start = sim.order.placed_at
    step = max(timedelta(hours=1), (now - start) / 2000)
    result = replay([sim], ruleset, start, now, step, thresholds, case_promises(case, thresholds))
    sent = [f"{x.rule_id}:{x.channel}" for x in result.lines if x.kind == "send"]
    waiting = [f"{x.rule_id}:{x.channel}" for x in result.pending.values()]
    failures = []
    for ref in case.model.should_send:
        if not any(_matches(ref, s) for s in sent):
            why = [f"{x.event}: {x.reason}" for x in result.lines
                   if x.kind == "skip" and x.rule_id == ref.split(":")[0]]  # fmt: skip
            if any(_matches(ref, s) for s in waiting):
                why.insert(0, "still waiting for its send time at the case's 'now'")
            failures.append(
                f"expected '{ref}' to be sent: " + ("; ".join(why) or "no event for it")
            )
    for ref in case.model.should_not_send:
        hits = [s for s in sent + waiting if _matches(ref, s)]
        if hits:
            failures.append(f"expected '{ref}' not to be sent, but {', '.join(hits)} was")
    return CaseResult(case.name, case.source, tuple(sent), tuple(failures))


def _matches(ref: str, sent: str) -> bool:
    return sent == ref or sent.split(":")[0] == ref


def customer_from(c: Any, customer_id: str) -> Customer:
    """A case's or scenario's customer fields as the core's `Customer`."""
    return Customer(customer_id, c.name, c.email, c.phone, c.locale, c.time_zone,
                    c.consent_email, c.consent_sms, c.country, tuple(c.tags))  # fmt: skip


def items_from(items: Iterable[Any]) -> tuple[Item, ...]:
    return tuple(
        Item(
            i.sku,
            i.name,
            i.category,
            i.quantity,
            Decimal(str(i.price)),
            i.currency,
            i.warranty_months,
        )  # fmt: skip
        for i in items
    )
