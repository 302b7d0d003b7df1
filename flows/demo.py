"""`make demo`: the whole pipeline on embedded defaults, start to finish, in one process.

A fresh DuckDB file, the carrier sandbox in-process, the example orders imported, then
a series of cycles (the real `aftersale-cycle` Prefect flow, no server) while the
sandbox clock moves the parcels along their timelines. Nothing leaves 127.0.0.1.

With `AFTERSALE_DB=postgresql://…` the same demo runs on that database instead: it must
be empty or hold only an earlier demo's orders (which are deleted first).
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console
from rich.table import Table

from aftersale.errors import StoreError
from aftersale.intake.files import import_file
from aftersale.models import MessageState
from aftersale.settings import PROJECT_ROOT
from aftersale.store import is_url, open_store, without_password
from carriers.registry import DIRECTORY
from flows.shop_demo import DemoShop, load_shop_demo
from sandbox.app import SandboxClock, SandboxState
from sandbox.server import SandboxServer
from sandbox.timelines import SandboxParcel

DEMO_START = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)  # a Monday morning
#: Hours after the start at which a cycle runs: dense while parcels move, sparse after.
CYCLE_HOURS = (
    0,
    3,
    8,
    14,
    20,
    26,
    32,
    38,
    46,
    56,
    70,
    76,
    96,
    130,
    180,
    250,
    298,
    346,
    394,
    442,
    490,
)


def load_parcels(path: Path) -> list[SandboxParcel]:
    return [SandboxParcel.from_json(p) for p in json.loads(path.read_text(encoding="utf-8"))]


def sandbox_env(url: str) -> dict[str, str]:
    """Environment for the demo and the tests that run it: every registered carrier pointed
    at the sandbox at `url`, a fixed key for unsubscribe links (on a database URL there
    is no folder beside the store for the key file; the demo's links go nowhere real), and
    the example shop mapping, as an operator sets it, so the demo shop's products get their
    categories (a Shopify TV is a TV: its setup tips and warranty) instead of the default."""
    env: dict[str, str] = {
        "AFTERSALE_UNSUBSCRIBE_SECRET": "aftersale-demo-unsubscribe-key",
        "AFTERSALE_SHOP_MAPPING": str(PROJECT_ROOT / "examples" / "shop-mapping.yaml"),
    }
    for meta in DIRECTORY:
        prefix = f"AFTERSALE_{meta.slug.upper()}_"
        env[prefix + "URL"] = url
        # the sandbox has no quota: poll at full speed (0 = no rate limit)
        env[prefix + "RATE_PER_S"] = env[prefix + "RATE_PER_DAY"] = "0"
        # its own test credentials: it checks them the way each carrier does
        env.update(meta.sandbox_env)
    return env


def empty_for_demo(database: str, orders_file: Path, shop_orders: Sequence[str] = ()) -> None:
    """Empty `database` for the demo, refusing one that holds orders not the demo's: the
    demo never deletes a shop's data."""
    demo_ids = [
        json.loads(line)["order_id"]
        for line in orders_file.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ] + list(shop_orders)
    with open_store(database) as store:
        held = store.count("orders")
        if held > len(store.known_order_ids(demo_ids)):
            raise StoreError(
                f"{without_password(database)} holds {held} orders, not all the demo's; "
                "the demo needs an empty database (or one an earlier demo used)"
            )
        store.empty_tables()


def run_demo(
    workdir: Path, console: Console | None = None, database: str | None = None
) -> dict[str, int]:
    """Run the demo in `workdir` (wiped first), on `database` (a PostgreSQL URL) or a fresh
    DuckDB file in `workdir`; returns sent messages per template/channel."""
    from flows.cycle import run_cycle_flow  # imports Prefect: keep `aftersale --help` fast

    console = console or Console()
    examples = PROJECT_ROOT / "examples"
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    db, outbox = database or str(workdir / "aftersale.duckdb"), workdir / "outbox"
    shop = load_shop_demo(examples / "shop_demo.json")
    if database is not None:
        empty_for_demo(database, examples / "orders.ndjson", shop.order_names)
    state = SandboxState(SandboxClock(DEMO_START))
    state.add(load_parcels(examples / "sandbox_parcels.json"))
    state.add(shop.parcels)
    spool = workdir / "webhooks"
    with (
        SandboxServer(state) as sandbox,
        DemoShop(shop, spool, state.clock, DEMO_START) as shopify,
    ):
        os.environ.update(
            {
                "AFTERSALE_DB": db,
                "AFTERSALE_OUTBOX": str(outbox),
                "AFTERSALE_INBOX": str(workdir / "inbox"),
                # the shop's webhooks wait here for each cycle, on PostgreSQL too
                "AFTERSALE_WEBHOOK_SPOOL": str(spool),
                **sandbox_env(sandbox.url),
            }
        )
        with open_store(db) as store:
            report = import_file(
                store, examples / "orders.ndjson", now=DEMO_START, detect=DIRECTORY
            )
        console.print(
            f"[bold]Imported[/] {report.loaded} orders from examples/orders.ndjson "
            f"({len(report.rejections)} rejected); carrier sandbox at {sandbox.url}; "
            f"{len(shop.deliveries)} signed Shopify webhooks (orders, fulfilments, a "
            f"cancellation, a return, refunds) go to the receiver on port "
            f"{shopify.receiver.port} as the demo clock reaches them"
        )
        table = Table(title="aftersale demo: one row per cycle (sandbox clock, UTC)")
        for col in (
            "cycle",
            "clock",
            "polled",
            "status changes",
            "delays",
            "queued",
            "sent",
            "deferred",
            "failed",
        ):
            table.add_column(
                col, justify="right" if col not in ("clock", "status changes", "delays") else "left"
            )
        late: list[str] = []  # orders past the dispatch promise, as the run summaries say
        for i, hours in enumerate(CYCLE_HOURS, start=1):
            now = DEMO_START + timedelta(hours=hours)
            shopify.before_cycle(hours)
            state.clock.set(now)
            s = run_cycle_flow(now=now)
            late.extend(s["not_shipped_past_promise"])
            table.add_row(
                str(i),
                f"{now:%a %d %b %H:%M}",
                str(s["polled"]),
                ", ".join(f"{k} {v}" for k, v in sorted(s["status_changes"].items())) or "-",
                ", ".join(f"{k} {v}" for k, v in sorted(s["delays_by_reason"].items())) or "-",
                str(s["queued"]),
                str(s["sent"]),
                str(s["deferred"]),
                str(s["failed"]),
            )
    console.print(table)
    if late:
        console.print(
            f"[bold]Not shipped in time[/] (no tracking number past the dispatch promise, "
            f"customer told): {', '.join(late)}"
        )
    with open_store(db) as store:
        counts = store.message_counts()
    sent: Counter[str] = Counter()
    summary = Table(title="messages by template")
    for col in ("template", "channel", "state", "count"):
        summary.add_column(col)
    for c in counts:
        summary.add_row(c.template, c.channel.value, c.state.value, str(c.count))
        if c.state is MessageState.SENT:
            sent[f"{c.template}/{c.channel.value}"] += c.count
    console.print(summary)
    console.print(
        f"[bold]Outbox:[/] {outbox}/email/*.eml and {outbox}/sms.jsonl; "
        f"database: {without_password(db)}"
    )
    return dict(sent)


def demo_database(env: dict[str, str] | None = None) -> str | None:
    """The PostgreSQL URL the demo runs on when AFTERSALE_DB names one, else None (DuckDB)."""
    db = (os.environ if env is None else env).get("AFTERSALE_DB", "")
    return db if is_url(db) else None


if __name__ == "__main__":
    run_demo(
        Path(os.environ.get("AFTERSALE_DEMO_DIR", PROJECT_ROOT / "var" / "demo")),
        database=demo_database(),
    )
