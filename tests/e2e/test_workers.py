"""Several workers on one PostgreSQL store, as real processes (`aftersale run --no-prefect`)
running the same cycle period at once over a sandbox that answers slowly: they share the
due parcels and messages through leases, so no parcel is polled twice and no message is
sent twice. When one is SIGKILLed mid-cycle, the next cycle takes its parcels over and
nothing is lost or doubled: what it had claimed but not recorded becomes `unknown`, and the
outbox, asked, settles each (sent if its file is there, sent again if not)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from aftersale.models import Customer, Item, MessageState, Order, ShipmentRef
from aftersale.store import open_store
from flows.demo import sandbox_env
from sandbox.app import SandboxClock, SandboxState
from sandbox.faults import Fault
from sandbox.server import SandboxServer
from sandbox.timelines import SandboxParcel
from tests.support.postgres import PostgresCluster

pytestmark = pytest.mark.slow

START = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
NOW = START + timedelta(hours=8)  # every parcel has its label and first in-transit scan
PARCELS = 240


def number(i: int) -> str:
    return f"6426000278442{i:011d}"  # InPost's 24-digit format


def orders() -> list[Order]:
    return [
        Order(
            f"W-{i:05d}",
            START - timedelta(hours=1),
            Customer(
                f"C-{i:05d}", f"Customer {i}", f"c{i}@example.com", None, "en", "UTC", True, False
            ),
            (Item("NW-HP-200", "Headphones", "headphones", 1, Decimal("449"), "PLN", 24),),
            (ShipmentRef(number(i), "inpost"),),
        )
        for i in range(PARCELS)
    ]


@pytest.fixture
def shop(postgres_cluster: PostgresCluster, tmp_path: Path) -> Iterator[dict[str, Any]]:
    state = SandboxState(SandboxClock(NOW))
    state.add(SandboxParcel("inpost", number(i), "normal", START) for i in range(PARCELS))
    # slow answers, so the workers' cycles overlap for seconds
    state.set_fault("*", Fault(latency_ms=40))
    with SandboxServer(state) as sandbox, postgres_cluster.database() as url:
        with open_store(url) as store:
            store.save_orders(orders(), source="test", now=START)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AFTERSALE_")}
        env.update(sandbox_env(sandbox.url))
        env.update(
            {
                "AFTERSALE_DB": url,
                "AFTERSALE_OUTBOX": str(tmp_path / "outbox"),  # shared, as a mounted volume
                "AFTERSALE_INBOX": str(tmp_path / "inbox"),
                "AFTERSALE_PAGE_SIZE": "20",
                "AFTERSALE_POLL_CONCURRENCY": "4",
            }
        )
        yield {"url": url, "env": env, "sandbox": state, "outbox": tmp_path / "outbox"}


def start_worker(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from aftersale.cli.app import app; app()",
            "run",
            "--no-prefect",
            "--now",
            NOW.isoformat(),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def summary(worker: subprocess.Popen[str]) -> dict[str, Any]:
    out, errors = worker.communicate(timeout=300)
    assert worker.returncode == 0, errors
    return json.loads(out[out.index("{") :])


def sends(outbox: Path) -> Counter[str]:
    """Send attempts per message id (a second attempt would be `<id>.2.eml`)."""
    return Counter(p.name.split(".")[0] for p in (outbox / "email").glob("*.eml"))


def polled(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM shipments WHERE last_polled_at IS NOT NULL"
        ).fetchone()
    return int(row[0]) if row else 0


def test_two_workers_share_a_cycle_and_nothing_is_done_twice(shop: dict[str, Any]) -> None:
    first, second = start_worker(shop["env"]), start_worker(shop["env"])
    a, b = summary(first), summary(second)

    calls = shop["sandbox"].calls
    assert len(calls) == PARCELS and max(calls.values()) == 1  # each parcel polled once
    assert a["polled"] + b["polled"] == PARCELS
    assert a["polled"] > 0 and b["polled"] > 0, (a["polled"], b["polled"])  # both worked
    with open_store(shop["url"]) as store:
        messages = store.list_messages()
    # a thank-you and a shipped email per order, each decided once, each sent once
    assert Counter(m.template for m in messages) == {"thank_you": PARCELS, "shipped": PARCELS}
    assert {m.state for m in messages} == {MessageState.SENT}
    assert a["sent"] + b["sent"] == 2 * PARCELS
    attempts = sends(shop["outbox"])
    assert len(attempts) == 2 * PARCELS and max(attempts.values()) == 1


def test_a_killed_workers_share_is_taken_over_and_nothing_is_doubled(
    shop: dict[str, Any],
) -> None:
    victim, survivor = start_worker(shop["env"]), start_worker(shop["env"])
    deadline = time.monotonic() + 120
    while polled(shop["url"]) < PARCELS // 4:  # both are well into their pages
        assert time.monotonic() < deadline and victim.poll() is None
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.communicate()
    summary(survivor)
    # the next cycle (a restarted worker) takes over whatever the victim held
    summary(start_worker(shop["env"]))

    with open_store(shop["url"]) as store:
        messages = store.list_messages()
        shipments = store.list_shipments()
    assert all(s.last_polled_at == NOW for s in shipments)  # none lost
    assert Counter(m.template for m in messages) == {"thank_you": PARCELS, "shipped": PARCELS}
    # the victim's batch in flight, if any, was settled by the outbox: no person checks
    assert {m.state for m in messages} == {MessageState.SENT}
    attempts = sends(shop["outbox"])
    assert max(attempts.values()) == 1  # never sent twice
    assert {m.message_id for m in messages} == set(attempts)  # none lost
    # only the page the victim was polling when killed can have been asked twice
    calls = shop["sandbox"].calls
    assert len(calls) == PARCELS
    assert sum(1 for n in calls.values() if n > 1) <= 20
