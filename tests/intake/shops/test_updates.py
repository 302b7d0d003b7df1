"""Refunds, returns and return parcels a shop platform sends on their own (Shopify
refunds/create, returns/*, reverse_deliveries/attach_deliverable), in the documented
shapes, mapped purely and stored on a real DuckDB file: each once, out-of-order return
states never going back, an update about an order not stored rejected with its reason."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from aftersale.intake.platform import apply_platform_orders, parse_platform
from aftersale.intake.shop_updates import apply_shop_updates, parse_updates
from aftersale.intake.shops.base import (
    RecordError,
    RefundUpdate,
    ReturnParcelUpdate,
    ReturnUpdate,
    ShopMapping,
)
from aftersale.store import open_store
from carriers.registry import DIRECTORY

PAYLOADS = Path(__file__).parent / "payloads"
AT = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def body(name: str, **changes) -> str:
    data = json.loads((PAYLOADS / name).read_text(encoding="utf-8"))
    data.update(changes)
    return json.dumps(data)


def test_refund_maps_amount_currency_and_time() -> None:
    [update] = parse_updates(
        body("shopify_refund.json"), "shopify", "refunds/create", DIRECTORY, AT
    )
    assert isinstance(update, RefundUpdate)
    assert update.platform_order_id == "5745038016649"
    assert (update.refund.refund_id, update.refund.amount, update.refund.currency) == (
        "921431",
        Decimal("599.00"),
        "GBP",
    )
    assert update.refund.created_at == datetime(2026, 12, 2, 10, 15, tzinfo=UTC)


def test_a_refund_that_moved_no_money_is_nothing() -> None:
    data = json.loads(body("shopify_refund.json"))
    data["transactions"][0]["status"] = "failure"
    assert parse_updates(json.dumps(data), "shopify", "refunds/create", DIRECTORY, AT) == []


@pytest.mark.parametrize(
    ("topic", "status", "expected"),
    [
        ("returns/request", "requested", "requested"),
        ("returns/approve", "OPEN", "open"),
        ("returns/decline", "declined", "declined"),
        ("returns/cancel", "CANCELED", "cancelled"),
        ("returns/close", None, "closed"),  # no status in the body: the topic says it
    ],
)
def test_return_states(topic: str, status: str | None, expected: str) -> None:
    [update] = parse_updates(
        body("shopify_return_request.json", status=status), "shopify", topic, DIRECTORY, AT
    )
    assert isinstance(update, ReturnUpdate)
    assert (update.platform_order_id, update.ret.return_id) == ("5745038016649", "9901")
    assert (update.ret.status, update.ret.at) == (expected, AT)


def test_reverse_delivery_gives_the_return_parcel() -> None:
    [update] = parse_updates(
        body("shopify_reverse_delivery.json"),
        "shopify",
        "reverse_deliveries/attach_deliverable",
        DIRECTORY,
        AT,
    )
    assert update == ReturnParcelUpdate("9901", "1Z999AA10123456785", "ups")
    no_tracking = body("shopify_reverse_delivery.json", shipping_deliverable={"label": {}})
    topic = "reverse_deliveries/attach_deliverable"
    assert parse_updates(no_tracking, "shopify", topic, DIRECTORY, AT) == []


@pytest.mark.parametrize(
    ("name", "topic", "error"),
    [
        (
            "shopify_order_split.json",
            "refunds/create",
            "refund: not a Shopify refund (no `order_id` or `transactions`)",
        ),
        ("shopify_refund.json", "returns/request", "return: not a Shopify return (no `order`)"),
        (
            "shopify_return_request.json",
            "reverse_deliveries/attach_deliverable",
            "reverse delivery: no `return` it belongs to",
        ),
    ],
)
def test_another_resource_under_a_topic_is_refused_with_the_reason(
    name: str, topic: str, error: str
) -> None:
    with pytest.raises(RecordError, match="^" + error.replace("(", r"\(").replace(")", r"\)")):
        parse_updates(body(name), "shopify", topic, DIRECTORY, AT)


@pytest.fixture(params=["duckdb", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path):
    """Both backends store the same refunds, returns and parcels."""
    if request.param == "duckdb":
        yield str(tmp_path / "a.duckdb")
        return
    with request.getfixturevalue("postgres_cluster").database() as url:
        yield url


@pytest.fixture()
def store(database: str):
    with open_store(database) as s:
        text = (PAYLOADS / "shopify_order_split.json").read_text(encoding="utf-8")
        parsed, facts = parse_platform(text, "o.json", "shopify", ShopMapping(), DIRECTORY, now=AT)
        apply_platform_orders(s, parsed, facts, "o.json", AT, DIRECTORY)
        yield s


def apply(store, name: str, topic: str, at: datetime = AT, **changes):
    updates = parse_updates(body(name, **changes), "shopify", topic, DIRECTORY, at)
    return apply_shop_updates(store, "shopify", updates, name, now=at, carriers=DIRECTORY)


def test_refund_return_and_parcel_are_stored_once(store) -> None:
    # the order JSON's own refund (921430) was stored at import
    [(refund, _)] = [(r, 0) for r in store.refunds_without_event()]
    assert (refund.order_id, refund.refund_id, refund.amount) == (
        "#1047",
        "921430",
        Decimal("9.99"),
    )
    assert apply(store, "shopify_refund.json", "refunds/create").rejections == []
    assert apply(store, "shopify_return_request.json", "returns/request").rejections == []
    report = apply(store, "shopify_reverse_delivery.json", "reverse_deliveries/attach_deliverable")
    assert report.rejections == [] and "1 return parcel(s) to track" in str(report.notices)
    refunds, returns = store.refunds_and_returns_of(["#1047"])
    assert [(r.refund_id, r.amount, r.currency) for r in refunds] == [
        ("921430", Decimal("9.99"), "GBP"),
        ("921431", Decimal("599.00"), "GBP"),
    ]
    assert [(r.return_id, r.status) for r in returns] == [("9901", "requested")]
    parcel = store.shipments_of(["#1047"])["1Z999AA10123456785"]
    assert (parcel.carrier, parcel.return_id, parcel.status.value) == ("ups", "9901", "pending")
    # the parcel sent back is not one of the order's parcels to the customer
    order = store.load_order("#1047")
    assert "1Z999AA10123456785" not in {s.tracking_number for s in order.shipments}
    # replays change nothing
    for name, topic in [
        ("shopify_refund.json", "refunds/create"),
        ("shopify_return_request.json", "returns/request"),
        ("shopify_reverse_delivery.json", "reverse_deliveries/attach_deliverable"),
    ]:
        again = apply(store, name, topic)
        assert again.notices == [] and again.rejections == []
    assert len(store.refunds_and_returns_of(["#1047"])[0]) == 2
    assert store.count("shipments") == 3


def test_a_return_state_never_goes_back(store) -> None:
    apply(store, "shopify_return_request.json", "returns/request", AT)
    apply(
        store,
        "shopify_return_request.json",
        "returns/close",
        AT + timedelta(days=3),
        status="closed",
    )
    # the approval, delivered late, is older than the close: it changes nothing
    apply(
        store,
        "shopify_return_request.json",
        "returns/approve",
        AT + timedelta(days=1),
        status="open",
    )
    [ret] = store.refunds_and_returns_of(["#1047"])[1]
    assert (ret.status, ret.requested_at, ret.updated_at) == ("closed", AT, AT + timedelta(days=3))


def test_updates_about_unknown_orders_or_returns_are_rejected(store) -> None:
    data = json.loads(body("shopify_refund.json"))
    data["order_id"] = 111
    report = apply(store, "shopify_refund.json", "refunds/create", order_id=111)
    assert [r.reason for r in report.rejections] == [
        "order 111: not stored yet (its orders/* webhook or the reconcile brings it, with its "
        "refunds)"
    ]
    report = apply(
        store,
        "shopify_reverse_delivery.json",
        "reverse_deliveries/attach_deliverable",
        **{"return": {"id": 4242}},
    )
    assert [r.reason for r in report.rejections] == ["return 4242: not known yet (returns/request)"]
    assert store.count("shipments") == 2 and store.count("order_refunds") == 1


def test_woocommerce_refunds_and_a_return_plugin_status() -> None:
    raw = json.loads((PAYLOADS / "woocommerce_order.json").read_text(encoding="utf-8"))
    woo = copy.deepcopy(raw) | {"status": "return-requested"}
    parsed, facts = parse_platform(
        json.dumps(woo), "w.json", "woocommerce", ShopMapping(), DIRECTORY, now=AT
    )
    f = facts["727"]
    modified = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
    assert [(r.refund_id, r.amount, r.currency, r.created_at) for r in f.refunds] == [
        ("726", Decimal("20.00"), "EUR", modified)
    ]
    assert [(r.return_id, r.status, r.at) for r in f.returns] == [
        ("woo-727", "requested", modified)
    ]
    plain = parse_platform(
        json.dumps(raw), "w.json", "woocommerce", ShopMapping(), DIRECTORY, now=AT
    )
    assert plain[1]["727"].returns == ()


def test_orders_show_lists_refunds_returns_and_the_return_parcel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from aftersale.cli.app import app

    db = str(tmp_path / "a.duckdb")
    monkeypatch.setenv("AFTERSALE_DB", db)
    with open_store(db) as s:
        text = (PAYLOADS / "shopify_order_split.json").read_text(encoding="utf-8")
        parsed, facts = parse_platform(text, "o.json", "shopify", ShopMapping(), DIRECTORY, now=AT)
        apply_platform_orders(s, parsed, facts, "o.json", AT, DIRECTORY)
        apply(s, "shopify_return_request.json", "returns/request")
        apply(s, "shopify_reverse_delivery.json", "reverse_deliveries/attach_deliverable")
    result = CliRunner().invoke(app, ["orders", "show", "#1047", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["refunds"] == [
        {"id": "921430", "amount": "9.99", "currency": "GBP", "at": "2026-11-25T10:00:00+00:00"}
    ]
    assert [(r["id"], r["status"]) for r in data["returns"]] == [("9901", "requested")]
    assert {s["tracking_number"]: s["return_id"] for s in data["shipments"]} == {
        "1Z999AA10123456784": None,
        "JJD000390007777777": None,
        "1Z999AA10123456785": "9901",
    }
    text_out = CliRunner().invoke(app, ["orders", "show", "#1047"]).stdout
    assert "return parcel UPS 1Z999AA10123456785: pending" in text_out
    assert "return 9901: requested" in text_out and "refund 921430: 9.99 GBP" in text_out
