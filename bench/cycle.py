"""Benchmark: one whole cycle over N active shipments (default 10,000) against the carrier
sandbox, in plain Python and as the `aftersale-cycle` Prefect flow, side by side.
Targets: the flow takes at most 1.2x the plain wall time and at most +150 MB peak memory.

    .venv/bin/python bench/cycle.py [--shipments N]

Both modes start from copies of the same DuckDB file and poll the same sandbox (same
clock), each in its own process, so each peak RSS is that mode's alone. Timed: the cycle
call (settings, store, wiring, five stages; for Prefect also the run's name, artifacts
and events). Not timed: process start-up and, for Prefect, the temporary API server's
start-up (a warm-up flow starts it; against a running server set PREFECT_API_URL).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

START = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
CLOCK = START + timedelta(hours=8)  # label and first in-transit scan for every parcel
#: locale, time zone, country, mobile prefix and subscriber digits (valid E.164 numbers)
LOCALES = [("pl-PL", "Europe/Warsaw", "PL", "+48601", 6),
           ("de", "Europe/Berlin", "DE", "+49151", 8),
           ("en", "Europe/London", "GB", "+447911", 6)]  # fmt: skip
TARGET_RATIO, TARGET_EXTRA_MB = 1.2, 150


def number(i: int) -> str:
    return f"6426000278442{i:011d}"  # InPost's 24-digit format


def write_orders(path: Path, n: int) -> None:
    with path.open("w", encoding="utf-8") as out:
        for i in range(n):
            locale, zone, country, prefix, digits = LOCALES[i % len(LOCALES)]
            out.write(json.dumps({
                "order_id": f"B-{i:06d}", "placed_at": (START - timedelta(hours=1)).isoformat(),
                "customer": {"id": f"C-{i:06d}", "name": f"Customer {i}",
                             "email": f"customer{i}@example.com",
                             "phone": f"{prefix}{i % 10**digits:0{digits}d}" if i % 4 else None,
                             "locale": locale, "time_zone": zone,
                             "consent": {"email": True, "sms": i % 2 == 0}, "country": country},
                "items": [{"sku": "NW-HP-200", "name": "Headphones", "category": "headphones",
                           "price": "449.00", "currency": "PLN", "warranty_months": 24}],
                "shipments": [{"carrier": "inpost", "tracking_number": number(i)}],
            }) + "\n")  # fmt: skip


def child(mode: str) -> None:
    """Run one cycle in this process and print its figures as one JSON line."""
    from carriers.inpost import InPost

    # The sandbox has no quota: lift InPost's 5 requests/s courtesy limit, else both modes
    # measure the token bucket (2,000 s for 10,000 parcels), not the cycle.
    InPost.default_rate_per_s = None

    from aftersale.cycle import run_cycle
    from aftersale.settings import Settings
    from aftersale.store.duckdb.store import Store

    if mode == "prefect":
        from prefect import flow

        from flows.cycle import aftersale_cycle

        @flow(name="bench-warm-up")
        def warm_up() -> None:
            pass

        warm_up()  # starts the temporary API server, if any, outside the timing
    started = time.perf_counter()
    if mode == "plain":
        from flows.wiring import build_parts

        settings = Settings.from_env()
        with Store.open(settings.db_path) as store:
            parts, _ = build_parts(settings, store)
            summary = run_cycle(parts, CLOCK, "bench-plain").as_dict()
    else:
        summary = aftersale_cycle(now=CLOCK)
    wall = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    counts = {k: summary[k] for k in ("polled", "events", "queued", "sent", "failed", "deferred")}
    print(json.dumps({"mode": mode, "wall_s": wall, "peak_mb": peak_mb, **counts}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shipments", type=int, default=10_000)
    parser.add_argument("--child", choices=["plain", "prefect"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return

    from aftersale.intake.files import import_file
    from aftersale.store.duckdb.store import Store
    from sandbox.app import SandboxClock, SandboxState
    from sandbox.server import SandboxServer
    from sandbox.timelines import SandboxParcel

    work = Path(tempfile.mkdtemp(prefix="bench-cycle-"))
    try:
        orders = work / "orders.ndjson"
        write_orders(orders, args.shipments)
        base = work / "base.duckdb"
        with Store.open(base) as store:
            report = import_file(store, orders, now=START)
        print(f"{report.loaded} orders with {args.shipments} active InPost shipments")
        state = SandboxState(SandboxClock(CLOCK))
        state.add(
            SandboxParcel("inpost", number(i), "normal", START) for i in range(args.shipments)
        )
        results = {}
        with SandboxServer(state) as sandbox:
            for mode in ("plain", "prefect"):
                db = work / f"{mode}.duckdb"
                shutil.copy(base, db)
                env = {
                    **os.environ,
                    "AFTERSALE_DB": str(db),
                    "AFTERSALE_OUTBOX": str(work / f"outbox-{mode}"),
                    "AFTERSALE_INBOX": str(work / f"inbox-{mode}"),
                    "AFTERSALE_INPOST_URL": sandbox.url,
                    "PREFECT_HOME": os.environ.get("PREFECT_HOME", str(work / "prefect-home")),
                    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
                }
                done = subprocess.run(
                    [sys.executable, __file__, "--child", mode],
                    env=env, capture_output=True, text=True, check=False,
                )  # fmt: skip
                if done.returncode != 0:
                    sys.exit(f"{mode} run failed:\n{done.stderr[-4000:]}")
                results[mode] = json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(work, ignore_errors=True)

    plain, flow = results["plain"], results["prefect"]
    header = ("wall s", "peak MB", "polled", "events", "queued", "sent")
    print(f"{'':>10} " + " ".join(f"{h:>8}" for h in header))
    for r in (plain, flow):
        print(f"{r['mode']:>10} {r['wall_s']:8.2f} {r['peak_mb']:8.0f} {r['polled']:8d} "
              f"{r['events']:8d} {r['queued']:8d} {r['sent']:8d}")  # fmt: skip
    ratio = flow["wall_s"] / plain["wall_s"]
    extra = flow["peak_mb"] - plain["peak_mb"]
    ok = ratio <= TARGET_RATIO and extra <= TARGET_EXTRA_MB
    print(
        f"Prefect / plain wall time: {ratio:.2f}x (target <= {TARGET_RATIO}x); "
        f"extra peak memory: {extra:+.0f} MB (target <= +{TARGET_EXTRA_MB} MB): "
        f"{'PASS' if ok else 'FAIL'}"
    )
    if plain["sent"] != flow["sent"]:
        sys.exit(f"the two modes disagree: {plain['sent']} vs {flow['sent']} sent")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
