"""The Shopify Admin GraphQL client against a local fake of the endpoint: cursor pages,
long orders read on their own, the cost-based throttle (THROTTLED answers, pages waited
for), faults, refusals; and a GraphQL order maps to the same row as its REST twin."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from aftersale.errors import ConfigError, ShopApiError
from aftersale.intake.rows import validate_row
from aftersale.intake.shops import PLATFORMS
from aftersale.intake.shops.shopify_admin import (
    ORDER_LISTS_QUERY,
    ORDERS_QUERY,
    PAGE_SIZE,
    AdminClient,
    AdminConfig,
    to_rest_order,
)
from carriers.registry import DIRECTORY
from tests.intake.shops.test_mapping import MAPPING
from tests.support.shopify_admin import (
    FakeShop,
    FakeShopifyAdmin,
    load_orders,
    parse_query,
    requested_cost,
)

PAYLOADS = Path(__file__).parent / "payloads"
SINCE = datetime(2026, 11, 1, tzinfo=UTC)


class FakeClock:
    """Monotonic seconds that move only when the client sleeps: the fake's bucket refills
    by the same clock, so waiting is exact and takes no time."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture()
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture()
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


def client_for(fake: FakeShopifyAdmin, http: httpx.Client, clock: FakeClock, **kw) -> AdminClient:
    config = AdminConfig("northwind", "shpat_test", fake.url)
    return AdminClient(config, http, clock=clock, sleep=clock.sleep, **kw)


def names(pages) -> list[list[str]]:  # type: ignore[no-untyped-def]
    return [[o["name"] for o in page.orders] for page in pages]


def test_a_graphql_order_maps_to_the_same_order_and_facts_as_its_rest_twin() -> None:
    stored = next(o for o in load_orders() if o["name"] == "#1047")
    # as the API answers: connections' items under `nodes`
    node = {
        **stored,
        "lineItems": {"nodes": stored["lineItems"]},
        "fulfillments": [
            {**f, "fulfillmentLineItems": {"nodes": f["fulfillmentLineItems"]}}
            for f in stored["fulfillments"]
        ],
        "returns": {"nodes": stored["returns"]},
    }
    rest = json.loads((PAYLOADS / "shopify_order_split.json").read_text(encoding="utf-8"))
    now = datetime(2026, 11, 25, tzinfo=UTC)

    def mapped(raw: dict):  # type: ignore[no-untyped-def]
        result = PLATFORMS["shopify"].map_order(raw, MAPPING, DIRECTORY)
        order, problems = validate_row("t", 1, result.row, DIRECTORY, now)
        assert not problems
        return order, result.facts

    from_graphql = mapped(to_rest_order(node))
    # the reconcile also brings the returns' states (REST's order JSON has none)
    [ret] = from_graphql[1].returns
    assert (ret.return_id, ret.status, ret.at) == ("9901", "open", from_graphql[1].updated_at)
    assert (from_graphql[0], replace(from_graphql[1], returns=())) == mapped(rest)
    order = from_graphql[0]
    assert order is not None
    # each parcel with the line items its fulfilment carries (fulfillmentLineItems)
    assert [(s.carrier, s.tracking_number, s.items) for s in order.shipments] == [
        ("ups", "1Z999AA10123456784", ("NW-TV-55",)),
        ("dhl", "JJD000390007777777", ("NW-HDMI-2M",)),
    ]


def test_pages_follow_the_cursor_and_a_long_order_is_read_whole(
    http: httpx.Client, clock: FakeClock
) -> None:
    shop = FakeShop(load_orders(), clock=clock)
    with FakeShopifyAdmin(shop) as fake:
        client = client_for(fake, http, clock, page_size=2)
        pages = list(client.orders_updated_since(datetime(2026, 11, 24, 15, 30, tzinfo=UTC)))
    # #1047 changed before the time asked for; the rest come oldest change first
    assert names(pages) == [["#1048", "#1049"], ["#1050", "#1051"]]
    long_order = pages[0].orders[0]
    assert [line["sku"] for line in long_order["line_items"]] == [
        f"NW-CB-{i:02d}" for i in range(1, 13)
    ]  # 12 lines: 10 on the page, all 12 from the order's own query
    asked = [(r["operationName"], r["variables"]) for r in shop.requests]
    assert asked == [
        (
            "ReconcileOrders",
            {"first": 2, "after": None, "query": "updated_at:>'2026-11-24T15:30:00Z'"},
        ),
        ("ReconcileOrderLists", {"id": "gid://shopify/Order/5745038016650", "after": None}),
        (
            "ReconcileOrders",
            {"first": 2, "after": asked[2][1]["after"], "query": asked[0][1]["query"]},
        ),
    ]
    assert asked[2][1]["after"]  # the first page's endCursor
    assert all(not page.problems for page in pages)
    assert clock.sleeps == []  # a full bucket: no wait


def test_the_throttle_is_waited_out_and_a_page_low_on_points_waits_for_them(
    http: httpx.Client, clock: FakeClock
) -> None:
    """The bucket starts low (another job of the same app used it): the first page is
    THROTTLED and waits exactly for the points it lacks; the next page finds the bucket
    short again and waits ahead for what it costs, so Shopify does not refuse it."""
    shop = FakeShop(load_orders(), clock=clock, maximum=1000, restore_rate=50, available=100)
    page_cost = requested_cost(parse_query(ORDERS_QUERY, {"first": 2}))
    with FakeShopifyAdmin(shop) as fake:
        client = client_for(fake, http, clock, page_size=2)
        pages = list(client.orders_updated_since(datetime(2026, 11, 24, 16, 30, tzinfo=UTC)))
    assert names(pages) == [["#1049", "#1050"], ["#1051"]]
    assert [r["outcome"] for r in shop.log] == ["THROTTLED", "ok", "ok"]
    throttled, first, second = shop.log
    assert throttled["available"] == 100 and throttled["requested"] == page_cost
    assert clock.sleeps[0] == pytest.approx((page_cost + 1 - 100) / 50)  # a point spare
    assert first["available"] == pytest.approx(page_cost + 1)  # waited just long enough
    # the first page spent points; the second waited until it could be paid, no longer
    assert len(clock.sleeps) == 2 and clock.sleeps[1] > 0
    assert second["available"] == pytest.approx(page_cost + 1)
    assert (client.throttled, client.requests) == (1, 3)
    assert client.waited_s == pytest.approx(sum(clock.sleeps))


def test_an_order_read_on_its_own_waits_for_its_own_cost(
    http: httpx.Client, clock: FakeClock
) -> None:
    """The long order's own query costs more than a page: its first ask is THROTTLED (its
    cost was not known yet), then it waits for exactly what it lacks."""
    shop = FakeShop(load_orders(), clock=clock, maximum=1000, restore_rate=50, available=300)
    with FakeShopifyAdmin(shop) as fake:
        pages = list(client_for(fake, http, clock, page_size=2).orders_updated_since(SINCE))
    assert names(pages) == [["#1047", "#1048"], ["#1049", "#1050"], ["#1051"]]
    # #1047's return parcels (an approved return) and #1048's long lists: each its own query
    assert [(r["operation"], r["outcome"]) for r in shop.log] == [
        ("ReconcileOrders", "ok"),
        ("ReconcileReturnParcels", "THROTTLED"),
        ("ReconcileReturnParcels", "ok"),
        ("ReconcileOrderLists", "THROTTLED"),
        ("ReconcileOrderLists", "ok"),
        ("ReconcileOrders", "ok"),
        ("ReconcileOrders", "ok"),
    ]
    for waited in (shop.log[2], shop.log[4]):
        assert waited["available"] == pytest.approx(waited["requested"] + 1)
    assert pages[0].return_parcels == [
        {
            "return": {"id": "9901"},
            "shipping_deliverable": {
                "tracking": {"tracking_number": "1Z999AA10123456785", "carrier_name": "UPS"}
            },
        }
    ]


def test_a_query_costing_too_much_is_asked_in_smaller_pages(
    http: httpx.Client, clock: FakeClock
) -> None:
    shop = FakeShop(load_orders(), clock=clock, max_cost=700)
    with FakeShopifyAdmin(shop) as fake:
        client = client_for(fake, http, clock)
        pages = list(client.orders_updated_since(SINCE))
    assert requested_cost(parse_query(ORDERS_QUERY, {"first": PAGE_SIZE})) > 700
    assert client.page_size == PAGE_SIZE // 2 == 4
    assert names(pages) == [["#1047", "#1048", "#1049", "#1050"], ["#1051"]]


def test_a_gateway_fault_is_retried_then_the_run_goes_on(
    http: httpx.Client, clock: FakeClock
) -> None:
    shop = FakeShop(load_orders(), clock=clock, faults=[502, 503])
    with FakeShopifyAdmin(shop) as fake:
        pages = list(client_for(fake, http, clock).orders_updated_since(SINCE))
    assert len(pages[0].orders) == 5
    assert clock.sleeps == [1.0, 2.0]


def test_faults_that_do_not_clear_are_a_transient_error(
    http: httpx.Client, clock: FakeClock
) -> None:
    shop = FakeShop(load_orders(), clock=clock, faults=[502, 502, 502])
    with FakeShopifyAdmin(shop) as fake, pytest.raises(ShopApiError) as caught:
        list(client_for(fake, http, clock).orders_updated_since(SINCE))
    assert caught.value.transient
    assert str(caught.value) == f"shopify: {fake.url}: HTTP 502 (3 attempts)"


def test_a_refused_token_says_what_to_set_and_is_not_retried(
    http: httpx.Client, clock: FakeClock
) -> None:
    shop = FakeShop(load_orders(), clock=clock, token="shpat_other")
    with FakeShopifyAdmin(shop) as fake, pytest.raises(ShopApiError) as caught:
        list(client_for(fake, http, clock).orders_updated_since(SINCE))
    assert not caught.value.transient
    assert str(caught.value) == (
        f"shopify: {fake.url} refused the access token (401): set SHOPIFY_ADMIN_TOKEN to the "
        "custom app's Admin API access token"
    )
    assert len(shop.requests) == 1


def test_a_field_the_api_does_not_know_is_an_error_naming_it(
    http: httpx.Client, clock: FakeClock
) -> None:
    orders = load_orders()
    for order in orders:
        del order["customerLocale"]  # as if the field were renamed in a later API version
    with FakeShopifyAdmin(FakeShop(orders, clock=clock)) as fake, pytest.raises(ShopApiError) as e:
        list(client_for(fake, http, clock).orders_updated_since(SINCE))
    assert str(e.value) == (
        "shopify: the Admin API refused the query: Field 'customerLocale' doesn't exist on type"
    )


@pytest.mark.parametrize(
    ("env", "error"),
    [
        ({}, "SHOPIFY_SHOP is not set: the shop's name, northwind for northwind.myshopify.com"),
        (
            {"SHOPIFY_SHOP": "North Wind"},
            "SHOPIFY_SHOP='North Wind': expected the shop's myshopify name, like northwind",
        ),
        (
            {"SHOPIFY_SHOP": "northwind"},
            "SHOPIFY_ADMIN_TOKEN is not set: the Admin API access token of the shop's custom "
            "app (docs/shops.md)",
        ),
    ],
)
def test_settings_missing_or_malformed_are_named(env: dict[str, str], error: str) -> None:
    with pytest.raises(ConfigError) as caught:
        AdminConfig.from_env(env)
    assert str(caught.value) == error


def test_the_shop_may_be_given_as_its_myshopify_address() -> None:
    config = AdminConfig.from_env(
        {"SHOPIFY_SHOP": "https://northwind.myshopify.com/", "SHOPIFY_ADMIN_TOKEN": "t"}
    )
    assert config.url == "https://northwind.myshopify.com/admin/api/2025-10/graphql.json"
    assert config.source == "shopify-admin:northwind"
    assert "token=" not in repr(config)  # never in a log line


def test_a_page_and_an_order_read_on_its_own_fit_one_query() -> None:
    """Shopify refuses a query asking more than 1000 points (MAX_COST_EXCEEDED): the page
    and the one-order query, fulfilment line items included, stay below it."""
    assert requested_cost(parse_query(ORDERS_QUERY, {"first": PAGE_SIZE})) <= 1000
    assert requested_cost(parse_query(ORDER_LISTS_QUERY, {})) <= 1000
