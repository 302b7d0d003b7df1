"""Poll throughput against the sandbox: N shipments over the four carriers, fixed latency.

    .venv/bin/python bench/poll.py [--shipments 20000] [--latency-ms 50] [--concurrency 100]

The sandbox runs in its own process (`python -m sandbox.server`) so client and server do
not share a GIL; every tracking answer waits `--latency-ms` there. `--concurrency` is
the total number of requests in flight, split evenly over the carriers, so the ceiling
is concurrency / latency requests per second. Rate limits are set far above what the
run can reach (the token buckets still run). Target: >= 90 % of the ceiling at 100.
Prints requests/s, the ratio to the ceiling, client CPU seconds per 1,000 shipments
(and the sandbox's, for scale), the client's peak memory and the load average around
the run: client and sandbox need about 0.7 ms of CPU per request together, so at 2,000
requests/s they need 1.4 free cores and the ratio falls when something else runs.
Optional, not dependencies: with `uvloop` importable the client runs on it, and uvicorn
picks up `httptools`/`uvloop` for the sandbox (about 0.25 instead of 0.33 ms a request).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aftersale.models import ShipmentState, Status  # noqa: E402
from carriers.poll import CarrierLimits, PollGuards, RetryPolicy, run_poll_report  # noqa: E402
from carriers.registry import DIRECTORY, build_carriers  # noqa: E402
from sandbox.server import free_port  # noqa: E402
from sandbox.timelines import SCENARIOS  # noqa: E402

START = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
CARRIERS = ("ups", "dhl", "dpd", "inpost")
#: the sandbox's test credentials, from each carrier's META
ENV = {k: v for meta in DIRECTORY for k, v in meta.sandbox_env.items()}


def number(carrier: str, i: int) -> str:
    return {
        "ups": f"1ZBENCH{i:011d}",
        "dhl": f"{i:010d}",
        "dpd": f"{i:014d}",
        "inpost": f"{i:024d}",
    }[carrier]


def parcels(n: int) -> list[dict[str, str]]:
    scenarios = sorted(SCENARIOS)
    return [
        {
            "carrier": CARRIERS[i % 4],
            "tracking_number": number(CARRIERS[i % 4], i),
            "scenario": scenarios[(i // 4) % len(scenarios)],
            "start": (START - timedelta(minutes=i % 600)).isoformat(),
        }
        for i in range(n)
    ]


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_sandbox(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox.server", "--port", str(port), "--quiet",
         "--now", (START + timedelta(hours=30)).isoformat()],
        cwd=ROOT,
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/_sandbox/clock", timeout=1).raise_for_status()
            return proc
        except httpx.HTTPError:
            if proc.poll() is not None:
                raise RuntimeError("the sandbox process exited") from None
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"the sandbox did not listen on {port}")


def measure(url: str, pid: int, args: argparse.Namespace, backend: str) -> dict[str, object]:
    adapters = build_carriers({slug: url for slug in CARRIERS}, ENV)
    per_carrier = max(1, args.concurrency // len(CARRIERS))
    limits = {slug: CarrierLimits(per_carrier, 1e6, 10**9) for slug in CARRIERS}
    shipments = [
        ShipmentState(f"s{i}", f"o{i}", CARRIERS[i % 4], number(CARRIERS[i % 4], i), Status.PENDING)
        for i in range(args.shipments)
    ]
    loop_factory = None
    with contextlib.suppress(ImportError):  # optional: not a dependency of the project
        import uvloop

        loop_factory = uvloop.new_event_loop
    server_cpu0, cpu0, wall0 = cpu_seconds(pid), time.process_time(), time.perf_counter()
    report = run_poll_report(
        shipments, adapters, timeout_s=args.timeout_s, limits=limits, guards=PollGuards(limits),
        retry=RetryPolicy(attempts=2, base_delay_s=0.05), http_backend=backend,
        loop_factory=loop_factory,
    )  # fmt: skip
    wall = time.perf_counter() - wall0
    cpu, server_cpu = time.process_time() - cpu0, cpu_seconds(pid) - server_cpu0
    requests = sum(report.attempts.values())
    ceiling = per_carrier * len(CARRIERS) / (args.latency_ms / 1000)
    return {
        "backend": backend,
        "client loop": "uvloop" if loop_factory else "asyncio",
        "in flight": per_carrier * len(CARRIERS),
        "wall s": f"{wall:.2f}",
        "requests": requests,
        "retries": requests - args.shipments,
        "errors": sum(1 for r in report.results if r.error),
        "requests/s": f"{requests / wall:,.0f}",
        "ceiling": f"{ceiling:,.0f}",
        "of ceiling": f"{requests / wall / ceiling:.1%}",
        "client CPU s/1k": f"{cpu / args.shipments * 1000:.3f}",
        "sandbox CPU s/1k": f"{server_cpu / args.shipments * 1000:.3f}",
        "peak RSS MB": f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}",
        "statuses": dict(
            sorted(Counter(r.tracking.status.value for r in report.results if r.tracking).items())
        ),
        "first errors": Counter(
            (r.error or "")[:70] for r in report.results if r.error
        ).most_common(3),
    }


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--shipments", type=int, default=20_000)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--concurrency", type=int, default=100, help="total requests in flight")
    parser.add_argument("--timeout-s", type=float, default=10.0)
    parser.add_argument("--http", choices=("httpx", "aiohttp", "both"), default="both")
    args = parser.parse_args()

    load_before = _load()
    port = free_port()
    sandbox = start_sandbox(port)
    url = f"http://127.0.0.1:{port}"
    rows = []
    try:
        with httpx.Client(base_url=url, timeout=60) as http:
            http.post("/_sandbox/parcels", json=parcels(args.shipments)).raise_for_status()
            fault = {"carrier": "*", "latency_ms": args.latency_ms}
            http.post("/_sandbox/faults", json=fault).raise_for_status()
        for backend in ("httpx", "aiohttp") if args.http == "both" else (args.http,):
            rows.append(measure(url, sandbox.pid, args, backend))
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=10)
    carriers = ", ".join(CARRIERS)
    print(f"{args.shipments:,} shipments over {carriers}, {args.latency_ms:g} ms added latency")
    print("peak RSS is the process's high-water mark so far (later rows include earlier ones)")
    print(f"load average before: {load_before}, after: {_load()} ({os.cpu_count()} CPUs)")
    for row in rows:
        print()
        for key, value in row.items():
            print(f"  {key:<18} {value}")


if __name__ == "__main__":
    main()
