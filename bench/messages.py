"""Benchmark: what claiming, recording and closing messages cost as the `messages` table grows.

For each table size (default 1k, 10k, 50k, 100k rows, nearly all of them sent messages with
their bodies, as a store holds after months), newly queued messages are dispatched the way
`dispatch_due` does it: batches of 20, one claim and one result transaction each; as many
more are closed (suppressed) in batches of 20. All through the store seam (`open_store`,
the MessageStore methods), on a DuckDB file in a temporary folder.

Printed per size, in ms per message: claim, mark and close as CPU time of this process
(what grows with the table when a statement scans it), and the wall time (every batch is
a commit, so it adds the disk's fsync and, on a shared machine, whatever else runs).
Each figure is the best of `--rounds` rounds of `--dispatch` messages: other processes
only ever add time. Target: flat, each size's claim+mark CPU time within 1.5x of the
first size's.

    .venv/bin/python bench/messages.py [--sizes 1000,10000,50000,100000] [--dispatch 500]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aftersale.dispatch.messages import message_id_for  # noqa: E402
from aftersale.models import ChannelKind, MessageState  # noqa: E402
from aftersale.store import Store, open_store  # noqa: E402
from aftersale.store.records import Claim, Closure, MessageResult, NewMessage  # noqa: E402

NOW = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
BATCH = 20  # aftersale.dispatch.send.DEFAULT_BATCH_SIZE
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
        Claim(m, f"{m}@example.com", "Your parcel is on its way", BODY, None, "outbox") for m in ids
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


class Timer:
    def __init__(self) -> None:
        self.wall = 0.0
        self.cpu = 0.0

    def __call__(self, fn: Callable[[], object]) -> None:
        cpu, wall = time.process_time(), time.perf_counter()
        fn()
        self.wall += time.perf_counter() - wall
        self.cpu += time.process_time() - cpu


def dispatch_round(store: Store, first: int, n: int) -> dict[str, Timer]:
    """Queue 2n messages, claim and mark n of them and close the other n, batch by batch."""
    fresh = store.queue_messages(new_messages(first, n, NOW), NOW)
    closing = store.queue_messages(new_messages(first + n, n, NOW), NOW)
    timers = {"claim": Timer(), "mark": Timer(), "close": Timer()}
    for start in range(0, n, BATCH):
        batch = fresh[start : start + BATCH]
        shut = [
            Closure(m, MessageState.SUPPRESSED, "recipient suppressed (bounce)")
            for m in closing[start : start + BATCH]
        ]
        timers["claim"](lambda b=batch: store.claim_messages(claims(b), run_id="bench", now=NOW))
        timers["mark"](lambda b=batch: store.record_results(sent(b), NOW))
        timers["close"](lambda c=shut: store.close_messages(c, NOW))
    return timers


def measure(size: int, n: int, rounds: int, folder: Path) -> dict[str, tuple[float, float]]:
    """step -> (CPU, wall) in ms per message, each the best round's"""
    store = open_store(folder / f"messages-{size}.duckdb")
    try:
        seed(store, size)
        best: dict[str, tuple[float, float]] = {}
        for r in range(rounds):
            for step, t in dispatch_round(store, size + 2 * n * r, n).items():
                cpu, wall = t.cpu * 1000 / n, t.wall * 1000 / n
                old = best.get(step, (cpu, wall))
                best[step] = (min(cpu, old[0]), min(wall, old[1]))
        assert store.count_messages(MessageState.SENT) == size + n * rounds
        return best
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000,50000,100000")
    parser.add_argument("--dispatch", type=int, default=500, help="messages per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"messages in the table -> ms per message in batches of {BATCH}: CPU (wall)")
    base = None
    with tempfile.TemporaryDirectory(prefix="bench-messages-") as tmp:
        for size in sizes:
            got = measure(size, args.dispatch, args.rounds, Path(tmp))
            both = got["claim"][0] + got["mark"][0]
            base = base or both
            ratio = both / base
            cells = "  ".join(
                f"{step} {cpu:4.2f} ({wall:4.2f})" for step, (cpu, wall) in got.items()
            )
            verdict = "met" if ratio <= TARGET_RATIO else "MISSED"
            print(
                f"{size:>7,}: {cells}  claim+mark CPU {both:4.2f} = {ratio:4.2f}x the "
                f"{sizes[0]:,} figure (target <= {TARGET_RATIO}x: {verdict})",
                flush=True,
            )


if __name__ == "__main__":
    main()
