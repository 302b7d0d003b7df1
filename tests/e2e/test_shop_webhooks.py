"""Shop platforms' webhooks against the real receiver (`aftersale webhooks serve` on
127.0.0.1, DuckDB so bodies are spooled): signed orders are kept and stored by the next
cycle's intake; unsigned, oversized and unknown-topic requests store nothing; a replayed
or older delivery changes nothing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from aftersale.intake.shop_webhooks import ingest_shop_spool
from aftersale.intake.shops.base import ShopMapping
from aftersale.store import open_store
from carriers.registry import DIRECTORY
from tests.support.servers import webhook_receiver

SECRET = "shpss_test_secret"
WOO_SECRET = "woo-secret"
PAYLOADS = Path(__file__).parents[1] / "intake" / "shops" / "payloads"
NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    workdir = tmp_path_factory.mktemp("shops")
    env = {
        "AFTERSALE_DB": str(workdir / "a.duckdb"),
        # the public page behind the https proxy (unsubscribe links must be https)
        "AFTERSALE_UNSUBSCRIBE_URL": "https://hooks.northwind.example/unsubscribe",
        "SHOPIFY_WEBHOOK_SECRET": SECRET,
        "WOOCOMMERCE_WEBHOOK_SECRET": WOO_SECRET,
    }
    with webhook_receiver(workdir, env) as url:
        yield url, workdir


def sign(body: bytes, secret: str = SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def post(url: str, payload: dict, topic: str, delivery: str, **headers: str) -> httpx.Response:
    body = json.dumps(payload).encode()
    return httpx.post(
        f"{url}/webhooks/shopify",
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-Shopify-Topic": topic,
            "X-Shopify-Webhook-Id": delivery,
            "X-Shopify-Hmac-Sha256": sign(body),
            **headers,
        },
    )


def order(**changes) -> dict:
    data = json.loads((PAYLOADS / "shopify_order_split.json").read_text(encoding="utf-8"))
    data.update(changes)
    return data


def ingest(workdir: Path) -> list:
    with open_store(str(workdir / "a.duckdb")) as store:
        reports = ingest_shop_spool(
            store, workdir / "webhooks", now=NOW, carriers=DIRECTORY, mapping=ShopMapping()
        )
        stored = store.load_order("#1047")
        versions = store.platform_orders(["#1047"])
    return [reports, stored, versions]


def test_signed_orders_are_stored_once_and_nothing_else_gets_in(receiver) -> None:
    url, workdir = receiver
    first = order(fulfillments=[], refunds=[], updated_at="2026-11-23T10:00:00+00:00")
    assert post(url, first, "orders/create", "d-1").status_code == 200
    assert post(url, first, "orders/create", "d-1").status_code == 200  # a retry

    # refused, nothing spooled: unsigned, signed with another secret, unknown topic, too big
    body = json.dumps(order()).encode()
    unsigned = httpx.post(
        f"{url}/webhooks/shopify", content=body, headers={"X-Shopify-Topic": "orders/updated"}
    )
    assert unsigned.status_code == 401
    assert (
        post(
            url, order(), "orders/updated", "d-x", **{"X-Shopify-Hmac-Sha256": sign(body, "no")}
        ).status_code
        == 401
    )
    unknown = post(url, order(), "products/update", "d-2")
    assert (unknown.status_code, unknown.text) == (
        400,
        "shopify: topic 'products/update' is not one aftersale takes",
    )
    huge = httpx.post(
        f"{url}/webhooks/shopify",
        content=b"x" * (3 * 1024 * 1024),
        headers={"X-Shopify-Topic": "orders/updated", "X-Shopify-Hmac-Sha256": "x"},
    )
    assert huge.status_code == 413
    assert post(url, {"id": 1}, "fulfillments/create", "d-3").json() == {
        "ok": True,
        "stored": False,
        "topic": "fulfillments/create",
    }
    assert httpx.post(f"{url}/webhooks/magento", content=b"{}").status_code == 404

    reports, stored, _ = ingest(workdir)
    assert [r.loaded for r in reports] == [1, 0]
    assert stored is not None and stored.shipments == ()

    # the later fulfilments arrive with orders/updated; an older copy, delivered late, loses
    assert post(url, order(), "orders/updated", "d-4").status_code == 200
    stale = order(updated_at="2026-11-23T11:00:00+00:00", cancelled_at="2026-11-23T11:00:00+00:00")
    assert post(url, stale, "orders/cancelled", "d-5").status_code == 200
    reports, stored, versions = ingest(workdir)
    assert [s.tracking_number for s in stored.shipments] == [
        "1Z999AA10123456784",
        "JJD000390007777777",
    ]
    assert versions["#1047"].cancelled_at is None
    assert not list((workdir / "webhooks" / "shops").glob("*.json"))


def test_woocommerce_pings_and_orders(receiver) -> None:
    url, workdir = receiver
    ping = b"webhook_id=12"
    answer = httpx.post(
        f"{url}/webhooks/woocommerce",
        content=ping,
        headers={"X-WC-Webhook-Signature": sign(ping, WOO_SECRET)},
    )
    assert answer.json() == {"ok": True, "ping": True}
    body = (PAYLOADS / "woocommerce_order.json").read_bytes()
    stored = httpx.post(
        f"{url}/webhooks/woocommerce",
        content=body,
        headers={
            "X-WC-Webhook-Topic": "order.created",
            "X-WC-Webhook-Delivery-ID": "w-1",
            "X-WC-Webhook-Signature": sign(body, WOO_SECRET),
        },
    )
    assert stored.status_code == 200, stored.text
    with open_store(str(workdir / "a.duckdb")) as store:
        [report] = ingest_shop_spool(
            store, workdir / "webhooks", now=NOW, carriers=DIRECTORY, mapping=ShopMapping()
        )
        assert report.loaded == 1
        assert store.load_order("727") is not None


def payload(name: str) -> dict:
    return json.loads((PAYLOADS / name).read_text(encoding="utf-8"))


def test_returns_refunds_and_return_parcels_by_webhook(receiver) -> None:
    """Shopify's returns/*, reverse_deliveries/attach_deliverable and refunds/create in
    their documented shapes: stored once each, out of order by X-Shopify-Triggered-At; a
    body that is not what its topic says is refused with the reason, nothing spooled."""
    url, workdir = receiver
    assert post(url, order(), "orders/updated", "r-0").status_code == 200
    ingest(workdir)  # the order first: updates about an order not stored are rejected
    wrong = post(url, payload("shopify_return_request.json"), "refunds/create", "r-x")
    assert (wrong.status_code, wrong.text) == (
        400,
        "shopify refunds/create: refund: not a Shopify refund (no `order_id` or `transactions`)",
    )
    assert not list((workdir / "webhooks" / "shops").glob("*.json"))
    ret = payload("shopify_return_request.json")
    at = "X-Shopify-Triggered-At"
    assert post(url, ret, "returns/request", "r-1", **{at: "2026-11-25T09:00:00Z"}).is_success
    # the close, then the approval delivered late: the return stays closed
    closed, opened = {**ret, "status": "CLOSED"}, {**ret, "status": "OPEN"}
    assert post(url, closed, "returns/close", "r-2", **{at: "2026-11-25T12:00:00Z"}).is_success
    assert post(url, opened, "returns/approve", "r-3", **{at: "2026-11-25T10:00:00Z"}).is_success
    parcel = payload("shopify_reverse_delivery.json")
    topic = "reverse_deliveries/attach_deliverable"
    assert post(url, parcel, topic, "r-4").is_success
    assert post(url, parcel, topic, "r-4").is_success  # a retry
    assert post(url, payload("shopify_refund.json"), "refunds/create", "r-5").is_success
    with open_store(str(workdir / "a.duckdb")) as store:
        reports = ingest_shop_spool(
            store, workdir / "webhooks", now=NOW, carriers=DIRECTORY, mapping=ShopMapping()
        )
        assert all(not r.rejections for r in reports)
        refunds, returns = store.refunds_and_returns_of(["#1047"])
        back = store.shipments_of(["#1047"])["1Z999AA10123456785"]
    assert [r.refund_id for r in refunds] == ["921430", "921431"]
    assert [(r.return_id, r.status) for r in returns] == [("9901", "closed")]
    assert returns[0].requested_at == datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
    assert (back.carrier, back.return_id) == ("ups", "9901")
