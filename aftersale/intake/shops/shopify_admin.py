"""Shopify Admin GraphQL API: the orders changed since a time, for the reconcile flow
(webhooks can be missed).

Docs: https://shopify.dev/docs/api/admin-graphql/2025-10/queries/orders (the `orders`
query: search `updated_at:>'…'`, `sortKey: UPDATED_AT`), https://shopify.dev/docs/api/
usage/pagination-graphql (cursors), https://shopify.dev/docs/apps/build/apis/graphql-admin/
rate-limits (calculated query cost).
Auth: `X-Shopify-Access-Token` is a custom app's Admin API access token
(`SHOPIFY_ADMIN_TOKEN`; scopes read_orders, read_customers, read_fulfillments,
read_returns); the shop is
`SHOPIFY_SHOP` (northwind for northwind.myshopify.com); `AFTERSALE_SHOPIFY_ADMIN_URL`
replaces the endpoint (a local fake).
Rate limit: a leaky bucket of points per app and shop. Every answer carries
`extensions.cost` (`requestedQueryCost`, `throttleStatus {currentlyAvailable,
maximumAvailable, restoreRate}`); a query asking more points than are available is refused
with `errors[].extensions.code` THROTTLED (HTTP 200, sometimes 429), and one costing more
than 1000 with MAX_COST_EXCEEDED. We wait for the points a page costs before asking for it.
Quirks: ids are gids (gid://shopify/Order/5745038016649; REST uses the number); enums are
upper case (CUSTOMER, SUBSCRIBED) where REST is lower case; `fulfillments` and `refunds` are
plain lists (no cursor), so an order whose lists fill a page is read again on its own with
longer lists, and its line items page by cursor.

Each order becomes the REST `Order` JSON that shopify.map_order reads (to_rest_order), so
a webhook, a saved payload and a reconcile give the same order row; each parcel sent back
for an approved return becomes the REST ReverseDelivery body (to_reverse_deliveries).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from aftersale.errors import ConfigError, ShopApiError
from aftersale.intake.shops.base import obj

API_VERSION = "2025-10"
#: Orders per page (a page costs about 960 of the 1000 points one query may ask); halved
#: while Shopify answers MAX_COST_EXCEEDED.
PAGE_SIZE = 8
#: How long each list of an order is on a page, and when the order is read on its own.
PAGE_LINES, PAGE_FULFILMENTS, PAGE_TRACKING, PAGE_REFUNDS = 10, 5, 3, 5
ONE_LINES, ONE_FULFILMENTS, ONE_TRACKING, ONE_REFUNDS = 50, 15, 5, 30
#: The line items each fulfilment carries (which parcel holds what): on a page, on its own.
PAGE_CARRIED, ONE_CARRIED = 5, 15
#: Returns per order: on a page, and read on its own (a connection, unlike the lists above).
PAGE_RETURNS, ONE_RETURNS = 3, 20
#: An approved return's reverse fulfilment orders and their reverse deliveries (parcels).
RETURN_ORDERS, RETURN_DELIVERIES = 3, 3
#: THROTTLED answers in a row before a run gives up (each waits for the points it lacks).
MAX_THROTTLED = 5
#: Attempts at a request that times out or meets a 5xx.
MAX_ATTEMPTS = 3

_LINE_ITEM = (
    "sku name quantity originalUnitPriceSet { shopMoney { amount } } "
    "variant { id } product { productType tags }"
)


def _order_lists(
    lines: int,
    fulfilments: int,
    tracking: int,
    carried: int,
    refunds: int,
    returns: int,
    after: str = "",
) -> str:
    return f"""
      lineItems(first: {lines}{after}) {{
        pageInfo {{ hasNextPage endCursor }}
        nodes {{ {_LINE_ITEM} }}
      }}
      fulfillments(first: {fulfilments}) {{
        status
        trackingInfo(first: {tracking}) {{ company number }}
        fulfillmentLineItems(first: {carried}) {{
          pageInfo {{ hasNextPage }}
          nodes {{ lineItem {{ sku }} }}
        }}
      }}
      refunds(first: {refunds}) {{
        id createdAt
        totalRefundedSet {{ shopMoney {{ amount currencyCode }} }}
      }}
      returns(first: {returns}) {{
        nodes {{ id status }}
      }}"""


_PAGE_ORDER_LISTS = _order_lists(
    PAGE_LINES, PAGE_FULFILMENTS, PAGE_TRACKING, PAGE_CARRIED, PAGE_REFUNDS, PAGE_RETURNS
)
#: Exactly the fields shopify.map_order reads, in GraphQL's names.
ORDERS_QUERY = f"""
query ReconcileOrders($first: Int!, $after: String, $query: String!) {{
  orders(first: $first, after: $after, query: $query, sortKey: UPDATED_AT) {{
    pageInfo {{ hasNextPage endCursor }}
    nodes {{
      id name email phone createdAt updatedAt cancelledAt cancelReason
      currencyCode customerLocale
      customer {{
        id firstName lastName tags
        defaultEmailAddress {{ emailAddress }}
        defaultPhoneNumber {{ phoneNumber }}
        emailMarketingConsent {{ marketingState }}
        smsMarketingConsent {{ marketingState }}
      }}
      shippingAddress {{ firstName lastName name phone countryCodeV2 }}
      {_PAGE_ORDER_LISTS}
    }}
  }}
}}
"""

_ONE_ORDER_LISTS = _order_lists(
    ONE_LINES,
    ONE_FULFILMENTS,
    ONE_TRACKING,
    ONE_CARRIED,
    ONE_REFUNDS,
    ONE_RETURNS,
    ", after: $after",
)
#: One order's lists, longer than a page holds, its line items by cursor.
ORDER_LISTS_QUERY = f"""
query ReconcileOrderLists($id: ID!, $after: String) {{
  order(id: $id) {{
    {_ONE_ORDER_LISTS}
  }}
}}
"""


#: The parcels customers send back for an order's returns (a missed
#: reverse_deliveries/attach_deliverable webhook): asked for only for an order with an
#: approved return, since a return's label and tracking number exist only once approved.
RETURN_PARCELS_QUERY = f"""
query ReconcileReturnParcels($id: ID!) {{
  order(id: $id) {{
    returns(first: {ONE_RETURNS}) {{
      nodes {{
        id status
        reverseFulfillmentOrders(first: {RETURN_ORDERS}) {{
          nodes {{
            reverseDeliveries(first: {RETURN_DELIVERIES}) {{
              nodes {{
                deliverable {{
                  ... on ReverseDeliveryShippingDeliverable {{
                    tracking {{ number carrierName }}
                  }}
                }}
              }}
            }}
          }}
        }}
      }}
    }}
  }}
}}
"""


@dataclass(frozen=True, slots=True)
class AdminConfig:
    shop: str
    token: str = field(repr=False)
    url: str

    @property
    def source(self) -> str:
        """The name this shop's pulls go by: the checkpoint's key, the orders' source."""
        return f"shopify-admin:{self.shop}"

    @staticmethod
    def connected(env: Mapping[str, str]) -> bool:
        """Whether the environment connects a Shopify shop at all (half a setting is an
        error, from from_env; none is a shop without Shopify)."""
        return bool(env.get("SHOPIFY_SHOP") or env.get("SHOPIFY_ADMIN_TOKEN"))

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> AdminConfig:
        shop = re.sub(r"^https?://|\.myshopify\.com/?$|/$", "", env.get("SHOPIFY_SHOP", "").strip())
        if not shop:
            raise ConfigError(
                "SHOPIFY_SHOP is not set: the shop's name, northwind for northwind.myshopify.com"
            )
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", shop):
            raise ConfigError(
                f"SHOPIFY_SHOP={shop!r}: expected the shop's myshopify name, like northwind"
            )
        token = env.get("SHOPIFY_ADMIN_TOKEN", "").strip()
        if not token:
            raise ConfigError(
                "SHOPIFY_ADMIN_TOKEN is not set: the Admin API access token of the shop's "
                "custom app (docs/shops.md)"
            )
        url = env.get("AFTERSALE_SHOPIFY_ADMIN_URL") or (
            f"https://{shop}.myshopify.com/admin/api/{API_VERSION}/graphql.json"
        )
        return cls(shop, token, url)


@dataclass(frozen=True, slots=True)
class Page:
    """One page of orders, in REST shape, oldest change first."""

    orders: list[dict[str, Any]]
    #: index into `orders` -> why that order cannot be applied
    problems: dict[int, str] = field(default_factory=dict)
    #: the parcels sent back for these orders' approved returns, each as the REST
    #: ReverseDelivery body reverse_deliveries/attach_deliverable delivers
    return_parcels: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class _Bucket:
    available: float
    maximum: float
    rate: float
    seen_at: float


class _TooCostly(Exception):
    """Shopify answered MAX_COST_EXCEEDED: the query asks for too much at once."""


class AdminClient:
    """Reads orders from one shop's Admin API. `clock` (monotonic seconds) and `sleep` are
    the only time it knows, so tests can move time without waiting for it."""

    def __init__(
        self,
        config: AdminConfig,
        http: httpx.Client,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        page_size: int = PAGE_SIZE,
    ) -> None:
        self.config = config
        self.http = http
        self.clock = clock
        self._sleep = sleep
        self.page_size = page_size
        self.requests = 0
        self.throttled = 0  # THROTTLED answers met
        self.waited_s = 0.0  # time spent waiting for points or after faults
        self._bucket: _Bucket | None = None
        self._cost: dict[str, float] = {}  # operation -> its last requestedQueryCost

    def orders_updated_since(self, since: datetime) -> Iterator[Page]:
        """Every order changed after `since`, a page at a time, oldest change first."""
        search = f"updated_at:>'{since.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}'"
        after: str | None = None
        while True:
            variables = {"first": self.page_size, "after": after, "query": search}
            try:
                data = self._call("ReconcileOrders", ORDERS_QUERY, variables)
            except _TooCostly:
                if self.page_size == 1:
                    raise ShopApiError(
                        "shopify", "one order costs more than a query may", transient=False
                    ) from None
                self.page_size //= 2
                continue
            orders = obj(data.get("orders"))
            nodes = orders.get("nodes")
            if not isinstance(nodes, list):
                raise ShopApiError("shopify", "an orders page without nodes", transient=False)
            yield self._page([obj(n) for n in nodes])
            info = obj(orders.get("pageInfo"))
            if not info.get("hasNextPage"):
                return
            after = info.get("endCursor")
            if not isinstance(after, str) or not after:
                raise ShopApiError("shopify", "hasNextPage without an endCursor", transient=False)

    def _page(self, nodes: list[dict[str, Any]]) -> Page:
        orders, problems, parcels = [], {}, []
        for index, node in enumerate(nodes):
            if _lists_full(
                node, PAGE_FULFILMENTS, PAGE_TRACKING, PAGE_REFUNDS, PAGE_RETURNS
            ) or obj(obj(node.get("lineItems")).get("pageInfo")).get("hasNextPage"):
                node, problem = self._whole_lists(node)
                if problem:
                    problems[index] = problem
            orders.append(to_rest_order(node))
            if any(obj(r).get("status") == "OPEN" for r in _nodes(node.get("returns"))):
                parcels += self._return_parcels(node.get("id"))
        return Page(orders, problems, parcels)

    def _return_parcels(self, order_id: Any) -> list[dict[str, Any]]:
        try:
            data = self._call("ReconcileReturnParcels", RETURN_PARCELS_QUERY, {"id": order_id})
        except _TooCostly:
            raise ShopApiError(
                "shopify", "an order's return parcels cost more than a query may", transient=False
            ) from None
        return to_reverse_deliveries(obj(data.get("order")))

    def _whole_lists(self, node: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
        """The order with all its line items and its longer lists of fulfilments and
        refunds; a problem when even those lists are full (the API says no more)."""
        lines: list[Any] = []
        after: str | None = None
        while True:
            variables = {"id": node.get("id"), "after": after}
            try:
                data = self._call("ReconcileOrderLists", ORDER_LISTS_QUERY, variables)
            except _TooCostly:
                return node, (
                    "its lists cost more than one Admin API query may; import this order "
                    "from a saved REST payload (aftersale import --format shopify)"
                )
            order = data.get("order")
            if not isinstance(order, dict):
                return node, "the order is gone from the Admin API (deleted meanwhile?)"
            connection = obj(order.get("lineItems"))
            lines += connection.get("nodes") or []
            info = obj(connection.get("pageInfo"))
            after = info.get("endCursor")
            if not info.get("hasNextPage") or not after:
                break
        whole = {**node, **order, "lineItems": {"nodes": lines}}
        if _lists_full(whole, ONE_FULFILMENTS, ONE_TRACKING, ONE_REFUNDS, ONE_RETURNS):
            return whole, (
                f"{ONE_FULFILMENTS} or more fulfilments, {ONE_TRACKING} or more tracking "
                f"numbers or more than {ONE_CARRIED} line items in one, {ONE_REFUNDS} or "
                f"more refunds, or {ONE_RETURNS} or more returns: more than the Admin API "
                "lists; import this order from a saved REST payload (aftersale import --format "
                "shopify)"
            )
        return whole, None

    # --- one request ------------------------------------------------------------

    def _call(self, operation: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        """The `data` of one GraphQL request, after waiting for the points it costs."""
        faults = throttled = 0
        while True:
            self._wait_for_points(operation)
            self.requests += 1
            try:
                response = self.http.post(
                    self.config.url,
                    json={"query": query, "variables": variables, "operationName": operation},
                    headers={"X-Shopify-Access-Token": self.config.token},
                )
            except httpx.TransportError as exc:
                faults = self._after_fault(faults, f"cannot reach {self.config.url}: {exc}")
                continue
            body = _json(response)
            known_cost = self._note_cost(operation, body)
            codes = _error_codes(body)
            if "THROTTLED" in codes or response.status_code == 429:
                throttled += 1
                self.throttled += 1
                if throttled > MAX_THROTTLED:
                    raise ShopApiError(
                        "shopify", f"still throttled after {MAX_THROTTLED} waits", transient=True
                    )
                # the loop waits for the points it lacks; with no cost to go by (or none
                # lacking, by the answer's count), Retry-After or back off
                if not known_cost or not self._points_wait(operation):
                    self._wait(_retry_after(response) or 2.0**throttled)
                continue
            if response.status_code in (401, 403):
                raise ShopApiError(
                    "shopify",
                    f"{self.config.url} refused the access token ({response.status_code}): set "
                    "SHOPIFY_ADMIN_TOKEN to the custom app's Admin API access token",
                    transient=False,
                )
            if response.status_code >= 500:
                faults = self._after_fault(
                    faults, f"{self.config.url}: HTTP {response.status_code}"
                )
                continue
            if response.status_code != 200 or not isinstance(body, dict):
                raise ShopApiError(
                    "shopify",
                    f"{self.config.url}: HTTP {response.status_code}: {response.text[:200]!r}",
                    transient=False,
                )
            if "MAX_COST_EXCEEDED" in codes:
                raise _TooCostly()
            if body.get("errors"):
                raise ShopApiError("shopify", _error_text(body["errors"], codes), transient=False)
            data = body.get("data")
            if not isinstance(data, dict):
                raise ShopApiError("shopify", "an answer without data", transient=False)
            return data

    def _note_cost(self, operation: str, body: Any) -> bool:
        """Keep the bucket's state and what `operation` asks for; False when the answer
        says nothing of its cost."""
        cost = obj(obj(obj(body).get("extensions")).get("cost"))
        status = obj(cost.get("throttleStatus"))
        try:
            self._cost[operation] = float(cost["requestedQueryCost"])
            self._bucket = _Bucket(
                float(status["currentlyAvailable"]),
                float(status["maximumAvailable"]),
                float(status["restoreRate"]),
                self.clock(),
            )
        except (KeyError, TypeError, ValueError):
            return False
        return True

    def _wait_for_points(self, operation: str) -> None:
        if wait := self._points_wait(operation):
            self._wait(wait)

    def _points_wait(self, operation: str) -> float:
        """Seconds until the bucket holds what `operation` cost last time (it refills at
        `restoreRate` points a second since the last answer)."""
        need, bucket = self._cost.get(operation), self._bucket
        if need is None or bucket is None or bucket.rate <= 0:
            return 0.0
        # one point spare, so rounding on either side never leaves the bucket a hair short
        need = min(need + 1.0, bucket.maximum)
        available = bucket.available + bucket.rate * (self.clock() - bucket.seen_at)
        wait = (need - available) / bucket.rate
        return wait if wait > 0.001 else 0.0

    def _after_fault(self, faults: int, message: str) -> int:
        faults += 1
        if faults >= MAX_ATTEMPTS:
            raise ShopApiError("shopify", f"{message} ({faults} attempts)", transient=True)
        self._wait(2.0 ** (faults - 1))
        return faults

    def _wait(self, seconds: float) -> None:
        self.waited_s += seconds
        self._sleep(seconds)


def _lists_full(
    node: dict[str, Any], fulfilments: int, tracking: int, refunds: int, returns: int
) -> bool:
    """True when a list may have been cut at its length (there may be more)."""
    found = node.get("fulfillments") or []
    return (
        len(found) >= fulfilments
        or len(node.get("refunds") or []) >= refunds
        or len(_nodes(node.get("returns"))) >= returns
        or any(len(obj(f).get("trackingInfo") or []) >= tracking for f in found)
        or any(_more(obj(f).get("fulfillmentLineItems")) for f in found)
    )


def _more(connection: Any) -> bool:
    return bool(obj(obj(connection).get("pageInfo")).get("hasNextPage"))


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _error_codes(body: Any) -> set[str]:
    errors = obj(body).get("errors")
    if not isinstance(errors, list):
        return set()
    return {str(obj(obj(e).get("extensions")).get("code")) for e in errors}


def _error_text(errors: Any, codes: set[str]) -> str:
    if isinstance(errors, list):
        text = "; ".join(str(obj(e).get("message", e)) for e in errors)
    else:
        text = str(errors)
    if "ACCESS_DENIED" in codes:
        text += (
            " (the custom app needs the Admin API scopes read_orders, read_customers and "
            "read_fulfillments)"
        )
    return f"the Admin API refused the query: {text}"


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers.get("Retry-After", ""))
    except ValueError:
        return None


# --- GraphQL order -> REST order ---------------------------------------------------


def gid_number(gid: Any) -> str | None:
    """The REST id in a gid: gid://shopify/Order/5745038016649 -> 5745038016649."""
    if not isinstance(gid, str) or not gid:
        return None
    return gid.rsplit("/", 1)[-1].split("?", 1)[0]


def to_rest_order(node: dict[str, Any]) -> dict[str, Any]:
    """An Admin GraphQL `Order` node as the REST `Order` JSON shopify.map_order reads.
    Lenient: a missing or odd value stays missing or odd, for map_order to name in REST
    terms (`line_items.0.price`)."""
    customer = obj(node.get("customer"))
    address = obj(node.get("shippingAddress"))
    rest: dict[str, Any] = {
        "id": gid_number(node.get("id")),
        "admin_graphql_api_id": node.get("id"),
        "name": node.get("name"),
        "email": node.get("email"),
        "phone": node.get("phone"),
        "created_at": node.get("createdAt"),
        "updated_at": node.get("updatedAt"),
        "cancelled_at": node.get("cancelledAt"),
        "cancel_reason": _lower(node.get("cancelReason")),
        "currency": node.get("currencyCode"),
        "customer_locale": node.get("customerLocale"),
        "line_items": [_line_item(obj(line)) for line in _nodes(node.get("lineItems"))],
        "fulfillments": [
            fulfilment
            for raw in node.get("fulfillments") or []
            for fulfilment in _fulfilments(obj(raw))
        ],
        "refunds": [_refund(obj(refund)) for refund in node.get("refunds") or []],
        # not in REST's Order (returns come by their own webhooks there): their states, for
        # the returns a missed returns/* webhook would have told
        "returns": [
            {"id": gid_number(obj(r).get("id")), "status": _lower(obj(r).get("status"))}
            for r in _nodes(node.get("returns"))
        ],
    }
    if customer:
        rest["customer"] = {
            "id": gid_number(customer.get("id")),
            "first_name": customer.get("firstName"),
            "last_name": customer.get("lastName"),
            "email": obj(customer.get("defaultEmailAddress")).get("emailAddress"),
            "phone": obj(customer.get("defaultPhoneNumber")).get("phoneNumber"),
            "tags": ", ".join(str(t) for t in customer.get("tags") or []),
            "email_marketing_consent": _consent(customer.get("emailMarketingConsent")),
            "sms_marketing_consent": _consent(customer.get("smsMarketingConsent")),
        }
    if address:
        rest["shipping_address"] = {
            "first_name": address.get("firstName"),
            "last_name": address.get("lastName"),
            "name": address.get("name"),
            "phone": address.get("phone"),
            "country_code": address.get("countryCodeV2"),
        }
    return rest


def to_reverse_deliveries(order: dict[str, Any]) -> list[dict[str, Any]]:
    """Each return parcel of an Admin GraphQL order (its returns' reverse deliveries with a
    tracking number) as the REST ReverseDelivery body of
    reverse_deliveries/attach_deliverable, which shopify.map_reverse_delivery reads."""
    bodies = []
    for ret in _nodes(order.get("returns")):
        return_id = gid_number(obj(ret).get("id"))
        for rfo in _nodes(obj(ret).get("reverseFulfillmentOrders")):
            for delivery in _nodes(obj(rfo).get("reverseDeliveries")):
                tracking = obj(obj(obj(delivery).get("deliverable")).get("tracking"))
                if return_id and tracking.get("number"):
                    bodies.append(
                        {
                            "return": {"id": return_id},
                            "shipping_deliverable": {
                                "tracking": {
                                    "tracking_number": tracking.get("number"),
                                    "carrier_name": tracking.get("carrierName"),
                                }
                            },
                        }
                    )
    return bodies


def _nodes(connection: Any) -> list[Any]:
    nodes = obj(connection).get("nodes")
    return nodes if isinstance(nodes, list) else []


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _consent(consent: Any) -> dict[str, Any] | None:
    """{marketingState: SUBSCRIBED} -> REST's {state: "subscribed"}."""
    if not isinstance(consent, dict):
        return None
    return {"state": _lower(consent.get("marketingState"))}


def _line_item(line: dict[str, Any]) -> dict[str, Any]:
    product = obj(line.get("product"))
    return {
        "sku": line.get("sku"),
        "name": line.get("name"),
        "quantity": line.get("quantity"),
        "price": obj(obj(line.get("originalUnitPriceSet")).get("shopMoney")).get("amount"),
        "variant_id": gid_number(obj(line.get("variant")).get("id")),
        "product_type": product.get("productType"),
        "tags": product.get("tags") or [],
    }


def _fulfilments(fulfilment: dict[str, Any]) -> list[dict[str, Any]]:
    """One REST fulfilment per tracking number: GraphQL names a company per number, REST
    one per fulfilment. Each carries the fulfilment's line items by SKU (which parcel holds
    what: a split order's tips, reviews and warranty follow each parcel)."""
    status = _lower(fulfilment.get("status"))
    carried = [
        {"sku": obj(obj(line).get("lineItem")).get("sku")}
        for line in _nodes(fulfilment.get("fulfillmentLineItems"))
    ]
    return [
        {
            "status": status,
            "tracking_company": obj(info).get("company"),
            "tracking_number": obj(info).get("number"),
            "tracking_numbers": [obj(info).get("number")],
            "line_items": carried,
        }
        for info in fulfilment.get("trackingInfo") or []
    ]


def _refund(refund: dict[str, Any]) -> dict[str, Any]:
    """`totalRefundedSet` (the refund's successful transactions, in the shop's currency)
    as the one REST transaction map_order sums."""
    money = obj(obj(refund.get("totalRefundedSet")).get("shopMoney"))
    return {
        "id": gid_number(refund.get("id")),
        "created_at": refund.get("createdAt"),
        "transactions": [
            {
                "kind": "refund",
                "status": "success",
                "amount": money.get("amount"),
                "currency": money.get("currencyCode"),
            }
        ],
    }
