"""Benchmark: one whole cycle over N active shipments against the carrier sandbox: in plain
Python, as the `aftersale-cycle` Prefect flow, and against a floor that does the same data
movement the bulk way. Targets: the cycle takes at most 2x the floor's user CPU at 10,000
shipments and at most 3 KB of peak memory per active shipment; the flow takes at most 1.2x
the plain wall time and at most +150 MB peak memory.

    .venv/bin/python bench/cycle.py [--shipments N [N ...]] [--modes plain,prefect,floor]
                                    [--repeat K] [--profile DIR]

The floor, timed in its own process on its own copy of the database: read the due
shipments in one query and their orders (with customers and items) in one more, fetch
every parcel's tracking from the same sandbox with aiohttp at the cycle's concurrency,
write the new states in one UPDATE, the scans, as many domain events as the cycle
recorded and as many messages as it queued in one INSERT each, claim and mark as many
as it sent in one UPDATE each (their texts in one INSERT), and write as many `.eml`
files as the cycle's outbox holds (copies of one of them, one plain file write each) and
its SMS lines in one append. It renders nothing and decides nothing: the ratio says what
the pipeline's logic costs on top of moving the data.

Every mode starts from a copy of the same DuckDB file and polls the same sandbox (same
clock), each in its own process. Timed: the cycle call (settings, store, wiring, five
stages; for Prefect also the run's name, artifacts and events). Not timed: process
start-up, imports and, for Prefect, the temporary API server's start-up (a warm-up flow
starts it; against a running server set PREFECT_API_URL). CPU: user + system seconds of
the process over the same span (DuckDB's threads included, the sandbox's not), steadier
than wall time when other work shares the machine. Memory: peak RSS of the process over
the timed part (VmHWM, started afresh where the timing starts: see `start_peak`) minus
its RSS just before it, so DuckDB's and pyarrow's native memory count too. Per active
shipment it is the growth of that delta from one size to the next (default 1,000, 10,000
and 40,000 shipments), judged from 10,000 up (see `memory_figures`), so neither the fixed
cost of a DuckDB connection, templates and rules (about 100 MB) nor the cycle's fixed
buffers filling up is spread over N; a single size prints delta / N instead. `--profile
DIR` runs the plain cycle under cProfile (slower) and writes DIR/cycle-N.prof (read it
with `python -m pstats`); it counts the process's CPU time, not wall time, so other work
on the machine does not move it.
`--repeat K` runs every mode K times, the modes taking turns, and shows each mode's run of
median CPU time: creating 20,000 small files costs the kernel between 0.5 and 6 CPU
seconds depending on what the disk is doing meanwhile (measured on the development
machine's ext4: 22 to 590 us of system time a file, the same code back to back), for the
floor and the outbox alike, which pulls the CPU and wall ratios towards 1 in a slow
spell. So the ratio judged is that of user CPU time, the programs' own work (stricter:
the floor's own file creation is then left out too), at 10,000 shipments; the CPU and
wall ratios are printed beside it.
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
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

START = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
CLOCK = START + timedelta(hours=8)  # label and first in-transit scan for every parcel
#: locale, time zone, country, mobile prefix and subscriber digits (valid E.164 numbers)
LOCALES = [("pl-PL", "Europe/Warsaw", "PL", "+48601", 6),
           ("de", "Europe/Berlin", "DE", "+49151", 8),
           ("en", "Europe/London", "GB", "+447911", 6)]  # fmt: skip
#: The size the targets are set at: the floor ratio is judged there, and the memory a
#: shipment as the growth from there on (see `memory_figures`).
TARGET_FLOOR_RATIO, TARGET_KB_PER_SHIPMENT, TARGET_AT = 2.0, 3.0, 10_000
TARGET_RATIO, TARGET_EXTRA_MB = 1.2, 150
MODES = ("plain", "prefect", "floor")


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


def status_mb(field: str) -> float:
    """One memory figure of this process from /proc/self/status (Linux), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def rss_mb() -> float:
    """The process's resident memory now."""
    return status_mb("VmRSS")


def start_peak() -> None:
    """Start the process's peak resident memory (VmHWM) afresh from what it holds now, so
    `peak_mb` covers the timed part alone. Not `ru_maxrss`: Linux carries a parent's
    resident size over into a child it starts (fork, then exec), so a child's ru_maxrss is
    at least its parent's size at the spawn; this bench's parent holds the sandbox and the
    import of N orders, as large as the cycle itself at 10,000."""
    Path("/proc/self/clear_refs").write_text("5")


def peak_mb() -> float:
    """The process's peak resident memory since `start_peak`."""
    return status_mb("VmHWM")


def cpu_s() -> float:
    """CPU seconds this process (all its threads: DuckDB's too) has used so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def user_s() -> float:
    """The user part of `cpu_s`: the program's own work, without the kernel's."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_utime


def child(mode: str, profile: str | None) -> None:
    """Run one cycle (or the floor) in this process and print its figures as one JSON line."""
    if mode == "floor":
        figures = floor(json.loads(os.environ["BENCH_FLOOR"]))
        print(json.dumps({"mode": mode, **figures}))
        return
    from carriers.inpost import InPost

    # The sandbox has no quota: lift InPost's 5 requests/s courtesy limit, else both modes
    # measure the token bucket (2,000 s for 10,000 parcels), not the cycle.
    InPost.default_rate_per_s = None

    # Imports are not timed, and two load on first use, so load them here: open_store's
    # backend (else DuckDB's ~70 MB lands in the measured delta) and the poller's aiohttp
    # (imported when a batch first polls, so commands that never poll skip its 0.15 s).
    import aiohttp  # noqa: F401

    from aftersale.cycle import run_cycle
    from aftersale.store import open_store
    from aftersale.store.duckdb.store import DuckDBStore  # noqa: F401
    from carriers.registry import load_settings
    from flows.wiring import build_parts

    stages: dict[str, float] = {}

    def timed_stage(name: str, stage: Callable[..., Any], *args: Any) -> Any:
        began = time.perf_counter()
        try:
            return stage(*args)
        finally:
            stages[name] = stages.get(name, 0.0) + time.perf_counter() - began

    def plain() -> dict[str, Any]:
        settings = load_settings()
        with open_store(settings.db) as store:
            parts, _ = build_parts(settings, store)
            return run_cycle(parts, CLOCK, "bench-plain", timed_stage).as_dict()

    if mode == "prefect":
        from prefect import flow

        from flows.cycle import aftersale_cycle

        @flow(name="bench-warm-up")
        def warm_up() -> None:
            pass

        warm_up()  # starts the temporary API server, if any, outside the timing
    start_peak()
    before_mb, before_cpu, before_user = rss_mb(), cpu_s(), user_s()
    started = time.perf_counter()
    if mode == "prefect":
        summary = aftersale_cycle(now=CLOCK)
    elif profile:
        import cProfile

        # CPU time of the process (DuckDB's threads too): steady on a shared machine
        with cProfile.Profile(time.process_time) as profiler:
            summary = plain()
        profiler.dump_stats(profile)
    else:
        summary = plain()
    wall = time.perf_counter() - started
    counts = {k: summary[k] for k in ("polled", "events", "queued", "sent", "failed", "deferred")}
    print(json.dumps({"mode": mode, "wall_s": wall, "cpu_s": cpu_s() - before_cpu,
                      "user_s": user_s() - before_user,
                      "peak_mb": peak_mb(), "delta_mb": peak_mb() - before_mb,
                      "stages": stages, **counts}))  # fmt: skip


def floor(spec: dict[str, Any]) -> dict[str, Any]:
    """The same data movement as the cycle, the bulk way (see the module docstring)."""
    import asyncio

    import aiohttp
    import duckdb
    import pyarrow as pa

    db, outbox, url = os.environ["AFTERSALE_DB"], Path(spec["outbox"]), spec["url"]
    sample = Path(spec["sample_eml"]).read_bytes() if spec["emails"] else b""
    now = CLOCK.replace(tzinfo=None)  # the store keeps naive UTC

    async def fetch_all(numbers: list[str]) -> list[dict[str, Any]]:
        queue = iter(numbers)
        docs: dict[str, dict[str, Any]] = {}
        connector = aiohttp.TCPConnector(limit=spec["concurrency"])
        async with aiohttp.ClientSession(connector=connector) as session:

            async def worker() -> None:
                for tracking_number in queue:
                    async with session.get(f"{url}/v1/tracking/{tracking_number}") as answer:
                        docs[tracking_number] = json.loads(await answer.read())

            await asyncio.gather(*(worker() for _ in range(spec["concurrency"])))
        return [docs[n] for n in numbers]

    steps: dict[str, float] = {}
    last = [time.perf_counter()]

    def lap(step: str) -> None:
        now_s = time.perf_counter()
        steps[step] = steps.get(step, 0.0) + now_s - last[0]
        last[0] = now_s

    start_peak()
    before_mb, before_cpu, before_user = rss_mb(), cpu_s(), user_s()
    started = last[0] = time.perf_counter()
    con = duckdb.connect(db)
    terminal = ["delivered", "returned_to_sender", "cancelled", "expired"]
    due = con.execute(
        "SELECT * FROM shipments WHERE status NOT IN (SELECT unnest(?)) "
        "AND (next_check_at IS NULL OR next_check_at <= ?)",
        [terminal, now],
    ).fetchall()
    cols = [d[0] for d in con.description]
    sid, oid, tno = cols.index("shipment_id"), cols.index("order_id"), cols.index("tracking_number")
    orders = con.execute(
        "SELECT * FROM orders o JOIN customers c USING (customer_id) "
        "JOIN items i USING (order_id) WHERE o.order_id IN (SELECT unnest(?))",
        [[s[oid] for s in due]],
    ).fetchall()
    lap("read")
    docs = asyncio.run(fetch_all([s[tno] for s in due]))
    lap("fetch")

    states = {k: [] for k in ("shipment_id", "status", "code", "last_event_at")}
    scans: dict[str, list[Any]] = {
        k: [] for k in ("shipment_id", "occurred_at", "code", "location", "description")
    }
    for shipment, doc in zip(due, docs, strict=True):
        details = doc.get("tracking_details") or []  # newest first
        times = [datetime.fromisoformat(d["datetime"]).astimezone(UTC) for d in details]
        for d, when in zip(details, times, strict=True):
            scans["shipment_id"].append(shipment[sid])
            scans["occurred_at"].append(when.replace(tzinfo=None))
            scans["code"].append(d["status"])
            scans["location"].append(d["agency"] or "")
            scans["description"].append(d["status"])
        states["shipment_id"].append(shipment[sid])
        states["status"].append(doc.get("status") or "unknown")
        states["code"].append(doc.get("status"))
        states["last_event_at"].append(times[0].replace(tzinfo=None) if times else None)
    n_events, n_messages = spec["events"], spec["messages"]
    pick = [due[i % len(due)] for i in range(max(n_events, n_messages))] if due else []
    events = {
        "event_id": [f"floor-e{i}" for i in range(n_events)],
        "kind": ["shipped"] * n_events,
        "order_id": [s[oid] for s in pick[:n_events]],
        "shipment_id": [s[sid] for s in pick[:n_events]],
        "occurred_at": [now] * n_events,
        "facts": ["{}"] * n_events,
        "detected_at": [now] * n_events,
    }
    ids = [f"floor-m{i}" for i in range(n_messages)]
    messages = {
        "message_id": ids,
        "idempotency_key": ids,
        "rule_id": ["shipped"] * n_messages,
        "template": ["shipped"] * n_messages,
        "channel": ["email"] * n_messages,
        "marketing": [False] * n_messages,
        "order_id": [s[oid] for s in pick[:n_messages]],
        "customer_id": [f"C-{i:06d}" for i in range(n_messages)],
        "event_id": [f"floor-e{i % max(n_events, 1)}" for i in range(n_messages)],
        "state": ["pending"] * n_messages,
        "due_at": [now] * n_messages,
        "created_at": [now] * n_messages,
        "updated_at": [now] * n_messages,
    }
    body = sample[len(sample) // 2 :].decode("ascii", "replace")
    n_sent = min(spec["emails"] + spec["sms"], n_messages)  # claimed, sent and marked
    claims = {
        "message_id": ids[:n_sent],
        "recipient": [f"customer{i}@example.com" for i in range(n_sent)],
        "subject": ["Your parcel is on its way"] * n_sent,
        "body_text": [body] * n_sent,
    }
    lap("rows")
    # The transactional outbox: new states, scans, events and queued messages in one commit.
    con.execute("BEGIN")
    for name, table in (("s", states), ("t", scans), ("e", events), ("m", messages)):
        con.register(name, pa.table(table))
    con.execute(
        "UPDATE shipments SET status = s.status, code = s.code, last_event_at = s.last_event_at, "
        "last_polled_at = $now, next_check_at = $now + INTERVAL 4 HOUR FROM s "
        "WHERE shipments.shipment_id = s.shipment_id",
        {"now": now},
    )
    con.execute(
        "INSERT INTO tracking_events BY NAME SELECT *, $now AS recorded_at FROM t "
        "ON CONFLICT DO NOTHING",
        {"now": now},
    )
    con.execute("INSERT INTO domain_events BY NAME SELECT * FROM e")
    con.execute("INSERT INTO messages BY NAME SELECT * FROM m")
    con.execute("COMMIT")
    con.register("c", pa.table(claims))
    con.execute(
        "UPDATE messages SET state = 'sending', recipient = c.recipient, "
        "attempts = attempts + 1 FROM c "
        "WHERE messages.message_id = c.message_id AND messages.state = 'pending'"
    )
    con.execute(
        "INSERT INTO message_texts SELECT message_id, 1, subject, body_text, $now FROM c",
        {"now": now},
    )
    lap("write")
    folder = outbox / "email"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(spec["emails"]):
        with open(folder / f"floor-{i}.eml", "wb") as out:
            out.write(sample)
    sms = "".join(json.dumps({"message_id": f"floor-s{i}"}) + "\n" for i in range(spec["sms"]))
    with open(outbox / "sms.jsonl", "a", encoding="utf-8") as out:
        out.write(sms)
    lap("files")
    con.execute(
        "UPDATE messages SET state = 'sent', provider_id = 'outbox', sent_at = $now FROM c "
        "WHERE messages.message_id = c.message_id AND messages.state = 'sending'",
        {"now": now},
    )
    con.close()
    lap("write")
    wall = time.perf_counter() - started
    return {
        "wall_s": wall,
        "cpu_s": cpu_s() - before_cpu,
        "user_s": user_s() - before_user,
        "stages": steps,
        "peak_mb": peak_mb(),
        "delta_mb": peak_mb() - before_mb,
        "polled": len(docs),
        "orders_read": len(orders),
        "scans": len(scans["shipment_id"]),
        "events": n_events,
        "queued": n_messages,
        "sent": n_sent,
    }


def run_size(
    n: int, modes: list[str], profile_dir: Path | None, repeat: int = 1
) -> dict[str, dict[str, Any]]:
    """Set up N shipments, run each mode in its own process `repeat` times (the modes taking
    turns, so a busy spell of the machine falls on all of them), and return each mode's run
    of median CPU time, with every run's CPU seconds under "cpu_runs"."""
    from aftersale.intake.files import import_file
    from aftersale.store import open_store
    from carriers.registry import DIRECTORY
    from sandbox.app import SandboxClock, SandboxState
    from sandbox.server import SandboxServer
    from sandbox.timelines import SandboxParcel

    work = Path(tempfile.mkdtemp(prefix="bench-cycle-"))
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
    profile = profile_dir / f"cycle-{n}.prof" if profile_dir else None
    try:
        orders = work / "orders.ndjson"
        write_orders(orders, n)
        base = work / "base.duckdb"
        with open_store(base) as store:
            report = import_file(store, orders, now=START, detect=DIRECTORY)
        print(f"{report.loaded} orders with {n} active InPost shipments", flush=True)
        state = SandboxState(SandboxClock(CLOCK))
        state.add(SandboxParcel("inpost", number(i), "normal", START) for i in range(n))
        with SandboxServer(state) as sandbox:
            for turn in range(repeat):
                for mode in modes:
                    runs[mode].append(run_mode(work, mode, turn, runs, sandbox.url, profile))
                for outbox in work.glob(f"outbox-*-{turn}"):  # 20,000 files a run at 10k
                    shutil.rmtree(outbox)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results = {}
    for mode, done in runs.items():
        by_cpu = sorted(done, key=lambda x: x["cpu_s"])
        results[mode] = {
            **by_cpu[(len(by_cpu) - 1) // 2],
            "cpu_runs": [x["cpu_s"] for x in done],
            "user_runs": [x["user_s"] for x in done],
        }
    return results


def run_mode(
    work: Path,
    mode: str,
    turn: int,
    runs: dict[str, list[dict[str, Any]]],
    url: str,
    profile: Path | None,
) -> dict[str, Any]:
    """One run of one mode on its own copy of the database and its own outbox."""
    db = work / f"{mode}-{turn}.duckdb"
    shutil.copy(work / "base.duckdb", db)
    env = {
        **os.environ,
        "AFTERSALE_DB": str(db),
        "AFTERSALE_OUTBOX": str(work / f"outbox-{mode}-{turn}"),
        "AFTERSALE_INBOX": str(work / f"inbox-{mode}-{turn}"),
        "AFTERSALE_INPOST_URL": url,
        "PREFECT_HOME": os.environ.get("PREFECT_HOME", str(work / "prefect-home")),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    }
    command = [sys.executable, __file__, "--child", mode]
    if mode == "floor":
        cycle = next((m for m in ("plain", "prefect") if runs.get(m)), None)
        if cycle is None:
            sys.exit("the floor copies a cycle's figures: run it with plain or prefect")
        outbox = work / f"outbox-{cycle}-{turn}"
        spec = floor_spec(outbox, runs[cycle][-1], url)
        env["BENCH_FLOOR"] = json.dumps({**spec, "outbox": str(work / f"outbox-floor-{turn}")})
    elif mode == "plain" and profile and turn == 0:
        command += ["--profile", str(profile)]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{mode} run failed:\n{done.stderr[-4000:]}")
    db.unlink()
    return json.loads(done.stdout.strip().splitlines()[-1])


def floor_spec(outbox: Path, cycle: dict[str, Any], url: str) -> dict[str, Any]:
    """What the floor moves: what a cycle run recorded (`cycle`) and wrote (`outbox`)."""
    emails = sorted((outbox / "email").glob("*.eml"))
    sms = outbox / "sms.jsonl"
    from carriers.registry import load_settings

    return {
        "url": url,
        "concurrency": load_settings().poll_concurrency,
        "events": cycle["events"],
        "messages": cycle["queued"],
        "emails": len(emails),
        "sample_eml": str(emails[len(emails) // 2]) if emails else "",
        "sms": len(sms.read_text(encoding="utf-8").splitlines()) if sms.exists() else 0,
    }


def memory_figures(
    n: int, cycle: dict[str, Any], earlier: list[tuple[int, float]], alone: bool
) -> bool:
    """Print the peak memory per active shipment; True if the target is met.

    What an added shipment costs is the growth of the peak (`delta_mb`) from the next
    smaller size run to this one. It is not the peak spread over N: a DuckDB connection,
    templates and rules cost ~100 MB whatever N is. Nor is it judged from a size below
    `TARGET_AT`: the cycle's fixed buffers, a decide page (2,000 orders) and DuckDB's
    changes held until a checkpoint (16 MB of WAL), fill up as N grows to about 5,000,
    adding about 2 KB a shipment from 1,000 to 10,000 that stays the same at any larger N.
    So the default sizes are 1,000 (the fixed costs), 10,000 and 40,000 (the growth from
    10,000 to 40,000, judged); the growth from the smallest size is printed beside it. A
    run's peak moves by about +-10 MB from one run to the next: +-1 KB a shipment over a
    span of 10,000 shipments, +-0.3 KB over 30,000, so the judged span is wide."""
    how = f"{cycle['mode']}: peak RSS minus RSS before the cycle"
    if not earlier:  # the smallest size: fixed costs included, judged only when alone
        kb = cycle["delta_mb"] * 1024 / n
        judged = verdict(kb <= TARGET_KB_PER_SHIPMENT) if alone else "not judged"
        print(f"peak memory per active shipment ({how}, over {n:,} shipments, fixed costs "
              f"included): {kb:.1f} KB (target <= {TARGET_KB_PER_SHIPMENT:.0f} KB, as the "
              f"growth between sizes): {judged}")  # fmt: skip
        return kb <= TARGET_KB_PER_SHIPMENT or not alone

    def growth(since: tuple[int, float]) -> float:
        return (cycle["delta_mb"] - since[1]) * 1024 / (n - since[0])

    (last, _), kb = earlier[-1], growth(earlier[-1])
    judged = last >= TARGET_AT
    smallest = (
        f"; from {earlier[0][0]:,}: {growth(earlier[0]):.1f} KB, fixed buffers filling included"
        if len(earlier) > 1
        else ""
    )
    target = f"target <= {TARGET_KB_PER_SHIPMENT:.0f} KB"
    print(f"peak memory per active shipment ({how}, growth from {last:,} to {n:,} shipments): "
          f"{kb:.1f} KB ({target}): "
          + (verdict(kb <= TARGET_KB_PER_SHIPMENT) if judged else
             f"not judged: {last:,} is below {TARGET_AT:,}, where the fixed buffers are full")
          + smallest)  # fmt: skip
    return kb <= TARGET_KB_PER_SHIPMENT or not judged


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def report(
    n: int, r: dict[str, dict[str, Any]], earlier: list[tuple[int, float]], alone: bool
) -> bool:
    """Print one size's table and its figures next to their targets; True if all are met.
    `earlier` holds (N, delta MB) of the smaller sizes run before, `alone` says no other
    size is run (see `memory_figures`)."""
    header = ("wall s", "cpu s", "user s", "peak MB", "delta MB", "polled", "events", "queued",
              "sent")  # fmt: skip
    print(f"{'':>10} " + " ".join(f"{h:>8}" for h in header))
    for mode, x in r.items():
        print(f"{mode:>10} {x['wall_s']:8.2f} {x['cpu_s']:8.2f} {x['user_s']:8.2f} "
              f"{x['peak_mb']:8.0f} {x['delta_mb']:8.0f} {x['polled']:8d} {x['events']:8d} "
              f"{x['queued']:8d} {x['sent']:8d}")  # fmt: skip
    if any(len(x.get("cpu_runs", [])) > 1 for x in r.values()):
        each = "; ".join(
            f"{mode} "
            + ", ".join(
                f"{c:.2f} (user {u:.2f})"
                for c, u in zip(x["cpu_runs"], x["user_runs"], strict=True)
            )
            for mode, x in r.items()
        )
        print(f"each mode's run of median CPU is shown; CPU s of every run: {each}")
    ok = True
    cycle = r.get("plain") or r.get("prefect")
    if "plain" in r:
        times = r["plain"]["stages"]
        other = r["plain"]["wall_s"] - sum(times.values())  # wiring, reading what is due, …
        stages = ", ".join(f"{k} {v:.2f}" for k, v in [*times.items(), ("other", other)])
        print(f"plain cycle by stage, pages summed (s): {stages}")
    if "floor" in r:
        steps = ", ".join(f"{k} {v:.2f}" for k, v in r["floor"]["stages"].items())
        print(f"floor by step (s): {steps}")
    if cycle:
        ok &= memory_figures(n, cycle, earlier, alone)
    if cycle and "floor" in r:
        floor_run = r["floor"]
        ratio = cycle["user_s"] / floor_run["user_s"]
        # Judged at the target's size, by user CPU: the wall and CPU ratios fall towards 1
        # whenever the disk makes creating files slow, for the floor and the outbox alike.
        judged = verdict(ratio <= TARGET_FLOOR_RATIO) if n == TARGET_AT else "not judged"
        print(
            f"cycle / floor at {n:,}: user CPU {cycle['user_s']:.2f} s / "
            f"{floor_run['user_s']:.2f} s = {ratio:.2f}x (target <= {TARGET_FLOOR_RATIO}x at "
            f"{TARGET_AT:,}): {judged}; CPU time (the kernel's creating files included, which "
            f"moves with the disk's other work) {cycle['cpu_s'] / floor_run['cpu_s']:.2f}x, "
            f"wall time {cycle['wall_s'] / floor_run['wall_s']:.2f}x"
        )
        ok &= ratio <= TARGET_FLOOR_RATIO or n != TARGET_AT
    if "plain" in r and "prefect" in r:
        plain, flow = r["plain"], r["prefect"]
        ratio = flow["wall_s"] / plain["wall_s"]
        extra = flow["peak_mb"] - plain["peak_mb"]
        print(
            f"Prefect / plain wall time: {ratio:.2f}x (target <= {TARGET_RATIO}x); "
            f"extra peak memory: {extra:+.0f} MB (target <= +{TARGET_EXTRA_MB} MB): "
            f"{verdict(ratio <= TARGET_RATIO and extra <= TARGET_EXTRA_MB)}"
        )
        ok &= ratio <= TARGET_RATIO and extra <= TARGET_EXTRA_MB
        if plain["sent"] != flow["sent"]:
            sys.exit(f"the two modes disagree: {plain['sent']} vs {flow['sent']} sent")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"load average after the runs: {load} (other work on the machine slows every mode)\n")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shipments", type=int, nargs="+", default=[1_000, 10_000, 40_000])
    parser.add_argument(
        "--modes", default=",".join(MODES), help="comma-separated: " + ", ".join(MODES)
    )
    parser.add_argument("--profile", type=Path, help="write the plain cycle's cProfile here")
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs of each mode, taking turns (median shown)"
    )
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, str(args.profile) if args.profile else None)
        return
    modes = [m for m in MODES if m in args.modes.split(",")]
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    ok, earlier = True, list[tuple[int, float]]()
    for n in sorted(args.shipments):
        results = run_size(n, modes, args.profile, max(args.repeat, 1))
        ok &= report(n, results, earlier, alone=len(set(args.shipments)) == 1)
        cycle = results.get("plain") or results.get("prefect")
        if cycle:
            earlier.append((n, cycle["delta_mb"]))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
