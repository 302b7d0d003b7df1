"""Benchmark: several worker processes sharing one cycle on one PostgreSQL store, over the
carrier sandbox answering after 50 ms with each carrier's request limit set, as a shop
with many active shipments runs it. Prints, per number of workers: throughput, where the
CPU went, requests per second each carrier saw (peak second against its limit, never
above), and duplicates and losses (0); then again with one worker SIGKILLed mid-cycle
(its share finished by the others, still 0 duplicates, nothing lost).

    .venv/bin/python bench/scale.py [--shipments 200000] [--workers 1 2 4]
                                    [--latency-ms 50] [--limits inpost=120,dhl=60,...]

The data: N orders of one parcel each, over the four carriers in proportion to their
limits (see carrier_mix), on scripted journeys started 5-15 h before T0 (80% normal, 10%
locker, 10% attempted). A first cycle at T0,
not timed, polls them all with no rules (the shop's history: states, scans, events);
its database is the template every measured run starts from. The measured cycle runs
at T1 = T0 + 25 h: every parcel is due (the longest poll interval is 24 h), has moved
on (sorting hub, out for delivery, locker, a missed delivery) and about half of them
bring the customer an email: a busy cycle of a running shop, not a first import.

Each worker is `aftersale run --no-prefect --now T1` in its own process, as a Prefect
process worker runs each flow run, all started together; the run ends when the last
one exits. Duplicates: parcels asked twice (the sandbox counts each number) beyond the
page a killed worker was polling, and messages sent twice (an outbox file per send
attempt). Losses: parcels due at T1 not polled by the end, and messages the one-worker
run queued that a run did not. CPU: user + system seconds of the workers (os.wait4),
of the PostgreSQL server (its processes, /proc) and of this process (the sandbox), with
the load average before and after (the machine may be shared). PostgreSQL is a throwaway
cluster like the tests' (tests/support/postgres.py), writing full pages to its log as a
real server does: the write-ahead log per parcel and the store's size per shipment
(rows and bytes per table, printed after the first run) are the figures to size a
server with (docs/operations.md, "10 million active shipments a day").
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
T1 = T0 + timedelta(hours=25)
SCENARIOS = ["normal"] * 8 + ["locker", "attempted"]
LIMITS = {"inpost": 120.0, "dhl": 60.0, "ups": 120.0, "dpd": 60.0}
ROOT = Path(__file__).resolve().parent.parent
#: The tests' cluster skips whole-page images in the log after each checkpoint; a real
#: server writes them, and they are much of its write-ahead log (what replicas receive).
#: Durability stays off (fsync): the disk's flush speed is the host's, not aftersale's.
FULL_PAGE_WRITES = {"full_page_writes": "on"}


def tracking_number(carrier: str, i: int) -> str:
    return {
        "inpost": f"6426000278442{i:011d}",
        "dhl": f"{i:09d}{i % 7}",  # a 10-digit Express waybill with its check digit
        "ups": f"1ZB{i:015d}",
        "dpd": f"0{i:013d}",
    }[carrier]


def carrier_mix(limits: dict[str, float]) -> list[str]:
    """One turn of carriers, each as often as its limit allows against the lowest: a page
    is written when its last parcel is answered, so with equal shares every page would
    wait on the slowest carrier and the run would measure the lowest limit, not the
    workers."""
    lowest = min(limits.values())
    return [slug for slug, limit in limits.items() for _ in range(max(1, round(limit / lowest)))]


def build_orders(n: int, carriers: list[str]) -> tuple[list[Any], list[Any]]:
    from aftersale.models import Customer, Item, Order, ShipmentRef
    from sandbox.timelines import SandboxParcel

    rng = random.Random(7)
    orders, parcels = [], []
    for i in range(n):
        carrier = carriers[i % len(carriers)]
        number = tracking_number(carrier, i)
        start = T0 - timedelta(minutes=rng.randrange(300, 900))
        customer = Customer(
            f"C-{i:07d}", f"Customer {i}", f"c{i}@example.com", None, "en", "UTC", True, False
        )
        item = Item("NW-HP-200", "Headphones", "headphones", 1, Decimal("449"), "PLN", 24)
        orders.append(
            Order(f"S-{i:07d}", start, customer, (item,), (ShipmentRef(number, carrier),))
        )
        parcels.append(SandboxParcel(carrier, number, SCENARIOS[i % len(SCENARIOS)], start))
    return orders, parcels


class Postgres:
    """CPU seconds the cluster's processes have used, living and reaped."""

    def __init__(self, data: Path) -> None:
        self.postmaster = int((data / "postmaster.pid").read_text().split()[0])

    def cpu_s(self) -> float:
        tick = os.sysconf("SC_CLK_TCK")
        total = 0.0
        for pid in [self.postmaster, *self._children()]:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except FileNotFoundError:
                continue
            own = int(fields[11]) + int(fields[12])  # utime, stime
            reaped = int(fields[13]) + int(fields[14]) if pid == self.postmaster else 0
            total += (own + reaped) / tick
        return total

    def _children(self) -> list[int]:
        path = Path(f"/proc/{self.postmaster}/task/{self.postmaster}/children")
        return [int(p) for p in path.read_text().split()]


def wal_lsn(cluster: Any) -> int:
    """Bytes of write-ahead log the server has written so far (what replicas receive)."""
    with cluster.admin() as conn:
        row = conn.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn").fetchone()
    return int(row[0])


def database_size(url: str) -> dict[str, tuple[int, int]]:
    """Rows and bytes (heap, indexes, TOAST) of each of the store's tables."""
    import psycopg

    from aftersale.store import open_store
    from aftersale.store.rows import TABLES

    with open_store(url) as store:
        rows = {table: store.count(table) for table in TABLES}
    with psycopg.connect(url, autocommit=True) as conn:
        sizes = {
            table: int(conn.execute("SELECT pg_total_relation_size(%s)", (table,)).fetchone()[0])
            for table in TABLES
        }
    return {table: (rows[table], sizes[table]) for table in TABLES}


def self_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def worker_env(
    url: str, sandbox_url: str, outbox: Path, limits: dict[str, float], page_size: int
) -> dict:
    from flows.demo import sandbox_env

    env = {k: v for k, v in os.environ.items() if not k.startswith("AFTERSALE_")}
    env.update(sandbox_env(sandbox_url))
    env.update(
        {
            "AFTERSALE_DB": url,
            "AFTERSALE_OUTBOX": str(outbox),
            "AFTERSALE_INBOX": str(outbox.parent / "inbox"),
            "AFTERSALE_POLL_CONCURRENCY": "16",
            "AFTERSALE_PAGE_SIZE": str(page_size),
            "PREFECT_LOGGING_LEVEL": "ERROR",
        }
    )
    for slug, rate in limits.items():
        env[f"AFTERSALE_{slug.upper()}_RATE_PER_S"] = str(rate)
    return env


def start_worker(env: dict[str, str], now: datetime, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable, "-c", "from aftersale.cli.app import app; app()",
            "run", "--no-prefect", "--now", now.isoformat(),
        ],
        env=env, cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip


def finish(worker: subprocess.Popen[bytes], log: Path) -> tuple[int, float, dict | None]:
    """(exit status, CPU seconds, the run's summary or None) once the worker exits."""
    _, status, usage = os.wait4(worker.pid, 0)
    worker.returncode = os.waitstatus_to_exitcode(status)
    out = log.read_text(errors="replace")
    summary = json.loads(out[out.index("{") :]) if worker.returncode == 0 else None
    return worker.returncode, usage.ru_utime + usage.ru_stime, summary


def warm_up(cluster: Any, sandbox: Any, state: Any, orders: list[Any], work: Path) -> str:
    """The template database: the orders, and one cycle at T0 with no rules (untimed)."""
    from aftersale.store import open_store

    with cluster.admin() as conn:
        conn.execute("CREATE DATABASE scale_base")
    url = cluster.url("scale_base")
    with open_store(url) as store:
        for start in range(0, len(orders), 5_000):
            store.save_orders(orders[start : start + 5_000], source="bench", now=T0)
    state.clock.set(T0)
    (work / "no-rules").mkdir()
    env = worker_env(url, sandbox.url, work / "warm-outbox", dict.fromkeys(LIMITS, 0.0), 2_000)
    env["AFTERSALE_RULES"] = str(work / "no-rules")
    began = time.perf_counter()
    logs = [work / f"warm-{i}.log" for i in range(2)]
    workers = [start_worker(env, T0, log) for log in logs]
    results = [finish(w, log) for w, log in zip(workers, logs, strict=True)]
    assert all(code == 0 for code, _, _ in results), [log.read_text()[-2000:] for log in logs]
    polled = sum(s["polled"] for _, _, s in results if s)
    print(f"warm-up at T0: {polled:,} parcels polled in {time.perf_counter() - began:.0f} s")
    return url


def measure(
    label: str,
    cluster: Any,
    sandbox: Any,
    state: Any,
    workers: int,
    limits: dict[str, float],
    latency_ms: float,
    work: Path,
    page_size: int,
    kill_at: float | None = None,
) -> dict[str, Any]:
    from aftersale.store import open_store
    from sandbox.faults import Fault

    name = f"scale_{label}"
    with cluster.admin() as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE scale_base")
    url = cluster.url(name)
    with open_store(url) as store:
        due_ids = {s.shipment_id for s in store.due_shipments(T1)}
    due = len(due_ids)
    state.clock.set(T1)
    state.requests.clear()
    state.calls.clear()
    state.per_second.clear()
    state.set_fault("*", Fault(latency_ms=latency_ms))
    outbox = work / f"{label}-outbox"
    env = worker_env(url, sandbox.url, outbox, limits, page_size)
    pg = Postgres(cluster.data)
    load_before = os.getloadavg()[0]
    pg_before, own_before, wal_before = pg.cpu_s(), self_cpu_s(), wal_lsn(cluster)
    began = time.perf_counter()
    logs = [work / f"{label}-{i}.log" for i in range(workers)]
    procs = [start_worker(env, T1, log) for log in logs]
    killed = None
    if kill_at is not None:
        while sum(state.requests.values()) < kill_at * due:
            time.sleep(0.05)
        os.kill(procs[0].pid, signal.SIGKILL)  # not Popen.send_signal: it may reap the child
        killed = procs[0].pid
    results = [finish(p, log) for p, log in zip(procs, logs, strict=True)]
    wall = time.perf_counter() - began
    pg_cpu, own_cpu = pg.cpu_s() - pg_before, self_cpu_s() - own_before
    wal_bytes = wal_lsn(cluster) - wal_before
    load = (load_before, os.getloadavg()[0])
    state.clear_faults()
    with open_store(url) as store:
        shipments = store.list_shipments()
        counts = store.message_counts()
    not_polled = sum(1 for s in shipments if s.shipment_id in due_ids and s.last_polled_at != T1)
    queued = Counter({(c.template, c.channel.value): c.count for c in counts})
    attempts = Counter(p.name.split(".")[0] for p in (outbox / "email").glob("*.eml"))
    asked_twice = sum(1 for n in state.calls.values() if n > 1)
    seconds: dict[str, Counter[int]] = {}
    for (slug, second), n in state.per_second.items():
        seconds.setdefault(slug, Counter())[second] = n
    return {
        "label": label,
        "workers": workers,
        "due": due,
        "asked": len(state.calls),
        "wall_s": wall,
        "worker_cpu_s": [round(cpu, 1) for _, cpu, _ in results],
        "exits": [code for code, _, _ in results],
        "killed": killed,
        "pg_cpu_s": pg_cpu,
        "wal_bytes": wal_bytes,
        "sandbox_cpu_s": own_cpu,
        "peak_per_s": {slug: max(c.values()) for slug, c in seconds.items()},
        "seconds": {slug: len(c) for slug, c in seconds.items()},
        "seconds_over": {
            slug: sum(1 for n in c.values() if n > limits.get(slug, float("inf")))
            for slug, c in seconds.items()
        },
        "mean_per_s": {slug: sum(c.values()) / max(1, len(c) - 1) for slug, c in seconds.items()},
        "asked_twice": asked_twice,
        "sent_twice": sum(1 for n in attempts.values() if n > 1),
        "sent": sum(attempts.values()),
        "not_polled": not_polled,
        "queued": queued,
        "load": load,
        "tables": database_size(url),
    }


def report(
    r: dict[str, Any], limits: dict[str, float], reference: Counter | None, page_size: int
) -> None:
    lost = sum((reference - r["queued"]).values()) if reference is not None else 0
    cpu = sum(r["worker_cpu_s"])
    total = cpu + r["pg_cpu_s"] + r["sandbox_cpu_s"]
    print(
        f"\n{r['label']}: {r['workers']} worker(s){' (one SIGKILLed)' if r['killed'] else ''}, "
        f"{r['due']:,} parcels due"
    )
    print(
        f"  {r['due'] / r['wall_s']:7.1f} parcels/s  ({r['wall_s']:.0f} s wall; exits "
        f"{r['exits']}; load average {r['load'][0]:.1f} before, {r['load'][1]:.1f} after)"
    )
    print(
        f"  CPU s: workers {cpu:.0f} {r['worker_cpu_s']}, PostgreSQL {r['pg_cpu_s']:.0f}, "
        f"sandbox {r['sandbox_cpu_s']:.0f}; "
        f"{total / r['wall_s']:.2f} cores busy of {os.cpu_count()}; "
        f"{1000 * cpu / r['due']:.2f} ms worker + {1000 * r['pg_cpu_s'] / r['due']:.2f} ms "
        f"PostgreSQL per parcel; {r['wal_bytes'] / r['due'] / 1024:.1f} KiB WAL per parcel"
    )
    for slug, limit in limits.items():
        peak = r["peak_per_s"].get(slug, 0)
        print(
            f"  {slug:<6} limit {limit:5.0f}/s  peak second {peak:4d}  mean "
            f"{r['mean_per_s'].get(slug, 0):6.1f}/s  {'OK' if peak <= limit else 'OVER'}"
            + (
                f" in {r['seconds_over'][slug]} of {r['seconds'][slug]} seconds"
                if peak > limit
                else ""
            )
        )
    rows = sum(n for n, _ in r["tables"].values())
    size = sum(b for _, b in r["tables"].values())
    print(
        f"  database after the run: {rows:,} rows, {size / 2**20:.0f} MiB, "
        f"{size / r['due'] / 1024:.1f} KiB per shipment"
    )
    print(f"  messages: {dict(sorted(r['queued'].items()))}")
    again = f" (the killed worker's page in flight: at most {page_size})" if r["killed"] else ""
    print(
        f"  duplicates: {r['sent_twice']} messages sent twice, {r['asked_twice']} parcels asked "
        f"twice{again};  lost: {r['not_polled']} parcels not polled, {lost} messages not "
        f"queued; {r['sent']:,} emails sent"
    )


def report_tables(r: dict[str, Any]) -> None:
    """The store's tables after a run, biggest first: rows, bytes, bytes per shipment."""
    print(f"\n{r['label']}: the store's tables after the run ({r['due']:,} shipments)")
    for table, (rows, size) in sorted(r["tables"].items(), key=lambda t: -t[1][1]):
        if rows or size > 64 * 1024:
            print(
                f"  {table:<22} {rows:>10,} rows {size / 2**20:8.1f} MiB "
                f"{size / r['due']:8.0f} B per shipment"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shipments", type=int, default=200_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument(
        "--limits",
        default=",".join(f"{k}={v:g}" for k, v in LIMITS.items()),
        help="requests per second per carrier, for all workers together",
    )
    parser.add_argument("--page-size", type=int, default=500, help="orders per cycle page")
    parser.add_argument("--no-kill", action="store_true", help="skip the SIGKILL run")
    parser.add_argument("--keep", type=Path, help="keep the workers' logs and outboxes here")
    args = parser.parse_args()
    limits = {k: float(v) for k, v in (p.split("=") for p in args.limits.split(","))}
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # progress in a log

    from sandbox.app import SandboxClock, SandboxState
    from sandbox.server import SandboxServer
    from tests.support.postgres import running_cluster

    orders, parcels = build_orders(args.shipments, carrier_mix(limits))
    state = SandboxState(SandboxClock(T0))
    state.add(parcels)
    # The sandbox counts each request as its event loop takes it, in this process: a full
    # collection over the 1.4M objects of 200,000 orders stalls it for ~0.5 s, and the
    # requests that queued meanwhile land in one second's count (with the collector on,
    # busiest seconds reached 133% of a limit at 200,000). Frozen, they are left alone.
    gc.collect()
    gc.freeze()
    with (
        tempfile.TemporaryDirectory() as folder,
        running_cluster(FULL_PAGE_WRITES) as cluster,
        SandboxServer(state) as sandbox,
    ):
        if cluster is None:
            sys.exit("bench/scale.py needs PostgreSQL (Debian's postgresql package)")
        work = args.keep or Path(folder)
        work.mkdir(parents=True, exist_ok=True)
        warm_up(cluster, sandbox, state, orders, work)
        reference = None
        for n in args.workers:
            result = measure(
                f"w{n}", cluster, sandbox, state, n, limits, args.latency_ms, work, args.page_size
            )
            report(result, limits, reference, args.page_size)
            if reference is None:
                report_tables(result)
                reference = result["queued"]
        if not args.no_kill:
            n = max(args.workers)
            result = measure(
                f"w{n}_kill", cluster, sandbox, state, max(2, n), limits, args.latency_ms,
                work, args.page_size, kill_at=0.3,
            )  # fmt: skip
            report(result, limits, reference, args.page_size)


if __name__ == "__main__":
    main()
