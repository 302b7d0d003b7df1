"""WooCommerce: webhooks and saved payloads of the REST API v3 order JSON.

Docs: https://woocommerce.github.io/woocommerce-rest-api-docs/#order-properties and
#webhooks. Webhooks: `X-WC-Webhook-Signature` is base64(HMAC-SHA256(secret, raw body));
the secret is `WOOCOMMERCE_WEBHOOK_SECRET`; `X-WC-Webhook-Topic` names the event
(order.created, order.updated, order.deleted); `X-WC-Webhook-Delivery-ID` identifies a
delivery. Tracking numbers come from the Shipment Tracking extension's order meta
`_wc_shipment_tracking_items` (`tracking_provider` or `custom_tracking_provider`,
`tracking_number`).

Where each field comes from: order_id <- `number` (else `id`), placed_at <-
`date_created_gmt` (UTC), updated <- `date_modified_gmt`, customer <- `billing` (first/last
name, email, phone) with id `woocommerce:<customer_id>` (guests: their email), country <-
`shipping.country` (else `billing.country`), locale and time zone <- the shop mapping by
country (WooCommerce sends neither), marketing consent <- none in WooCommerce core: false,
items <- `line_items` (sku, name, quantity, price: a number in WooCommerce), currency <-
`currency`, cancellation <- `status` "cancelled", refunds <- `refunds[]` (`id`; `total`
is negative; no time of its own: the order's `date_modified_gmt` when first seen), a
return <- `status` when the shop mapping's `return_statuses` names it (WooCommerce has no
returns of its own; return plugins set statuses such as "return-requested"), with id
`woo-<order id>` and time `date_modified_gmt`.
"""

from __future__ import annotations

from datetime import UTC
from decimal import Decimal
from typing import Any

from aftersale.carriers_meta import Carriers
from aftersale.intake.shops.base import (
    Mapped,
    Platform,
    PlatformFacts,
    RecordError,
    Refund,
    Return,
    ShopMapping,
    carrier_slug,
    item_row,
    money,
    obj,
    text,
    timestamp,
)

TRACKING_META = "_wc_shipment_tracking_items"


def records(payload: Any) -> list[Any]:
    """A webhook body (one order), or a list of orders (GET /wp-json/wc/v3/orders)."""
    return payload if isinstance(payload, list) else [payload]


def map_order(raw: dict[str, Any], mapping: ShopMapping, carriers: Carriers) -> Mapped:
    if not isinstance(raw, dict):
        raise RecordError(f"order: expected a JSON object, got {type(raw).__name__}")
    if "line_items" not in raw or "billing" not in raw:
        raise RecordError("order: not a WooCommerce order (no `line_items` or `billing`)")
    platform_id = text(raw.get("id"), "id", required=True)
    billing = obj(raw.get("billing"))
    shipping = obj(raw.get("shipping"))
    country = text(shipping.get("country"), "shipping.country") or text(
        billing.get("country"), "billing.country"
    )
    email = text(billing.get("email"), "billing.email")
    customer_id = raw.get("customer_id")
    name = " ".join(
        p
        for p in (
            text(billing.get("first_name"), "billing.first_name"),
            text(billing.get("last_name"), "billing.last_name"),
        )
        if p
    )
    currency = text(raw.get("currency"), "currency", required=True)
    line_items = raw.get("line_items")
    if not isinstance(line_items, list) or not line_items:
        raise RecordError("line_items: an order needs at least one line item")
    items = []
    for index, line in enumerate(line_items):
        where = f"line_items.{index}"
        if not isinstance(line, dict):
            raise RecordError(f"{where}: expected an object")
        sku = text(line.get("sku"), f"{where}.sku") or f"woo-{line.get('product_id') or index}"
        category = mapping.category(None, [], sku)
        items.append(
            item_row(
                line,
                where,
                sku=sku,
                name=line.get("name"),
                category=category,
                currency=currency,
                mapping=mapping,
            )
        )
    shipments = []
    for meta in raw.get("meta_data") or []:
        if not isinstance(meta, dict) or meta.get("key") != TRACKING_META:
            continue
        for index, entry in enumerate(meta.get("value") or []):
            if not isinstance(entry, dict):
                raise RecordError(f"meta_data.{TRACKING_META}.{index}: expected an object")
            number = text(entry.get("tracking_number"), f"{TRACKING_META}.{index}.tracking_number")
            if number:
                provider = entry.get("tracking_provider") or entry.get("custom_tracking_provider")
                carrier = carrier_slug(provider, carriers)
                shipments.append({"carrier": carrier or "", "tracking_number": number})
    status = str(raw.get("status") or "")
    modified = raw.get("date_modified_gmt") or raw.get("date_created_gmt")
    row = {
        "order_id": text(raw.get("number"), "number") or platform_id,
        "placed_at": _utc(raw.get("date_created_gmt"), "date_created_gmt"),
        "customer": {
            k: v
            for k, v in {
                "id": f"woocommerce:{customer_id}" if customer_id else email,
                "name": name or email,
                "email": email,
                "phone": text(billing.get("phone"), "billing.phone"),
                "locale": mapping.locale(country),
                "time_zone": mapping.time_zone(country),
                "consent": {"email": False, "sms": False},
                "country": country,
            }.items()
            if v is not None
        },
        "items": items,
        "shipments": shipments,
        "shipping_country": country,
    }
    facts = PlatformFacts(
        platform="woocommerce",
        platform_order_id=str(platform_id),
        updated_at=timestamp(modified, "date_modified_gmt", assume_utc=True),
        cancelled_at=timestamp(modified, "date_modified_gmt", assume_utc=True)
        if status == "cancelled"
        else None,
        cancel_reason="cancelled in WooCommerce" if status == "cancelled" else None,
        refunds=tuple(_refunds(raw.get("refunds") or [], currency or "", modified)),
        returns=(
            Return(
                f"woo-{platform_id}",
                mapping.return_statuses[status],
                timestamp(modified, "date_modified_gmt", assume_utc=True),
            ),
        )
        if status in mapping.return_statuses
        else (),
    )
    return Mapped(row, facts)


def _utc(value: Any, where: str) -> str:
    return timestamp(value, where, assume_utc=True).astimezone(UTC).isoformat()


def _refunds(refunds: list[Any], currency: str, modified: Any) -> list[Refund]:
    out = []
    for index, refund in enumerate(refunds):
        if not isinstance(refund, dict):
            raise RecordError(f"refunds.{index}: expected an object")
        amount = abs(Decimal(money(refund.get("total"), f"refunds.{index}.total")))
        if amount:
            out.append(
                Refund(
                    text(refund.get("id"), f"refunds.{index}.id", required=True) or "",
                    amount,
                    currency,
                    timestamp(modified, "date_modified_gmt", assume_utc=True),
                )
            )
    return out


PLATFORM = Platform(
    name="woocommerce",
    signature_header="X-WC-Webhook-Signature",
    topic_header="X-WC-Webhook-Topic",
    delivery_header="X-WC-Webhook-Delivery-ID",
    secret_env="WOOCOMMERCE_WEBHOOK_SECRET",
    map_order=map_order,
    records=records,
)
