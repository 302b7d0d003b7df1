"""Shop platforms' order JSON mapped to aftersale's order row, field by field."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from aftersale.intake.shops import PLATFORMS
from aftersale.intake.shops.base import RecordError, ShopMapping, carrier_slug, signature_valid
from carriers.registry import DIRECTORY

PAYLOADS = Path(__file__).parent / "payloads"
MAPPING = ShopMapping(
    categories={"television": "tv"},
    sku_prefixes={"NW-HDMI": "accessories", "NW-HP": "headphones"},
    warranty_months={"tv": 24},
)


def load(name: str) -> dict:
    return json.loads((PAYLOADS / name).read_text(encoding="utf-8"))


def test_a_shopify_order_with_two_live_fulfilments_is_a_split_shipment() -> None:
    mapped = PLATFORMS["shopify"].map_order(load("shopify_order_split.json"), MAPPING, DIRECTORY)
    row = mapped.row
    assert row["order_id"] == "#1047"
    assert row["placed_at"] == "2026-11-23T09:14:05+00:00"
    assert row["customer"] == {
        "id": "shopify:7151245689",
        "name": "James Walker",
        "email": "james.walker@example.co.uk",
        "phone": "+447911123456",
        "locale": "en-GB",
        "time_zone": "Europe/London",
        "consent": {"email": True, "sms": False},
        "country": "GB",
        "tags": ["vip", "newsletter"],
    }
    assert [(i["sku"], i["category"], i["price"], i["currency"]) for i in row["items"]] == [
        ("NW-TV-55", "tv", "599.00", "GBP"),
        ("NW-HDMI-2M", "accessories", "9.99", "GBP"),
    ]
    assert row["items"][0]["warranty_months"] == 24
    # the cancelled DPD fulfilment is not a parcel; each parcel names its items (the
    # cable's line in the DHL fulfilment has no SKU: the order line of its id gives it)
    assert row["shipments"] == [
        {"carrier": "ups", "tracking_number": "1Z999AA10123456784", "items": ["NW-TV-55"]},
        {"carrier": "dhl", "tracking_number": "JJD000390007777777", "items": ["NW-HDMI-2M"]},
    ]
    facts = mapped.facts
    assert facts.updated_at == datetime(2026, 11, 24, 15, 2, 11, tzinfo=UTC)
    assert [(r.amount, r.currency) for r in facts.refunds] == [(Decimal("9.99"), "GBP")]
    assert facts.cancelled_at is None


def test_a_woocommerce_order_takes_tracking_from_the_shipment_tracking_meta() -> None:
    mapped = PLATFORMS["woocommerce"].map_order(load("woocommerce_order.json"), MAPPING, DIRECTORY)
    row = mapped.row
    assert row["order_id"] == "727"
    assert row["placed_at"] == "2026-11-23T09:20:00+00:00"
    assert row["customer"]["id"] == "woocommerce:26"
    assert (row["customer"]["locale"], row["customer"]["time_zone"]) == ("de-AT", "Europe/Vienna")
    assert row["customer"]["consent"] == {"email": False, "sms": False}
    assert row["items"] == [
        {
            "sku": "NW-HP-Q1",
            "name": "Kopfhörer NW Quiet",
            "category": "headphones",
            "quantity": 1,
            "price": "199",
            "currency": "EUR",
        }
    ]
    assert row["shipments"] == [{"carrier": "dpd", "tracking_number": "01234567800010"}]
    assert [r.amount for r in mapped.facts.refunds] == [Decimal("20.00")]


@pytest.mark.parametrize(
    ("platform", "payload", "reason"),
    [
        (
            "shopify",
            {"id": 1, "tracking_number": "1Z"},
            "order: a fulfilment (no `name` or `line_items`)",
        ),
        (
            "shopify",
            {"id": 1, "name": "#1", "currency": "PLN", "line_items": []},
            "line_items: an order needs at least one line item",
        ),
        (
            "shopify",
            {
                "id": 1,
                "name": "#1",
                "currency": "PLN",
                "line_items": [{"title": "x", "price": "abc"}],
            },
            "line_items.0.price: 'abc' is not a price",
        ),
        ("woocommerce", {"id": 1}, "order: not a WooCommerce order (no `line_items` or `billing`)"),
        ("woocommerce", [1], "order: expected a JSON object, got list"),
    ],
)
def test_a_record_that_cannot_be_mapped_says_which_field(
    platform: str, payload, reason: str
) -> None:
    with pytest.raises(RecordError) as exc:
        PLATFORMS[platform].map_order(payload, MAPPING, DIRECTORY)
    assert str(exc.value).startswith(reason)


def test_signatures_are_base64_hmac_sha256_of_the_raw_body() -> None:
    body = b'{"id": 1}'
    good = base64.b64encode(hmac.new(b"s3cret", body, hashlib.sha256).digest()).decode()
    assert signature_valid("s3cret", body, good)
    assert not signature_valid("s3cret", body + b" ", good)
    assert not signature_valid("other", body, good)
    assert not signature_valid("s3cret", body, None)
    assert not signature_valid("", body, good)


def test_carrier_names_as_platforms_spell_them() -> None:
    carriers = DIRECTORY
    assert [
        carrier_slug(n, carriers)
        for n in ("UPS", "DHL Express", "dpd-uk", "InPost", "Royal Mail", None)
    ] == [
        "ups",
        "dhl",
        "dpd",
        "inpost",
        None,
        None,
    ]
