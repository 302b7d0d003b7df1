"""The vocabulary rules are written in: known fields, operators, durations, time windows.

Conditions are data: a field name from `FIELDS`, an operator from `OPERATORS` and a
value. `compile_condition` turns one into a plain callable once, at load time, so the
decide hot path never validates anything. Every value a condition compares with is
checked against what exists: carriers from the carrier directory and categories from
the product catalogue (`fields_for`), statuses and delay reasons from the models,
countries, locales, currencies and time zones from CLDR and IANA (`aftersale.locales`).

Time windows are in the recipient's own time zone. A send window is a daytime range
(`08:00-20:00`, start before end); quiet hours may wrap midnight (`21:00-08:00`). Either
way no window may let a message out at night (`NIGHT`, 22:00-07:00).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import Any

from aftersale import locales
from aftersale.carriers_meta import Carriers
from aftersale.models import (
    DelayReason,
    DeliveryType,
    DomainEvent,
    EventKind,
    Item,
    Order,
    ShipmentState,
    Status,
)
from aftersale.tracking.detect import add_business_days, local_to_utc, zone
from aftersale.tracking.warranty import items_in

Getter = Callable[[Order, ShipmentState | None, DomainEvent, Sequence[Item]], Any]


@dataclass(frozen=True, slots=True)
class FieldSpec:
    type: str  # "number", "text", "bool"
    many: bool  # several values (items, tags): true when any value matches
    get: Getter
    needs_shipment: bool = False
    choices: tuple[str, ...] = ()  # the only values it can take, if a fixed set
    noun: str = "value"  # what one value is called in messages: carrier, category...


def _delay_days(event: DomainEvent) -> Any:
    return event.facts.get("days_late")


FIELDS: dict[str, FieldSpec] = {
    "order.total": FieldSpec("number", False, lambda o, s, e, i: o.total),
    "order.currency": FieldSpec("text", False, lambda o, s, e, i: o.currency, noun="currency"),
    "order.country": FieldSpec(
        "text", False, lambda o, s, e, i: o.shipping_country or o.customer.country, noun="country"
    ),
    "order.item_count": FieldSpec(
        "number", False, lambda o, s, e, i: sum(x.quantity for x in o.items)
    ),
    "customer.locale": FieldSpec(
        "text", False, lambda o, s, e, i: o.customer.locale, noun="locale"
    ),
    "customer.country": FieldSpec(
        "text", False, lambda o, s, e, i: o.customer.country, noun="country"
    ),
    "customer.time_zone": FieldSpec(
        "text", False, lambda o, s, e, i: o.customer.time_zone, noun="time zone"
    ),
    "customer.consent_email": FieldSpec("bool", False, lambda o, s, e, i: o.customer.consent_email),
    "customer.consent_sms": FieldSpec("bool", False, lambda o, s, e, i: o.customer.consent_sms),
    "customer.tags": FieldSpec("text", True, lambda o, s, e, i: o.customer.tags),
    "items.category": FieldSpec(
        "text", True, lambda o, s, e, i: [x.category for x in i], noun="category"
    ),
    "items.sku": FieldSpec("text", True, lambda o, s, e, i: [x.sku for x in i]),
    "items.price": FieldSpec("number", True, lambda o, s, e, i: [x.price for x in i]),
    "items.warranty_months": FieldSpec(
        "number", True, lambda o, s, e, i: [x.warranty_months for x in i]
    ),
    # its values: the carrier directory's slugs (fields_for)
    "shipment.carrier": FieldSpec(
        "text", False, lambda o, s, e, i: s.carrier if s else None, True, noun="carrier"
    ),
    "shipment.status": FieldSpec(
        "text",
        False,
        lambda o, s, e, i: str(s.status) if s else None,
        True,
        tuple(Status),
        "status",
    ),
    "shipment.delay_reason": FieldSpec(
        "text", False, lambda o, s, e, i: e.reason, True, tuple(DelayReason), "delay reason"
    ),
    "shipment.delay_days": FieldSpec("number", False, lambda o, s, e, i: _delay_days(e), True),
    # the items this parcel carries (all the order's when its parcels do not say)
    "shipment.item_categories": FieldSpec(
        "text",
        True,
        lambda o, s, e, i: [x.category for x in items_in(o, s.tracking_number)] if s else [],
        True,
        noun="category",
    ),
    # none when the carrier's data does not say (most home deliveries)
    "shipment.delivery_type": FieldSpec(
        "text",
        False,
        lambda o, s, e, i: str(s.delivery_type) if s and s.delivery_type else None,
        True,
        tuple(DeliveryType),
        "delivery type",
    ),
}


def fields_for(
    carriers: Carriers, categories: Sequence[str] | None = None
) -> Mapping[str, FieldSpec]:
    """`FIELDS`, with the carrier slugs `shipment.carrier` may be compared with, and the
    catalogue's categories `items.category` may (when the catalogue is known)."""
    fields = {
        **FIELDS,
        "shipment.carrier": replace(FIELDS["shipment.carrier"], choices=carriers.slugs),
    }
    if categories is not None:
        for name in ("items.category", "shipment.item_categories"):
            fields[name] = replace(FIELDS[name], choices=tuple(categories))
    return fields


#: Fields whose values come from a world vocabulary: (is it known, what it meant).
_WORLD: dict[str, tuple[Callable[[str], bool], Callable[[str], str]]] = {
    "locale": (locales.is_locale, lambda v: locales.suggest_locale(v, ("en", "pl", "de"))),
    "country": (lambda v: v in locales.countries(), locales.suggest_country),
    "currency": (lambda v: v in locales.currencies(), lambda v: suggest(v.upper(), [v.upper()])
                 if v.upper() in locales.currencies() else ""),
    "time zone": (lambda v: v in locales.time_zones(), lambda v: suggest(v, locales.time_zones())),
}  # fmt: skip


#: Events that concern no shipment: conditions on shipment fields make no sense there.
EVENTS_WITHOUT_SHIPMENT = frozenset(
    {
        EventKind.ORDER_PLACED,
        EventKind.WARRANTY_ENDING,
        EventKind.RETURN_REQUESTED,
        EventKind.RETURN_DECLINED,
        EventKind.REFUND_ISSUED,
        EventKind.RETURN_WINDOW_ENDING,
        EventKind.FULFILMENT_DELAYED,
    }
)

OPERATORS: dict[str, str] = {
    "eq": "=",
    "ne": "!=",
    "in": "in",
    "not_in": "not in",
    "gt": ">",
    "gte": ">=",
    "lt": "<",
    "lte": "<=",
}
_NEGATIVE = frozenset({"ne", "not_in"})
_ORDERING = frozenset({"gt", "gte", "lt", "lte"})


@dataclass(frozen=True, slots=True)
class Condition:
    field: str
    op: str
    value: Any
    test: Callable[[Order, ShipmentState | None, DomainEvent, Sequence[Item]], bool]
    get: Getter

    @property
    def text(self) -> str:
        value = (
            "[" + ", ".join(map(str, self.value)) + "]"
            if isinstance(self.value, list)
            else self.value
        )
        return f"{self.field} {OPERATORS[self.op]} {value}"


def check_condition(field_name: str, spec: FieldSpec, op: str, value: Any) -> str | None:
    """What is wrong with a condition on the field `spec` describes, or None."""
    if op in _ORDERING and spec.type != "number":
        return f"operator '{op}' needs a number field, '{field_name}' is {spec.type}"
    values = value if op in ("in", "not_in") else [value]
    if op in ("in", "not_in") and not isinstance(value, list):
        return f"operator '{op}' needs a list, e.g. [a, b]"
    unknown = []
    for v in values:
        if spec.type == "number" and (isinstance(v, bool) or not isinstance(v, int | float)):
            return f"'{field_name}' is a number, got {v!r}"
        if spec.type == "bool" and not isinstance(v, bool):
            return f"'{field_name}' is true or false, got {v!r}"
        if spec.type == "text" and not isinstance(v, str):
            return f"'{field_name}' is text, got {v!r}"
        if spec.choices and v not in spec.choices:
            unknown.append(f"'{v}'{suggest(str(v), spec.choices)}")
        world = _WORLD.get(spec.noun)
        if world is not None and isinstance(v, str) and not world[0](v):
            unknown.append(f"'{v}'{world[1](v)}")
    if not unknown:
        return None
    where = ": the catalogue has no such category" if spec.noun == "category" else ""
    return f"unknown {spec.noun} {', '.join(unknown)} for '{field_name}'{where}"


def compile_condition(field_name: str, op: str, value: Any) -> Condition:
    spec = FIELDS[field_name]
    get = spec.get
    if spec.type == "number":
        value = [Decimal(str(v)) for v in value] if isinstance(value, list) else Decimal(str(value))
    match op:
        case "eq":
            one: Callable[[Any], bool] = lambda v: v == value  # noqa: E731
        case "ne":
            one = lambda v: v != value  # noqa: E731
        case "in":
            allowed = frozenset(value)
            one = lambda v: v in allowed  # noqa: E731
        case "not_in":
            banned = frozenset(value)
            one = lambda v: v not in banned  # noqa: E731
        case "gt":
            one = lambda v: v is not None and v > value  # noqa: E731
        case "gte":
            one = lambda v: v is not None and v >= value  # noqa: E731
        case "lt":
            one = lambda v: v is not None and v < value  # noqa: E731
        case "lte":
            one = lambda v: v is not None and v <= value  # noqa: E731
        case _:
            raise ValueError(f"unknown operator {op!r}")
    if spec.many:
        # many values: a positive test needs one match, a negative one needs all
        agg = all if op in _NEGATIVE else any

        def test(o: Order, s: ShipmentState | None, e: DomainEvent, i: Sequence[Item]) -> bool:
            return agg(one(v) for v in get(o, s, e, i))
    else:

        def test(o: Order, s: ShipmentState | None, e: DomainEvent, i: Sequence[Item]) -> bool:
            return one(get(o, s, e, i))

    return Condition(field_name, op, value, test, get)


def suggest(word: str, choices: Sequence[str] | set[str] | frozenset[str]) -> str:
    import difflib

    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


# --- durations and windows ----------------------------------------------------------

DURATION_RE = re.compile(r"^(\d+)(m|h|d|bd)$")
_UNIT = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1)}


@dataclass(frozen=True, slots=True)
class Duration:
    """`10m`, `2h`, `3d` (calendar) or `2bd` (business days, recipient's calendar)."""

    amount: int
    unit: str
    #: the fixed length of a calendar duration (None for business days), computed once
    delta: timedelta | None = field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        if self.unit in _UNIT:
            object.__setattr__(self, "delta", self.amount * _UNIT[self.unit])

    def add(self, start: datetime, tz: str) -> datetime:
        if self.delta is not None:
            return start + self.delta
        if self.unit == "bd":
            return add_business_days(start, self.amount, tz)
        return start + self.amount * _UNIT[self.unit]

    def __str__(self) -> str:
        return f"{self.amount}{self.unit}"


def parse_duration(text: Any) -> Duration | None:
    match = DURATION_RE.match(str(text).strip()) if isinstance(text, str | int) else None
    return Duration(int(match.group(1)), match.group(2)) if match else None


WINDOW_RE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")


@dataclass(frozen=True, slots=True)
class Window:
    """Minutes of the local day when sending is allowed; may wrap midnight."""

    start: int
    end: int

    def next_open(self, at: datetime, tz: str) -> datetime:
        """`at` if inside the window, else the window's next opening (in UTC)."""
        local = at.astimezone(zone(tz))
        minute = local.hour * 60 + local.minute
        s, e = self.start, self.end
        inside = (s <= minute < e) if s < e else (minute >= s or minute < e)
        if inside:
            return at
        day = local.date() if minute < s else local.date() + timedelta(days=1)
        return local_to_utc(datetime.combine(day, time(s // 60, s % 60)), tz)

    def __str__(self) -> str:
        return (
            f"{self.start // 60:02d}:{self.start % 60:02d}-{self.end // 60:02d}:{self.end % 60:02d}"
        )


def parse_window(text: Any) -> Window | None:
    match = WINDOW_RE.match(text.strip()) if isinstance(text, str) else None
    if not match:
        return None
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    start, end = h1 * 60 + m1, h2 * 60 + m2
    return None if start == end else Window(start, end)


def invert(quiet: Window) -> Window:
    """Quiet hours 21:00-08:00 are the send window 08:00-21:00."""
    return Window(quiet.end, quiet.start)


#: The recipient's night, in their own time zone: no window may let a message out in it.
NIGHT = Window(22 * 60, 7 * 60)


def _minutes(window: Window) -> set[int]:
    if window.start < window.end:
        return set(range(window.start, window.end))
    return set(range(window.start, 24 * 60)) | set(range(0, window.end))


def _ranges(minutes: set[int]) -> str:
    """{1320..1379, 360..419} -> "22:00-23:00 and 06:00-07:00" (evening first)."""
    spans: list[tuple[int, int]] = []
    for m in sorted(minutes, key=lambda m: (m < 12 * 60, m)):
        if spans and spans[-1][1] % (24 * 60) == m:
            spans[-1] = (spans[-1][0], spans[-1][1] + 1)
        else:
            spans.append((m, m + 1))
    return " and ".join(str(Window(a, b % (24 * 60))) for a, b in spans)


def window_problem(window: Window, *, quiet: bool) -> str | None:
    """What is wrong with a send window or quiet hours (see the module's docstring)."""
    turned = f"'{Window(window.end, window.start)}'"
    if not quiet and window.start > window.end:
        return (
            f"send window '{window}' runs overnight: a send window is a daytime range, start "
            f"before end (did you mean {turned}?)"
        )
    allowed = invert(window) if quiet else window
    night = _minutes(allowed) & _minutes(NIGHT)
    if not night:
        return None
    if quiet and window.start < window.end:
        return (
            f"quiet hours '{window}' are daytime hours: messages would wait through the day "
            f"and go out at night ({_ranges(night)} in the recipient's time zone); quiet hours "
            f"run from evening to morning (did you mean {turned}?)"
        )
    kind = "quiet hours" if quiet else "send window"
    return (
        f"{kind} '{window}' {'let' if quiet else 'lets'} messages out at night "
        f"({_ranges(night)} in the recipient's time zone): keep sending within {invert(NIGHT)}"
    )
