"""Sample orders for `preview` and the gallery: typical and deliberately awkward (`check`
derives its data from the rules instead: `cases.py`).

Awkward on purpose: no phone, a free item, twenty items, a right-to-left name, a
very long pickup address, long names and product names, an unknown carrier.
Each sample's carrier is the one the carrier directory recognises its number as.
Each sample is put in the situation each message type is sent in (shipped,
delayed for every reason, delivered, ...) by `sample_contexts`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from aftersale.carriers_meta import Carriers
from aftersale.dispatch.channels.kinds import spec_of
from aftersale.models import (
    ChannelKind,
    Customer,
    DelayReason,
    DeliveryType,
    DomainEvent,
    EventKind,
    Item,
    Order,
    ShipmentRef,
    ShipmentState,
    Status,
    TrackingEvent,
)
from aftersale.render.cases import World, shop_side_world
from aftersale.render.catalogue import Catalogue
from aftersale.render.context import build_context
from aftersale.settings import Shop

SAMPLE_NOW = datetime(2025, 3, 12, 9, 30, tzinfo=UTC)
#: The shipped templates about the shop's side of an order, and the event each is sent on.
SHOP_SIDE_TEMPLATES = {
    "fulfilment_delayed": EventKind.FULFILMENT_DELAYED,
    "return_requested": EventKind.RETURN_REQUESTED,
    "return_in_transit": EventKind.RETURN_IN_TRANSIT,
    "return_received": EventKind.RETURN_RECEIVED,
    "refund_issued": EventKind.REFUND_ISSUED,
    "return_window_ending": EventKind.RETURN_WINDOW_ENDING,
}


ITEM_TEMPLATES = frozenset({"setup_tip", "review_request", "warranty_expiry"})


@dataclass(frozen=True, slots=True)
class Sample:
    name: str
    description: str
    order: Order
    shipment: ShipmentState


def _item(sku: str, name: str, category: str, price: str, qty: int = 1) -> Item:
    return Item(
        sku=sku, name=name, category=category, quantity=qty, price=Decimal(price), currency="PLN"
    )


def _sample(
    carriers: Carriers,
    order_id: str,
    name: str,
    description: str,
    customer: Customer,
    items: tuple[Item, ...],
    number: str,
    pickup_point: str | None = None,
) -> Sample:
    # The carrier is whichever one the directory recognises the number as (none for the
    # awkward sample's made-up number): previews show each carrier's name and page.
    carrier = next(iter(carriers.detect(number)), None)
    placed = SAMPLE_NOW - timedelta(days=3, hours=2)
    order = Order(
        order_id=order_id,
        placed_at=placed,
        customer=customer,
        items=items,
        shipments=(ShipmentRef(number, carrier),),
        promised_delivery=date(2025, 3, 13),
    )
    shipment = ShipmentState(
        shipment_id=f"{order.order_id}-1",
        order_id=order.order_id,
        carrier=carrier,
        tracking_number=number,
        status=Status.IN_TRANSIT,
        estimated_delivery=date(2025, 3, 13),
        first_estimate=date(2025, 3, 13),
        last_event_at=SAMPLE_NOW - timedelta(hours=5),
        pickup_point=pickup_point,
        created_at=placed + timedelta(days=1),
    )
    return Sample(name, description, order, shipment)


def build_samples(carriers: Carriers) -> tuple[Sample, ...]:
    headphones = _item(
        "NW-ANC-700", "Northwind ANC 700 wireless headphones", "headphones", "899.00"
    )
    cable = _item("NW-USBC-2M", "USB-C cable, 2 m", "accessories", "39.90", 2)
    laptop = _item("NW-BOOK-14", "Northwind Book 14 laptop", "laptops", "4299.00")
    return (
        _sample(
            carriers,
            "NW-1047",
            "typical",
            "Polish customer, two items, parcel locker",
            Customer(
                "C-1001",
                "Anna Kowalska",
                "anna.kowalska@example.pl",
                "+48601234567",
                "pl-PL",
                "Europe/Warsaw",
                True,
                True,
                "PL",
            ),
            (headphones, cable),
            "620012345678901234567890",
            "Paczkomat WAW22M, ul. Marszałkowska 104/122, 00-017 Warszawa",
        ),
        _sample(
            carriers,
            "NW-1048",
            "no_phone",
            "email only: the customer gave no phone number",
            Customer(
                "C-1002",
                "Jonas Becker",
                "jonas.becker@example.de",
                None,
                "de-DE",
                "Europe/Berlin",
                True,
                False,
                "DE",
            ),
            (laptop,),
            "00340434161094042557",
        ),
        _sample(
            carriers,
            "NW-1049",
            "zero_price",
            "a free gift item priced 0.00",
            Customer(
                "C-1003",
                "Emily Clarke",
                "emily@example.co.uk",
                "+447700900123",
                "en-GB",
                "Europe/London",
                True,
                True,
                "GB",
            ),
            (
                _item("NW-SPK-MINI", "Northwind Mini speaker", "speakers", "249.00"),
                _item("NW-GIFT-BAG", "Gift bag", "accessories", "0.00"),
            ),
            "1Z999AA10123456784",
        ),
        _sample(
            carriers,
            "NW-1050",
            "twenty_items",
            "a large order of twenty different items",
            Customer(
                "C-1004",
                "Piotr Wiśniewski",
                "piotr@example.pl",
                "+48501000200",
                "pl",
                "Europe/Warsaw",
                True,
                True,
                "PL",
            ),
            tuple(
                _item(f"NW-ACC-{n:02}", f"Accessory pack no. {n}", "accessories", f"{n * 7}.99")
                for n in range(1, 20)
            )
            + (headphones,),
            "09980525414724",
        ),
        _sample(
            carriers,
            "NW-1051",
            "rtl_name",
            "a right-to-left (Arabic) name, locale with no template (falls back)",
            Customer(
                "C-1005",
                "محمد عبد الله",
                "m.abdullah@example.ae",
                "+971501234567",
                "ar-AE",
                "Asia/Dubai",
                True,
                True,
                "AE",
            ),
            (_item("NW-WATCH-2", "Northwind Watch 2", "smartwatches", "1199.00"),),
            "JJD000390007882347561",
        ),
        _sample(
            carriers,
            "NW-1052",
            "long_everything",
            "very long name, product name and pickup address; unknown carrier",
            Customer(
                "C-1006",
                "Maximiliane Alexandra von Hohenzollern-Sigmaringen-Wittelsbach",
                "maximiliane.alexandra.von.hohenzollern@example.de",
                "+4915112345678",
                "de",
                "Europe/Berlin",
                True,
                True,
                "DE",
            ),
            (
                _item(
                    "NW-ANC-700-LTD",
                    "Northwind ANC 700 wireless noise-cancelling over-ear headphones, "
                    "limited anniversary edition in midnight blue with travel case",
                    "headphones",
                    "1299.00",
                ),
            ),
            "PKG-0000-0000-0000-0000-0001",
            "DPD Pickup Paketshop im Einkaufszentrum Alexa, Grunerstraße 20, "
            "Erdgeschoss neben dem Haupteingang, Ladenlokal 0.17, 10179 Berlin-Mitte",
        ),
    )


def sample_situations(template: str, sample: Sample) -> list[tuple[str, dict[str, Any]]]:
    """(label, build_context keyword arguments) for each situation `template` is sent in."""
    order, ship = sample.order, sample.shipment
    at = SAMPLE_NOW
    first_sku = order.items[-1].sku if template in ITEM_TEMPLATES else None
    scans = (
        TrackingEvent(
            at - timedelta(days=1, hours=4), Status.LABEL_CREATED, "CREATED", "Label created", None
        ),
        TrackingEvent(
            at - timedelta(hours=5),
            Status.IN_TRANSIT,
            "TRANSIT",
            "Parcel at the sorting centre",
            "Warszawa",
        ),
    )

    def event(
        kind: EventKind, status: Status | None = None, reason: str | None = None, **facts: Any
    ) -> DomainEvent:
        return DomainEvent(
            kind,
            order.order_id,
            at,
            shipment_id=ship.shipment_id,
            item_sku=first_sku,
            status=status,
            reason=reason,
            facts=facts,
        )

    window = (datetime(2025, 3, 13, 12, tzinfo=UTC), datetime(2025, 3, 13, 15, tzinfo=UTC))
    delivered = replace(ship, status=Status.DELIVERED, delivered_at=at - timedelta(days=10))
    base: dict[str, Any] = {"shipment": ship, "events": scans}
    if template == "thank_you":
        return [("order placed", {"event": event(EventKind.ORDER_PLACED)})]
    if template == "shipped":
        return [("shipped", {**base, "event": event(EventKind.SHIPPED)})]
    if template == "arriving_tomorrow":
        return [
            (
                "with window",
                {
                    **base,
                    "shipment": replace(ship, estimated_window=window),
                    "event": event(EventKind.ARRIVING_TOMORROW),
                },
            ),
            ("no window", {**base, "event": event(EventKind.ARRIVING_TOMORROW)}),
        ]
    if template == "out_for_delivery":
        return [
            (
                "out for delivery",
                {
                    **base,
                    "shipment": replace(
                        ship, status=Status.OUT_FOR_DELIVERY, estimated_window=window
                    ),
                    "event": event(EventKind.STATUS_CHANGED, Status.OUT_FOR_DELIVERY),
                },
            )
        ]
    if template == "delayed":
        late = replace(
            ship, estimated_delivery=date(2025, 3, 17), last_event_at=at - timedelta(days=4)
        )
        return [
            (
                f"delay: {reason}",
                {**base, "shipment": late, "event": event(EventKind.DELAYED, reason=reason)},
            )
            for reason in DelayReason
        ]
    if template == "available_for_pickup":
        waiting = replace(
            ship,
            status=Status.AVAILABLE_FOR_PICKUP,
            pickup_point=ship.pickup_point or "Paczkomat KRA01A, ul. Floriańska 1, Kraków",
        )
        return [
            (
                "with code",
                {
                    **base,
                    "shipment": waiting,
                    "event": event(
                        EventKind.STATUS_CHANGED,
                        Status.AVAILABLE_FOR_PICKUP,
                        pickup_code="482913",
                        pickup_deadline=at + timedelta(days=2),
                    ),
                },
            ),
            (
                "no code",
                {
                    **base,
                    "shipment": waiting,
                    "event": event(EventKind.STATUS_CHANGED, Status.AVAILABLE_FOR_PICKUP),
                },
            ),
        ]
    if template == "delivered":
        return [
            (
                "delivered",
                {
                    **base,
                    "shipment": delivered,
                    "event": event(EventKind.STATUS_CHANGED, Status.DELIVERED),
                },
            )
        ]
    if template == "pickup_reminder":
        waiting = replace(
            ship,
            status=Status.AVAILABLE_FOR_PICKUP,
            delivery_type=DeliveryType.LOCKER,
            pickup_point=ship.pickup_point or "Paczkomat KRA01A, ul. Floriańska 1, Kraków",
            pickup_deadline=at + timedelta(hours=20),
            pickup_hours="24/7",
        )
        reminder = event(EventKind.DELAYED, reason=DelayReason.PICKUP_WAITING)
        return [("waiting at a locker", {**base, "shipment": waiting, "event": reminder})]
    if template == "undeliverable":
        held = replace(ship, status=Status.EXCEPTION)
        expired = replace(
            held,
            delivery_type=DeliveryType.LOCKER,
            pickup_point=ship.pickup_point or "Paczkomat KRA01A, ul. Floriańska 1, Kraków",
        )
        gone = event(EventKind.DELAYED, reason=DelayReason.UNDELIVERABLE)
        return [
            ("could not be delivered", {**base, "shipment": held, "event": gone}),
            ("not collected in time", {**base, "shipment": expired, "event": gone}),
        ]
    if template == "returned_to_sender":
        back = replace(ship, status=Status.RETURNED_TO_SENDER)
        returned = event(EventKind.STATUS_CHANGED, Status.RETURNED_TO_SENDER)
        return [("going back", {**base, "shipment": back, "event": returned})]
    if template == "warranty_expiry":
        return [
            (
                "warranty ending",
                {**base, "shipment": delivered, "event": event(EventKind.WARRANTY_ENDING)},
            )
        ]
    if template in ("setup_tip", "review_request"):
        return [
            (
                "delivered days ago",
                {**base, "shipment": delivered, "event": event(EventKind.DELIVERED_AGO)},
            )
        ]
    kind = SHOP_SIDE_TEMPLATES.get(template)
    if kind is not None:
        world = World(order, ship, scans, event(kind))
        shaped = shop_side_world(world, kind, 5)
        return [
            (
                template.replace("_", " "),
                {"shipment": shaped.shipment, "events": shaped.events, "event": shaped.event},
            )
        ]
    # A type only marketers know about: give it everything a message could use, a delay too
    # (a new type is often a copy of `delayed`).
    generic = event(EventKind.DELAYED, reason=DelayReason.ETA_SLIPPED)
    return [("generic", {**base, "event": generic, "item_sku": order.items[0].sku})]


def sample_contexts(
    template: str,
    shop: Shop,
    catalogue: Catalogue,
    carriers: Carriers,
    samples: tuple[Sample, ...] | None = None,
) -> list[tuple[str, dict[str, Any]]]:
    """(label, context) for every sample in every situation `template` is sent in."""
    out = []
    for sample in samples or build_samples(carriers):
        for label, kwargs in sample_situations(template, sample):
            context = build_context(
                sample.order, shop, carriers=carriers, catalogue=catalogue, now=SAMPLE_NOW, **kwargs
            )
            out.append((f"{sample.name} ({label})", context))
    return out


def sample_recipient(sample_context: dict[str, Any], channel: ChannelKind | str) -> str:
    """The sample customer's address on `channel`, or the channel's stand-in address."""
    spec = spec_of(channel)
    return sample_context["customer"][spec.recipient_field] or spec.sample_address
