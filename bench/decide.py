"""Benchmark: detection + decisions for 100,000 shipment updates with the shipped rule set.

Target: >= 20,000 updates/s on one core. Run: `.venv/bin/python bench/decide.py [N]`.
An update is one poll result: detect_changes + advance_state + detect_due for its order,
then decide over the cycle's events (cycles of 1,000 updates), as the scheduled cycle does.
"""

from __future__ import annotations

import gc
import random
import resource
import sys
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aftersale.decide.engine import SendHistory, SentRecord, decide  # noqa: E402
from aftersale.decide.ruleset import load_ruleset, rule_files  # noqa: E402
from aftersale.models import (  # noqa: E402
    ChannelKind,
    Customer,
    Item,
    Order,
    ShipmentRef,
    ShipmentState,
    Status,
    Tracking,
    TrackingEvent,
)
from aftersale.tracking.detect import (  # noqa: E402
    advance_state,
    default_thresholds,
    detect_changes,
    detect_due,
)
from carriers.registry import DIRECTORY  # noqa: E402

T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
JOURNEY = (Status.LABEL_CREATED, Status.IN_TRANSIT, Status.IN_TRANSIT,
           Status.OUT_FOR_DELIVERY, Status.DELIVERED)  # fmt: skip
ZONES = ("Europe/Warsaw", "Europe/Berlin", "America/New_York", "Europe/London")
CATEGORIES = ("headphones", "speakers", "laptops", "accessories", "smartwatches")
CARRIERS = ("inpost", "ups", "dhl", "dpd")
CYCLE = 1_000
CHANNELS = tuple((channel, str(channel)) for channel in ChannelKind)
CHANNEL_NAMES = dict(CHANNELS)


def build(n_shipments: int, rng: random.Random):
    orders, states, trackings = {}, {}, []
    for i in range(n_shipments):
        oid, sid, carrier = f"O-{i}", f"S-{i}", CARRIERS[i % 4]
        customer = Customer(f"C-{i}", "N", f"c{i}@example.com", "+48500100200", "en",
                            ZONES[i % 4], rng.random() < 0.6, rng.random() < 0.7, "PL")  # fmt: skip
        item = Item(f"SKU-{i % 50}", "Item", CATEGORIES[i % 5], 1, Decimal("199"), "PLN", 24)
        placed = T0 + timedelta(minutes=rng.randrange(0, 600))
        promised = date(2026, 3, 5) if i % 3 == 0 else None
        orders[oid] = Order(oid, placed, customer, (item,), (ShipmentRef(f"TN{i}", carrier),),
                            promised_delivery=promised)  # fmt: skip
        states[sid] = ShipmentState(sid, oid, carrier, f"TN{i}", Status.PENDING, created_at=placed)
        events: list[TrackingEvent] = []
        at = placed + timedelta(hours=2)
        for step, status in enumerate(JOURNEY):
            if status is Status.OUT_FOR_DELIVERY and i % 11 == 0:
                status = Status.EXCEPTION
            at += timedelta(hours=rng.randrange(3, 30))
            events.append(TrackingEvent(at, status, str(status), ""))
            estimate = (
                date(2026, 3, 4) + timedelta(days=step // 2) if carrier in ("ups", "dhl") else None
            )
            delivered = at if status is Status.DELIVERED else None
            tracking = Tracking(carrier, f"TN{i}", status, str(status), "", tuple(events),
                                estimated_delivery=estimate, delivered_at=delivered)  # fmt: skip
            trackings.append((at + timedelta(minutes=5), sid, tracking))
    trackings.sort(key=lambda t: t[0])
    return orders, states, trackings


def main(n_updates: int = 100_000) -> None:
    rng = random.Random(7)
    ruleset = load_ruleset(rule_files(ROOT / "rules"), carriers=DIRECTORY)
    thresholds = ruleset.due_thresholds(default_thresholds(DIRECTORY))
    orders, states, updates = build(n_updates // len(JOURNEY), rng)
    # The fixture (every order and every poll result of the run, about a million objects)
    # stands in for the store and the carriers' responses; a cycle never holds it all.
    # Frozen, the garbage collector stops re-scanning it on every full collection.
    gc.collect()
    gc.freeze()
    # The store, as rows of plain values (like DuckDB's): order -> keys decided, and
    # (customer, channel) -> (due_at, rule_id, marketing). Each cycle reads the rows of the
    # orders it touched into a `SendHistory`, as aftersale/decide/history.py does.
    used: dict[str, tuple[str, ...]] = {}
    sends: dict[tuple[str, str], tuple[tuple[datetime, str, bool], ...]] = {}
    decisions = skips = events_n = 0
    started, cpu_started = time.perf_counter(), time.process_time()
    for start in range(0, len(updates), CYCLE):
        batch = updates[start : start + CYCLE]
        now = batch[-1][0]
        events = []
        touched = set()
        for _, sid, tracking in batch:
            prev = states[sid]
            order = orders[prev.order_id]
            events.extend(detect_changes(prev, tracking, order, now, thresholds))
            states[sid] = new = advance_state(prev, tracking, now)
            events.extend(detect_due(order, (new,), now, thresholds))
            touched.add(prev.order_id)
        history = SendHistory(
            used_keys=frozenset().union(*(used[o] for o in touched if o in used)),
            recent={
                (customer, channel): tuple(SentRecord(*row) for row in rows)
                for customer in {orders[o].customer.customer_id for o in touched}
                for channel, name in CHANNELS
                if (rows := sends.get((customer, name)))
            },
        )
        outcome = decide(events, orders, states, ruleset, now, history)
        for d in outcome.decisions:
            used[d.order_id] = (*used.get(d.order_id, ()), d.idempotency_key)
            key = (orders[d.order_id].customer.customer_id, CHANNEL_NAMES[d.channel])
            sends[key] = (*sends.get(key, ()), (d.due_at, d.rule_id, d.marketing))
        decisions += len(outcome.decisions)
        skips += len(outcome.skipped)
        events_n += len(events)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    n = len(updates)
    print(f"updates:   {n:,} ({events_n:,} events, {decisions:,} decisions, {skips:,} skips)")
    print(f"time:      {elapsed:.2f} s wall, {cpu:.2f} s CPU (one core)")
    print(f"rate:      {n / elapsed:,.0f} updates/s wall, {n / cpu:,.0f} updates/s CPU "
          f"(target >= 20,000)")  # fmt: skip
    print(f"peak mem:  {peak_mb:.0f} MB resident (ru_maxrss, whole process incl. test data)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
