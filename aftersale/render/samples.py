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
    "return_declined": EventKind.RETURN_DECLINED,
}


ITEM_TEMPLATES = frozenset({"setup_tip", "review_request", "warranty_expiry"})


@dataclass(frozen=True, slots=True)
class Sample:
    name: str
    description: str
    order: Order
    shipment: ShipmentState


@dataclass(frozen=True, slots=True)
class Local:
    """A plausible customer and parcel in one country, for the samples set there."""

    name: str
    email: str
    phone: str | None
    city: str | None  # where the parcel is scanned on its way
    pickup_point: str  # where it waits when a situation has the customer collect it
    pickup_type: DeliveryType
    tracking_number: str  # a made-up number of a carrier that serves the country


_UPS = "1Z999AA10123456784"
_DPD = "09980525414724"
_DHL = "00340434161094042557"
#: Per country, so a sample outside Poland shows no Kraków locker (market samples take
#: their customer from here too). A country missing here gets `_ANYWHERE`.
LOCALS: dict[str, Local] = {
    "PL": Local("Anna Kowalska", "anna.kowalska@example.pl", "+48601234567", "Warszawa",
                "Paczkomat WAW22M, ul. Marszałkowska 104/122, 00-017 Warszawa",
                DeliveryType.LOCKER, "620012345678901234567890"),
    "DE": Local("Lena Schneider", "lena.schneider@example.de", "+4915112345670", "Berlin",
                "DHL Packstation 157, Invalidenstraße 112, 10115 Berlin",
                DeliveryType.LOCKER, _DHL),
    "AT": Local("Katharina Gruber", "katharina.gruber@example.at", "+436641234567", "Wien",
                "DPD Pickup Paketshop, Trafik Neubaugasse 12, 1070 Wien",
                DeliveryType.PICKUP_POINT, _DPD),
    "GB": Local("Oliver Bennett", "oliver.bennett@example.co.uk", "+447700900456", "London",
                "UPS Access Point, Londis, 12 Upper Street, London N1 0PQ",
                DeliveryType.ACCESS_POINT, _UPS),
    "IE": Local("Aoife Murphy", "aoife.murphy@example.ie", "+353851234567", "Dublin",
                "UPS Access Point, Centra, 10 Camden Street Lower, Dublin 2, D02 XE80",
                DeliveryType.ACCESS_POINT, _UPS),
    "US": Local("Jessica Miller", "jessica.miller@example.com", "+12125550187", "New York",
                "UPS Access Point, The UPS Store, 1 Penn Plaza, New York, NY 10119",
                DeliveryType.ACCESS_POINT, _UPS),
    "FR": Local("Camille Martin", "camille.martin@example.fr", "+33612345678", "Paris",
                "DPD Pickup relais, Tabac de la Gare, 12 rue de Rome, 75008 Paris",
                DeliveryType.PICKUP_POINT, _DPD),
    "AE": Local("محمد عبد الله", "m.abdullah@example.ae", "+971501234567", "Dubai",
                "DHL Service Point, Al Wasl Road, Jumeirah 1, Dubai",
                DeliveryType.PICKUP_POINT, "JJD000390007882347561"),
}  # fmt: skip
#: A country with no entry: no city to name, a UPS Access Point (UPS serves most countries).
_ANYWHERE = Local("Alex Morgan", "alex.morgan@example.com", None, None, "UPS Access Point",
                  DeliveryType.ACCESS_POINT, _UPS)  # fmt: skip


def local_to(country: str | None) -> Local:
    return LOCALS.get((country or "").upper(), _ANYWHERE)


#: What the sample products cost in each currency: a shop prices each market on its own,
#: not by exchange rate. A currency missing here (a new market's) gets the EUR amount.
PRICES: dict[str, dict[str, str]] = {
    "NW-ANC-700": {"PLN": "899.00", "EUR": "219.00", "GBP": "189.00", "USD": "229.00"},
    "NW-USBC-2M": {"PLN": "39.90", "EUR": "9.90", "GBP": "8.99", "USD": "9.99"},
    "NW-BOOK-14": {"PLN": "4299.00", "EUR": "999.00", "GBP": "879.00", "USD": "1049.00"},
    "NW-SPK-MINI": {"PLN": "249.00", "EUR": "59.00", "GBP": "49.00", "USD": "59.00"},
    "NW-WATCH-2": {"PLN": "1199.00", "EUR": "279.00", "AED": "1099.00", "USD": "299.00"},
    "NW-ANC-700-LTD": {"PLN": "1299.00", "EUR": "299.00", "GBP": "259.00", "USD": "319.00"},
}
_PRICE_FALLBACK = "EUR"


def _item(sku: str, name: str, category: str, currency: str, qty: int = 1) -> Item:
    prices = PRICES[sku]
    price = prices.get(currency) or prices[_PRICE_FALLBACK]
    return Item(sku, name, category, qty, Decimal(price), currency)


def typical_items(currency: str) -> tuple[Item, ...]:
    """The typical order's items (headphones and two cables), priced in `currency`."""
    return (
        _item("NW-ANC-700", "Northwind ANC 700 wireless headphones", "headphones", currency),
        _item("NW-USBC-2M", "USB-C cable, 2 m", "accessories", currency, 2),
    )


def make_sample(
    carriers: Carriers,
    order_id: str,
    name: str,
    description: str,
    customer: Customer,
    items: tuple[Item, ...],
    number: str,
    pickup_point: str | None = None,
    delivery_type: DeliveryType | None = None,
    shipping_country: str | None = None,
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
        shipping_country=shipping_country,
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
        delivery_type=delivery_type,
        created_at=placed + timedelta(days=1),
    )
    return Sample(name, description, order, shipment)


def build_samples(carriers: Carriers) -> tuple[Sample, ...]:
    """The built-in samples, each priced in its customer's market's currency (shop.yaml's
    markets: PLN in Poland, EUR in Germany, GBP in Britain; AED where no market serves)."""
    poland = LOCALS["PL"]
    return (
        make_sample(
            carriers,
            "NW-1047",
            "typical",
            "Polish customer, two items, parcel locker",
            Customer(
                "C-1001",
                poland.name,
                poland.email,
                poland.phone,
                "pl-PL",
                "Europe/Warsaw",
                True,
                True,
                "PL",
            ),
            typical_items("PLN"),
            poland.tracking_number,
            poland.pickup_point,
        ),
        make_sample(
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
            (_item("NW-BOOK-14", "Northwind Book 14 laptop", "laptops", "EUR"),),
            _DHL,
        ),
        make_sample(
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
                _item("NW-SPK-MINI", "Northwind Mini speaker", "speakers", "GBP"),
                Item("NW-GIFT-BAG", "Gift bag", "accessories", 1, Decimal("0.00"), "GBP"),
            ),
            _UPS,
        ),
        make_sample(
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
                Item(
                    f"NW-ACC-{n:02}",
                    f"Accessory pack no. {n}",
                    "accessories",
                    1,
                    Decimal(f"{n * 7}.99"),
                    "PLN",
                )  # fmt: skip
                for n in range(1, 20)
            )
            + typical_items("PLN")[:1],
            _DPD,
            # its own: Poland's sample place is an InPost locker, not where DPD delivers
            "DPD Pickup, Żabka, ul. Długa 5, 31-147 Kraków",
            DeliveryType.PICKUP_POINT,
        ),
        make_sample(
            carriers,
            "NW-1051",
            "rtl_name",
            "a right-to-left (Arabic) name, locale with no template (falls back); no market "
            "serves the country: the shop's own contact block, prices in dirhams",
            Customer(
                "C-1005",
                LOCALS["AE"].name,
                LOCALS["AE"].email,
                LOCALS["AE"].phone,
                "ar-AE",
                "Asia/Dubai",
                True,
                True,
                "AE",
            ),
            (_item("NW-WATCH-2", "Northwind Watch 2", "smartwatches", "AED"),),
            LOCALS["AE"].tracking_number,
        ),
        make_sample(
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
                    "EUR",
                ),
            ),
            "PKG-0000-0000-0000-0000-0001",
            "DPD Pickup Paketshop im Einkaufszentrum Alexa, Grunerstraße 20, "
            "Erdgeschoss neben dem Haupteingang, Ladenlokal 0.17, 10179 Berlin-Mitte",
            DeliveryType.PICKUP_POINT,
        ),
    )


def sample_situations(template: str, sample: Sample) -> list[tuple[str, dict[str, Any]]]:
    """(label, build_context keyword arguments) for each situation `template` is sent in."""
    order, ship = sample.order, sample.shipment
    local = local_to(order.shipping_country or order.customer.country)
    # where the parcel waits to be collected: its own pickup place, else its country's
    collect: dict[str, Any] = {
        "pickup_point": ship.pickup_point or local.pickup_point,
        "delivery_type": ship.delivery_type or local.pickup_type,
    }
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
            local.city,
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
        waiting = replace(ship, status=Status.AVAILABLE_FOR_PICKUP, **collect)
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
            **collect,
            pickup_deadline=at + timedelta(hours=20),
            pickup_hours="24/7",
        )
        reminder = event(EventKind.DELAYED, reason=DelayReason.PICKUP_WAITING)
        return [("waiting at a locker", {**base, "shipment": waiting, "event": reminder})]
    if template == "undeliverable":
        held = replace(ship, status=Status.EXCEPTION)
        expired = replace(held, **collect)
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
