"""Which parcel carries which item, and when an item's warranty ends: one way, for
detection (when to remind) and for templates (the date the customer reads).

An item's cover runs from its own parcel's delivery for its warranty months, counted in
calendar months on the customer's calendar (delivered 31 January + 1 month = 28 or 29
February). An order shipped in several parcels says which items each carries
(`ShipmentRef.items`); when no parcel says, every parcel may hold every item and the
item counts as delivered with the order's last delivered parcel.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from zoneinfo import ZoneInfo

from aftersale.models import Item, Order, ShipmentState, Status

_NEVER_ARRIVED = frozenset({Status.RETURNED_TO_SENDER, Status.CANCELLED})


def add_months(day: date, months: int) -> date:
    """`day` plus `months` calendar months; a day the target month lacks becomes its last."""
    month0 = day.month - 1 + months
    year, month = day.year + month0 // 12, month0 % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def items_in(order: Order, tracking_number: str) -> tuple[Item, ...]:
    """The items the parcel `tracking_number` carries: those it lists; when no parcel of the
    order lists items, all of them; when other parcels list some, the ones nobody lists."""
    listed = {ref.tracking_number: ref.items for ref in order.shipments if ref.items}
    if not listed:
        return order.items
    mine = listed.get(tracking_number)
    if mine is not None:
        return tuple(i for i in order.items if i.sku in mine)
    elsewhere = {sku for skus in listed.values() for sku in skus}
    return tuple(i for i in order.items if i.sku not in elsewhere)


def parcels_of(order: Order, sku: str, shipments: Iterable[ShipmentState]) -> list[ShipmentState]:
    """The order's parcels that carry `sku` (every parcel when the order does not say)."""
    return [
        s
        for s in shipments
        if s.order_id == order.order_id
        and any(i.sku == sku for i in items_in(order, s.tracking_number))
    ]


def warranty_from(order: Order, sku: str, shipments: Sequence[ShipmentState]) -> datetime | None:
    """When `sku`'s warranty starts: its delivery; None when its parcel went back to the
    shop (or was cancelled) without being delivered; else the purchase (no parcel at all,
    or tracking that never reported the delivery)."""
    parcels = parcels_of(order, sku, shipments)
    delivered = [
        s.delivered_at
        for s in parcels
        if s.status is Status.DELIVERED and s.delivered_at is not None
    ]
    if delivered:
        return max(delivered)
    if parcels and all(s.status in _NEVER_ARRIVED for s in parcels):
        return None
    return order.placed_at


def warranty_ends(start: datetime, months: int, time_zone: str) -> date:
    """The last day of cover, as the customer's calendar in `time_zone` reads it."""
    return add_months(start.astimezone(ZoneInfo(time_zone)).date(), months)
