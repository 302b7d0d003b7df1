"""Parcels delivered together are followed up together: one setup-tip and one review
message per delivery (parcels within three days of each other), naming all its items."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from aftersale.decide.engine import decide
from aftersale.decide.history import SendHistory
from aftersale.decide.ruleset import load_ruleset, rule_files
from aftersale.models import (
    Customer,
    EventKind,
    Item,
    Order,
    ShipmentRef,
    ShipmentState,
    Status,
)
from aftersale.render.catalogue import parse_catalogue
from aftersale.render.context import build_context
from aftersale.settings import PROJECT_ROOT, Shop
from aftersale.tracking.detect import DelayThresholds, detect_due
from aftersale.tracking.together import delivered_on, delivered_with
from carriers.registry import DIRECTORY

T0 = datetime(2026, 3, 2, 22, 30, tzinfo=UTC)  # 23:30 in Warsaw, 3 March in Tokyo
TZ = "Europe/Warsaw"
CUSTOMER = Customer("C-1", "Anna", "anna@example.com", None, "en", TZ, True, False, "PL")
ITEMS = (
    Item("NW-TV-55", "NW Vision TV", "tv", 1, Decimal("2799"), "PLN", 24),
    Item("NW-MOUNT-1", "Wall mount", "accessories", 1, Decimal("99"), "PLN", 12),
    Item("NW-HP-200", "NW Sound 200", "headphones", 1, Decimal("449"), "PLN", 24),
)
ORDER = Order(
    "O-1",
    T0 - timedelta(days=3),
    CUSTOMER,
    ITEMS,
    (
        ShipmentRef("TN-A", "inpost", ("NW-TV-55",)),
        ShipmentRef("TN-B", "inpost", ("NW-MOUNT-1",)),
        ShipmentRef("TN-C", "inpost", ("NW-HP-200",)),
    ),
)


def parcel(letter: str, delivered: datetime) -> ShipmentState:
    return ShipmentState(f"S-{letter}", "O-1", "inpost", f"TN-{letter}", Status.DELIVERED,
                         delivered_at=delivered, status_since=delivered)  # fmt: skip


# A and B two days apart are one delivery; C a week later is its own
A, B, C = parcel("A", T0), parcel("B", T0 + timedelta(days=2)), parcel("C", T0 + timedelta(days=9))
PARCELS = [A, B, C]


def test_parcels_within_three_days_are_one_delivery_on_the_customers_calendar() -> None:
    assert delivered_on(A, PARCELS, TZ).isoformat() == "2026-03-02"
    assert delivered_on(B, PARCELS, TZ) == delivered_on(A, PARCELS, TZ)
    assert delivered_on(C, PARCELS, TZ).isoformat() == "2026-03-11"
    assert delivered_on(A, PARCELS, "Asia/Tokyo").isoformat() == "2026-03-03"
    assert [p.shipment_id for p in delivered_with(B, PARCELS, TZ)] == ["S-A", "S-B"]


def test_one_tip_per_delivery_naming_every_item_with_tips() -> None:
    ruleset = load_ruleset(rule_files(PROJECT_ROOT / "rules"), carriers=DIRECTORY)
    thresholds = ruleset.due_thresholds(DelayThresholds())
    now = T0 + timedelta(days=9, hours=12)  # a week after A and B, not after C
    events = detect_due(ORDER, PARCELS, now, thresholds)
    tips = [e for e in events if e.kind is EventKind.DELIVERED_AGO and e.facts["days"] == 7]
    assert sorted(e.shipment_id for e in tips) == ["S-A", "S-B"]
    shipments = {p.shipment_id: p for p in PARCELS}
    out = decide(tips, {"O-1": ORDER}, shipments, ruleset, now, SendHistory())
    assert [d.idempotency_key for d in out.decisions] == ["setup_tip|O-1/2026-03-02|email"]
    (decision,) = out.decisions
    catalogue = parse_catalogue(
        (PROJECT_ROOT / "catalogue" / "products.yaml").read_text(encoding="utf-8"), "products.yaml"
    )
    context = build_context(
        ORDER,
        Shop(),
        carriers=DIRECTORY,
        shipment=shipments[decision.shipment_id or ""],
        shipments=PARCELS,
        event=decision.event,
        catalogue=catalogue,
        now=now,
    )
    delivered = context["delivered_items"]
    assert [i["name"] for i in delivered] == ["NW Vision TV", "Wall mount"]
    assert [bool(i["tips"]) for i in delivered] == [True, False]  # a mount has no tips
