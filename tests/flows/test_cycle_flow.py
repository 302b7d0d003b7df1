"""The `aftersale-cycle` flow under Prefect's own test harness, against the real sandbox."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from aftersale.intake import import_file
from aftersale.store import Store
from sandbox.app import SandboxClock, SandboxState
from sandbox.server import SandboxServer
from sandbox.timelines import SandboxParcel

START = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
NUMBER = "642600027844200000000077"


def test_the_flow_runs_a_cycle_and_a_second_run_sends_nothing_twice(
    prefect_harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.cycle import aftersale_cycle

    orders = tmp_path / "orders.ndjson"
    orders.write_text(json.dumps({
        "order_id": "NW-77", "placed_at": (START - timedelta(hours=1)).isoformat(),
        "customer": {"id": "C-77", "name": "Anna Kowalska", "email": "anna@example.pl",
                     "phone": "+48601234567", "locale": "pl-PL", "time_zone": "Europe/Warsaw",
                     "consent": {"email": True, "sms": True}, "country": "PL"},
        "items": [{"sku": "NW-HP-200", "name": "Słuchawki", "category": "headphones",
                   "price": "449.00", "currency": "PLN", "warranty_months": 24}],
        "shipments": [{"carrier": "inpost", "tracking_number": NUMBER}],
    }) + "\n")
    state = SandboxState(SandboxClock(START))
    state.add([SandboxParcel("inpost", NUMBER, "normal", START)])
    with SandboxServer(state) as sandbox:
        monkeypatch.setenv("AFTERSALE_DB", str(tmp_path / "a.duckdb"))
        monkeypatch.setenv("AFTERSALE_OUTBOX", str(tmp_path / "outbox"))
        monkeypatch.setenv("AFTERSALE_INBOX", str(tmp_path / "inbox"))
        monkeypatch.setenv("AFTERSALE_INPOST_URL", sandbox.url)
        with Store.open(tmp_path / "a.duckdb") as store:
            import_file(store, orders, now=START)
        later = START + timedelta(hours=8)
        state.clock.set(later)
        first = aftersale_cycle(now=later)
        again = aftersale_cycle(now=later)
    assert first["polled"] == 1
    assert first["status_changes"] == {"in_transit": 1}
    assert first["sent"] >= 2  # thank-you and shipped at least
    assert again["sent"] == 0 and again["queued"] == 0
    with Store.open(tmp_path / "a.duckdb") as store:
        runs = store.con.execute("SELECT count(*) FROM runs WHERE finished_at IS NOT NULL").fetchone()
        templates = {r[0] for r in store.con.execute("SELECT template FROM messages WHERE state = 'sent'").fetchall()}
    assert runs == (2,)
    assert {"thank_you", "shipped"} <= templates
    assert len(list((tmp_path / "outbox" / "email").glob("*.eml"))) >= 2
