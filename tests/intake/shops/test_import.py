"""`aftersale import --format shopify|woocommerce` and `aftersale orders show`, on a real
DuckDB file: new orders load, a newer copy adds a later fulfilment and cancels, an older
copy (webhooks arrive out of order) changes nothing, re-importing changes nothing."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aftersale.cli.app import app
from aftersale.models import ChannelKind
from aftersale.store import open_store
from aftersale.store.records import NewMessage

PAYLOADS = Path(__file__).parent / "payloads"


@pytest.fixture()
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    db = tmp_path / "a.duckdb"
    monkeypatch.setenv("AFTERSALE_DB", str(db))
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(
        "categories: {television: tv}\nsku_prefixes: {NW-HP: headphones}\n"
        "warranty_months: {tv: 24}\n"
    )
    monkeypatch.setenv("AFTERSALE_SHOP_MAPPING", str(mapping))
    return tmp_path


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout + result.stderr


def order(**changes) -> dict:
    data = json.loads((PAYLOADS / "shopify_order_split.json").read_text(encoding="utf-8"))
    data.update(changes)
    return data


def write(path: Path, payload) -> Path:
    path.write_text(json.dumps(payload), encoding="utf-8")
    return path


def show(order_id: str) -> dict:
    code, out = run("orders", "show", order_id, "--json")
    assert code == 0, out
    return json.loads(out)


def test_a_split_order_loads_then_a_newer_copy_adds_and_an_older_one_is_ignored(env: Path) -> None:
    first = order(
        updated_at="2026-11-23T16:00:00+00:00",
        fulfillments=order()["fulfillments"][:1],
        refunds=[],
    )
    code, out = run("import", "--format", "shopify", str(write(env / "a.json", first)))
    assert code == 0, out
    assert "1 orders loaded, 0 already known, 0 rows rejected" in out
    stored = show("#1047")
    assert [s["tracking_number"] for s in stored["shipments"]] == ["1Z999AA10123456784"]
    assert stored["customer"]["email"] != "james.walker@example.co.uk"  # masked
    assert [i["category"] for i in stored["items"]] == ["tv", "other"]

    # the second fulfilment arrives in a newer copy: a split shipment
    code, out = run("import", "--format", "shopify", str(write(env / "b.json", order())))
    assert code == 0, out
    assert "1 tracking number(s) added to stored orders" in out
    stored = show("#1047")
    assert [(s["carrier"], s["tracking_number"]) for s in stored["shipments"]] == [
        ("ups", "1Z999AA10123456784"),
        ("dhl", "JJD000390007777777"),
    ]
    assert stored["platform"]["refunded"] == "9.99"

    # an older copy delivered late changes nothing, and neither does the same copy again
    late = order(updated_at="2026-11-23T17:00:00+00:00", cancelled_at="2026-11-23T17:00:00+00:00")
    for payload in (late, order()):
        code, out = run("import", "--format", "shopify", str(write(env / "c.json", payload)))
        assert code == 0, out
        assert "0 orders loaded, 1 already known, 0 rows rejected" in out
    assert show("#1047")["platform"]["cancelled_at"] is None


def test_a_cancellation_cancels_the_pending_messages_of_the_order(env: Path) -> None:
    run("import", "--format", "shopify", str(write(env / "a.json", order())))
    due = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
    with open_store(str(env / "a.duckdb")) as store:
        store.queue_messages(
            [
                NewMessage(
                    message_id="m-tip",
                    idempotency_key="setup_tip|#1047|email",
                    rule_id="setup_tip",
                    template="setup_tip",
                    channel=ChannelKind.EMAIL,
                    marketing=True,
                    order_id="#1047",
                    shipment_id=None,
                    item_sku=None,
                    customer_id="shopify:7151245689",
                    event_id="e-1",
                    due_at=due,
                    run_id="r",
                )
            ],
            datetime(2026, 11, 25, tzinfo=UTC),
        )
    cancelled = order(
        updated_at="2026-11-26T08:00:00+00:00",
        cancelled_at="2026-11-26T08:00:00+00:00",
        cancel_reason="customer",
    )
    code, out = run("import", "--format", "shopify", str(write(env / "b.json", cancelled)))
    assert code == 0, out
    assert "#1047: cancelled" in out
    assert "1 pending message(s) cancelled" in out
    assert show("#1047")["platform"]["cancelled_at"] == "2026-11-26T08:00:00+00:00"
    with open_store(str(env / "a.duckdb")) as store:
        message = store.load_message("m-tip")
    assert message is not None and message.state == "cancelled"
    assert message.error_text == "order cancelled in shopify: customer"


def test_woocommerce_orders_import_and_bad_records_name_their_field(env: Path) -> None:
    good = json.loads((PAYLOADS / "woocommerce_order.json").read_text(encoding="utf-8"))
    bad = copy.deepcopy(good)
    bad["number"] = "728"
    bad["line_items"][0]["price"] = "free"
    code, out = run(
        "import", "--format", "woocommerce", str(write(env / "w.json", [good, bad, {"id": 9}]))
    )
    assert code == 1
    assert "1 orders loaded, 0 already known, 2 rows rejected" in out
    assert "w.json:2: line_items.0.price: 'free' is not a price" in out
    assert "w.json:3: order: not a WooCommerce order (no `line_items` or `billing`)" in out
    stored = show("727")
    assert stored["shipments"][0]["carrier"] == "dpd"
    assert stored["items"][0]["category"] == "headphones"


def test_an_unknown_format_is_refused(env: Path) -> None:
    code, out = run("import", "--format", "magento", str(env / "x.json"))
    assert code == 2
    assert "--format: use aftersale, shopify, woocommerce (not 'magento')" in out
