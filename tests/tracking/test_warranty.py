"""Warranty dates: each item from its own parcel's delivery, calendar months, on the
customer's calendar; detection reminds at the same end the template prints."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from aftersale.models import Customer, EventKind, Item, Order, ShipmentRef, ShipmentState, Status
from aftersale.tracking.detect import DelayThresholds, detect_due
from aftersale.tracking.warranty import (
    add_months,
    items_in,
    warranty_ends,
    warranty_from,
)

PLACED = datetime(2024, 12, 20, 10, 0, tzinfo=UTC)
TV = Item("NW-TV-55", "TV", "tv", 1, Decimal("599"), "GBP", 24)
STAND = Item("NW-STAND", "TV stand", "accessories", 1, Decimal("99"), "GBP", 12)


def order(*refs: ShipmentRef, tz: str = "Europe/London") -> Order:
    customer = Customer("C-1", "Amelia", "a@example.co.uk", None, "en-GB", tz, True, False, "GB")
    return Order("NW-1", PLACED, customer, (TV, STAND), refs)


def parcel(number: str, delivered: datetime | None, status: Status | None = None) -> ShipmentState:
    """A parcel delivered at `delivered`, or in `status` (default: still on its way)."""
    if status is None:
        status = Status.DELIVERED if delivered else Status.IN_TRANSIT
    return ShipmentState(number, "NW-1", "ups", number, status, delivered_at=delivered)


def test_calendar_months_clamp_to_the_end_of_a_shorter_month() -> None:
    assert add_months(date(2025, 1, 31), 1) == date(2025, 2, 28)
    assert add_months(date(2024, 1, 31), 1) == date(2024, 2, 29)
    assert add_months(date(2024, 12, 26), 24) == date(2026, 12, 26)
    assert add_months(date(2024, 11, 30), 3) == date(2025, 2, 28)


def test_the_end_date_is_read_on_the_customers_calendar() -> None:
    late_evening = datetime(2024, 12, 26, 23, 30, tzinfo=UTC)  # 00:30 on the 27th in Warsaw
    assert warranty_ends(late_evening, 24, "Europe/London") == date(2026, 12, 26)
    assert warranty_ends(late_evening, 24, "Europe/Warsaw") == date(2026, 12, 27)


def test_each_item_runs_from_its_own_parcel() -> None:
    tv_day, stand_day = datetime(2024, 12, 27, 12, tzinfo=UTC), datetime(2025, 1, 8, 9, tzinfo=UTC)
    split = order(ShipmentRef("P1", "ups", ("NW-TV-55",)), ShipmentRef("P2", "ups", ("NW-STAND",)))
    parcels = [parcel("P1", tv_day), parcel("P2", stand_day)]
    assert items_in(split, "P1") == (TV,) and items_in(split, "P2") == (STAND,)
    assert warranty_from(split, "NW-TV-55", parcels) == tv_day
    assert warranty_from(split, "NW-STAND", parcels) == stand_day


def test_without_a_split_every_parcel_carries_everything_and_the_last_delivery_counts() -> None:
    one, two = datetime(2024, 12, 27, tzinfo=UTC), datetime(2024, 12, 30, tzinfo=UTC)
    whole = order(ShipmentRef("P1", "ups"), ShipmentRef("P2", "ups"))
    assert items_in(whole, "P2") == (TV, STAND)
    assert warranty_from(whole, "NW-TV-55", [parcel("P1", one), parcel("P2", two)]) == two


def test_an_item_that_went_back_has_no_cover_and_one_never_tracked_runs_from_the_purchase() -> None:
    returned = order(ShipmentRef("P1", "ups"))
    back = parcel("P1", None, Status.RETURNED_TO_SENDER)
    assert warranty_from(returned, "NW-TV-55", [back]) is None
    assert warranty_from(returned, "NW-TV-55", [parcel("P1", None, Status.EXPIRED)]) == PLACED
    assert warranty_from(order(), "NW-TV-55", []) == PLACED  # no parcel at all


def test_the_reminder_states_the_date_the_template_prints() -> None:
    # delivered two days after the order: the end is two years after the delivery, not
    # after the purchase (the demo printed 24 Dec for a TV delivered on the 26th)
    delivered = datetime(2024, 12, 26, 14, 0, tzinfo=UTC)
    o = order(ShipmentRef("P1", "ups"))
    now = delivered + timedelta(days=2 * 365 - 20)
    events = detect_due(
        o, [parcel("P1", delivered)], now, DelayThresholds(warranty_ending_days=(30,))
    )
    ends = {
        e.item_sku: e.facts["warranty_ends"] for e in events if e.kind is EventKind.WARRANTY_ENDING
    }
    assert ends == {"NW-TV-55": "2026-12-26"}
