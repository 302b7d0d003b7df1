"""Import a shop platform's orders (Shopify, WooCommerce) from a saved payload: a webhook
body, a JSON array, an API response, or NDJSON of orders.

Each record is mapped by its platform's file (aftersale/intake/shops/) to aftersale's
order row and validated by the same code as an NDJSON line, so errors read the same:
`orders.json:3: line_items.0.price: 'abc' is not a price` (3 is the record's number).
New orders are stored like any import. An order already stored is updated only by a
newer copy (the platform's `updated_at`; deliveries come out of order): new tracking
numbers are added to it (a split shipment fulfilled later), the customer's contact data
and consent take its values (messages not sent yet go to the new address or number: the
recipient is read when a message is sent), a cancellation cancels its messages still
pending, and its refunds and returns are recorded (each one once, by its platform id).
An older or equal copy changes nothing.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from aftersale.carriers_meta import Carriers
from aftersale.errors import IntakeError
from aftersale.intake.customers import reconcile_customers
from aftersale.intake.files import (
    ImportReport,
    ParseResult,
    assign_carriers,
    decode_lines,
    store_parsed,
)
from aftersale.intake.rows import validate_row
from aftersale.intake.shops import PLATFORMS
from aftersale.intake.shops.base import PlatformFacts, RecordError, ShopMapping
from aftersale.models import Order
from aftersale.store.protocols import OrderStore, PlatformOrderStore, Transactional
from aftersale.store.records import (
    Notice,
    PlatformOrderRecord,
    RefundRecord,
    Rejection,
    ReturnRecord,
    StoredCustomer,
)

#: A saved payload larger than this is refused unread (a day of a big shop's orders fits).
MAX_BYTES = 200 * 1024 * 1024


class _Store(Transactional, OrderStore, PlatformOrderStore, Protocol):
    """What a platform import needs of the store."""


def parse_platform(
    text: str,
    source: str,
    platform: str,
    mapping: ShopMapping,
    carriers: Carriers,
    *,
    now: datetime,
) -> tuple[ParseResult, dict[str, PlatformFacts]]:
    """Pure: the orders a payload holds (record numbers as lines) and their platform facts."""
    if platform not in PLATFORMS:
        raise IntakeError(f"unknown platform {platform!r}: use one of {', '.join(PLATFORMS)}")
    spec = PLATFORMS[platform]
    orders: list[Order] = []
    rejections: list[Rejection] = []
    lines: dict[str, int] = {}
    facts: dict[str, PlatformFacts] = {}
    for number, raw in enumerate(_records(text, source, spec.records, rejections), start=1):
        try:
            mapped = spec.map_order(raw, mapping, carriers)
        except RecordError as exc:
            rejections.append(Rejection(source, number, str(exc)))
            continue
        order, problems = validate_row(source, number, mapped.row, carriers, now)
        rejections.extend(problems)
        if order is None:
            continue
        if order.order_id in lines:
            # the same order twice in one payload: the newer copy is the one that counts
            if mapped.facts.updated_at <= facts[order.order_id].updated_at:
                continue
            orders = [o for o in orders if o.order_id != order.order_id]
        orders.append(order)
        lines[order.order_id] = number
        facts[order.order_id] = mapped.facts
    return ParseResult(orders, rejections, lines), facts


def _records(text: str, source: str, split: Any, rejections: list[Rejection]) -> list[Any]:
    try:
        return list(split(json.loads(text)))
    except RecursionError:
        rejections.append(Rejection(source, 1, "payload: nested too deeply"))
        return []
    except ValueError:
        pass
    out: list[Any] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.extend(split(json.loads(line)))
        except (ValueError, RecursionError) as exc:
            rejections.append(Rejection(source, number, f"payload: not JSON ({exc})"))
    return out


def import_platform_file(
    store: _Store,
    path: Path,
    platform: str,
    *,
    now: datetime,
    carriers: Carriers,
    mapping: ShopMapping,
) -> ImportReport:
    try:
        if path.stat().st_size > MAX_BYTES:
            raise IntakeError(f"{path}: larger than {MAX_BYTES // 1024 // 1024} MB")
        data = path.read_bytes()
    except OSError as exc:
        raise IntakeError(f"{path}: cannot read: {exc}") from exc
    text, undecodable = decode_lines(data.removeprefix(b"\xef\xbb\xbf"), path.name)
    parsed, facts = parse_platform(text, path.name, platform, mapping, carriers, now=now)
    return apply_platform_orders(store, parsed, facts, path.name, now, carriers, undecodable)


def apply_platform_orders(
    store: _Store,
    parsed: ParseResult,
    facts: dict[str, PlatformFacts],
    source: str,
    now: datetime,
    carriers: Carriers,
    extra: list[Rejection] | None = None,
) -> ImportReport:
    """Store new orders; update stored ones from a newer platform copy (module docstring)."""
    versions = store.platform_orders(facts)
    stored = store.known_order_ids(o.order_id for o in parsed.orders)
    fresh = [o for o in parsed.orders if o.order_id not in stored]
    newer = [
        o
        for o in parsed.orders
        if o.order_id in stored
        and (
            o.order_id not in versions
            or facts[o.order_id].updated_at > versions[o.order_id].updated_at
        )
    ]
    report = store_parsed(
        store,
        replace(parsed, orders=fresh),
        source,
        now=now,
        carriers=carriers,
        extra=extra or [],
    )
    notices = list(report.notices)
    with store.transaction():
        notices += _update_customers(store, newer, facts, source, parsed.lines, now)
        added = _add_shipments(store, newer, carriers, now)
        cancelled = 0
        for order in newer + fresh:
            f = facts[order.order_id]
            was = versions.get(order.order_id)
            if f.cancelled_at and not (was and was.cancelled_at):
                cancelled += store.cancel_pending_of_orders(
                    [order.order_id],
                    f"order cancelled in {f.platform}: {f.cancel_reason or 'no reason given'}",
                    now,
                )
                notices.append(
                    Notice(source, parsed.lines[order.order_id], f"{order.order_id}: cancelled")
                )
        store.save_platform_orders(
            [_record(order.order_id, facts[order.order_id]) for order in fresh + newer]
        )
        store.save_refunds(
            [
                RefundRecord(o.order_id, r.refund_id, r.amount, r.currency, r.created_at)
                for o in fresh + newer
                for r in facts[o.order_id].refunds
            ]
        )
        store.save_returns(
            [
                ReturnRecord(o.order_id, r.return_id, r.status, r.at, r.at)
                for o in fresh + newer
                for r in facts[o.order_id].returns
            ]
        )
    if added:
        notices.append(Notice(source, 0, f"{added} tracking number(s) added to stored orders"))
    if cancelled:
        notices.append(Notice(source, 0, f"{cancelled} pending message(s) cancelled"))
    if newer:
        notices.append(Notice(source, 0, f"{len(newer)} stored order(s) updated from a newer copy"))
    unchanged = len(stored) - len(newer)
    return replace(report, already_known=report.already_known + unchanged, notices=notices)


def _update_customers(
    store: _Store,
    orders: list[Order],
    facts: dict[str, PlatformFacts],
    source: str,
    lines: dict[str, int],
    now: datetime,
) -> list[Notice]:
    """A newer platform copy's customer data wins over what was stored as of an older one
    (the platform's `updated_at` is when it said so)."""
    if not orders:
        return []
    as_of = [replace(o, placed_at=facts[o.order_id].updated_at) for o in orders]
    stored = store.load_customers({o.customer.customer_id for o in orders})
    won, changes, notices = reconcile_customers(as_of, stored, source=source, lines=lines)
    applied = {c.customer_id for c in changes if c.applied}
    # each order now carries its customer's winning data; as of the newest copy applied
    winners = {
        o.customer.customer_id: StoredCustomer(o.customer, o.placed_at)
        for o in sorted(won, key=lambda o: o.placed_at)
        if o.customer.customer_id in applied
    }
    store.update_customers(list(winners.values()), changes, now)
    return notices


def _add_shipments(store: _Store, orders: list[Order], carriers: Carriers, now: datetime) -> int:
    if not orders:
        return 0
    owners = store.known_tracking_numbers(r.tracking_number for o in orders for r in o.shipments)
    new = [
        replace(o, shipments=tuple(r for r in o.shipments if r.tracking_number not in owners))
        for o in orders
    ]
    new, candidates = assign_carriers([o for o in new if o.shipments], carriers)
    return store.add_shipments(new, now=now, candidates=candidates)


def _record(order_id: str, f: PlatformFacts) -> PlatformOrderRecord:
    currencies = {r.currency for r in f.refunds}
    return PlatformOrderRecord(
        order_id=order_id,
        platform=f.platform,
        platform_order_id=f.platform_order_id,
        updated_at=f.updated_at,
        cancelled_at=f.cancelled_at,
        cancel_reason=f.cancel_reason,
        refunded=sum((r.amount for r in f.refunds), Decimal(0)),
        refund_currency=currencies.pop() if len(currencies) == 1 else None,
    )
