"""Parcels delivered together: an order's parcels delivered within a few days of each
other get one after-delivery message (tips, a review request) naming all their items,
not one each (which the marketing cap would mostly drop). Detection names the group in
the event (`delivered_on`, the key of `once: delivery_day`); templates list its items.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from zoneinfo import ZoneInfo

from aftersale.models import ShipmentState

#: Parcels delivered this close together count as one delivery.
TOGETHER = timedelta(days=3)


def delivered_on(parcel: ShipmentState, parcels: Sequence[ShipmentState], tz: str) -> date | None:
    """The day (the customer's calendar) the delivery `parcel` belongs to began: the
    earliest delivery among the parcels delivered up to `TOGETHER` before it."""
    at = parcel.delivered_at
    if at is None:
        return None
    first = min(
        (
            p.delivered_at
            for p in parcels
            if p.delivered_at is not None and at - TOGETHER <= p.delivered_at <= at
        ),
        default=at,
    )
    return first.astimezone(ZoneInfo(tz)).date()


def delivered_with(
    parcel: ShipmentState, parcels: Sequence[ShipmentState], tz: str
) -> list[ShipmentState]:
    """The parcels of the same delivery as `parcel` (itself included)."""
    day = delivered_on(parcel, parcels, tz)
    same = [
        p for p in parcels if p.delivered_at is not None and delivered_on(p, parcels, tz) == day
    ]
    return same if any(p.shipment_id == parcel.shipment_id for p in same) else [parcel, *same]
