"""What every backend shares between its SQL and the core's values: the column lists each
aggregate selects, the functions that turn a selected row into a record, UTC at the edge
and JSON for the JSON columns. Pure: no driver is imported here.

Times are stored as naive TIMESTAMP holding UTC in both backends.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, overload

from aftersale.models import (
    TERMINAL_STATUSES,
    ChannelKind,
    Customer,
    DeliveryType,
    DomainEvent,
    EventKind,
    Item,
    MessageState,
    Order,
    ShipmentRef,
    ShipmentState,
    Status,
)
from aftersale.store.records import (
    CustomerChange,
    DueMessage,
    HealthRecord,
    MessageRow,
    NewMessage,
    RefundRecord,
    ReturnParcel,
    ReturnRecord,
    StoredCustomer,
    Suppression,
)

#: Return statuses under which the customer is still sending the items back.
OPEN_RETURN_STATUSES = ("requested", "open")
#: Terminal statuses, sorted, as SQL parameters.
TERMINAL = sorted(s.value for s in TERMINAL_STATUSES)
#: The tables of the store, in an order that copies parents before children.
TABLES = (
    "customers",
    "orders",
    "items",
    "shipments",
    "tracking_events",
    "domain_events",
    "messages",
    "message_texts",
    "runs",
    "rejections",
    "suppressions",
    "customer_changes",
    "health",
    "platform_orders",
    "order_refunds",
    "order_returns",
    "sync_state",
    "erasures",
    "signing_keys",
)


def subject_hash(customer_id: str) -> str:
    """How an erased customer's id is remembered: its SHA-256, never the id itself."""
    return hashlib.sha256(customer_id.encode()).hexdigest()


def erased_id(customer_id: str) -> str:
    """What an erased customer's id becomes (an id may be the email address itself)."""
    return "erased-" + subject_hash(customer_id)[:16]


#: The members of the stored vocabularies by value: the rows of a cycle hold a few hundred
#: thousand of them, and a look-up here costs a tenth of calling the enum.
STATUSES = {s.value: s for s in Status}
CHANNELS = {c.value: c for c in ChannelKind}
MESSAGE_STATES = {s.value: s for s in MessageState}
EVENT_KINDS = {k.value: k for k in EventKind}
DELIVERY_TYPES = {t.value: t for t in DeliveryType}


def to_db(dt: datetime | None) -> datetime | None:
    """Aware UTC in the core, naive UTC in the database."""
    if dt is None:
        return None
    tz = dt.tzinfo
    if tz is UTC:  # nearly every time the core holds: nothing to convert
        return dt.replace(tzinfo=None)
    if tz is None:
        raise ValueError(f"naive datetime {dt!r} reached the store; the core keeps UTC-aware times")
    return dt.astimezone(UTC).replace(tzinfo=None)


@overload
def from_db(dt: datetime) -> datetime: ...
@overload
def from_db(dt: None) -> None: ...
def from_db(dt: datetime | None) -> datetime | None:
    return None if dt is None else dt.replace(tzinfo=UTC)


def to_json(value: object, *, sort_keys: bool = False) -> str:
    """JSON for the store's JSON columns: dates as ISO 8601, decimals as strings."""
    return json.dumps(value, default=_json_default, sort_keys=sort_keys)


def from_json(value: Any) -> Any:
    """A JSON column as read: DuckDB gives the text, PostgreSQL the parsed value."""
    if value == "{}":  # most events' facts: no parser needed
        return {}
    return json.loads(value) if isinstance(value, str | bytes) else value


def _json_default(value: object) -> object:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    raise TypeError(f"cannot store {type(value).__name__} in JSON facts")


SHIPMENT_COLS = (
    "shipment_id, order_id, carrier, tracking_number, status, code, description, "
    "estimated_delivery, first_estimate, window_start, window_end, delivered_at, "
    "pickup_point, last_event_at, status_since, last_polled_at, next_check_at, "
    "created_at, problem, delivery_type, pickup_deadline, pickup_hours, return_id"
)


def shipment_from_row(r: tuple[Any, ...]) -> ShipmentState:
    window = (from_db(r[9]), from_db(r[10])) if r[9] and r[10] else None
    return ShipmentState(
        shipment_id=r[0],
        order_id=r[1],
        carrier=r[2],
        tracking_number=r[3],
        status=STATUSES[r[4]],
        code=r[5],
        description=r[6],
        estimated_delivery=r[7],
        first_estimate=r[8],
        estimated_window=window,
        delivered_at=from_db(r[11]),
        pickup_point=r[12],
        last_event_at=from_db(r[13]),
        status_since=from_db(r[14]),
        last_polled_at=from_db(r[15]),
        next_check_at=from_db(r[16]),
        created_at=from_db(r[17]),
        problem=r[18],
        delivery_type=DELIVERY_TYPES[r[19]] if r[19] else None,
        pickup_deadline=from_db(r[20]),
        pickup_hours=r[21],
        return_id=r[22],
    )


def shipment_update(state: ShipmentState, poll_failures: int) -> dict[str, Any]:
    """The columns a poll writes back for one shipment."""
    window = state.estimated_window
    return {
        "shipment_id": state.shipment_id,
        "carrier": state.carrier,
        "status": state.status.value,
        "code": state.code,
        "description": state.description,
        "estimated_delivery": state.estimated_delivery,
        "first_estimate": state.first_estimate,
        "window_start": to_db(window[0]) if window else None,
        "window_end": to_db(window[1]) if window else None,
        "delivered_at": to_db(state.delivered_at),
        "pickup_point": state.pickup_point,
        "last_event_at": to_db(state.last_event_at),
        "status_since": to_db(state.status_since),
        "last_polled_at": to_db(state.last_polled_at),
        "next_check_at": to_db(state.next_check_at),
        "problem": state.problem,
        "poll_failures": poll_failures,
        "delivery_type": state.delivery_type.value if state.delivery_type else None,
        "pickup_deadline": to_db(state.pickup_deadline),
        "pickup_hours": state.pickup_hours,
    }


MESSAGE_COLS = (
    "message_id, idempotency_key, rule_id, template, channel, marketing, order_id, "
    "shipment_id, item_sku, customer_id, event_id, state, due_at, attempts, recipient, "
    "provider_id, error_code, error_text, provider, sent_at, "
    "delivery_state, updated_at, created_at, run_id, opened_at, clicked_at"
)

#: What a provider reports a recipient did -> the column that keeps its first time.
ENGAGEMENT_COLUMNS = {"opened": "opened_at", "clicked": "clicked_at"}


#: The fields of a `MessageDecision`, in order.
_DecisionFields = tuple[
    str, str, str, str, ChannelKind, bool, str, str | None, str | None, str, str
]


def _decision(r: tuple[Any, ...]) -> _DecisionFields:
    """The fields of a `MessageDecision` from the first 11 columns of a row of MESSAGE_COLS
    or DUE_COLS (both start with them)."""
    return (r[0], r[1], r[2], r[3], CHANNELS[r[4]], r[5], r[6], r[7], r[8], r[9], r[10])


def message_from_row(r: tuple[Any, ...]) -> MessageRow:
    return MessageRow(
        *_decision(r),
        state=MESSAGE_STATES[r[11]],
        due_at=from_db(r[12]),
        attempts=r[13],
        recipient=r[14],
        provider_id=r[15],
        error_code=r[16],
        error_text=r[17],
        provider=r[18],
        sent_at=from_db(r[19]),
        delivery_state=r[20],
        updated_at=from_db(r[21]),
        created_at=from_db(r[22]),
        run_id=r[23],
        opened_at=from_db(r[24]),
        clicked_at=from_db(r[25]),
    )


#: What dispatch reads of a due message (`due_message_from_row`).
DUE_COLS = (
    "message_id, idempotency_key, rule_id, template, channel, marketing, order_id, "
    "shipment_id, item_sku, customer_id, event_id, due_at, attempts"
)


def due_message_from_row(r: tuple[Any, ...]) -> DueMessage:
    """A due message from a row of DUE_COLS."""
    return DueMessage(*_decision(r), due_at=from_db(r[11]), attempts=r[12])


EVENT_COLS = "kind, order_id, occurred_at, shipment_id, item_sku, status, reason, facts"


def domain_event_from_row(r: tuple[Any, ...]) -> DomainEvent:
    return DomainEvent(
        kind=EVENT_KINDS[r[0]],
        order_id=r[1],
        occurred_at=from_db(r[2]),
        shipment_id=r[3],
        item_sku=r[4],
        status=STATUSES[r[5]] if r[5] else None,
        reason=r[6],
        facts=from_json(r[7]),
    )


def domain_event_row(
    event_id: str, event: DomainEvent, *, run_id: str, detected_at: datetime | None
) -> dict[str, Any]:
    """`event` as inserted; `event_id` is its `event_id` and `detected_at` the time in
    the store's form (`to_db`), both worked out once by the caller, not once a row."""
    return {
        "event_id": event_id,
        "kind": event.kind.value,
        "order_id": event.order_id,
        "shipment_id": event.shipment_id,
        "item_sku": event.item_sku,
        "status": event.status.value if event.status else None,
        "reason": event.reason,
        "occurred_at": to_db(event.occurred_at),
        # most events carry no facts (placed, shipped): their JSON needs no encoder
        "facts": to_json(dict(event.facts), sort_keys=True) if event.facts else "{}",
        "run_id": run_id,
        "detected_at": detected_at,
    }


SUPPRESSION_COLS = "address, channel, reason, created_at"


def suppression_from_row(r: tuple[Any, ...]) -> Suppression:
    return Suppression(str(r[0]), ChannelKind(r[1]), str(r[2]), from_db(r[3]))


def new_message_row(m: NewMessage, now: datetime) -> dict[str, Any]:
    """A decided message as it is inserted: `pending`, not attempted yet."""
    created = to_db(now)
    return {
        "message_id": m.message_id,
        "idempotency_key": m.idempotency_key,
        "rule_id": m.rule_id,
        "template": m.template,
        "channel": m.channel.value,
        "marketing": m.marketing,
        "order_id": m.order_id,
        "shipment_id": m.shipment_id,
        "item_sku": m.item_sku,
        "customer_id": m.customer_id,
        "event_id": m.event_id,
        "state": MessageState.PENDING.value,
        "due_at": to_db(m.due_at),
        "created_at": created,
        "updated_at": created,
        "attempts": 0,
        "run_id": m.run_id,
        "test": False,
    }


@dataclass
class OrderRows:
    """New orders as rows of the four tables they fill."""

    customers: list[dict[str, Any]] = field(default_factory=list)
    orders: list[dict[str, Any]] = field(default_factory=list)
    items: list[dict[str, Any]] = field(default_factory=list)
    shipments: list[dict[str, Any]] = field(default_factory=list)


def order_rows(
    orders: Sequence[Order], *, source: str, now: datetime, candidates: Mapping[str, list[str]]
) -> OrderRows:
    """Rows for orders not stored yet: one customer row per customer (intake gave all of a
    customer's orders the winning data), as of the newest of their orders' `placed_at`."""
    out = OrderRows()
    customers: dict[str, dict[str, Any]] = {}
    for o in orders:
        c = o.customer
        as_of = to_db(o.placed_at)
        before = customers.get(c.customer_id, {}).get("updated_at")
        newest = before if before is not None and as_of and before > as_of else as_of
        customers[c.customer_id] = customer_row(c, newest)
        out.orders.append(
            {
                "order_id": o.order_id,
                "customer_id": c.customer_id,
                "placed_at": to_db(o.placed_at),
                "promised_delivery": o.promised_delivery,
                "shipping_country": o.shipping_country,
                "source": source,
                "imported_at": to_db(now),
            }
        )
        for line, item in enumerate(o.items, start=1):
            out.items.append(
                {
                    "order_id": o.order_id,
                    "line": line,
                    "sku": item.sku,
                    "name": item.name,
                    "category": item.category,
                    "quantity": item.quantity,
                    "price": item.price,
                    "currency": item.currency,
                    "warranty_months": item.warranty_months,
                }
            )
        for ref in o.shipments:
            out.shipments.append(
                new_shipment_row(
                    o.order_id,
                    ref.tracking_number,
                    ref.carrier,
                    candidates.get(ref.tracking_number, ()),
                    now,
                    items=list(ref.items) or None,
                )
            )
    out.customers = list(customers.values())
    return out


#: The upsert of a customer row: the data as given, `updated_at` never moving back.
CUSTOMER_UPSERT = (
    "ON CONFLICT (customer_id) DO UPDATE SET name = excluded.name, "
    "email = excluded.email, phone = excluded.phone, locale = excluded.locale, "
    "time_zone = excluded.time_zone, consent_email = excluded.consent_email, "
    "consent_sms = excluded.consent_sms, country = excluded.country, "
    "tags = excluded.tags, updated_at = greatest(coalesce(customers.updated_at, "
    "excluded.updated_at), excluded.updated_at)"
)
CUSTOMER_COLS = (
    "customer_id, name, email, phone, locale, time_zone, consent_email, consent_sms, "
    "country, tags, updated_at"
)


def customer_from_row(r: Sequence[Any]) -> Customer:
    """A customer from the first ten columns of CUSTOMER_COLS."""
    return Customer(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], tuple(r[9] or ()))


def stored_customer_from_row(r: tuple[Any, ...]) -> StoredCustomer:
    return StoredCustomer(customer_from_row(r), from_db(r[10]) if r[10] is not None else None)


def customer_row(c: Customer, updated_at: datetime | None) -> dict[str, Any]:
    """A customer's row: their data as of `updated_at` (naive UTC, as stored)."""
    return {
        "customer_id": c.customer_id,
        "name": c.name,
        "email": c.email,
        "phone": c.phone,
        "locale": c.locale,
        "time_zone": c.time_zone,
        "consent_email": c.consent_email,
        "consent_sms": c.consent_sms,
        "country": c.country,
        "tags": list(c.tags),
        "updated_at": updated_at,
    }


def customer_rows(customers: Sequence[StoredCustomer]) -> list[dict[str, Any]]:
    """Rows of customers whose data changed after their orders were stored (a shop
    platform's newer copy of an order), sorted by id (locks taken in one order)."""
    return [
        customer_row(s.customer, to_db(s.as_of))
        for s in sorted(customers, key=lambda s: s.customer.customer_id)
    ]


def new_shipment_row(
    order_id: str,
    tracking_number: str,
    carrier: str | None,
    candidates: Iterable[str],
    now: datetime,
    *,
    items: list[str] | None = None,
    return_id: str | None = None,
) -> dict[str, Any]:
    """A parcel's row as first stored: pending, its first poll due now. `items`: the SKUs
    it carries when the order ships in parts; `return_id`: a parcel sent back."""
    return {
        "shipment_id": tracking_number,
        "order_id": order_id,
        "carrier": carrier,
        "carrier_candidates": list(candidates),
        "tracking_number": tracking_number,
        "items": items,
        "status": Status.PENDING.value,
        "created_at": to_db(now),
        "next_check_at": to_db(now),
        "poll_failures": 0,
        "return_id": return_id,
    }


def customer_change_rows(changes: Sequence[CustomerChange], now: datetime) -> list[dict[str, Any]]:
    """Rows of the customers' history: per order, each differing field as [stored, order's]."""
    return [
        {
            "customer_id": ch.customer_id,
            "order_id": ch.order_id,
            "source": ch.source,
            "as_of": to_db(ch.as_of),
            "applied": ch.applied,
            "changes": to_json({k: [a, b] for k, (a, b) in ch.changes.items()}),
            "recorded_at": to_db(now),
        }
        for ch in changes
    ]


#: What `orders_from_rows` expects each order row to hold, in this order.
ORDER_COLS = (
    "o.order_id, o.placed_at, o.promised_delivery, o.shipping_country, "
    "c.customer_id, c.name, c.email, c.phone, c.locale, c.time_zone, c.consent_email, "
    "c.consent_sms, c.country, c.tags"
)
#: The price comes as text (its scale kept: '449.00'): DuckDB hands a DECIMAL to Python
#: slower than a string plus `Decimal(text)` here (2,000 items: 3.5 against 2.5 ms).
ITEM_COLS = (
    "order_id, sku, name, category, quantity, CAST(price AS VARCHAR), currency, warranty_months"
)
REF_COLS = "order_id, tracking_number, carrier, items"


def orders_from_rows(
    order_rows: Iterable[tuple[Any, ...]],
    item_rows: Iterable[tuple[Any, ...]],
    ref_rows: Iterable[tuple[Any, ...]],
) -> dict[str, Order]:
    """Orders from rows of ORDER_COLS, ITEM_COLS (by order, line) and REF_COLS (in order)."""
    items: dict[str, list[Item]] = {}
    for r in item_rows:
        items.setdefault(r[0], []).append(Item(r[1], r[2], r[3], r[4], Decimal(r[5]), r[6], r[7]))
    refs: dict[str, list[ShipmentRef]] = {}
    for r in ref_rows:
        refs.setdefault(r[0], []).append(ShipmentRef(r[1], r[2], tuple(r[3] or ())))
    orders = {}
    for r in order_rows:
        orders[r[0]] = Order(
            order_id=r[0],
            placed_at=from_db(r[1]),
            customer=customer_from_row(r[4:]),
            items=tuple(items.get(r[0], ())),
            shipments=tuple(refs.get(r[0], ())),
            promised_delivery=r[2],
            shipping_country=r[3],
        )
    return orders


HEALTH_COLS = (
    "component, name, state, since, checked_at, last_ok_at, calls, failures, errors, "
    "last_error, breaker_opened_at, alerted_at"
)


def health_from_row(r: tuple[Any, ...]) -> HealthRecord:
    return HealthRecord(
        component=r[0],
        name=r[1],
        state=r[2],
        since=from_db(r[3]),
        checked_at=from_db(r[4]),
        last_ok_at=from_db(r[5]),
        calls=int(r[6]),
        failures=int(r[7]),
        errors={str(k): int(v) for k, v in from_json(r[8]).items()},
        last_error=r[9],
        breaker_opened_at=from_db(r[10]),
        alerted_at=from_db(r[11]),
    )


def health_row(h: HealthRecord) -> dict[str, Any]:
    return {
        "component": h.component,
        "name": h.name,
        "state": h.state,
        "since": to_db(h.since),
        "checked_at": to_db(h.checked_at),
        "last_ok_at": to_db(h.last_ok_at),
        "calls": h.calls,
        "failures": h.failures,
        "errors": to_json(dict(h.errors), sort_keys=True),
        "last_error": h.last_error,
        "breaker_opened_at": to_db(h.breaker_opened_at),
        "alerted_at": to_db(h.alerted_at),
    }


def refund_rows(refunds: Sequence[RefundRecord]) -> list[dict[str, Any]]:
    return [
        {
            "order_id": r.order_id,
            "refund_id": r.refund_id,
            "amount": str(r.amount),
            "currency": r.currency,
            "created_at": to_db(r.created_at),
        }
        for r in refunds
    ]


def return_rows(returns: Sequence[ReturnRecord]) -> list[dict[str, Any]]:
    return [
        {
            "order_id": r.order_id,
            "return_id": r.return_id,
            "status": r.status,
            "requested_at": to_db(r.requested_at),
            "updated_at": to_db(r.updated_at),
        }
        for r in returns
    ]


def return_parcel_rows(parcels: Sequence[ReturnParcel], now: datetime) -> list[dict[str, Any]]:
    """Shipment rows for parcels sent back: polled like any shipment, told apart by
    `return_id`."""
    return [
        new_shipment_row(
            p.order_id, p.tracking_number, p.carrier, p.candidates, now, return_id=p.return_id
        )
        for p in parcels
    ]
