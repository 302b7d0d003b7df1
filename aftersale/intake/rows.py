"""The order-file schema: one validated row per order, within the bounds README.md's
"Order files" table states. Pure: `validate_row(source, line, data, carriers, now)`.

Ambiguous values are refused, not guessed: `true` is no quantity, a bare Unix number is no
time (times are ISO 8601 with an offset), `a@x.pl,b@y.com` is no email address. Every
text is one line without control characters, and every number and date has a bound, so
nothing that passes here can fail later in the database.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import cache
from typing import Annotated, Any
from zoneinfo import available_timezones

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from aftersale.carriers_meta import Carriers, normalise_tracking_number
from aftersale.contacts import normalise_email, normalise_phone
from aftersale.models import Customer, Item, Order, ShipmentRef
from aftersale.store.records import Rejection

# --- bounds (README.md "Order files" states each) ------------------------------
MAX_QUANTITY = 9_999
MAX_PRICE = 10_000_000
MAX_WARRANTY_MONTHS = 240
MAX_ITEMS = 500
MAX_SHIPMENTS = 50
MAX_TAGS = 50
#: Dates further than this from the import's clock are typing errors, not orders.
MAX_YEARS_AWAY = 10
#: placed_at may be ahead of our clock by this much (the shop's clock, a late zone).
MAX_PLACED_AHEAD = timedelta(days=1)

_ISO_TIME = re.compile(
    r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?P<offset>Z|[+-]\d{2}:?\d{2})?$"
)
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def is_time_zone(name: str) -> bool:
    return name in _zones()


def _one_line(value: str) -> str:
    """Refuse control characters and line separators: a name is one printable line."""
    for char in value:
        if unicodedata.category(char) in ("Cc", "Zl", "Zp") and char != "\t":
            raise ValueError(f"contains a control character or line break (U+{ord(char):04X})")
    return value


def _text(max_length: int, min_length: int = 1) -> Any:
    return Annotated[
        str, Field(min_length=min_length, max_length=max_length), AfterValidator(_one_line)
    ]


def _whole_number(value: Any) -> Any:
    """Whole numbers as JSON numbers or digit strings (CSV); never booleans or fractions."""
    if isinstance(value, bool):
        raise ValueError(f"expected a whole number, got {str(value).lower()}")
    if isinstance(value, str) and re.fullmatch(r"\s*\d{1,9}\s*", value):
        return int(value)
    if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        return int(value)
    if isinstance(value, int):
        return value
    raise ValueError(f"expected a whole number, got {_shown(value)}")


def _decimal(value: Any) -> Any:
    if isinstance(value, bool | float):
        raise ValueError(f'expected a decimal string like "39.90", got {_shown(value)}')
    return value


def _shown(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


WholeNumber = BeforeValidator(_whole_number)


class _Row(BaseModel):
    model_config = ConfigDict(
        extra="forbid", str_strip_whitespace=True, frozen=True, str_max_length=1_000
    )


class ConsentRow(_Row):
    email: StrictBool = False
    sms: StrictBool = False


class CustomerRow(_Row):
    id: _text(128) | None = None  # type: ignore[valid-type]
    name: _text(200)  # type: ignore[valid-type]
    country: Annotated[str, Field(pattern=r"^[A-Z]{2}$")] | None = None
    email: str | None = None
    phone: str | None = None
    locale: Annotated[str, Field(pattern=r"^[a-z]{2}(-[A-Z]{2})?$")] = "en"
    time_zone: str = "UTC"
    consent: ConsentRow = ConsentRow()
    tags: Annotated[tuple[_text(64), ...], Field(max_length=MAX_TAGS)] = ()  # type: ignore[valid-type]

    @field_validator("email")
    @classmethod
    def _email(cls, v: str | None) -> str | None:
        return None if v in (None, "") else normalise_email(v)  # type: ignore[arg-type]

    @field_validator("phone")
    @classmethod
    def _phone(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v in (None, ""):
            return None
        # a national number is read in the customer's country (validated just before)
        return normalise_phone(v, info.data.get("country"))  # type: ignore[arg-type]

    @field_validator("time_zone")
    @classmethod
    def _tz(cls, v: str) -> str:
        if not is_time_zone(v):
            raise ValueError(f"{v!r} is not an IANA time zone (like Europe/Warsaw)")
        return v


class ItemRow(_Row):
    sku: _text(64)  # type: ignore[valid-type]
    name: _text(300)  # type: ignore[valid-type]
    category: _text(64)  # type: ignore[valid-type]
    quantity: Annotated[int, WholeNumber, Field(ge=1, le=MAX_QUANTITY)] = 1
    price: Annotated[
        Decimal,
        BeforeValidator(_decimal),
        Field(ge=0, le=MAX_PRICE, max_digits=12, decimal_places=2, allow_inf_nan=False),
    ]
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    warranty_months: Annotated[int, WholeNumber, Field(ge=0, le=MAX_WARRANTY_MONTHS)] | None = None


class ShipmentRow(_Row):
    carrier: str | None = None
    tracking_number: Annotated[str, Field(min_length=5, max_length=40)]
    items: tuple[Annotated[str, Field(min_length=1)], ...] = ()  # SKUs in this parcel

    @field_validator("carrier")
    @classmethod
    def _carrier(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v in (None, ""):
            return None
        slug = v.lower()  # type: ignore[union-attr]
        known: Carriers = (info.context or {})["carriers"]
        if slug not in known:
            raise ValueError(
                f"unknown carrier {v!r}: use one of {', '.join(known.slugs)}, "
                "or leave it empty to detect it from the tracking number"
            )
        return slug

    @field_validator("tracking_number")
    @classmethod
    def _number(cls, v: str) -> str:
        number = normalise_tracking_number(v)
        if not re.fullmatch(r"[A-Z0-9]{5,40}", number):
            raise ValueError(f"{_shown(v)} is not a tracking number (letters and digits)")
        return number


class OrderRow(_Row):
    order_id: _text(64)  # type: ignore[valid-type]
    placed_at: datetime
    customer: CustomerRow
    items: Annotated[tuple[ItemRow, ...], Field(min_length=1, max_length=MAX_ITEMS)]
    shipments: Annotated[tuple[ShipmentRow, ...], Field(max_length=MAX_SHIPMENTS)] = ()
    promised_delivery: date | None = None
    shipping_country: Annotated[str, Field(pattern=r"^[A-Z]{2}$")] | None = None

    @field_validator("placed_at", mode="before")
    @classmethod
    def _placed_at(cls, v: Any, info: ValidationInfo) -> datetime:
        moment = parse_time(v)
        now: datetime = (info.context or {})["now"]
        if moment < now - timedelta(days=365 * MAX_YEARS_AWAY):
            raise ValueError(f"{v!r} is more than {MAX_YEARS_AWAY} years ago")
        if moment > now + MAX_PLACED_AHEAD:
            raise ValueError(f"{v!r} is in the future")
        return moment

    @field_validator("shipments")
    @classmethod
    def _parcel_items_are_order_items(
        cls, v: tuple[ShipmentRow, ...], info: ValidationInfo
    ) -> tuple[ShipmentRow, ...]:
        skus = {i.sku for i in info.data.get("items", ())}
        for n, shipment in enumerate(v):
            strangers = [sku for sku in shipment.items if sku not in skus]
            if strangers and skus:
                raise ValueError(
                    f"parcel {n + 1} ({shipment.tracking_number}) lists {strangers[0]!r}, "
                    f"which is not an item of this order"
                )
        return v

    @field_validator("promised_delivery", mode="before")
    @classmethod
    def _promised(cls, v: Any, info: ValidationInfo) -> date | None:
        if v in (None, ""):
            return None
        if not isinstance(v, str) or not _ISO_DATE.match(v.strip()):
            raise ValueError(f"expected a date like 2026-11-26, got {_shown(v)}")
        try:
            day = date.fromisoformat(v.strip())
        except ValueError:
            raise ValueError(f"{v!r} is not a calendar date") from None
        today: date = (info.context or {})["now"].date()
        if abs((day - today).days) > 365 * MAX_YEARS_AWAY:
            raise ValueError(f"{v!r} is more than {MAX_YEARS_AWAY} years from today")
        return day


def parse_time(value: Any) -> datetime:
    """ISO 8601 with a UTC offset -> aware UTC; ValueError naming what is wrong."""
    if not isinstance(value, str):
        raise ValueError(
            f"expected an ISO 8601 time like 2026-11-20T09:15:00+01:00, got {_shown(value)}"
        )
    match = _ISO_TIME.match(value.strip())
    if match is None:
        raise ValueError(f"{_shown(value)} is not an ISO 8601 time like 2026-11-20T09:15:00+01:00")
    if match["offset"] is None:
        raise ValueError("needs a UTC offset, like 2026-11-20T09:15:00+01:00")
    try:
        return datetime.fromisoformat(value.strip()).astimezone(UTC)
    except (ValueError, OverflowError):
        raise ValueError(f"{value!r} is not a valid time") from None


def validate_row(
    source: str, line: int, data: Any, carriers: Carriers, now: datetime
) -> tuple[Order | None, list[Rejection]]:
    """One order from one parsed row, or the row's rejections (each naming its field)."""
    if not isinstance(data, dict):
        return None, [
            Rejection(source, line, f"row: expected a JSON object, got {type(data).__name__}")
        ]
    try:
        row = OrderRow.model_validate(data, context={"carriers": carriers, "now": now})
    except ValidationError as exc:
        return None, format_errors(source, line, exc)
    currencies = {i.currency for i in row.items}
    if len(currencies) > 1:
        return None, [
            Rejection(source, line, f"items: mixed currencies {sorted(currencies)} in one order")
        ]
    return to_order(row), []


def format_errors(source: str, line: int, exc: ValidationError) -> list[Rejection]:
    errors = exc.errors(include_url=False)
    locs = [tuple(e["loc"]) for e in errors]
    out = []
    for err in errors:
        loc = tuple(err["loc"])
        # A failed item also empties its list: report the item, not the list's length.
        if any(other[: len(loc)] == loc and len(other) > len(loc) for other in locs):
            continue
        field = ".".join(str(p) for p in err["loc"]) or "row"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field (check the spelling against README.md 'Order files')"
        elif err["type"] == "missing":
            msg = "is required"
        out.append(Rejection(source, line, f"{field}: {msg}"))
    return out


def to_order(row: OrderRow) -> Order:
    c = row.customer
    customer = Customer(
        customer_id=c.id or (c.email or f"order:{row.order_id}"),
        name=c.name,
        email=c.email,
        phone=c.phone,
        locale=c.locale,
        time_zone=c.time_zone,
        consent_email=c.consent.email,
        consent_sms=c.consent.sms,
        country=c.country,
        tags=c.tags,
    )
    return Order(
        order_id=row.order_id,
        placed_at=row.placed_at,
        customer=customer,
        items=tuple(
            Item(i.sku, i.name, i.category, i.quantity, i.price, i.currency, i.warranty_months)
            for i in row.items
        ),
        shipments=tuple(ShipmentRef(s.tracking_number, s.carrier, s.items) for s in row.shipments),
        promised_delivery=row.promised_delivery,
        shipping_country=row.shipping_country or c.country,
    )
