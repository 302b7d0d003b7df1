"""Shopify: webhooks and saved payloads of the Admin REST `Order` resource.

Docs: https://shopify.dev/docs/api/admin-rest/latest/resources/order (order JSON,
`fulfillments[]`, `refunds[]`), https://shopify.dev/docs/apps/build/webhooks (delivery).
Webhooks: `X-Shopify-Hmac-Sha256` is base64(HMAC-SHA256(app secret, raw body)); the
secret is `SHOPIFY_WEBHOOK_SECRET`. `X-Shopify-Topic` names the event (orders/create,
orders/updated, orders/cancelled, fulfillments/create|update, refunds/create, returns/*);
`X-Shopify-Webhook-Id` is the same on every retry of one delivery. Delivery is at least
once and out of order: an order older (`updated_at`) than the stored one changes nothing.

Where each field comes from: order_id <- `name` ("#1001"), placed_at <- `created_at`,
customer <- `customer` (id, first/last name, email, phone, `email_marketing_consent.state`
and `sms_marketing_consent.state` == "subscribed", tags) with the order's `email`/`phone`
and the shipping address as fallbacks, locale <- `customer_locale`, country <-
`shipping_address.country_code`, items <- `line_items` (sku, name/title, quantity, price;
category from `product_type` or the customer's shop mapping by tag/SKU prefix), currency
<- `currency`, shipments <- every tracking number of every `fulfillments[]` entry that is
not cancelled/failed (several = a split shipment; `tracking_company` -> carrier slug, else
detected from the number; the parcel's items <- its `line_items[].sku`, else the order
line of that `id`), cancellation <- `cancelled_at`/`cancel_reason`, refunds <-
`refunds[].transactions[]` of kind refund and status success, returns <- `returns[]`
(`id`, `status`; only in the reconcile's orders: REST's order JSON has none).

Topics whose body is not an order (`UPDATES`): refunds/create <- the Refund resource
(`id`, `order_id`, `created_at`, `transactions[]` as above); returns/request|approve|
decline|cancel|close|reopen <- the Return webhook body (`id`, `status` REQUESTED/OPEN/
CLOSED/DECLINED/CANCELED in any case, `order.id`; it carries no time, so the delivery's
time is used); reverse_deliveries/attach_deliverable <- the ReverseDelivery body
(`return.id`, `shipping_deliverable.tracking.tracking_number` and `carrier_name`; the
GraphQL names `number`/`carrierName` are read too): the return parcel, polled like any
shipment.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from aftersale.carriers_meta import Carriers
from aftersale.intake.shops.base import (
    Mapped,
    Platform,
    PlatformFacts,
    RecordError,
    Refund,
    RefundUpdate,
    Return,
    ReturnParcelUpdate,
    ReturnUpdate,
    ShopMapping,
    Update,
    carrier_slug,
    item_row,
    money,
    obj,
    text,
    timestamp,
)

_DEAD_FULFILMENTS = {"cancelled", "failure", "error"}


def records(payload: Any) -> list[Any]:
    """A webhook body (one order), a list of orders, or a REST answer {"orders": […]}."""
    if isinstance(payload, list):
        return payload
    if isinstance(payload, dict) and isinstance(payload.get("orders"), list):
        return list(payload["orders"])
    if isinstance(payload, dict) and isinstance(payload.get("order"), dict):
        return [payload["order"]]
    return [payload]


def map_order(raw: dict[str, Any], mapping: ShopMapping, carriers: Carriers) -> Mapped:
    if not isinstance(raw, dict):
        raise RecordError(f"order: expected a JSON object, got {type(raw).__name__}")
    if "line_items" not in raw or "name" not in raw:
        kind = "a fulfilment" if "tracking_number" in raw else "not an order"
        raise RecordError(f"order: {kind} (no `name` or `line_items`): send orders/* topics")
    platform_id = text(raw.get("id"), "id", required=True)
    customer = obj(raw.get("customer"))
    address = obj(raw.get("shipping_address"))
    country = text(address.get("country_code"), "shipping_address.country_code")
    first = text(customer.get("first_name"), "customer.first_name") or text(
        address.get("first_name"), "shipping_address.first_name"
    )
    last = text(customer.get("last_name"), "customer.last_name") or text(
        address.get("last_name"), "shipping_address.last_name"
    )
    name = " ".join(p for p in (first, last) if p) or text(address.get("name"), "name")
    customer_id = text(customer.get("id"), "customer.id")
    email = text(raw.get("email"), "email") or text(customer.get("email"), "customer.email")
    phone = (
        text(customer.get("phone"), "customer.phone")
        or text(raw.get("phone"), "phone")
        or text(address.get("phone"), "shipping_address.phone")
    )
    tags = [t.strip() for t in str(customer.get("tags") or "").split(",") if t.strip()]
    currency = text(raw.get("currency"), "currency", required=True)
    items = []
    sku_of_line: dict[str, str] = {}
    line_items = raw.get("line_items")
    if not isinstance(line_items, list) or not line_items:
        raise RecordError("line_items: an order needs at least one line item")
    for index, line in enumerate(line_items):
        where = f"line_items.{index}"
        if not isinstance(line, dict):
            raise RecordError(f"{where}: expected an object")
        sku = text(line.get("sku"), f"{where}.sku") or f"shopify-{line.get('variant_id') or index}"
        category = mapping.category(
            text(line.get("product_type"), f"{where}.product_type"),
            [str(t) for t in line.get("tags") or [] if isinstance(t, str)],
            sku,
        )
        line_name = line.get("name") or line.get("title")
        items.append(
            item_row(
                line,
                where,
                sku=sku,
                name=line_name,
                category=category,
                currency=currency,
                mapping=mapping,
            )
        )
        sku_of_line[str(line.get("id"))] = sku
    shipments = []
    for index, fulfilment in enumerate(raw.get("fulfillments") or []):
        if not isinstance(fulfilment, dict):
            raise RecordError(f"fulfillments.{index}: expected an object")
        if str(fulfilment.get("status") or "").lower() in _DEAD_FULFILMENTS:
            continue
        carrier = carrier_slug(fulfilment.get("tracking_company"), carriers)
        numbers = fulfilment.get("tracking_numbers") or [fulfilment.get("tracking_number")]
        # the items this fulfilment carries, by SKU (or the order line's SKU, by its id)
        carried = [
            str(li.get("sku") or sku_of_line.get(str(li.get("id")), ""))
            for li in fulfilment.get("line_items") or []
            if isinstance(li, dict)
        ]
        for number in numbers:
            if number:
                shipments.append(
                    {
                        "carrier": carrier or "",
                        "tracking_number": str(number),
                        "items": [sku for sku in carried if sku],
                    }
                )
    consent = {
        "email": _subscribed(customer.get("email_marketing_consent")),
        "sms": _subscribed(customer.get("sms_marketing_consent")),
    }
    row: dict[str, Any] = {
        "order_id": text(raw.get("name"), "name", required=True),
        "placed_at": raw.get("created_at"),
        "customer": {
            "id": f"shopify:{customer_id}" if customer_id else None,
            "name": name,
            "email": email,
            "phone": phone,
            "locale": text(raw.get("customer_locale"), "customer_locale")
            or mapping.locale(country),
            "time_zone": mapping.time_zone(country),
            "consent": consent,
            "country": country,
            "tags": tags,
        },
        "items": items,
        "shipments": shipments,
        "shipping_country": country,
    }
    row["customer"] = {k: v for k, v in dict(row["customer"]).items() if v is not None}
    updated = timestamp(raw.get("updated_at") or raw.get("created_at"), "updated_at")
    facts = PlatformFacts(
        platform="shopify",
        platform_order_id=str(platform_id),
        updated_at=updated,
        cancelled_at=timestamp(raw["cancelled_at"], "cancelled_at")
        if raw.get("cancelled_at")
        else None,
        cancel_reason=text(raw.get("cancel_reason"), "cancel_reason"),
        refunds=tuple(_refunds(raw.get("refunds") or [], currency or "")),
        returns=tuple(_returns(raw.get("returns") or [], updated)),
    )
    return Mapped(row, facts)


def _returns(returns: list[Any], updated: datetime) -> list[Return]:
    """The reconcile's `returns` (GraphQL's Order.returns as id and status; REST's order
    has none): each at the order's `updated_at`, the newest time known for its state."""
    out = []
    for index, ret in enumerate(returns):
        if not isinstance(ret, dict):
            raise RecordError(f"returns.{index}: expected an object")
        status = _RETURN_STATUS.get(str(ret.get("status") or "").lower())
        if status is None:
            raise RecordError(f"returns.{index}.status: {ret.get('status')!r} is not one")
        out.append(
            Return(text(ret.get("id"), f"returns.{index}.id", required=True) or "", status, updated)
        )
    return out


def _subscribed(consent: Any) -> bool:
    return isinstance(consent, dict) and consent.get("state") == "subscribed"


def _refunds(refunds: list[Any], currency: str) -> list[Refund]:
    out = []
    for index, refund in enumerate(refunds):
        if not isinstance(refund, dict):
            raise RecordError(f"refunds.{index}: expected an object")
        amount = Decimal(0)
        for t_index, tx in enumerate(refund.get("transactions") or []):
            if (
                isinstance(tx, dict)
                and tx.get("kind") == "refund"
                and tx.get("status") == "success"
            ):
                amount += Decimal(
                    money(tx.get("amount"), f"refunds.{index}.transactions.{t_index}.amount")
                )
                currency = tx.get("currency") or currency
        if amount:
            out.append(
                Refund(
                    text(refund.get("id"), f"refunds.{index}.id", required=True) or "",
                    amount,
                    currency,
                    timestamp(refund.get("created_at"), f"refunds.{index}.created_at"),
                )
            )
    return out


def map_refund(raw: Any, carriers: Carriers, at: datetime) -> list[Update]:
    """refunds/create: one refund of one order (nothing when no money moved)."""
    if not isinstance(raw, dict) or "transactions" not in raw or "order_id" not in raw:
        raise RecordError("refund: not a Shopify refund (no `order_id` or `transactions`)")
    order_id = text(raw.get("order_id"), "order_id", required=True) or ""
    currency = next(
        (
            str(tx["currency"])
            for tx in raw.get("transactions") or []
            if isinstance(tx, dict) and tx.get("currency")
        ),
        "",
    )
    if not currency:
        raise RecordError("transactions: no currency on any transaction")
    return [RefundUpdate(order_id, refund) for refund in _refunds([raw], currency)]


#: Shopify's return status -> aftersale's word (docs: ReturnStatus); by topic when absent
_RETURN_STATUS = {
    "requested": "requested",
    "open": "open",
    "closed": "closed",
    "declined": "declined",
    "canceled": "cancelled",
    "cancelled": "cancelled",
}
_RETURN_TOPIC_STATUS = {
    "returns/request": "requested",
    "returns/approve": "open",
    "returns/reopen": "open",
    "returns/close": "closed",
    "returns/decline": "declined",
    "returns/cancel": "cancelled",
}


def _map_return(topic: str) -> Any:
    def map_return(raw: Any, carriers: Carriers, at: datetime) -> list[Update]:
        if not isinstance(raw, dict) or not isinstance(raw.get("order"), dict):
            raise RecordError("return: not a Shopify return (no `order`)")
        return_id = text(raw.get("id"), "id", required=True) or ""
        order_id = text(raw["order"].get("id"), "order.id", required=True) or ""
        said = str(raw.get("status") or "").lower()
        if said and said not in _RETURN_STATUS:
            raise RecordError(f"status: {raw.get('status')!r} is not a return status")
        status = _RETURN_STATUS.get(said) or _RETURN_TOPIC_STATUS[topic]
        return [ReturnUpdate(order_id, Return(return_id, status, at))]

    return map_return


def map_reverse_delivery(raw: Any, carriers: Carriers, at: datetime) -> list[Update]:
    """reverse_deliveries/attach_deliverable: the return parcel's tracking number."""
    if not isinstance(raw, dict) or not isinstance(raw.get("return"), dict):
        raise RecordError("reverse delivery: no `return` it belongs to")
    return_id = text(raw["return"].get("id"), "return.id", required=True) or ""
    tracking = obj(obj(raw.get("shipping_deliverable")).get("tracking"))
    number = text(
        tracking.get("tracking_number") or tracking.get("number"),
        "shipping_deliverable.tracking.tracking_number",
    )
    if not number:
        return []  # a label without tracking yet: the next delivery brings the number
    name = tracking.get("carrier_name") or tracking.get("carrierName")
    return [ReturnParcelUpdate(return_id, number, carrier_slug(name, carriers))]


UPDATES = {
    "refunds/create": map_refund,
    **{topic: _map_return(topic) for topic in _RETURN_TOPIC_STATUS},
    "reverse_deliveries/attach_deliverable": map_reverse_delivery,
}

PLATFORM = Platform(
    name="shopify",
    signature_header="X-Shopify-Hmac-Sha256",
    topic_header="X-Shopify-Topic",
    delivery_header="X-Shopify-Webhook-Id",
    secret_env="SHOPIFY_WEBHOOK_SECRET",
    map_order=map_order,
    records=records,
    updates=UPDATES,
)
