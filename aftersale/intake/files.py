"""Order intake from NDJSON and CSV files: validate each row, keep the good, report the bad.

Parsing is pure (`parse_orders`); `import_file` is the I/O edge that stores the result.
Every rejected row names its file, line and field, e.g.
`orders.ndjson:7: customer.phone: '+48 600' is not a valid E.164 phone number`.
The schema is documented in README.md ("Order files").
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import phonenumbers
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from aftersale.carriers_meta import Carriers, normalise_tracking_number
from aftersale.errors import IntakeError
from aftersale.models import Customer, Item, Order, ShipmentRef
from aftersale.store.protocols import OrderStore
from aftersale.store.records import Rejection

#: What intake needs to know about carriers: the slugs a row may name, and a ranked guess
#: for a row that names none. (The name aftersale/cycle.py's CycleParts still uses.)
DetectCarriers = Carriers

_ZONES: frozenset[str] | None = None


def _zones() -> frozenset[str]:
    global _ZONES
    if _ZONES is None:
        _ZONES = frozenset(available_timezones())
    return _ZONES


class _Row(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)


class ConsentRow(_Row):
    email: bool = False
    sms: bool = False


class CustomerRow(_Row):
    id: str | None = None
    name: Annotated[str, Field(min_length=1)]
    email: str | None = None
    phone: str | None = None
    locale: Annotated[str, Field(pattern=r"^[a-z]{2}(-[A-Z]{2})?$")] = "en"
    time_zone: str = "UTC"
    consent: ConsentRow = ConsentRow()
    country: Annotated[str, Field(pattern=r"^[A-Z]{2}$")] | None = None
    tags: tuple[str, ...] = ()

    @field_validator("email")
    @classmethod
    def _email(cls, v: str | None) -> str | None:
        if v in (None, ""):
            return None
        local, _, domain = v.partition("@")
        if not local or "." not in domain or " " in v:
            raise ValueError(f"{v!r} is not an email address")
        return v.lower()

    @field_validator("phone")
    @classmethod
    def _phone(cls, v: str | None) -> str | None:
        if v in (None, ""):
            return None
        try:
            parsed = phonenumbers.parse(v, None)
        except phonenumbers.NumberParseException:
            parsed = None
        if parsed is None or not v.startswith("+") or not phonenumbers.is_valid_number(parsed):
            raise ValueError(f"{v!r} is not a valid E.164 phone number (like +48601234567)")
        return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)

    @field_validator("time_zone")
    @classmethod
    def _tz(cls, v: str) -> str:
        if v not in _zones():
            raise ValueError(f"{v!r} is not an IANA time zone (like Europe/Warsaw)")
        try:
            ZoneInfo(v)
        except ZoneInfoNotFoundError as exc:  # pragma: no cover - listed zones load
            raise ValueError(f"{v!r} is not an IANA time zone") from exc
        return v


class ItemRow(_Row):
    sku: Annotated[str, Field(min_length=1)]
    name: Annotated[str, Field(min_length=1)]
    category: Annotated[str, Field(min_length=1)]
    quantity: Annotated[int, Field(ge=1)] = 1
    price: Annotated[Decimal, Field(ge=0, max_digits=12, decimal_places=2)]
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    warranty_months: Annotated[int, Field(ge=0, le=240)] | None = None


class ShipmentRow(_Row):
    carrier: str | None = None
    tracking_number: Annotated[str, Field(min_length=5, max_length=40)]

    @field_validator("carrier")
    @classmethod
    def _carrier(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v in (None, ""):
            return None
        slug = v.lower()
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
        return normalise_tracking_number(v)


class OrderRow(_Row):
    order_id: Annotated[str, Field(min_length=1, max_length=64)]
    placed_at: datetime
    customer: CustomerRow
    items: Annotated[tuple[ItemRow, ...], Field(min_length=1)]
    shipments: tuple[ShipmentRow, ...] = ()
    promised_delivery: date | None = None
    shipping_country: Annotated[str, Field(pattern=r"^[A-Z]{2}$")] | None = None

    @field_validator("placed_at")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        if v.tzinfo is None:
            raise ValueError("needs a UTC offset, like 2026-11-20T09:15:00+01:00")
        return v.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class ParseResult:
    orders: list[Order]
    rejections: list[Rejection]
    lines: dict[str, int] = field(default_factory=dict)  # order id -> first line


def _format_errors(source: str, line: int, exc: ValidationError) -> list[Rejection]:
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


def _to_order(row: OrderRow) -> Order:
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
        shipments=tuple(ShipmentRef(s.tracking_number, s.carrier) for s in row.shipments),
        promised_delivery=row.promised_delivery,
        shipping_country=row.shipping_country or c.country,
    )


def _validate(
    source: str, line: int, data: Any, carriers: Carriers
) -> tuple[Order | None, list[Rejection]]:
    if not isinstance(data, dict):
        return None, [
            Rejection(source, line, f"row: expected a JSON object, got {type(data).__name__}")
        ]
    try:
        row = OrderRow.model_validate(data, context={"carriers": carriers})
    except ValidationError as exc:
        return None, _format_errors(source, line, exc)
    currencies = {i.currency for i in row.items}
    if len(currencies) > 1:
        return None, [
            Rejection(source, line, f"items: mixed currencies {sorted(currencies)} in one order")
        ]
    return _to_order(row), []


def parse_ndjson(text: str, source: str, carriers: Carriers) -> ParseResult:
    """One order per line; blank lines and lines starting with '#' are skipped."""
    orders: list[Order] = []
    rejections: list[Rejection] = []
    lines: dict[str, int] = {}
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            rejections.append(
                Rejection(source, line_no, f"row: not valid JSON ({exc.msg} at column {exc.colno})")
            )
            continue
        order, problems = _validate(source, line_no, data, carriers)
        rejections.extend(problems)
        if order and order.order_id in lines:
            first = lines[order.order_id]
            rejections.append(
                Rejection(source, line_no, f"order_id: {order.order_id!r} already on line {first}")
            )
        elif order:
            orders.append(order)
            lines[order.order_id] = line_no
    return ParseResult(orders, rejections, lines)


CSV_COLUMNS = (
    "order_id",
    "placed_at",
    "customer_id",
    "customer_name",
    "email",
    "phone",
    "locale",
    "time_zone",
    "consent_email",
    "consent_sms",
    "country",
    "sku",
    "item_name",
    "category",
    "quantity",
    "price",
    "currency",
    "warranty_months",
    "carrier",
    "tracking_number",
    "promised_delivery",
)
_TRUE = {"true", "yes", "1", "y"}
_FALSE = {"false", "no", "0", "n", ""}


def _flag(value: str, column: str) -> bool:
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise ValueError(f"{column}: {value!r} is not yes/no")


def parse_csv(text: str, source: str, carriers: Carriers) -> ParseResult:
    """One row per item; rows sharing an order id form one order (all its rows must be good)."""
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    missing = [c for c in ("order_id", "placed_at", "customer_name", "sku") if c not in header]
    unknown = [c for c in header if c not in CSV_COLUMNS]
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"missing columns {missing}")
        if unknown:
            parts.append(f"unknown columns {unknown}")
        return ParseResult([], [Rejection(source, 1, "header: " + "; ".join(parts))])
    groups: dict[str, list[tuple[int, dict[str, str]]]] = {}
    rejections: list[Rejection] = []
    for row in reader:
        line = reader.line_num
        if None in row:
            rejections.append(
                Rejection(
                    source,
                    line,
                    f"row: {len(header) + len(row[None])} cells, header has {len(header)}",
                )
            )  # type: ignore[index]
            continue
        groups.setdefault(row["order_id"].strip(), []).append((line, row))
    orders = []
    for order_id, rows in groups.items():
        first_line, first = rows[0]
        try:
            consent = {
                "email": _flag(first.get("consent_email", ""), "consent_email"),
                "sms": _flag(first.get("consent_sms", ""), "consent_sms"),
            }
        except ValueError as exc:
            rejections.append(Rejection(source, first_line, str(exc)))
            continue
        shipments: dict[str, dict[str, str]] = {}
        for _, r in rows:
            if r.get("tracking_number", "").strip():
                shipments.setdefault(
                    r["tracking_number"].strip(),
                    {"carrier": r.get("carrier", ""), "tracking_number": r["tracking_number"]},
                )
        data = {
            "order_id": order_id,
            "placed_at": first["placed_at"],
            "customer": {
                "id": first.get("customer_id") or None,
                "name": first["customer_name"],
                "email": first.get("email") or None,
                "phone": first.get("phone") or None,
                "locale": first.get("locale") or "en",
                "time_zone": first.get("time_zone") or "UTC",
                "consent": consent,
                "country": first.get("country") or None,
            },
            "items": [
                {
                    "sku": r["sku"],
                    "name": r.get("item_name", ""),
                    "category": r.get("category", ""),
                    "quantity": r.get("quantity") or 1,
                    "price": r.get("price", ""),
                    "currency": r.get("currency", ""),
                    "warranty_months": r.get("warranty_months") or None,
                }
                for _, r in rows
            ],
            "shipments": list(shipments.values()),
            "promised_delivery": first.get("promised_delivery") or None,
        }
        order, problems = _validate(source, first_line, data, carriers)
        # Point item errors at the CSV line the item came from.
        for p in problems:
            line = first_line
            head = p.reason.split(":", 1)[0]
            if head.startswith("items."):
                index = int(head.split(".")[1])
                line = rows[index][0] if index < len(rows) else first_line
            rejections.append(Rejection(source, line, p.reason))
        if order:
            orders.append(order)
    return ParseResult(orders, rejections, {o.order_id: groups[o.order_id][0][0] for o in orders})


def parse_orders(path: Path, text: str, carriers: Carriers) -> ParseResult:
    suffix = path.suffix.lower()
    if suffix in (".ndjson", ".jsonl"):
        return parse_ndjson(text, path.name, carriers)
    if suffix == ".csv":
        return parse_csv(text, path.name, carriers)
    raise IntakeError(f"{path}: unknown order file type {suffix!r} (use .ndjson, .jsonl or .csv)")


@dataclass(frozen=True, slots=True)
class ImportReport:
    source: str
    loaded: int
    already_known: int
    rejections: list[Rejection]


def import_file(
    store: OrderStore, path: Path, *, now: datetime, detect: DetectCarriers | None
) -> ImportReport:
    """Read, validate and store one order file. Idempotent by order id.

    `detect` is the carrier directory the edge passes in: rows may only name its carriers,
    and a row that names none gets the carrier its tracking number's format suggests."""
    if detect is None:
        raise IntakeError(f"{path}: no carrier directory to check the file's carriers against")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise IntakeError(f"{path}: cannot read: {exc}") from exc
    parsed = parse_orders(path, text, detect)
    orders, rejections = _dedupe_tracking(store, parsed, path.name)
    orders, candidates = _assign_carriers(orders, detect)
    loaded, known = store.save_orders(orders, source=path.name, now=now, candidates=candidates)
    store.record_rejections(rejections, now)
    return ImportReport(path.name, loaded, known, rejections)


def _dedupe_tracking(
    store: OrderStore, parsed: ParseResult, source: str
) -> tuple[list[Order], list[Rejection]]:
    """A tracking number belongs to one order: a second order claiming it is rejected."""
    owners = store.known_tracking_numbers(
        ref.tracking_number for o in parsed.orders for ref in o.shipments
    )
    rejections = list(parsed.rejections)
    keep = []
    for order in parsed.orders:
        clash = next(
            (
                r.tracking_number
                for r in order.shipments
                if owners.setdefault(r.tracking_number, order.order_id) != order.order_id
            ),
            None,
        )
        if clash:
            rejections.append(
                Rejection(
                    source,
                    parsed.lines.get(order.order_id, 0),
                    f"shipments.tracking_number: {clash} already belongs to order {owners[clash]}",
                )
            )
        else:
            keep.append(order)
    return keep, rejections


def _assign_carriers(
    orders: Sequence[Order], carriers: Carriers
) -> tuple[list[Order], dict[str, list[str]]]:
    """Fill empty carriers from the tracking number; remember the other candidates."""
    candidates: dict[str, list[str]] = {}
    out = []
    for order in orders:
        refs = []
        for ref in order.shipments:
            if ref.carrier is None:
                ranked = carriers.detect(ref.tracking_number)
                candidates[ref.tracking_number] = ranked
                ref = ShipmentRef(ref.tracking_number, ranked[0] if ranked else None)
            refs.append(ref)
        out.append(replace(order, shipments=tuple(refs)))
    return out, candidates
