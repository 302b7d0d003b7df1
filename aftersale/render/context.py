"""The render context: exactly the names a template may use, built from stored facts.

templates/README.md documents every name for marketers; keep the two in step.
"""

from __future__ import annotations

from collections.abc import Callable, ItemsView, Iterator, Mapping, Sequence, ValuesView
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import cache, lru_cache, partial
from typing import TYPE_CHECKING, Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from aftersale.carriers_meta import Carriers
from aftersale.dispatch.channels.base import RenderFormat
from aftersale.dispatch.channels.kinds import CHANNELS
from aftersale.markets import pick_text
from aftersale.models import (
    COLLECTED,
    Customer,
    DomainEvent,
    EventKind,
    Item,
    Order,
    ShipmentState,
    Status,
    TrackingEvent,
)
from aftersale.render.catalogue import Catalogue, ProductInfo, locale_chain
from aftersale.settings import Shop
from aftersale.tracking.together import delivered_with
from aftersale.tracking.warranty import items_in, warranty_ends, warranty_from

if TYPE_CHECKING:
    from aftersale.dispatch.unsubscribe import UnsubscribeLinks

_NOT_SCANNED = frozenset({Status.PENDING, Status.LABEL_CREATED})


class Fields(dict[str, Any]):
    """A context record: `order.total` reads the key, and a missing key names the record
    (`'order' has no field 'totl'`) instead of "dict object"."""

    __slots__ = ("_path",)

    # The fields come as one dict, not as keywords: a context makes a dozen records per
    # message, and packing keywords costs as much again as the record itself.
    def __init__(self, record: str, values: Mapping[str, Any], /) -> None:
        dict.update(self, values)  # not super(): the cheapest way in
        self._path = record


class _Pending:
    __slots__ = ()

    def __repr__(self) -> str:
        return "PENDING"


#: The value of a LazyFields key until its record's deferred fields are made.
PENDING = _Pending()


class LazyFields(Fields):
    """A record whose PENDING fields cost work to make (signed unsubscribe links), made
    all at once by `make` the first time any of them is read, and only then: most
    messages never read them. Every way of reading a value goes through the fill, so
    nobody sees PENDING; listing the keys needs no fill. Without `make`, a plain record."""

    __slots__ = ("_make",)

    def __init__(
        self,
        record: str,
        make: Callable[[], Mapping[str, Any]] | None,
        values: Mapping[str, Any],
        /,
    ) -> None:
        dict.update(self, values)
        self._path = record
        self._make = make

    def _fill(self) -> None:
        if self._make is not None:
            make, self._make = self._make, None
            dict.update(self, make())

    def __getitem__(self, key: str) -> Any:
        value = dict.__getitem__(self, key)
        if value is PENDING:
            self._fill()
            value = dict.__getitem__(self, key)
        return value

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        value = dict.get(self, key, default)
        if value is PENDING:
            self._fill()
            value = dict.__getitem__(self, key)
        return value

    # Overriding __iter__ (with the same keys) makes dict(x) and {**x} copy through
    # __getitem__ rather than the raw values.
    def __iter__(self) -> Iterator[str]:
        return dict.__iter__(self)

    def items(self) -> ItemsView[str, Any]:  # type: ignore[override]
        self._fill()
        return dict.items(self)

    def values(self) -> ValuesView[Any]:  # type: ignore[override]
        self._fill()
        return dict.values(self)

    def copy(self) -> dict[str, Any]:
        return dict(self)

    def __eq__(self, other: object) -> bool:
        self._fill()
        if isinstance(other, LazyFields):
            other._fill()
        return dict.__eq__(self, other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        self._fill()
        return dict.__repr__(self)


def _as_datetime(value: Any) -> datetime | None:
    """Event facts come back from the store as JSON: accept an ISO string or a datetime."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _short(url: str) -> str:
    return url.split("://", 1)[-1].rstrip("/")


@lru_cache(maxsize=256)  # one `now` per cycle, a few time zones
def _today(now: datetime, time_zone: str) -> date:
    return now.astimezone(ZoneInfo(time_zone)).date()


def build_context(
    order: Order,
    shop: Shop,
    *,
    carriers: Carriers,
    shipment: ShipmentState | None = None,
    shipments: Sequence[ShipmentState] = (),
    events: Sequence[TrackingEvent] = (),
    event: DomainEvent | None = None,
    item_sku: str | None = None,
    catalogue: Catalogue | None = None,
    unsubscribe: UnsubscribeLinks | None = None,
    now: datetime,
) -> dict[str, Any]:
    """Everything a template may use, and nothing else.

    Top-level names: `order`, `customer`, `items`, `shipment` (None before a parcel
    exists), `tracking_events` (newest first), `delay` (None unless the event is a
    delay), `item` and `product` (None unless the message is about one item: setup
    tip, review, warranty), `shop` (the contact block of the customer's market), `links`,
    and for the shop's side of an order `refund`, `return_window` and `dispatch` (None
    unless the event is a refund, a return period ending, a dispatch promise missed).
    The renderer adds `locale`, the language of the template variant in use. `shipments`
    are all the order's parcels (warranty dates run from each item's own delivery).
    `unsubscribe` signs the opt-out links (without it, previews link the plain page).
    Field by field: templates/README.md.
    """
    base = shop.base_url.rstrip("/")
    short = _short(base)
    customer = order.customer
    market = shop.market_for(order.shipping_country, customer.country)
    languages = locale_chain(customer.locale, shop.default_locale)
    sku = item_sku or (event.item_sku if event else None)
    facts = event.facts if event else {}

    items = [
        Fields(
            "item",
            {
                "sku": i.sku,
                "name": i.name,
                "category": i.category,
                "quantity": i.quantity,
                "price": i.price,
                "currency": i.currency,
                "line_total": i.price * i.quantity,
                "warranty_months": i.warranty_months,
            },
        )
        for i in order.items
    ]
    ship = None
    if shipment is not None:
        window = shipment.estimated_window
        ship = Fields(
            "shipment",
            {
                "carrier": shipment.carrier,
                "carrier_name": carriers.name(shipment.carrier),
                "tracking_number": shipment.tracking_number,
                "status": str(shipment.status),
                "estimated_delivery": shipment.estimated_delivery,
                "window_start": window[0] if window else None,
                "window_end": window[1] if window else None,
                "delivered_at": shipment.delivered_at,
                "pickup_point": shipment.pickup_point,
                "pickup_code": str(facts["pickup_code"]) if facts.get("pickup_code") else None,
                "pickup_deadline": shipment.pickup_deadline
                or _as_datetime(facts.get("pickup_deadline")),
                "pickup_hours": shipment.pickup_hours,
                "delivery_type": str(shipment.delivery_type) if shipment.delivery_type else None,
                # collected by the customer (locker, pickup or access point), not brought home
                "to_pickup": shipment.delivery_type in COLLECTED,
                "last_event_at": shipment.last_event_at,
                "contents": parcel_items(order, shipment),
                # what the items in this parcel cost (the order's total for its only parcel)
                "value": sum(
                    (i.price * i.quantity for i in items_in(order, shipment.tracking_number)),
                    Decimal(0),
                ),
            },
        )

    # a shop platform's order name ("#1047") is not a path as it stands: "#" starts a fragment
    in_url = quote(order.order_id, safe="")
    page = f"{base}/unsubscribe"
    sign = None
    if unsubscribe is None:
        opt_out: dict[str, Any] = _unsubscribe_links(None, customer, page, now)  # previews
    else:
        # signed only when a template or List-Unsubscribe reads them: most messages never do
        opt_out = dict.fromkeys(_opt_out_keys(), PENDING)
        sign = partial(_unsubscribe_links, unsubscribe, customer, page, now)
    links = LazyFields(
        "links",
        sign,
        {
            "order": f"{base}/account/orders/{in_url}",
            "help": market.help_url,
            "tracking": (
                carriers.tracking_page(shipment.carrier, shipment.tracking_number, customer.locale)
                if shipment is not None
                else None
            )
            or f"{base}/account/orders/{in_url}",
            "tracking_short": f"{short}/t/{shipment.tracking_number}"
            if shipment is not None
            else f"{short}/o/{in_url}",
            "review": f"{base}/review/{in_url}" + (f"/{quote(sku, safe='')}" if sku else ""),
            "review_short": f"{short}/r/{in_url}",
            **opt_out,
            "guide": None,
            "extend_warranty": None,
        },
    )

    parcels = shipments or ([shipment] if shipment is not None else [])
    after_delivery = (
        delivered_together(order, shipment, parcels, customer.time_zone)
        if shipment is not None and event is not None and event.kind is EventKind.DELIVERED_AGO
        else []
    )
    item = product = None
    if sku:
        chosen = next((i for i in order.items if i.sku == sku), None)
    else:
        # A message about the whole order (a setup tip after delivery) still speaks of
        # one product: the first delivered with setup tips in the catalogue, else the first.
        pool = after_delivery or list(order.items)
        chosen = next(
            (i for i in pool if catalogue and _has_tips(catalogue.lookup(i.sku, i.category))),
            pool[0] if pool else None,
        )
    if chosen is not None:
        info = catalogue.lookup(chosen.sku, chosen.category) if catalogue else None
        months = chosen.warranty_months or (info.warranty_months if info else None)
        today = _today(now, customer.time_zone)
        # the warranty's end looks at every parcel: made when a template reads it, as few do
        item = LazyFields(
            "item",
            partial(_warranty, order, chosen.sku, parcels, months, customer.time_zone, today),
            {
                "sku": chosen.sku,
                "name": chosen.name,
                "category": chosen.category,
                "quantity": chosen.quantity,
                "price": chosen.price,
                "currency": chosen.currency,
                "warranty_months": months,
                "warranty_ends": PENDING,
                "warranty_days_left": PENDING,
            },
        )
        if info is not None:
            offer = info.extended_warranty
            # offered in the order's own currency, or not at all
            offer_price = offer.price_in(order.currency) if offer else None
            tips_locale = next((c for c in languages if c in info.tips), None)
            product = Fields(
                "product",
                {
                    "category": info.category or chosen.category,
                    "guide_url": info.guide_url,
                    "tips": list(info.tips[tips_locale]) if tips_locale else [],
                    "warranty_months": info.warranty_months,
                    "extended_warranty": Fields(
                        "product.extended_warranty",
                        {
                            "months": offer.months,
                            "price": offer_price,
                            "currency": order.currency,
                            "url": offer.url,
                        },
                    )
                    if offer and offer_price is not None
                    else None,
                },
            )
            links["guide"] = info.guide_url
            links["extend_warranty"] = offer.url if offer and offer_price is not None else None

    delay = None
    if event is not None and event.reason:
        promised = order.promised_delivery or (shipment.first_estimate if shipment else None)
        new_estimate = shipment.estimated_delivery if shipment else None
        last_scan = shipment.last_event_at if shipment else None
        delay = Fields(
            "delay",
            {
                "reason": event.reason,
                "promised": promised,
                "new_estimate": new_estimate,
                "days_late": (new_estimate - promised).days
                if new_estimate and promised and new_estimate > promised
                else None,
                "days_since_scan": (now - last_scan).days if last_scan else None,
                # a parcel the carrier never scanned is not "on its way"
                "scanned": shipment is not None and shipment.status not in _NOT_SCANNED,
            },
        )

    return {
        **_shop_side(event, order),
        "order": Fields(
            "order",
            {
                "id": order.order_id,
                "number": order.order_id,
                "placed_at": order.placed_at,
                "total": order.total,
                "currency": order.currency or "EUR",
                "item_count": sum(i.quantity for i in order.items),
                "promised_delivery": order.promised_delivery,
                "url": links["order"],
            },
        ),
        "customer": Fields(
            "customer",
            {
                "name": customer.name,
                "first_name": (customer.name.split() or [""])[0],
                "email": customer.email,
                "phone": customer.phone,
                "locale": customer.locale,
                "time_zone": customer.time_zone,
                "country": customer.country,
            },
        ),
        "items": items,
        "delivered_items": [_delivered_item(i, catalogue, languages) for i in after_delivery],
        "shipment": ship,
        "tracking_events": [
            Fields(
                "tracking_event",
                {
                    "occurred_at": e.occurred_at,
                    "status": str(e.status) if e.status else None,
                    "description": e.description,
                    "location": e.location,
                },
            )
            for e in sorted(events, key=lambda e: e.occurred_at, reverse=True)
        ],
        "delay": delay,
        "item": item,
        "product": product,
        "shop": Fields(
            "shop",
            {
                "name": shop.name,
                "email": market.email,
                "phone": market.phone,
                "help_url": market.help_url,
                "hours": pick_text(market.hours, languages),
                "legal": pick_text(market.legal, languages),
                "market": market.code,
                "base_url": base,
                "short_url": short,
            },
        ),
        "links": links,
    }


def parcel_items(order: Order, shipment: ShipmentState) -> list[str]:
    """The names of the items this parcel carries when the order ships in several (so two
    messages about one order say which parcel they mean); empty for a single parcel."""
    if len(order.shipments) < 2:
        return []
    return [i.name for i in items_in(order, shipment.tracking_number)]


def delivered_together(
    order: Order, shipment: ShipmentState, parcels: Sequence[ShipmentState], tz: str
) -> list[Item]:
    """The items of the parcels delivered together with `shipment` (tracking/together.py):
    what an after-delivery message speaks of (rules say `once: delivery_day`)."""
    together = delivered_with(shipment, parcels, tz)
    skus = {i.sku for p in together for i in items_in(order, p.tracking_number)}
    return [i for i in order.items if i.sku in skus]


def _shop_side(event: DomainEvent | None, order: Order) -> dict[str, Fields | None]:
    """`refund` (refund_issued), `return_window` (return_window_ending) and `dispatch`
    (fulfilment_delayed): None for any other event."""
    kind, facts = (event.kind, event.facts) if event else (None, {})
    refund = return_window = dispatch = None
    if kind is EventKind.REFUND_ISSUED and facts.get("amount") is not None:
        refund = Fields(
            "refund",
            {
                "id": event.reason if event else None,
                "amount": Decimal(str(facts["amount"])),
                "currency": str(facts.get("currency") or order.currency or ""),
            },
        )
    if kind is EventKind.RETURN_WINDOW_ENDING and facts.get("return_by"):
        ends = date.fromisoformat(str(facts["return_by"]))
        return_window = Fields(
            "return_window", {"ends": ends, "days_left": int(facts.get("days", 0))}
        )
    if kind is EventKind.FULFILMENT_DELAYED and facts.get("dispatch_by"):
        dispatch = Fields(
            "dispatch",
            {
                "promised": date.fromisoformat(str(facts["dispatch_by"])),
                "business_days": int(facts.get("business_days", 0)),
            },
        )
    return {"refund": refund, "return_window": return_window, "dispatch": dispatch}


def _unsubscribe_links(
    signer: UnsubscribeLinks | None, customer: Customer, page: str, now: datetime
) -> dict[str, str | None]:
    """The opt-out links, signed and expiring, for each channel's own address: email's link
    and mailto: (List-Unsubscribe's targets), SMS's link without https://. Without a
    signer (previews) they point at the plain page."""
    links: dict[str, str | None] = {"unsubscribe_mailto": None}
    for spec in CHANNELS.values():
        address = spec.recipient(customer)
        url, token = page, None
        if signer is not None and address:
            token = signer.token(address, spec.kind, customer.locale, now)
            url = f"{signer.page_url}?t={token}"
        if spec.render_format is RenderFormat.EMAIL:
            links[_opt_out_key(spec.render_format)] = url
            links["unsubscribe_mailto"] = signer.mailto(token) if signer and token else None
        else:
            links[_opt_out_key(spec.render_format)] = _short(url)
    return links


def _opt_out_key(render_format: RenderFormat) -> str:
    """The link a channel's messages unsubscribe by: an email's, or a text's short one."""
    return "unsubscribe" if render_format is RenderFormat.EMAIL else "unsubscribe_short"


@cache
def _opt_out_keys() -> tuple[str, ...]:
    """The keys `_unsubscribe_links` makes, in its order, without making the links."""
    keys = ["unsubscribe_mailto", *(_opt_out_key(s.render_format) for s in CHANNELS.values())]
    return tuple(dict.fromkeys(keys))


def _warranty(
    order: Order,
    sku: str,
    parcels: Sequence[ShipmentState],
    months: int | None,
    time_zone: str,
    today: date,
) -> dict[str, Any]:
    """An item's last day of cover and the days left until it (None without a warranty)."""
    start = warranty_from(order, sku, parcels)
    ends = warranty_ends(start, months, time_zone) if months and start else None
    return {"warranty_ends": ends, "warranty_days_left": (ends - today).days if ends else None}


def _delivered_item(item: Item, catalogue: Catalogue | None, languages: Sequence[str]) -> Fields:
    info = catalogue.lookup(item.sku, item.category) if catalogue else None
    tips_locale = next((c for c in languages if info and c in info.tips), None)
    return Fields(
        "delivered_item",
        {
            "sku": item.sku,
            "name": item.name,
            "category": item.category,
            "quantity": item.quantity,
            "tips": list(info.tips[tips_locale]) if info and tips_locale else [],
            "guide_url": info.guide_url if info else None,
        },
    )


def _has_tips(info: ProductInfo | None) -> bool:
    return bool(info and info.tips)
