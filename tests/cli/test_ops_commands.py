"""Operators' commands on a real store: one order's story (`messages list --order`,
`messages show`, also after retention erased the text), `health`, and `aftersale run`
when Prefect's temporary server starts too slowly."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aftersale.cli.app import app
from aftersale.dispatch.messages import queue_decisions
from aftersale.models import (
    ChannelKind,
    Customer,
    Decision,
    DomainEvent,
    EventKind,
    Item,
    MessageState,
    Order,
    ShipmentRef,
    Status,
)
from aftersale.settings import PROJECT_ROOT
from aftersale.store import open_store
from aftersale.store.records import Claim, HealthRecord, MessageResult

NOW = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
EMAIL = "anna.kowalska@example.pl"


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """NW-1: a thank-you sent, a review request queued for later."""
    path = tmp_path / "a.duckdb"
    monkeypatch.setenv("AFTERSALE_DB", str(path))
    customer = Customer("C-1", "Anna", EMAIL, None, "pl", "Europe/Warsaw", True, False, "PL")
    item = Item("TV", "TV", "tv", 1, Decimal("10.00"), "PLN", 24)
    order = Order("NW-1", NOW, customer, (item,), (ShipmentRef("T1", "dhl"),))
    placed = DomainEvent(EventKind.ORDER_PLACED, "NW-1", NOW)
    thanks = Decision("thank_you", "thank_you", ChannelKind.EMAIL, "NW-1", "k1", NOW, placed)
    later = NOW + timedelta(days=10)
    review = Decision("review", "review_request", ChannelKind.EMAIL, "NW-1", "k2", later, placed)
    with open_store(path) as store:
        store.save_orders([order], source="t", now=NOW)
        [sent, _] = queue_decisions(store, [thanks, review], {"NW-1": "C-1"}, run_id="r", now=NOW)
        claim = Claim(sent, EMAIL, "Thank you, Anna", "We have your order NW-1.", None, "outbox", 1)
        store.claim_messages([claim], run_id="cycle 2026-11-23 07:00 · 3f9a2c", now=NOW)
        store.record_results([MessageResult(sent, MessageState.SENT, "outbox:1")], NOW)
    return path


def test_one_orders_messages_and_exactly_what_was_sent(db: Path) -> None:
    runner = CliRunner()
    listed = runner.invoke(app, ["messages", "list", "--order", "NW-1"])
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert lines[0].split() == [
        "message", "state", "rule", "channel", "order", "to", "queued", "due", "sent",
        "provider", "id", "reason",
    ]  # fmt: skip
    assert "pending  review" in lines[1] and "2026-12-03 07:00" in lines[1]
    assert "sent     thank_you" in lines[2] and "a***@example.pl" in lines[2]
    assert EMAIL not in listed.output
    assert lines[-1] == "2 message(s); times in UTC"
    sent_id = lines[2].split()[0]

    shown = runner.invoke(app, ["messages", "show", sent_id])
    assert shown.exit_code == 0, shown.output
    assert "to:                a***@example.pl" in shown.output
    assert "run:               cycle 2026-11-23 07:00 · 3f9a2c" in shown.output
    assert shown.output.endswith("Subject: Thank you, Anna\n\nWe have your order NW-1.\n")
    pending = runner.invoke(app, ["messages", "show", lines[1].split()[0]])
    assert "(not rendered yet" in pending.output
    assert (
        runner.invoke(
            app, ["messages", "list", "--customer", "C-1", "--state", "sent"]
        ).output.count("thank_you")
        == 1
    )
    assert runner.invoke(app, ["messages", "list", "--since", "2026-11-24"]).output.endswith(
        "0 message(s); times in UTC\n"
    )
    bad = runner.invoke(app, ["messages", "list", "--since", "yesterday"])
    assert bad.exit_code == 1 and "--since 'yesterday' is not an ISO 8601 date" in bad.output
    missing = runner.invoke(app, ["messages", "show", "m-nope"])
    assert missing.exit_code == 1 and "no message 'm-nope'" in missing.output

    with open_store(db) as store:  # retention: the customer has nothing live a year later
        store.cancel_pending_messages(["k2"], "test", NOW)
        [parcel] = store.list_shipments()
        store.save_shipment_states([replace(parcel, status=Status.DELIVERED)])
        assert store.erase_personal_data(NOW + timedelta(days=800), NOW + timedelta(days=400))[1]
    erased = runner.invoke(app, ["messages", "show", sent_id])
    assert "Subject:" not in erased.output
    assert "(subject and text erased with the customer's personal data" in erased.output


def test_health_lists_what_is_down_and_exits_1(db: Path) -> None:
    runner = CliRunner()
    quiet = runner.invoke(app, ["health"])
    assert quiet.exit_code == 0
    assert "carrier  dhl   not called yet" in quiet.output  # a parcel, no run yet
    with open_store(db) as store:
        store.save_health(
            [HealthRecord("carrier", "dhl", "failing", NOW, NOW, None, 3, 3, {"HTTP 503": 3})]
        )
    down = runner.invoke(app, ["health"])
    assert down.exit_code == 1
    assert down.output.startswith("carrier dhl down since 2026-11-23 07:00 UTC (")
    assert "carrier  dhl   failing" in down.output


@pytest.mark.slow
def test_run_under_a_slow_prefect_start_says_what_to_raise(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "AFTERSALE_"))}
    env |= {
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "0",  # no time at all
        "AFTERSALE_DB": str(tmp_path / "a.duckdb"),
    }
    done = subprocess.run(
        [str(Path(sys.executable).parent / "aftersale"), "run"],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert (
        "error: Prefect's temporary API server did not start within 0 s. Give it longer "
        "(export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS=120)" in done.stderr
    )
