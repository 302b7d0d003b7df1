"""Benchmark: what a cycle's store reads and writes cost per page as the tables grow.

A cycle at N active shipments works through N / 2,000 pages (decide) and about
2.25 N / 1,000 batches (dispatch): a store call whose cost grows with the tables makes the
cycle grow faster than N. For each size (default 10k and 50k orders, each with a
customer, an item, a parcel, three scans, two domain events and two or three messages, as
a cycle leaves them), this times each call a decide page and a dispatch batch make, on
pages at several places in the tables, through the store seam on a DuckDB file in a
temporary folder. Writes run in a transaction that is rolled back, so every round sees
the same tables; but a dispatch batch (`record + claim`: 500 results recorded as 500 claims
are made) commits, as dispatch runs it, and each round's claims other messages.

Printed per call: CPU ms per call (this process, DuckDB's threads included) at each size
and the ratio to the first size. Target: flat, each size within 1.5x of the first.

    .venv/bin/python bench/store.py [--sizes 10000,50000] [--rounds 3] [--only NAME,...]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aftersale.dispatch.messages import message_id_for  # noqa: E402
from aftersale.dispatch.send import _Facts  # noqa: E402
from aftersale.models import (  # noqa: E402
    ChannelKind,
    Customer,
    DomainEvent,
    EventKind,
    Item,
    MessageState,
    Order,
    ShipmentRef,
    Status,
    TrackingEvent,
)
from aftersale.store import Store, open_store  # noqa: E402
from aftersale.store.records import Claim, DueCursor, MessageResult, NewMessage  # noqa: E402

START = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
NOW = START + timedelta(hours=8)
ORDER_PAGE, MESSAGE_PAGE = 2_000, 1_000
SEED_CHUNK = 5_000
TARGET_RATIO = 1.5
BODY = "Hello Anna,\n\nyour order is on its way with InPost.\n\n" * 30


class _Rollback(Exception):
    """Leaves a timed write out of the tables."""


def order(i: int) -> Order:
    return Order(
        order_id=f"B-{i:06d}",
        placed_at=START - timedelta(hours=1),
        customer=Customer(
            f"C-{i:06d}",
            f"Customer {i}",
            f"customer{i}@example.com",
            f"+48601{i:06d}" if i % 4 else None,
            "pl-PL",
            "Europe/Warsaw",
            True,
            i % 2 == 0,
            "PL",
        ),
        items=(Item("NW-HP-200", "Headphones", "headphones", 1, Decimal("449.00"), "PLN", 24),),
        shipments=(ShipmentRef(tracking(i), "inpost"),),
    )


def tracking(i: int) -> str:
    return f"6426000278442{i:011d}"


def scans(i: int) -> list[tuple[str, TrackingEvent]]:
    return [
        (tracking(i), TrackingEvent(START + timedelta(hours=h), status, code, code, "WAW"))
        for h, status, code in (
            (1, Status.LABEL_CREATED, "confirmed"),
            (3, Status.IN_TRANSIT, "collected_from_sender"),
            (6, Status.IN_TRANSIT, "adopted_at_sorting_center"),
        )
    ]


def events(i: int) -> list[DomainEvent]:
    oid = f"B-{i:06d}"
    return [
        DomainEvent(EventKind.ORDER_PLACED, oid, START - timedelta(hours=1)),
        DomainEvent(
            EventKind.SHIPPED, oid, START + timedelta(hours=3), tracking(i), None, Status.IN_TRANSIT
        ),
    ]


def messages(i: int, tag: str = "") -> list[NewMessage]:
    oid, placed, shipped = f"B-{i:06d}", *events(i)
    out = [
        (placed, "thank-you", ChannelKind.EMAIL),
        (shipped, "shipped", ChannelKind.EMAIL),
    ]
    if i % 4 == 0:
        out.append((shipped, "shipped", ChannelKind.SMS))
    return [
        NewMessage(
            message_id=message_id_for(key := f"{tag}{rule}:{e.event_id}:{channel.value}"),
            idempotency_key=key,
            rule_id=rule,
            template=rule,
            channel=channel,
            marketing=False,
            order_id=oid,
            shipment_id=e.shipment_id,
            item_sku=None,
            customer_id=f"C-{i:06d}",
            event_id=e.event_id,
            due_at=NOW,
            run_id="bench",
        )
        for e, rule, channel in out
    ]


def seed(store: Store, n: int) -> None:
    """`n` orders as a cycle leaves them: polled, their events recorded and their messages
    queued (pending, as dispatch finds them)."""
    for start in range(0, n, SEED_CHUNK):
        chunk = range(start, min(start + SEED_CHUNK, n))
        store.save_orders([order(i) for i in chunk], source="bench", now=START)
        store.save_tracking_events([s for i in chunk for s in scans(i)], NOW)
        store.record_domain_events([e for i in chunk for e in events(i)], run_id="b", now=NOW)
        store.queue_messages([m for i in chunk for m in messages(i)], NOW)


def rolled_back(store: Store, write: Callable[[], Any]) -> None:
    try:
        with store.transaction():
            write()
            raise _Rollback
    except _Rollback:
        pass


def page_calls(store: Store, first: int) -> dict[str, Callable[[], Any]]:
    """The store calls of one decide page (poll, detect, decide and its commit) over the
    orders `first` .. `first` + ORDER_PAGE."""
    ids = [f"B-{i:06d}" for i in range(first, first + ORDER_PAGE)]
    customers = [f"C-{i:06d}" for i in range(first, first + ORDER_PAGE)]
    page = store.claim_shipments(ids, NOW)
    fresh = [m for i in range(first, first + ORDER_PAGE) for m in messages(i, "again-")]
    new_events = [
        DomainEvent(
            EventKind.STATUS_CHANGED, f"B-{i:06d}", NOW, tracking(i), None, Status.DELIVERED
        )
        for i in range(first, first + ORDER_PAGE)
    ]
    new_scans = [
        (tracking(i), TrackingEvent(NOW, Status.DELIVERED, "delivered", "delivered", "WAW"))
        for i in range(first, first + ORDER_PAGE)
    ]
    after = f"B-{first - 1:06d}" if first else None

    def commit() -> None:
        store.save_shipment_states(page)
        store.save_tracking_events(new_scans, NOW)
        store.record_domain_events(new_events, run_id="bench", now=NOW)
        store.queue_messages(fresh, NOW)

    return {
        "due_order_ids": lambda: store.due_order_ids(NOW, limit=ORDER_PAGE, after=after),
        "claim_shipments": lambda: store.claim_shipments(ids, NOW),
        "carrier_candidates": lambda: store.carrier_candidates(s.shipment_id for s in page),
        "orders_without_event": lambda: store.orders_without_event(
            EventKind.ORDER_PLACED, among=set(ids)
        ),
        "load_orders": lambda: store.load_orders(ids),
        "poll_failures": lambda: store.poll_failures(s.shipment_id for s in page),
        "shipments_of": lambda: store.shipments_of(ids),
        "cancelled_orders": lambda: store.cancelled_orders(ids),
        "past_messages": lambda: store.past_messages(customers),
        "save_shipment_states": lambda: rolled_back(
            store, lambda: store.save_shipment_states(page)
        ),
        "save_tracking_events": lambda: rolled_back(
            store, lambda: store.save_tracking_events(new_scans, NOW)
        ),
        "record_domain_events": lambda: rolled_back(
            store, lambda: store.record_domain_events(new_events, run_id="bench", now=NOW)
        ),
        "queue_messages": lambda: rolled_back(store, lambda: store.queue_messages(fresh, NOW)),
        "page commit": lambda: rolled_back(store, commit),
    }


def batch_calls(store: Store, skip: int) -> dict[str, Callable[[], Any]]:
    """The store calls of one dispatch batch, `skip` due messages into the queue."""
    cursor = None
    if skip:
        cursor = DueCursor.of(store.due_messages(NOW, limit=skip)[-1])
    due = store.due_messages(NOW, limit=MESSAGE_PAGE, after=cursor)
    orders = store.load_orders({m.order_id for m in due})
    claims = [
        Claim(m.message_id, f"{m.customer_id}@example.com", "Your parcel", BODY, None, "outbox", 1)
        for m in due
    ]
    # as dispatch sends through the outbox: batches of 500, each claimed as the previous
    # one's results are recorded, committed (outside a transaction, as dispatch runs it):
    # the warm-up call claims the first half, the timed one records it and claims the rest
    halves = [claims[: len(claims) // 2], claims[len(claims) // 2 :]]
    sent: list[MessageResult] = []

    def record_and_claim() -> None:
        nonlocal sent
        batch = halves.pop(0) if halves else []
        store.record_and_claim(sent, batch, run_id="bench", now=NOW)
        sent = [MessageResult(c.message_id, MessageState.SENT, provider_id="x") for c in batch]

    return {
        "due_messages": lambda: store.due_messages(NOW, limit=MESSAGE_PAGE, after=cursor),
        "_Facts.load": lambda: _Facts.load(store, due),
        "  load_orders": lambda: store.load_orders({m.order_id for m in due}),
        "  shipments_of": lambda: store.shipments_of(orders),
        "  tracking_events_of": lambda: store.tracking_events_of(
            m.shipment_id for m in due if m.shipment_id
        ),
        "  load_domain_events": lambda: store.load_domain_events(m.event_id for m in due),
        "  suppression_reasons": lambda: store.suppression_reasons(
            o.customer.email or "" for o in orders.values()
        ),
        "record + claim": record_and_claim,
    }


def measure(size: int, rounds: int, only: set[str], folder: Path) -> dict[str, float]:
    """CPU ms per call of each store call, over `rounds` pages spread over the tables."""
    store = open_store(folder / f"store-{size}.duckdb")
    try:
        seed(store, size)
        store.execute("CHECKPOINT")
        spent: dict[str, float] = {}
        for r in range(rounds):
            # pages at the start, the middle and the end of the tables
            place = (size - ORDER_PAGE) * r // max(rounds - 1, 1)
            calls = {
                **page_calls(store, place),
                **batch_calls(store, min(place, store.count("messages") - MESSAGE_PAGE)),
            }
            for name, call in calls.items():
                if only and name.strip() not in only:
                    continue
                call()  # warm
                cpu = time.process_time()
                call()
                spent[name] = spent.get(name, 0.0) + time.process_time() - cpu
        return {name: s * 1000 / rounds for name, s in spent.items()}
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,50000")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default="", help="comma-separated call names")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    only = {s for s in args.only.split(",") if s}
    figures: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        for size in sizes:
            figures[size] = measure(size, args.rounds, only, Path(tmp))
    first = figures[sizes[0]]
    print(
        f"CPU ms per call (a page of {ORDER_PAGE:,} orders, a batch of {MESSAGE_PAGE:,} "
        "messages), by orders in the store"
    )
    print(f"{'':>24}" + "".join(f"{s:>10,}" for s in sizes) + "     ratio")
    missed = []
    for name in first:
        ratio = figures[sizes[-1]][name] / first[name] if first[name] else 0.0
        if ratio > TARGET_RATIO:
            missed.append(name.strip())
        cells = "".join(f"{figures[s][name]:10.1f}" for s in sizes)
        print(f"{name:>24}{cells}{ratio:9.2f}x")
    total = {s: sum(v for k, v in figures[s].items() if not k.startswith(" ")) for s in sizes}
    print(f"{'total':>24}" + "".join(f"{total[s]:10.1f}" for s in sizes))
    verdict = "met" if not missed else "MISSED by " + ", ".join(missed)
    print(f"target: each call within {TARGET_RATIO}x of its {sizes[0]:,} figure: {verdict}")


if __name__ == "__main__":
    main()
