"""`aftersale forget CUSTOMER_ID` (GDPR art. 17): the customer's personal data is gone from
the store, the outbox, kept order files and set-aside webhook files; counts stay, and a
record says the erasure happened (issue 15)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aftersale.cli.app import app
from aftersale.dispatch.channels.outbox import OutboxChannel
from aftersale.dispatch.send import DispatchReport, dispatch_due
from aftersale.models import ChannelKind, MessageState
from aftersale.store import open_store
from tests.dispatch.test_dispatch import NOW, FakeRenderer, decision, fake_context
from tests.intake.test_intake import ndjson, order

EMAIL, PHONE = "anna.kowalska@example.pl", "+48601234567"


@pytest.fixture
def shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A store with Anna's order and messages sent to the outbox, her order file kept in
    inbox/done, a set-aside spool file naming her number; and Ola, who stays."""
    for name, value in {
        "AFTERSALE_DB": tmp_path / "a.duckdb",
        "AFTERSALE_OUTBOX": tmp_path / "outbox",
        "AFTERSALE_INBOX": tmp_path / "inbox",
    }.items():
        monkeypatch.setenv(name, str(value))
    done = tmp_path / "inbox" / "done"
    done.mkdir(parents=True)
    ola = order(
        order_id="NW-2",
        shipments=[],
        customer={
            **order()["customer"],
            "id": "C-2",
            "name": "Ola Nowak",
            "email": "ola@example.pl",
            "phone": None,
        },
    )
    orders = done / "20261123T070000-orders.ndjson"
    orders.write_text(ndjson(order(order_id="NW-1", shipments=[]), ola))
    bad = tmp_path / "bad.ndjson"
    bad.write_text(
        ndjson(order(order_id="NW-9", customer={**order()["customer"], "time_zone": "x"}))
    )
    runner = CliRunner()
    assert runner.invoke(app, ["import", str(orders)]).exit_code == 0
    assert runner.invoke(app, ["import", str(bad)]).exit_code == 1  # a rejection quoting her
    rejected = tmp_path / "webhooks" / "rejected"
    rejected.mkdir(parents=True)
    (rejected / "1.jsonl").write_text(json.dumps({"op": "suppress", "address": PHONE}) + "\n")
    with open_store(tmp_path / "a.duckdb") as store:
        store.record_domain_events(
            [decision("x").event], run_id="r", now=NOW
        )  # the event the messages refer to
        from aftersale.dispatch import messages as msgs

        msgs.queue_decisions(
            store,
            [
                decision("shipped"),
                decision("shipped", ChannelKind.SMS),
                decision("later", due=NOW.replace(year=2027)),
            ],
            {"NW-1": "C-1"},
            run_id="r",
            now=NOW,
        )
        channels = {k: OutboxChannel(tmp_path / "outbox", k) for k in ChannelKind}
        dispatch_due(
            store,
            FakeRenderer(),
            fake_context,
            channels,
            now=NOW,
            run_id="d",
            into=DispatchReport(),
        )
    return tmp_path


def files_text(folder: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file())


def test_forget_erases_everywhere_and_keeps_the_counts(shop: Path) -> None:
    before = files_text(shop)
    assert EMAIL in before and PHONE in before
    result = CliRunner().invoke(app, ["forget", "C-1", "--yes"])
    assert result.exit_code == 0, result.output
    assert "erased customer 'C-1' (now erased-" in result.stdout
    assert "3 messages, 1 pending cancelled" in result.stdout
    after = files_text(shop / "outbox") + files_text(shop / "inbox") + files_text(shop / "webhooks")
    for secret in (EMAIL, PHONE, "Anna Kowalska"):
        assert secret not in after
    assert "ola@example.pl" in after  # the other customer's row stays
    assert len(list((shop / "outbox" / "email").glob("*.eml"))) == 1  # the count stays
    with open_store(shop / "a.duckdb") as store:
        assert store.count("orders") == 2 and store.count("messages") == 3
        assert store.count("erasures") == 1 and store.count("customer_changes") == 0
        (order_row,) = [o for o in store.load_orders(["NW-1"]).values()]
        assert order_row.customer.customer_id.startswith("erased-")
        assert (order_row.customer.name, order_row.customer.email) == ("(erased)", None)
        messages = store.list_messages()
        assert {m.recipient for m in messages} == {None}
        assert {m.customer_id for m in messages} == {order_row.customer.customer_id}
        assert sorted(m.state for m in messages) == sorted(
            [MessageState.SENT, MessageState.SENT, MessageState.CANCELLED]
        )
        dump = json.dumps(
            [str(r) for t in ("rejections", "customers") for r in store.rows(f"SELECT * FROM {t}")]
        )  # type: ignore[attr-defined]
        assert EMAIL not in dump and "C-1" not in dump
    again = CliRunner().invoke(app, ["forget", "C-1", "--yes"])
    assert again.exit_code == 0 and "was already erased on" in again.stdout


def test_forget_an_unknown_customer_says_so(shop: Path) -> None:
    result = CliRunner().invoke(app, ["forget", "C-404", "--yes"])
    assert result.exit_code == 1
    assert "no customer 'C-404' in the store (nothing erased)" in result.stderr
