"""Benchmark: what each way of limiting costs, to choose between Prefect's global
concurrency / rate limits and aftersale's own mechanisms (docs/operations.md, "Limits").

    .venv/bin/python bench/limits.py [--rounds N] [--db postgresql://…]

Measured against a temporary Prefect API server (SQLite), as a flow sees it:
- store lock: a Prefect GCL `aftersale-store` (limit 1) acquire+release, versus
  `open_store` on a free file and the delay before it gets a file another process frees;
- per-carrier budget in one process: one Prefect `rate_limit` call per request, versus the
  in-process token bucket of carriers/poll.py;
- per-carrier budget shared by several workers: Prefect's `rate_limit` acquired per batch
  (`occupy=N`) versus the token bucket in PostgreSQL (`take_requests`, a chunk of N per
  statement, as carriers/poll.py's SharedBucket takes it), each call and per request;
  also with 4 processes taking at once. PostgreSQL is the `--db` server, else a
  throwaway cluster like the tests' (tests/support/postgres.py).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def ms(samples: list[float]) -> str:
    q = statistics.quantiles(samples, n=20)
    return f"median {statistics.median(samples) * 1000:8.3f} ms   p95 {q[18] * 1000:8.3f} ms"


def bench_store(rounds: int, folder: Path) -> None:
    from aftersale.store import open_store

    path = folder / "s.duckdb"
    open_store(path).close()
    free = []
    for _ in range(rounds):
        started = time.perf_counter()
        open_store(path).close()
        free.append(time.perf_counter() - started)
    print(f"open_store + close, file free            {ms(free)}")
    lags = []
    holder = (
        "import sys, time; from aftersale.store import open_store; "
        "s = open_store(sys.argv[1]); "
        "print('held', flush=True); time.sleep(1.0); s.close(); print(time.time(), flush=True)"
    )
    for _ in range(5):
        proc = subprocess.Popen(
            [sys.executable, "-c", holder, str(path)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parent.parent,
        )
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        with open_store(path, wait_s=30):
            got = time.time()
        released = float(proc.stdout.readline())
        proc.wait()
        lags.append(got - released)
    print(f"open_store waiting: got it after release  {ms(lags)}")


def bench_prefect(rounds: int) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.concurrency.sync import concurrency, rate_limit
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        with get_client(sync_client=True) as client:
            client.create_global_concurrency_limit(
                GlobalConcurrencyLimitCreate(name="aftersale-store", limit=1)
            )
            client.create_global_concurrency_limit(
                GlobalConcurrencyLimitCreate(
                    name="carrier-inpost", limit=1000, slot_decay_per_second=1000
                )
            )
        gcl = []
        for _ in range(rounds):
            started = time.perf_counter()
            with concurrency("aftersale-store", occupy=1, strict=True):
                pass
            gcl.append(time.perf_counter() - started)
        print(f"Prefect GCL acquire + release            {ms(gcl)}")
        rate = []
        for _ in range(rounds * 5):
            started = time.perf_counter()
            rate_limit("carrier-inpost", strict=True)
            rate.append(time.perf_counter() - started)
        print(f"Prefect rate_limit, one call per request {ms(rate)}")
        per = statistics.median(rate)
        print(f"  -> 10,000 requests: {per * 10_000:.0f} s of limiter calls (serial)")
        for occupy in CHUNKS:
            calls = []
            for _ in range(rounds * 2):
                started = time.perf_counter()
                rate_limit("carrier-inpost", occupy=occupy, strict=True)
                calls.append(time.perf_counter() - started)
            per_request = statistics.median(calls) / occupy
            print(
                f"Prefect rate_limit occupy={occupy:<3}           {ms(calls)}   "
                f"per request {per_request * 1000:7.3f} ms"
            )


def bench_bucket(rounds: int) -> None:
    from carriers.poll import TokenBucket

    bucket = TokenBucket(1e9, 1e9, time.monotonic)
    n = rounds * 10_000
    started = time.perf_counter()
    for _ in range(n):
        bucket.wait_time()
    per = (time.perf_counter() - started) / n
    print(f"in-process token bucket, per request     median {per * 1000:8.5f} ms")
    print(f"  -> 10,000 requests: {per * 10_000 * 1000:.1f} ms")


#: requests taken per limiter call (Prefect's occupy=N, the shared bucket's chunk)
CHUNKS = (1, 5, 20)
TAKER = """
import sys, time
from datetime import date
from aftersale.store import open_store
url, rounds, chunk = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open_store(url) as store:
    limits = store.shared_limits()
    print("ready", flush=True)
    sys.stdin.readline()
    started = time.perf_counter()
    for _ in range(rounds):
        limits.take_requests("ups", chunk, rate_per_s=1e9, capacity=1e9, per_day=None,
                             today=date.today())
    print(time.perf_counter() - started, flush=True)
"""


def bench_shared_bucket(rounds: int, url: str) -> None:
    from datetime import date

    from aftersale.store import open_store

    with open_store(url) as store:
        limits = store.shared_limits()
        assert limits is not None
        for chunk in CHUNKS:
            calls = []
            for _ in range(rounds * 5):
                started = time.perf_counter()
                limits.take_requests(
                    "inpost", chunk, rate_per_s=1e9, capacity=1e9, per_day=None, today=date.today()
                )
                calls.append(time.perf_counter() - started)
            per_request = statistics.median(calls) / chunk
            print(
                f"PostgreSQL bucket, chunk {chunk:<3}             {ms(calls)}   "
                f"per request {per_request * 1000:7.3f} ms"
            )
    # four workers taking from one carrier's bucket at once: the row lock serialises them
    takers = [
        subprocess.Popen(
            [sys.executable, "-c", TAKER, url, str(rounds * 5), "20"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parent.parent,
        )
        for _ in range(4)
    ]
    for t in takers:
        assert t.stdout is not None and t.stdout.readline().strip() == "ready"
    for t in takers:
        assert t.stdin is not None
        t.stdin.write("go\n")
        t.stdin.flush()
    spent = [float(t.communicate()[0]) for t in takers]
    calls = 4 * rounds * 5
    print(
        f"PostgreSQL bucket, 4 processes at once, chunk 20: {calls / max(spent):,.0f} takes/s "
        f"= {20 * calls / max(spent):,.0f} requests/s of limiter capacity on one carrier"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--db", help="a PostgreSQL URL (default: a throwaway cluster)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        bench_store(args.rounds, Path(folder))
    bench_bucket(args.rounds)
    if args.db:
        bench_shared_bucket(args.rounds, args.db)
    else:
        from tests.support.postgres import running_cluster

        with running_cluster() as cluster:
            if cluster is None:
                print("PostgreSQL bucket: skipped (no PostgreSQL installed; pass --db)")
            else:
                with cluster.database() as url:
                    bench_shared_bucket(args.rounds, url)
    bench_prefect(args.rounds)


if __name__ == "__main__":
    main()
