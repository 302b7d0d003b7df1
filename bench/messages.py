"""Benchmark: what dispatch's store statements cost as the `messages` table grows.

For each table size (default 1k, 10k, 50k, 100k rows, nearly all of them sent messages with
their bodies, as a store holds after months), newly queued messages are dispatched the way
`dispatch_due` does it: one transaction per batch (`record_and_claim`) closes as many
messages as it claims (suppressed), records the previous batch's results and claims the
batch. Batches of 20 (a channel that cannot settle a send in doubt: SendGrid) and of 500
(one that can: the outbox). All through the store seam (`open_store`, the MessageStore
methods), on a DuckDB file in a temporary folder.

Printed per size and batch size, in ms per message sent (one claimed, recorded and one
closed): the CPU time of this process over all rounds, the checkpoints DuckDB runs as
its WAL grows included (what grows with the table when a statement scans it), and the
wall time (every batch is a commit, so it adds the disk's fsync and, on a shared machine,
whatever else runs). Target: flat, each size's CPU time within 1.5x of the first size's,
per batch size.

    .venv/bin/python bench/messages.py [--sizes 1000,10000,50000,100000] [--batches 20,500]
                                       [--dispatch 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aftersale.dispatch.messages import message_id_for  # noqa: E402
from aftersale.models import ChannelKind, MessageState  # noqa: E402
from aftersale.store import Store, open_store  # noqa: E402
from aftersale.store.records import Claim, Closure, MessageResult, NewMessage  # noqa: E402

NOW = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
SEED_CHUNK = 2_000
TARGET_RATIO = 1.5
BODY = (
    "Hello Anna,\n\nyour order NW-1042 is on its way with InPost, tracking number "
    "642600027844200000000001. It should reach the parcel locker WAW01A on Thursday.\n\n"
) * 8  # about 1.5 KB, like a rendered email's text part


def new_messages(start: int, n: int, due: datetime) -> list[NewMessage]:
    return [
        NewMessage(
            message_id=message_id_for(f"bench:{i}"),
            idempotency_key=f"bench:{i}",
            rule_id="shipped",
            template="shipped",
            channel=ChannelKind.EMAIL,
            marketing=False,
            order_id=f"B-{i:07d}",
            shipment_id=f"N-{i:07d}",
            item_sku=None,
            customer_id=f"C-{i:07d}",
            event_id=f"shipped:B-{i:07d}",
            due_at=due,
            run_id="bench",
        )
        for i in range(start, start + n)
    ]


def claims(ids: list[str]) -> list[Claim]:
    return [
        Claim(m, f"{m}@example.com", "Your parcel is on its way", BODY, None, "outbox", 1)
        for m in ids
    ]


def sent(ids: list[str]) -> list[MessageResult]:
    return [MessageResult(m, MessageState.SENT, provider_id=f"outbox-{m}") for m in ids]


def seed(store: Store, n: int) -> None:
    """`n` messages sent long ago, through the same claim and result statements."""
    when = NOW - timedelta(days=30)
    for start in range(0, n, SEED_CHUNK):
        ids = store.queue_messages(new_messages(start, min(SEED_CHUNK, n - start), when), when)
        store.claim_messages(claims(ids), run_id="seed", now=when)
        store.record_results(sent(ids), when)


def dispatch_round(store: Store, first: int, n: int, batch: int) -> tuple[float, float]:
    """Queue 2n messages, claim and record n of them and close the other n, batch by
    batch as dispatch does; returns the (CPU, wall) seconds the dispatch statements took."""
    fresh = store.queue_messages(new_messages(first, n, NOW), NOW)
    closing = store.queue_messages(new_messages(first + n, n, NOW), NOW)
    cpu, wall = time.process_time(), time.perf_counter()
    previous: list[MessageResult] = []
    for start in range(0, n, batch):
        ids = fresh[start : start + batch]
        shut = [
            Closure(m, MessageState.SUPPRESSED, "recipient suppressed (bounce)")
            for m in closing[start : start + batch]
        ]
        store.record_and_claim(previous, claims(ids), closures=shut, run_id="bench", now=NOW)
        previous = sent(ids)
    store.record_results(previous, NOW)
    return time.process_time() - cpu, time.perf_counter() - wall


def measure(size: int, batch: int, n: int, rounds: int, folder: Path) -> tuple[float, float]:
    """(CPU, wall) in ms per message sent, over all rounds"""
    store = open_store(folder / f"messages-{size}-{batch}.duckdb")
    try:
        seed(store, size)
        cpu = wall = 0.0
        for r in range(rounds):
            c, w = dispatch_round(store, size + 2 * n * r, n, batch)
            cpu, wall = cpu + c, wall + w
        assert store.count_messages(MessageState.SENT) == size + n * rounds
        return cpu * 1000 / (n * rounds), wall * 1000 / (n * rounds)
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000,50000,100000")
    parser.add_argument("--batches", default="20,500", help="messages claimed per batch")
    parser.add_argument("--dispatch", type=int, default=2_000, help="messages sent per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    batches = [int(b) for b in args.batches.split(",")]
    print("messages in the table -> ms per message sent (claimed, recorded, one more closed)")
    base: dict[int, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-messages-") as tmp:
        for size in sizes:
            cells = []
            for batch in batches:
                cpu, wall = measure(size, batch, args.dispatch, args.rounds, Path(tmp))
                ratio = cpu / base.setdefault(batch, cpu)
                verdict = "met" if ratio <= TARGET_RATIO else "MISSED"
                cells.append(
                    f"batch {batch}: CPU {cpu:5.3f} ({ratio:4.2f}x, {verdict}) wall {wall:5.3f}"
                )
            print(f"{size:>7,}: " + "   ".join(cells), flush=True)
    print(f"target: each size's CPU time <= {TARGET_RATIO}x the {sizes[0]:,} figure, per batch")


if __name__ == "__main__":
    main()
