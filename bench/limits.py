"""Benchmark: what each way of limiting costs, to choose between Prefect's global
concurrency / rate limits and aftersale's own mechanisms (docs/operations.md, "Limits").

    .venv/bin/python bench/limits.py [--rounds N]

Measured against a temporary Prefect API server (SQLite), as a flow sees it:
- store lock: a Prefect GCL `aftersale-store` (limit 1) acquire+release, versus
  `open_store` on a free file and the delay before it gets a file another process frees;
- per-carrier budget: one Prefect `rate_limit` call per request, versus the in-process
  token bucket of carriers/poll.py.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        bench_store(args.rounds, Path(folder))
    bench_bucket(args.rounds)
    bench_prefect(args.rounds)


if __name__ == "__main__":
    main()
