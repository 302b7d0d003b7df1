"""One cycle of the pipeline, as plain functions: intake -> poll -> detect -> decide -> dispatch.

Each stage is one call that works on a batch; the Prefect flow (flows/cycle.py) wraps
each in a task, and `run_cycle` chains them without Prefect. The parts (store,
poller, rules, templates, channels) are built once at the edge and passed in, so the
core never imports the carriers or Prefect.
"""

from __future__ import annotations

import gc
import logging
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from aftersale.decide.engine import DecideOutcome, decide
from aftersale.decide.history import load_send_history
from aftersale.decide.ruleset import RuleSet
from aftersale.dispatch import messages as msgs
from aftersale.dispatch.channels.base import Channel
from aftersale.dispatch.send import ContextBuilder, Renderer, dispatch_due
from aftersale.dispatch.spool import ingest_webhook_spool, webhook_spool_dir
from aftersale.intake.files import DetectCarriers, ImportReport, import_file
from aftersale.intake.shop_webhooks import ingest_shop_spool
from aftersale.intake.shops.base import ShopMapping
from aftersale.models import (
    TERMINAL_STATUSES,
    ChannelKind,
    DomainEvent,
    EventKind,
    Order,
    PollResult,
    ShipmentState,
    TrackingEvent,
)
from aftersale.ops.health import HealthUpdate, record_health
from aftersale.ops.tally import DecideTally, EventTally, MessageTally, PollTally
from aftersale.settings import Settings
from aftersale.store.protocols import Store
from aftersale.store.records import RefundRecord, ReturnRecord
from aftersale.tracking.answers import drop_future_scans
from aftersale.tracking.detect import (
    DelayThresholds,
    advance_state,
    delay_watch,
    detect_changes,
    detect_due,
    detect_order_placed,
)
from aftersale.tracking.schedule import PollSchedule, apply_failure, schedule_after_poll
from aftersale.tracking.shop_events import (
    ASKED_RETURN_STATUSES,
    ShopPromises,
    as_return_events,
    detect_promises,
    detect_refund,
    detect_return,
    without_aftercare,
)

log = logging.getLogger(__name__)


@dataclass
class PollBatch:
    """What a poller returns: one result per shipment, plus what its guards did."""

    results: list[PollResult]
    breakers_open: list[str] = field(default_factory=list)  # carriers not called any more
    corrections: dict[str, str] = field(default_factory=dict)  # shipment id -> carrier that knew it
    details: dict[str, Any] = field(default_factory=dict)  # retries, 429s, quotas: for the summary


#: (due shipments, their ranked carrier candidates where detection proposed several)
Poller = Callable[[Sequence[ShipmentState], Mapping[str, list[str]]], PollBatch]
ORDER_FILE_SUFFIXES = (".ndjson", ".jsonl", ".csv")


@dataclass
class CycleParts:
    """Everything a cycle needs, built once per process at the edge."""

    store: Store
    settings: Settings
    poll: Poller
    ruleset: RuleSet
    renderer: Renderer
    build_context: ContextBuilder
    channels: Mapping[ChannelKind, Channel]
    detect_carrier: DetectCarriers | None = None
    #: how shop platforms' products map to aftersale's (AFTERSALE_SHOP_MAPPING)
    shop_mapping: ShopMapping = field(default_factory=ShopMapping)
    thresholds: DelayThresholds = field(default_factory=DelayThresholds)
    schedule: PollSchedule = field(default_factory=PollSchedule)
    dry_run: bool = False
    #: orders whose due shipments are polled, detected and committed together
    page_size: int = 2_000


@dataclass
class PollStage:
    """One page's polls: its due shipments and the carriers' answers."""

    polled: list[ShipmentState]
    results: list[PollResult]
    breakers_open: list[str] = field(default_factory=list)
    corrections: dict[str, str] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    def by_carrier(self) -> dict[str, dict[str, int]]:
        tally = PollTally()
        tally.add(self.results)
        return tally.by_carrier()


@dataclass
class DetectStage:
    """What one page found. `events` are candidates until the commit: a replayed event
    (already stored) is dropped there; the cycle's summary counts only the new ones."""

    events: list[DomainEvent]
    changed_states: int
    errors: list[str]
    # the page's pending writes and working set, committed by decide_stage
    states: list[ShipmentState] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)
    scans: list[tuple[str, TrackingEvent]] = field(default_factory=list)
    orders: dict[str, Order] = field(default_factory=dict)
    shipments: dict[str, ShipmentState] = field(default_factory=dict)


@dataclass
class DecideStage:
    queued: int
    cancelled: int
    outcome: DecideOutcome
    events: list[DomainEvent] = field(default_factory=list)  # new this cycle, as committed


@dataclass
class CycleSummary:
    """What a run keeps of its work: counts, and what an operator reads by name, bounded
    (aftersale/ops/tally.py), filled in page by page; never the pages themselves."""

    now: datetime
    imports: list[ImportReport] = field(default_factory=list)
    poll: PollTally = field(default_factory=PollTally)
    detect: EventTally = field(default_factory=EventTally)
    decide: DecideTally = field(default_factory=DecideTally)
    dispatch: MessageTally = field(default_factory=MessageTally)
    #: carriers' and channels' health after this run (what is down, since when)
    health: HealthUpdate = field(default_factory=HealthUpdate)

    def add_page(self, poll: PollStage, detected: DetectStage, decided: DecideStage) -> None:
        """Count one committed page: its polls, its new events, its decisions."""
        self.poll.add(poll.results, poll.breakers_open, poll.corrections)
        self.detect.add(decided.events, detected.changed_states)
        self.decide.add(decided.queued, decided.cancelled, decided.outcome, self.now)

    def as_dict(self) -> dict[str, Any]:
        events = self.detect
        return {
            "now": self.now.isoformat(),
            "imported": sum(r.loaded for r in self.imports),
            "rejected_rows": sum(len(r.rejections) for r in self.imports),
            "polled": self.poll.polled,
            "poll_by_carrier": self.poll.by_carrier(),
            # the first MAX_LISTED; every one is counted in poll_by_carrier
            "poll_errors": list(self.poll.first_errors),
            "breakers_open": sorted(self.poll.breakers_open),
            "carrier_corrections": dict(self.poll.corrections),
            "events": events.count,
            "events_by_kind": dict(events.by_kind),
            "status_changes": dict(events.status_changes),
            "delays_by_reason": dict(events.delays),
            # for the operator: orders with no tracking number past the dispatch promise
            # (the first MAX_LISTED by id; events_by_kind counts them all)
            "not_shipped_past_promise": events.late_orders.items(),
            "queued": self.decide.queued,
            "cancelled": self.decide.cancelled,
            "skipped": self.decide.skipped,
            "skipped_by_reason": dict(self.decide.skipped_by_reason),
            "queued_for_later": self.decide.held.total,
            "outcomes": dict(self.dispatch.by_outcome()),
            "sent": self.dispatch.count("sent"),
            "failed": self.dispatch.count("failed"),
            "deferred": self.dispatch.count("deferred"),
            "suppressed": self.dispatch.count("suppressed"),
            "unknown": self.dispatch.count("unknown"),
            "degraded": self.health.degraded(self.now),
        }


# --- stages ------------------------------------------------------------------


def intake_pending(parts: CycleParts, now: datetime) -> list[ImportReport]:
    """Apply provider webhook facts (opt-outs, bounces, delivery states) spooled by the
    receiver (DuckDB; on PostgreSQL it writes them itself), then import order files
    dropped in the inbox (each moves to inbox/done/)."""
    spool = webhook_spool_dir(parts.settings)
    if spool is not None and (applied := ingest_webhook_spool(parts.store, spool, now)):
        log.info("applied %d webhook facts from the spool", applied)
    reports = []
    if spool is not None and parts.detect_carrier is not None:
        # shop platforms' orders delivered by webhook since the last cycle (DuckDB)
        reports += ingest_shop_spool(
            parts.store, spool, now=now, carriers=parts.detect_carrier, mapping=parts.shop_mapping
        )
    inbox = parts.settings.inbox_dir
    if not inbox.is_dir():
        return reports
    for path in order_files(inbox):
        report = import_file(parts.store, path, now=now, detect=parts.detect_carrier)
        for rejection in report.rejections:
            log.warning("%s:%d: %s", rejection.source, rejection.line, rejection.reason)
        done = inbox / "done"
        done.mkdir(exist_ok=True)
        shutil.move(str(path), done / f"{now:%Y%m%dT%H%M%S}-{path.name}")
        reports.append(report)
    return reports


def claim_pages(parts: CycleParts, now: datetime) -> Iterator[tuple[list[ShipmentState], bool]]:
    """The due shipments this worker takes, a page at a time (`parts.page_size` orders, so
    one order's parcels share a page), each with whether it is the cycle's last.

    Each page is claimed just before it is worked on: on PostgreSQL other workers take
    the pages this one has not claimed yet, and skip those it holds (see
    ShipmentStore.claim_shipments). At the end it goes back to the start once, for pages
    a worker that died meanwhile left behind (its leases are free once it is gone). The
    next page's orders are looked up first, to know whether this page is the last; no due
    shipments at all still yield one empty page."""
    store, size = parts.store, parts.page_size
    orders = store.due_order_ids(now, limit=size)
    swept = False
    while True:
        following = store.due_order_ids(now, limit=size, after=orders[-1]) if orders else []
        if not following and not swept:
            swept = True
            taken = set(orders)
            following = [o for o in store.due_order_ids(now, limit=size) if o not in taken]
        page = store.claim_shipments(orders, now)
        yield page, not following
        if not following:
            return
        orders = following


def poll_page(parts: CycleParts, page: Sequence[ShipmentState]) -> PollStage:
    """Ask the carriers about one page of due shipments. Reads only: safe to repeat."""
    if not page:
        return PollStage([], [])
    candidates = parts.store.carrier_candidates(s.shipment_id for s in page)
    batch = parts.poll(page, candidates)
    for slug in batch.breakers_open:
        log.warning("carrier %s: circuit open, its shipments wait for the next cycle", slug)
    return PollStage(
        list(page), batch.results, batch.breakers_open, batch.corrections, batch.details
    )


@dataclass(frozen=True)
class DueWork:
    """Orders with events due by date rather than by a poll, as chosen in SQL: time-based
    events (delivered + N days, warranty end, and the orders whose moving parcel may be
    late or arrive tomorrow: `delay_watch`, not every parcel on its way), shop promises,
    refunds and returns without their event, and orders without `order_placed` (none of
    their parcels due). Worked through a page of orders at a time (`pages`), so no page
    loads every order."""

    time_events: list[str] = field(default_factory=list)
    promises: list[str] = field(default_factory=list)
    placed: list[str] = field(default_factory=list)
    refunds: list[RefundRecord] = field(default_factory=list)
    returns: list[ReturnRecord] = field(default_factory=list)

    @classmethod
    def find(cls, parts: CycleParts, now: datetime) -> DueWork:
        store, promises = parts.store, shop_promises(parts)
        return cls(
            store.orders_due_for_time_events(
                now,
                delivered_ago_days=parts.thresholds.delivered_ago_by_carrier(),
                warranty_ending_days=parts.thresholds.warranty_ending_days,
                moving=delay_watch(parts.thresholds, now),
            ),
            store.orders_due_for_shop_promises(
                now,
                dispatch_days=promises.dispatch_days,
                return_days=promises.return_days,
                return_window_days=promises.return_window_days,
            ),
            store.orders_without_event(EventKind.ORDER_PLACED, among=None),
            store.refunds_without_event(),
            store.returns_without_event(),
        )

    def order_ids(self) -> set[str]:
        return (
            {*self.time_events, *self.promises, *self.placed}
            | {r.order_id for r in self.refunds}
            | {r.order_id for r in self.returns}
        )

    def pages(self, size: int, first: set[str]) -> list[DueWork]:
        """This work split into pages of at most `size` orders (at least one page, maybe
        empty); the orders in `first` (the last polled page's) all go in the first page,
        so their events are decided together with their polls' as on every other page."""
        rest = sorted(self.order_ids() - first)
        room = max(size - len(first), 0)
        chunks = [first | set(rest[:room])]
        chunks += [set(rest[i : i + size]) for i in range(room, len(rest), size)]
        return [self.among(chunk) for chunk in chunks]

    def among(self, orders: set[str]) -> DueWork:
        return DueWork(
            [o for o in self.time_events if o in orders],
            [o for o in self.promises if o in orders],
            [o for o in self.placed if o in orders],
            [r for r in self.refunds if r.order_id in orders],
            [r for r in self.returns if r.order_id in orders],
        )


def detect_stage(
    parts: CycleParts, poll: PollStage, now: datetime, due: DueWork | None
) -> DetectStage:
    """What changed: new shipment states, scans and domain events of one page (plus, on the
    cycle's last pages, the events `due` by date). Reads the page's working set once and
    writes nothing: `decide_stage` commits these together with the messages they cause."""
    store = parts.store
    previous = {s.shipment_id: s for s in poll.polled}
    promises = shop_promises(parts)
    # order_placed for this page's orders, decided with their parcels' events; orders
    # with no parcel due get theirs with the due work (`DueWork.placed`)
    work = due or DueWork(
        placed=store.orders_without_event(
            EventKind.ORDER_PLACED, among={s.order_id for s in poll.polled}
        )
    )
    orders = store.load_orders({s.order_id for s in poll.polled} | work.order_ids())
    events: list[DomainEvent] = []
    states: list[ShipmentState] = []
    scans: list[tuple[str, TrackingEvent]] = []
    errors: list[str] = []
    # scans dated in the future are the carrier's error: dropped, never believed (so an
    # answer may turn out unusable only here)
    answers = [
        (result, drop_future_scans(result.tracking, now) if result.tracking else None)
        for result in poll.results
    ]
    # the failure counts of the failed polls only: none failed, no statement at all
    failed_before = store.poll_failures(
        result.shipment_id for result, tracking in answers if tracking is None or tracking.unusable
    )
    failures: dict[str, int] = {}
    for result, tracking in answers:
        prev = previous[result.shipment_id]
        if tracking is None or tracking.unusable:
            error = result.error or f"{result.carrier}: {tracking.unusable if tracking else ''}"
            errors.append(f"{result.carrier} {prev.tracking_number}: {error}")
            failures[prev.shipment_id] = failed_before.get(prev.shipment_id, 0) + 1
            states.append(
                apply_failure(prev, error, failures[prev.shipment_id], now, parts.schedule)
            )
            continue
        if result.shipment_id in poll.corrections:
            # auto-detection guessed wrong; the next candidate carrier knew the number
            prev = replace(prev, carrier=poll.corrections[result.shipment_id])
            log.info("shipment %s: carrier corrected to %s", prev.shipment_id, prev.carrier)
        order = orders[prev.order_id]
        changes = detect_changes(prev, tracking, order, now, parts.thresholds)
        # a parcel the customer sends back tells its own story (tracking/shop_events.py)
        events.extend(as_return_events(changes, prev) if prev.return_id else changes)
        states.append(schedule_after_poll(advance_state(prev, tracking, now), now, parts.schedule))
        scans.extend((prev.shipment_id, e) for e in tracking.events)
    # The parcels as they stand after this page's polls: the store's for those not polled.
    # Decide looks up the parcel each event names; the due work reads every parcel of its
    # orders. So a page with due work reads its orders' other parcels, and a page without
    # it only those of orders an event names another parcel of (normally none: no read).
    polled = {s.shipment_id: s for s in states}
    wanted = (
        orders.keys()
        if due is not None
        else {e.order_id for e in events if e.shipment_id and e.shipment_id not in polled}
    )
    shipments = {**store.shipments_of(wanted, leaving_out=polled.keys()), **polled}
    events.extend(detect_order_placed(orders[oid]) for oid in work.placed)
    if due is not None:
        by_order: dict[str, list[ShipmentState]] = {}
        for s in shipments.values():
            by_order.setdefault(s.order_id, []).append(s)
        sending_back = {
            r.order_id
            for r in store.refunds_and_returns_of(due.time_events)[1]
            if r.status in ASKED_RETURN_STATUSES
        }
        for oid in due.time_events:
            parcels = by_order.get(oid, [])
            # A parcel still due has not been polled this cycle (another worker holds it, or
            # will): its estimate may be stale, so its order waits for the worker that
            # polls it (its last page comes after) or for the next cycle.
            if any(awaits_poll(p, now) for p in parcels):
                continue
            outbound = [p for p in parcels if p.return_id is None]
            dated = detect_due(orders[oid], outbound, now, parts.thresholds)
            events.extend(without_aftercare(dated, sending_back))
        events.extend(detect_refund(r) for r in due.refunds if r.order_id in orders)
        events.extend(detect_return(r) for r in due.returns if r.order_id in orders)
        for oid in due.promises:
            events.extend(detect_promises(orders[oid], by_order.get(oid, []), now, promises))
    events = without_cancelled(events, store.cancelled_orders({e.order_id for e in events}))
    changed = sum(1 for s in states if s.status is not previous[s.shipment_id].status)
    return DetectStage(events, changed, errors, states, failures, scans, orders, shipments)


def shop_promises(parts: CycleParts) -> ShopPromises:
    shop = parts.settings.shop
    return ShopPromises(
        time_zone=shop.time_zone,
        dispatch_days=shop.dispatch_days,
        return_days=shop.return_days,
        return_window_days=parts.thresholds.return_window_days,
    )


def without_cancelled(events: list[DomainEvent], cancelled: set[str]) -> list[DomainEvent]:
    """A cancelled order hears of its refund and nothing else (its pending messages were
    cancelled when the cancellation arrived)."""
    if not cancelled:
        return events
    return [e for e in events if e.order_id not in cancelled or e.kind is EventKind.REFUND_ISSUED]


def awaits_poll(state: ShipmentState, now: datetime) -> bool:
    """The parcel is due for a poll at `now` and has not had it."""
    return state.status not in TERMINAL_STATUSES and (
        state.next_check_at is None or state.next_check_at <= now
    )


def decide_stage(
    parts: CycleParts, detected: DetectStage, now: datetime, run_id: str
) -> DecideStage:
    """Decide the messages the page's new events cause, and commit everything the page
    found (states, scans, events) together with those messages in ONE transaction: a run
    killed anywhere before the commit leaves the shipments due, and the rerun polls and
    decides them again; after it, the messages are queued. Nothing is lost in between."""
    store = parts.store
    orders = detected.orders
    customer_of = {oid: o.customer.customer_id for oid, o in orders.items()}
    # only the customers an event may message: most polls of a cycle bring no news, and
    # decide reads the history of an event's own customer only (keys, caps, pending)
    history = load_send_history(
        store, {customer_of[e.order_id] for e in detected.events if e.order_id in customer_of}, now
    )
    with store.transaction():
        store.save_shipment_states(detected.states, detected.failures)
        store.save_tracking_events(detected.scans, now)
        fresh = store.record_domain_events(detected.events, run_id=run_id, now=now)
        # decide is pure: only events this store had not seen, so a rerun decides nothing twice
        outcome = decide(fresh, orders, detected.shipments, parts.ruleset, now, history)
        queued = msgs.queue_decisions(store, outcome.decisions, customer_of, run_id=run_id, now=now)
        cancelled = msgs.cancel_pending(
            store, outcome.cancel_keys, "superseded by a newer event", now
        )
    for skip in outcome.skipped:
        log.info("no message: %s", skip)
    return DecideStage(len(queued), cancelled, outcome, fresh)


def dispatch_stage(parts: CycleParts, now: datetime, run_id: str) -> MessageTally:
    return dispatch_due(
        parts.store,
        parts.renderer,
        parts.build_context,
        parts.channels,
        now=now,
        run_id=run_id,
        dry_run=parts.dry_run,
        into=MessageTally(),
    )


class StageRunner(Protocol):
    """Runs one named stage: a plain call here, a Prefect task in flows/cycle.py."""

    def __call__(self, name: str, stage: Callable[..., Any], *args: Any) -> Any: ...


def call_stage(name: str, stage: Callable[..., Any], *args: Any) -> Any:
    return stage(*args)


@contextmanager
def fewer_collections() -> Iterator[None]:
    """A cycle makes millions of short-lived objects (rows, contexts, rendered text). With
    CPython's default thresholds the collector runs thousands of times, and each full pass
    walks everything loaded before the cycle (templates, rules, modules) again. For the
    cycle those are frozen out of its sight and the youngest generation is collected every
    50,000 allocations, not 700: `bench/cycle.py` at 10k, about 11% less CPU for about
    8 MB more peak memory. Both are undone afterwards (the process is not ours to tune)."""
    before = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()


def run_cycle(
    parts: CycleParts,
    now: datetime,
    run_id: str,
    run_stage: StageRunner = call_stage,
    *,
    intake: bool = True,
) -> CycleSummary:
    """The one sequence of a cycle. Plain Python by default (`aftersale run --no-prefect`);
    the Prefect flow passes a `run_stage` that runs each stage as its task. Of several
    workers sharing a cycle, one takes the intake (`intake`: the inbox's files move once).

    The due shipments are worked through in pages (`claim_pages`): poll, detect, then
    decide and commit each page before the next, and after them the orders with events
    due by date (`DueWork`), a page of orders at a time too; so memory is bounded by a
    page, not the shop, and a crash loses at most the page in flight (which the rerun
    redoes)."""
    with fewer_collections():
        parts.store.start_run(run_id, "cycle", now)
        summary = CycleSummary(now)
        if intake:
            summary.imports = run_stage("intake", intake_pending, parts, now)
        for page, last in claim_pages(parts, now):
            if not last:
                summary.add_page(*run_page(parts, run_stage, page, None, now, run_id))
                continue
            # the due work rides with the last page, and goes on in pages of its own
            work = DueWork.find(parts, now).pages(parts.page_size, {s.order_id for s in page})
            for n, due in enumerate(work):
                polled = page if n == 0 else []
                summary.add_page(*run_page(parts, run_stage, polled, due, now, run_id))
        summary.dispatch = run_stage("dispatch", dispatch_stage, parts, now, run_id)
        observed = summary.poll.observations() + summary.dispatch.observations()
        repeat = timedelta(minutes=parts.settings.alert_repeat_minutes)
        summary.health = record_health(parts.store, now, observed, repeat=repeat)
        parts.store.finish_run(run_id, summary.as_dict())
    return summary


def run_page(
    parts: CycleParts,
    run_stage: StageRunner,
    page: list[ShipmentState],
    due: DueWork | None,
    now: datetime,
    run_id: str,
) -> tuple[PollStage, DetectStage, DecideStage]:
    """Poll, detect, decide and commit one page; the summary counts what it returns and
    drops it: a cycle's memory stays one page deep."""
    poll = run_stage("poll", poll_page, parts, page)
    detected = run_stage("detect", detect_stage, parts, poll, now, due)
    decided = run_stage("decide", decide_stage, parts, detected, now, run_id)
    return poll, detected, decided


def order_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in ORDER_FILE_SUFFIXES)
