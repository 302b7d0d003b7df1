"""What every shop platform connector shares: the mapped record, the shop's mapping
settings, webhook signature checks and the carrier name a platform spells."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from aftersale.carriers_meta import Carriers
from aftersale.errors import ConfigError


class RecordError(ValueError):
    """One platform record that cannot be mapped; the text names the platform's field."""


@dataclass(frozen=True, slots=True)
class Refund:
    refund_id: str
    amount: Decimal
    currency: str
    created_at: datetime


#: A return's state, as aftersale words every platform's: asked for, approved (the customer
#: sends the items back), closed (done), declined, cancelled.
RETURN_STATUSES = ("requested", "open", "closed", "declined", "cancelled")


@dataclass(frozen=True, slots=True)
class Return:
    return_id: str
    status: str  # one of RETURN_STATUSES
    at: datetime  # when the platform said so (its clock, else when it reached us)


@dataclass(frozen=True, slots=True)
class PlatformFacts:
    """What the platform says about an order beyond aftersale's order row."""

    platform: str
    platform_order_id: str
    updated_at: datetime  # the platform's own clock: an older copy never overwrites a newer
    cancelled_at: datetime | None = None
    cancel_reason: str | None = None
    refunds: tuple[Refund, ...] = ()
    returns: tuple[Return, ...] = ()


@dataclass(frozen=True, slots=True)
class RefundUpdate:
    """A refund delivered on its own (Shopify refunds/create)."""

    platform_order_id: str
    refund: Refund


@dataclass(frozen=True, slots=True)
class ReturnUpdate:
    """A return's new state delivered on its own (Shopify returns/*)."""

    platform_order_id: str
    ret: Return


@dataclass(frozen=True, slots=True)
class ReturnParcelUpdate:
    """The tracking number of a parcel the customer sends back for a return (Shopify
    reverse_deliveries/attach_deliverable); carrier None: detected from the number."""

    return_id: str
    tracking_number: str
    carrier: str | None


Update = RefundUpdate | ReturnUpdate | ReturnParcelUpdate
#: (payload, carriers, when it reached us) -> what it says; raises RecordError
UpdateMapper = Callable[[Any, Carriers, datetime], list[Update]]


@dataclass(frozen=True, slots=True)
class Mapped:
    row: dict[str, Any]  # aftersale's order row (README "Order files")
    facts: PlatformFacts


#: Time zone per shipping country when the platform gives none (Shopify and WooCommerce
#: orders carry no customer time zone). A shop extends it in its mapping file.
DEFAULT_TIME_ZONES = {
    "PL": "Europe/Warsaw",
    "DE": "Europe/Berlin",
    "AT": "Europe/Vienna",
    "GB": "Europe/London",
    "IE": "Europe/Dublin",
    "FR": "Europe/Paris",
    "NL": "Europe/Amsterdam",
    "CZ": "Europe/Prague",
    "US": "America/New_York",
}
#: Locale per country for platforms that send none (WooCommerce).
DEFAULT_LOCALES = {"PL": "pl-PL", "DE": "de-DE", "AT": "de-AT", "GB": "en-GB", "US": "en-US"}
#: WooCommerce has no returns of its own; return plugins mark an order with a status.
DEFAULT_RETURN_STATUSES = {"return-requested": "requested", "return-approved": "open"}


@dataclass(frozen=True, slots=True)
class ShopMapping:
    """How a shop's platform data becomes aftersale's (docs/shops.md, `AFTERSALE_SHOP_MAPPING`).

    categories: a product type, a tag or a SKU prefix -> aftersale category (first match
    in that order); warranty_months: category -> months, when the platform has none."""

    categories: Mapping[str, str] = field(default_factory=dict)
    sku_prefixes: Mapping[str, str] = field(default_factory=dict)
    default_category: str = "other"
    warranty_months: Mapping[str, int] = field(default_factory=dict)
    time_zones: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_TIME_ZONES))
    locales: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_LOCALES))
    default_locale: str = "en"
    #: WooCommerce order statuses (return plugins add their own) -> a return's state
    return_statuses: Mapping[str, str] = field(
        default_factory=lambda: dict(DEFAULT_RETURN_STATUSES)
    )

    @classmethod
    def load(cls, path: Path | None) -> ShopMapping:
        if path is None or not path.exists():
            return cls()
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{path}: cannot read the shop mapping: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping at the top")
        known = {
            "categories",
            "sku_prefixes",
            "default_category",
            "warranty_months",
            "time_zones",
            "locales",
            "default_locale",
            "return_statuses",
        }
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{path}: unknown keys {unknown}; known: {sorted(known)}")
        base = cls()
        return cls(
            categories={str(k).lower(): str(v) for k, v in (data.get("categories") or {}).items()},
            sku_prefixes={str(k): str(v) for k, v in (data.get("sku_prefixes") or {}).items()},
            default_category=str(data.get("default_category", base.default_category)),
            warranty_months={
                str(k): int(v) for k, v in (data.get("warranty_months") or {}).items()
            },
            time_zones={**base.time_zones, **(data.get("time_zones") or {})},
            locales={**base.locales, **(data.get("locales") or {})},
            default_locale=str(data.get("default_locale", base.default_locale)),
            return_statuses=_return_statuses(path, data.get("return_statuses")),
        )

    def category(self, product_type: str | None, tags: list[str], sku: str | None) -> str:
        for key in (product_type, *tags):
            if key and key.strip().lower() in self.categories:
                return self.categories[key.strip().lower()]
        for prefix, category in sorted(self.sku_prefixes.items(), key=lambda kv: -len(kv[0])):
            if sku and sku.startswith(prefix):
                return category
        return self.default_category

    def time_zone(self, country: str | None) -> str:
        return self.time_zones.get((country or "").upper(), "UTC")

    def locale(self, country: str | None) -> str:
        return self.locales.get((country or "").upper(), self.default_locale)


def _return_statuses(path: Path, value: Any) -> dict[str, str]:
    if value is None:
        return dict(DEFAULT_RETURN_STATUSES)
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: return_statuses: map an order status to a return state")
    out = {}
    for status, state in value.items():
        if state not in RETURN_STATUSES:
            raise ConfigError(
                f"{path}: return_statuses: {status}: {state!r} is not one of "
                f"{', '.join(RETURN_STATUSES)}"
            )
        out[str(status)] = str(state)
    return out


@dataclass(frozen=True, slots=True)
class Platform:
    name: str
    #: the header carrying the base64 HMAC-SHA256 of the raw body
    signature_header: str
    #: the header naming what happened (orders/updated, order.updated, …)
    topic_header: str
    #: the header that identifies one delivery (the same on a retry of it)
    delivery_header: str
    #: env var holding the webhook secret
    secret_env: str
    map_order: Callable[[dict[str, Any], ShopMapping, Carriers], Mapped]
    #: the records a saved payload holds: one order, a list, an API response, …
    records: Callable[[Any], list[Any]]
    #: topics whose body is not an order but a refund, a return, a return parcel
    updates: Mapping[str, UpdateMapper] = field(default_factory=dict)


def signature_valid(secret: str, body: bytes, signature: str | None) -> bool:
    """Shopify and WooCommerce both sign with base64(HMAC-SHA256(secret, raw body))."""
    if not secret or not signature:
        return False
    expected = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest())
    return hmac.compare_digest(expected, signature.strip().encode("ascii", "replace"))


def carrier_slug(name: str | None, carriers: Carriers) -> str | None:
    """The carrier slug for a company name as a platform spells it ("DHL Express",
    "UPS", "dpd-uk", "InPost"); None when no registered carrier matches (then the
    tracking number's format decides at import)."""
    norm = re.sub(r"[^a-z0-9]", "", (name or "").lower())
    if not norm:
        return None
    for meta in carriers:
        for spelling in (meta.slug, meta.name):
            key = re.sub(r"[^a-z0-9]", "", spelling.lower())
            if key and norm.startswith(key):
                return meta.slug
    return None


def obj(value: Any) -> dict[str, Any]:
    """A nested object of the payload, or an empty one when absent or not an object."""
    return value if isinstance(value, dict) else {}


def text(value: Any, where: str, *, required: bool = False) -> str | None:
    if value is None or value == "":
        if required:
            raise RecordError(f"{where}: missing")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise RecordError(f"{where}: expected text, got {type(value).__name__}")
    return str(value)


def money(value: Any, where: str) -> str:
    """A price as a decimal string; platforms send strings (Shopify) or numbers (Woo)."""
    if isinstance(value, bool) or value is None:
        raise RecordError(f"{where}: expected a price, got {value!r}")
    try:
        amount = Decimal(str(value))
    except ArithmeticError as exc:
        raise RecordError(f"{where}: {value!r} is not a price") from exc
    if not amount.is_finite():
        raise RecordError(f"{where}: {value!r} is not a price")
    return str(amount)


def item_row(
    line: dict[str, Any],
    where: str,
    *,
    sku: str,
    name: Any,
    category: str,
    currency: str | None,
    mapping: ShopMapping,
) -> dict[str, Any]:
    """aftersale's item for one order line of a platform: its name and price checked, and
    the warranty the shop's mapping gives its category, where it gives one."""
    item: dict[str, Any] = {
        "sku": sku,
        "name": text(name, f"{where}.name", required=True),
        "category": category,
        "quantity": line.get("quantity", 1),
        "price": money(line.get("price"), f"{where}.price"),
        "currency": currency,
    }
    if category in mapping.warranty_months:
        item["warranty_months"] = mapping.warranty_months[category]
    return item


def timestamp(value: Any, where: str, *, assume_utc: bool = False) -> datetime:
    """An ISO 8601 time with an offset (or, for WooCommerce's *_gmt fields, in UTC)."""
    if not isinstance(value, str) or not value:
        raise RecordError(f"{where}: missing")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise RecordError(f"{where}: {value!r} is not an ISO 8601 time") from exc
    if parsed.tzinfo is None:
        if not assume_utc:
            raise RecordError(f"{where}: {value!r} has no UTC offset")
        parsed = parsed.replace(tzinfo=UTC)
    return parsed
