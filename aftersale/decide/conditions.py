"""The vocabulary rules are written in: known fields, operators, durations, time windows.

Conditions are data: a field name from `FIELDS`, an operator from `OPERATORS` and a
value. `compile_condition` turns one into a plain callable once, at load time, so the
decide hot path never validates anything. The carriers a condition may name come from
the carrier directory the rules are loaded with (`fields_for`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import Any

from aftersale.carriers_meta import Carriers
from aftersale.models import DelayReason, DomainEvent, EventKind, Item, Order, ShipmentState, Status
from aftersale.tracking.detect import add_business_days, local_to_utc, zone

Getter = Callable[[Order, ShipmentState | None, DomainEvent, Sequence[Item]], Any]


@dataclass(frozen=True, slots=True)
class FieldSpec:
    type: str  # "number", "text", "bool"
    many: bool  # several values (items, tags): true when any value matches
    get: Getter
    needs_shipment: bool = False
    choices: tuple[str, ...] = ()  # the only values it can take, if a fixed set


def _delay_days(event: DomainEvent) -> Any:
    return event.facts.get("days_late")


FIELDS: dict[str, FieldSpec] = {
    "order.total": FieldSpec("number", False, lambda o, s, e, i: o.total),
    "order.currency": FieldSpec("text", False, lambda o, s, e, i: o.currency),
    "order.country": FieldSpec(
        "text", False, lambda o, s, e, i: o.shipping_country or o.customer.country
    ),
    "order.item_count": FieldSpec(
        "number", False, lambda o, s, e, i: sum(x.quantity for x in o.items)
    ),
    "customer.locale": FieldSpec("text", False, lambda o, s, e, i: o.customer.locale),
    "customer.country": FieldSpec("text", False, lambda o, s, e, i: o.customer.country),
    "customer.time_zone": FieldSpec("text", False, lambda o, s, e, i: o.customer.time_zone),
    "customer.consent_email": FieldSpec("bool", False, lambda o, s, e, i: o.customer.consent_email),
    "customer.consent_sms": FieldSpec("bool", False, lambda o, s, e, i: o.customer.consent_sms),
    "customer.tags": FieldSpec("text", True, lambda o, s, e, i: o.customer.tags),
    "items.category": FieldSpec("text", True, lambda o, s, e, i: [x.category for x in i]),
    "items.sku": FieldSpec("text", True, lambda o, s, e, i: [x.sku for x in i]),
    "items.price": FieldSpec("number", True, lambda o, s, e, i: [x.price for x in i]),
    "items.warranty_months": FieldSpec(
        "number", True, lambda o, s, e, i: [x.warranty_months for x in i]
    ),
    # its values: the carrier directory's slugs (fields_for)
    "shipment.carrier": FieldSpec("text", False, lambda o, s, e, i: s.carrier if s else None, True),
    "shipment.status": FieldSpec(
        "text", False, lambda o, s, e, i: str(s.status) if s else None, True, tuple(Status)
    ),
    "shipment.delay_reason": FieldSpec(
        "text", False, lambda o, s, e, i: e.reason, True, tuple(DelayReason)
    ),
    "shipment.delay_days": FieldSpec("number", False, lambda o, s, e, i: _delay_days(e), True),
}


def fields_for(carriers: Carriers) -> Mapping[str, FieldSpec]:
    """`FIELDS`, with the carrier slugs `shipment.carrier` may be compared with."""
    carrier = replace(FIELDS["shipment.carrier"], choices=carriers.slugs)
    return {**FIELDS, "shipment.carrier": carrier}


#: Events that concern no shipment: conditions on shipment fields make no sense there.
EVENTS_WITHOUT_SHIPMENT = frozenset({EventKind.ORDER_PLACED, EventKind.WARRANTY_ENDING})

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
    for v in values:
        if spec.type == "number" and (isinstance(v, bool) or not isinstance(v, int | float)):
            return f"'{field_name}' is a number, got {v!r}"
        if spec.type == "bool" and not isinstance(v, bool):
            return f"'{field_name}' is true or false, got {v!r}"
        if spec.type == "text" and not isinstance(v, str):
            return f"'{field_name}' is text, got {v!r}"
        if spec.choices and v not in spec.choices:
            return f"unknown value '{v}' for '{field_name}'" + suggest(str(v), spec.choices)
    return None


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
