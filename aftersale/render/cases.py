"""The data `check` renders templates with: every shape of data a rule can hand them.

For a rule (its event, status, reason and conditions) and a market (a locale with its
country, time zone and currency, from CLDR), `data_cases` builds the orders, parcels and
events the pipeline itself would: one where every optional fact is known, then one for
each fact that can be missing (no phone, no promised date, no estimate or time window,
home delivery rather than a pickup point, a product the catalogue does not know, ...),
one where all of them are missing, and awkward ones (long names, twenty items, a free
item). A case the rule's conditions would never send is dropped; a condition that needs
data the full case lacks (a VIP tag, a category) is satisfied first.

Each case has a label that reads as the end of a sentence ("when the shipment has no
pickup point"), so a problem found with it names the situation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache
from typing import Any

from babel import Locale
from babel.core import get_global
from babel.numbers import get_territory_currencies

from aftersale.carriers_meta import Carriers
from aftersale.decide.schema import Rule
from aftersale.dispatch.channels.kinds import CHANNELS, spec_of
from aftersale.locales import language_name
from aftersale.models import (
    ChannelKind,
    Customer,
    DelayReason,
    DomainEvent,
    EventKind,
    Item,
    Order,
    ShipmentRef,
    ShipmentState,
    Status,
    TrackingEvent,
)
from aftersale.render.catalogue import Catalogue
from aftersale.render.context import build_context
from aftersale.settings import Shop

NOW = datetime(2025, 3, 12, 9, 30, tzinfo=UTC)
TODAY = NOW.date()
NAMES = {"pl": "Anna Kowalska", "de": "Jonas Becker", "en": "Emily Clarke", "ar": "محمد عبد الله"}
LONG_NAME = "Maximiliane Alexandra von Hohenzollern-Sigmaringen-Wittelsbach"
LONG_PRODUCT = (
    "Northwind ANC 700 wireless noise-cancelling over-ear headphones, limited anniversary "
    "edition in midnight blue with travel case"
)
LONG_ADDRESS = (
    "DPD Pickup Paketshop im Einkaufszentrum Alexa, Grunerstraße 20, Erdgeschoss neben dem "
    "Haupteingang, Ladenlokal 0.17, 10179 Berlin-Mitte"
)
PICKUP_POINT = "Paczkomat WAW22M, ul. Marszałkowska 104/122, 00-017 Warszawa"


@dataclass(frozen=True, slots=True)
class Market:
    """Who a template in one locale speaks to: their locale, country, zone and currency."""

    locale: str
    country: str
    time_zone: str
    currency: str

    @property
    def label(self) -> str:
        return f"a customer in {self.country} ({self.locale})"


@cache
def market_for(locale: str) -> Market:
    """The likeliest market of a locale: pl -> pl-PL, Europe/Warsaw, PLN (CLDR)."""
    tag = locale.replace("_", "-")
    parsed = Locale.parse(tag.replace("-", "_"))
    territory = parsed.territory
    if territory is None:
        likely = get_global("likely_subtags").get(parsed.language, "")
        territory = likely.split("_")[-1] if likely else "US"
    zones = get_global("territory_zones").get(territory) or ["UTC"]
    currencies = get_territory_currencies(territory, start_date=TODAY) or ["EUR"]
    locale_tag = tag if "-" in tag else f"{parsed.language}-{territory}"
    return Market(locale_tag, territory, zones[0], currencies[0])


@dataclass(frozen=True, slots=True)
class World:
    """One situation, as the pipeline stores it: what `build_context` is given."""

    order: Order
    shipment: ShipmentState | None
    events: tuple[TrackingEvent, ...]
    event: DomainEvent

    @property
    def items(self) -> list[Item]:
        """The items a rule's conditions look at (the event's item, or all)."""
        sku = self.event.item_sku
        return [i for i in self.order.items if sku is None or i.sku == sku]


@dataclass(frozen=True, slots=True)
class DataCase:
    label: str  # "when the shipment has no pickup point"; "" for the full case
    context: dict[str, Any]
    recipient: str
    base: str = ""  # the label of the full case this one varies (per delay reason)


@dataclass(frozen=True, slots=True)
class _Variation:
    label: str
    reads: frozenset[str]  # words of a template that make the variation matter
    change: Callable[[World, Rule], World | None]  # None: the rule's event rules it out
    not_for: ChannelKind | None = None  # a channel that never reaches such a customer


# --- the full case ----------------------------------------------------------------------


def _products(catalogue: Catalogue) -> tuple[str, str]:
    """(a category with tips, one without): the catalogue's own, where it has them."""
    categories = catalogue.categories
    ranked = sorted(
        categories,
        key=lambda c: (
            -bool(categories[c].tips),
            -bool(categories[c].extended_warranty),
            -bool(categories[c].guide_url),
        ),
    )
    with_tips = ranked[0] if ranked and categories[ranked[0]].tips else "headphones"
    without = next((c for c in ranked if not categories[c].tips), "accessories")
    return with_tips, without


def _full_world(rule: Rule, market: Market, catalogue: Catalogue, carriers: Carriers) -> World:
    language = market.locale.split("-")[0]
    customer = Customer(
        "C-1001",
        NAMES.get(language, "Alex Morgan"),
        "customer@example.com",
        "+48601234567",
        market.locale,
        market.time_zone,
        True,
        True,
        market.country,
        ("vip",),
    )
    with_tips, without = _products(catalogue)
    items = (
        Item("NW-SAMPLE-1", "Northwind ANC 700", with_tips, 1, Decimal("899.00"),
             market.currency, 24),
        Item("NW-SAMPLE-2", "USB-C cable, 2 m", without, 2, Decimal("39.90"), market.currency, 12),
    )  # fmt: skip
    carrier = carriers.slugs[0] if carriers.slugs else None
    refs = (ShipmentRef("SAMPLE0000000001", carrier), ShipmentRef("SAMPLE0000000002", carrier))
    placed = NOW - timedelta(days=3, hours=2)
    order = Order("NW-1047", placed, customer, items, refs, TODAY + timedelta(days=1),
                  market.country)  # fmt: skip
    window = (
        datetime.combine(TODAY + timedelta(days=1), datetime.min.time(), UTC) + timedelta(hours=12),
        datetime.combine(TODAY + timedelta(days=1), datetime.min.time(), UTC) + timedelta(hours=15),
    )
    shipment = ShipmentState(
        shipment_id="NW-1047-1",
        order_id=order.order_id,
        carrier=carrier,
        tracking_number=refs[0].tracking_number,
        status=Status.IN_TRANSIT,
        estimated_delivery=TODAY + timedelta(days=1),
        first_estimate=TODAY + timedelta(days=1),
        estimated_window=window,
        pickup_point=PICKUP_POINT,
        last_event_at=NOW - timedelta(hours=5),
        created_at=placed + timedelta(days=1),
    )
    scans = (
        TrackingEvent(NOW - timedelta(days=1, hours=4), Status.LABEL_CREATED, "CREATED",
                      "Label created", None),
        TrackingEvent(NOW - timedelta(hours=5), Status.IN_TRANSIT, "TRANSIT",
                      "Parcel at the sorting centre", "Warszawa"),
    )  # fmt: skip
    event = DomainEvent(rule.on, order.order_id, NOW, shipment_id=shipment.shipment_id)
    return _shape_for_event(World(order, shipment, scans, event), rule, rule.reason)


def _shape_for_event(world: World, rule: Rule, reason: str | None) -> World:
    """The parcel and event as the pipeline has them when `rule`'s event happens."""
    ship, event, kind = world.shipment, world.event, rule.on
    assert ship is not None
    if kind in (EventKind.ORDER_PLACED, EventKind.WARRANTY_ENDING):
        sku = world.order.items[0].sku if kind is EventKind.WARRANTY_ENDING else None
        facts = {"days": rule.days} if rule.days else {}
        return replace(
            world,
            shipment=None,
            events=(),
            event=replace(event, shipment_id=None, item_sku=sku, facts=facts),
        )
    if kind is EventKind.STATUS_CHANGED:
        status = rule.status or Status.IN_TRANSIT
        changed: dict[str, Any] = {"previous_status": "in_transit"}
        if status is Status.AVAILABLE_FOR_PICKUP:
            changed |= {"pickup_code": "482913", "pickup_deadline": NOW + timedelta(days=2)}
        ship = _with_status(ship, status)
        return replace(world, shipment=ship, event=replace(event, status=status, facts=changed))
    if kind is EventKind.DELIVERED_AGO:
        days = rule.days or 3
        ship = replace(
            ship, status=Status.DELIVERED, delivered_at=NOW - timedelta(days=days, hours=2)
        )
        return replace(world, shipment=ship, event=replace(event, facts={"days": days}))
    if kind is EventKind.DELAYED:
        return _delayed(world, ship, event, DelayReason(reason or DelayReason.EXCEPTION))
    if kind in SHOP_SIDE_EVENTS:
        return shop_side_world(world, kind, rule.days)
    return world  # shipped, arriving_tomorrow: in transit, as built


#: Events about the order as the shop handles it, not a parcel on its way to the customer.
SHOP_SIDE_EVENTS = frozenset(
    {
        EventKind.RETURN_REQUESTED,
        EventKind.RETURN_DECLINED,
        EventKind.RETURN_IN_TRANSIT,
        EventKind.RETURN_RECEIVED,
        EventKind.REFUND_ISSUED,
        EventKind.RETURN_WINDOW_ENDING,
        EventKind.FULFILMENT_DELAYED,
    }
)


def shop_side_world(world: World, kind: EventKind, days: int | None) -> World:
    """The order, parcel and event as the pipeline has them for a refund, a return, a
    return period ending or a dispatch promise missed (also the previews' samples)."""
    ship, event, days = world.shipment, world.event, days or 5
    assert ship is not None
    delivered = replace(ship, status=Status.DELIVERED, delivered_at=NOW - timedelta(days=days + 2))
    if kind is EventKind.FULFILMENT_DELAYED:
        facts = {"dispatch_by": (TODAY - timedelta(days=1)).isoformat(), "business_days": 2}
        return replace(world, shipment=None, events=(), event=replace(event, shipment_id=None,
                       facts=facts))  # fmt: skip
    if kind is EventKind.REFUND_ISSUED:
        item = world.order.items[-1]
        facts = {"amount": str(item.price * item.quantity), "currency": item.currency}
        return replace(world, shipment=delivered, event=replace(
            event, shipment_id=None, reason="R-5501", facts=facts))  # fmt: skip
    if kind in (EventKind.RETURN_REQUESTED, EventKind.RETURN_DECLINED):
        return replace(world, shipment=delivered, event=replace(
            event, shipment_id=None, reason="RET-77"))  # fmt: skip
    if kind is EventKind.RETURN_WINDOW_ENDING:
        facts = {"days": days, "return_by": (TODAY + timedelta(days=days)).isoformat()}
        return replace(world, shipment=delivered, event=replace(
            event, shipment_id=None, facts=facts))  # fmt: skip
    # the parcel the customer sends back
    back = replace(
        ship, shipment_id="RET-77-1", tracking_number="SAMPLE0000000099", return_id="RET-77",
        estimated_delivery=None, first_estimate=None, estimated_window=None, pickup_point=None,
    )  # fmt: skip
    if kind is EventKind.RETURN_RECEIVED:
        back = _with_status(back, Status.DELIVERED)
    facts = {"return_id": "RET-77"}
    return replace(world, shipment=back, event=replace(event, shipment_id=back.shipment_id,
                   facts=facts))  # fmt: skip


def _with_status(ship: ShipmentState, status: Status) -> ShipmentState:
    if status is Status.DELIVERED:
        return replace(ship, status=status, delivered_at=NOW - timedelta(hours=1))
    return replace(ship, status=status)


def _delayed(world: World, ship: ShipmentState, event: DomainEvent, reason: DelayReason) -> World:
    facts: dict[str, Any] = {}
    if reason in (DelayReason.EXCEPTION, DelayReason.UNDELIVERABLE):
        ship = replace(ship, status=Status.EXCEPTION)
    elif reason is DelayReason.NO_FIRST_SCAN:
        ship = replace(ship, status=Status.LABEL_CREATED, last_event_at=None)
        world = replace(world, events=world.events[:1])
    elif reason is DelayReason.STALE:
        ship = replace(ship, last_event_at=NOW - timedelta(days=4))
    elif reason is DelayReason.ETA_SLIPPED:
        ship = replace(ship, estimated_delivery=TODAY + timedelta(days=4))
        facts["days_late"] = 3
    elif reason is DelayReason.ETA_MISSED:
        ship = replace(ship, estimated_delivery=TODAY - timedelta(days=1))
        world = replace(
            world, order=replace(world.order, promised_delivery=TODAY - timedelta(days=1))
        )
        facts["days_late"] = 1
    elif reason is DelayReason.PICKUP_WAITING:
        ship = replace(ship, status=Status.AVAILABLE_FOR_PICKUP)
    return replace(world, shipment=ship, event=replace(event, reason=str(reason), facts=facts))


# --- what can be missing ----------------------------------------------------------------


def _ship(
    change: Callable[[ShipmentState, Rule], ShipmentState | None],
) -> Callable[[World, Rule], World | None]:
    def apply(world: World, rule: Rule) -> World | None:
        if world.shipment is None:
            return None
        changed = change(world.shipment, rule)
        return None if changed is None else replace(world, shipment=changed)

    return apply


def _customer(**fields: Any) -> Callable[[World, Rule], World | None]:
    def apply(world: World, rule: Rule) -> World | None:
        customer = replace(world.order.customer, **fields)
        return replace(world, order=replace(world.order, customer=customer))

    return apply


def _order(**fields: Any) -> Callable[[World, Rule], World | None]:
    def apply(world: World, rule: Rule) -> World | None:
        return replace(world, order=replace(world.order, **fields))

    return apply


def _no_estimate(ship: ShipmentState, rule: Rule) -> ShipmentState | None:
    if rule.on is EventKind.ARRIVING_TOMORROW or rule.reason in ("eta_slipped", "eta_missed"):
        return None  # these events exist because of the estimate
    return replace(ship, estimated_delivery=None, first_estimate=None, estimated_window=None)


def _no_scans(world: World, rule: Rule) -> World | None:
    if world.shipment is None or rule.reason == "stale" or rule.on is EventKind.DELIVERED_AGO:
        return None
    return replace(world, events=(), shipment=replace(world.shipment, last_event_at=None))


def _no_pickup_code(world: World, rule: Rule) -> World | None:
    facts = {k: v for k, v in world.event.facts.items() if not k.startswith("pickup_")}
    return replace(world, event=replace(world.event, facts=facts))


def _no_promised(world: World, rule: Rule) -> World | None:
    order = replace(world.order, promised_delivery=None)
    ship = world.shipment and replace(world.shipment, first_estimate=None)
    return replace(world, order=order, shipment=ship)


def _one_item(world: World, rule: Rule) -> World | None:
    return replace(world, order=replace(world.order, items=world.order.items[:1]))


def _first_item(world: World, change: Callable[[Item], Item]) -> World:
    items = (change(world.order.items[0]), *world.order.items[1:])
    return replace(world, order=replace(world.order, items=items))


def _items(change: Callable[[Item], Item]) -> Callable[[World, Rule], World | None]:
    return lambda world, rule: _first_item(world, change)


def _twenty_items(world: World, rule: Rule) -> World | None:
    first = world.order.items[0]
    more = tuple(
        Item(f"NW-ACC-{n:02}", f"Accessory pack no. {n}", "accessories", 1,
             Decimal(f"{n * 7}.99"), first.currency)
        for n in range(1, 20)
    )  # fmt: skip
    return replace(world, order=replace(world.order, items=(first, *more)))


def _long_texts(world: World, rule: Rule) -> World | None:
    customer = replace(world.order.customer, name=LONG_NAME)
    items = (replace(world.order.items[0], name=LONG_PRODUCT), *world.order.items[1:])
    order = replace(world.order, customer=customer, items=items)
    ship = world.shipment and replace(world.shipment, pickup_point=LONG_ADDRESS)
    return replace(world, order=order, shipment=ship)


def _catalogue_variations(catalogue: Catalogue) -> list[_Variation]:
    """A product the catalogue knows less about: no entry, no tips, no offer, no guide."""
    categories = catalogue.categories

    def category_without(what: Callable[[Any], bool]) -> str | None:
        return next((c for c, info in categories.items() if not what(info)), None)

    found = [
        ("when the catalogue does not know the product", "unlisted",
         {"product", "tips", "guide", "extended_warranty", "extend_warranty"}),
        ("when the catalogue has no tips for the product", category_without(lambda i: i.tips),
         {"tips"}),
        ("when the product has no extended warranty offer",
         category_without(lambda i: i.extended_warranty), {"extended_warranty", "extend_warranty"}),
        ("when the product has no setup guide", category_without(lambda i: i.guide_url),
         {"guide", "guide_url"}),
    ]  # fmt: skip
    return [
        _Variation(label, frozenset(reads), _items(_recategorise(category)))
        for label, category, reads in found
        if category is not None
    ]


def _recategorise(category: str) -> Callable[[Item], Item]:
    return lambda item: replace(item, category=category)


VARIATIONS = (
    # a customer without an address on a channel: news goes by the other channels only
    *(_Variation(f"when the customer gave no {spec.recipient_noun}",
                 frozenset({spec.recipient_field}),
                 _customer(**{spec.recipient_field: None}), spec.kind)
      for spec in CHANNELS.values()),
    _Variation("when the customer's country is not known", frozenset({"country"}),
               _customer(country=None)),
    _Variation("when the order has no promised delivery date",
               frozenset({"promised_delivery", "promised", "days_late"}), _no_promised),
    _Variation("when the order has one item", frozenset({"items", "item_count"}), _one_item),
    _Variation("when an item is free", frozenset({"price", "total", "line_total"}),
               _items(lambda i: replace(i, price=Decimal("0.00")))),
    _Variation("when an item has no warranty length", frozenset({"warranty_months", "warranty_ends",
               "warranty_days_left"}), _items(lambda i: replace(i, warranty_months=None))),
    _Variation("when the carrier is not known yet",
               frozenset({"carrier", "carrier_name", "tracking_url", "tracking"}),
               _ship(lambda s, r: replace(s, carrier=None))),
    _Variation("when the carrier gives no estimated delivery date",
               frozenset({"estimated_delivery", "new_estimate", "window_start", "window_end"}),
               _ship(_no_estimate)),
    _Variation("when the carrier gives no delivery time window",
               frozenset({"window_start", "window_end"}),
               _ship(lambda s, r: replace(s, estimated_window=None))),
    _Variation("for home delivery, with no pickup point", frozenset({"pickup_point"}),
               _ship(lambda s, r: replace(s, pickup_point=None))),
    _Variation("when the carrier gives no pickup code or deadline",
               frozenset({"pickup_code", "pickup_deadline"}), _no_pickup_code),
    _Variation("when the carrier has not scanned the parcel yet",
               frozenset({"tracking_events", "last_event_at", "days_since_scan"}), _no_scans),
    _Variation("when the delivery time is not known", frozenset({"delivered_at"}),
               _ship(lambda s, r: None if r.on is EventKind.DELIVERED_AGO
                     else replace(s, delivered_at=None))),
)  # fmt: skip
AWKWARD = (
    _Variation("with long names, product names and addresses", frozenset(), _long_texts),
    _Variation("with twenty items", frozenset({"items"}), _twenty_items),
)


# --- conditions -------------------------------------------------------------------------


def _satisfy(world: World, rule: Rule, preferred_category: str) -> World:
    """Change the full case so the rule's conditions hold where they do not (a VIP tag, a
    category, a big total): the cases then show what the rule would really send."""
    for cond in rule.conditions:
        if _holds(cond, world):
            continue
        value = cond.value
        if cond.op in ("in", "eq"):
            choices = value if isinstance(value, list) else [value]
            value = preferred_category if preferred_category in choices else choices[0]
        elif cond.op in ("gt", "gte", "lt", "lte"):
            step = {"gt": 1, "gte": 0, "lt": -1, "lte": 0}[cond.op]
            value = max(Decimal(0), Decimal(value) + step)
        else:
            continue  # ne / not_in: the full case only fails them by naming the value
        world = _set(world, cond.field, value)
    return world


def _holds(cond: Any, world: World) -> bool:
    return bool(cond.test(world.order, world.shipment, world.event, world.items))


def _set(world: World, field_name: str, value: Any) -> World:
    order, customer = world.order, world.order.customer
    record, name = field_name.split(".", 1)
    if record == "customer":
        if name == "tags":
            value = (value,)
        customer = replace(customer, **{name: value})
        return replace(world, order=replace(order, customer=customer))
    if record == "items":
        return _first_item(world, lambda i: replace(i, **{name: value}))
    if record == "order":
        if name == "total":
            return _first_item(world, lambda i: replace(i, price=Decimal(value) + 1))
        if name == "item_count":
            return _first_item(world, lambda i: replace(i, quantity=max(1, int(value))))
        if name == "country":
            return replace(world, order=replace(order, shipping_country=value))
        if name == "currency":
            items = tuple(replace(i, currency=value) for i in order.items)
            return replace(world, order=replace(order, items=items))
    if record == "shipment" and world.shipment is not None:
        if name == "carrier":
            return replace(world, shipment=replace(world.shipment, carrier=value))
        if name == "status":
            return replace(world, shipment=_with_status(world.shipment, Status(value)))
        if name == "delay_days":
            facts = {**world.event.facts, "days_late": int(value)}
            return replace(world, event=replace(world.event, facts=facts))
    return world


# --- the cases ----------------------------------------------------------------------------


def data_cases(
    rule: Rule,
    channel: ChannelKind,
    market: Market,
    *,
    shop: Shop,
    catalogue: Catalogue,
    carriers: Carriers,
    reads: Iterable[str],
) -> list[DataCase]:
    """Every case `rule` can hand a template in `market`, limited to the variations whose
    facts the template `reads` (the words of its source and the shared parts it uses)."""
    words = frozenset(reads)
    reasons: Sequence[str | None] = (
        [rule.reason] if rule.reason or rule.on is not EventKind.DELAYED else list(DelayReason)
    )
    preferred, _ = _products(catalogue)
    variations = [*VARIATIONS, *_catalogue_variations(catalogue)]
    chosen = [v for v in variations if v.reads & words and v.not_for is not channel]
    cases: list[DataCase] = []
    seen: list[World] = []
    for reason in reasons:
        this = replace(rule, reason=reason)
        full = _satisfy(_full_world(this, market, catalogue, carriers), rule, preferred)
        prefix = f"when the delay reason is '{reason}'" if len(reasons) > 1 else ""
        worlds = [(prefix, full)]
        every_missing = full
        for variation in (*chosen, *AWKWARD):
            changed = variation.change(full, this)
            if changed is None:
                continue
            worlds.append((_join(prefix, variation.label), changed))
            if variation in chosen:
                every_missing = variation.change(every_missing, this) or every_missing
        if every_missing is not full:
            worlds.append(
                (_join(prefix, "when none of the optional facts is known"), every_missing)
            )
        for label, world in worlds:
            if world in seen or not all(_holds(c, world) for c in rule.conditions):
                continue
            seen.append(world)
            cases.append(_case(label, prefix, world, channel, shop, catalogue, carriers))
    return cases


def _join(prefix: str, label: str) -> str:
    if not prefix:
        return label
    if label.startswith("when "):
        return f"{prefix} and {label.removeprefix('when ')}"
    return f"{prefix}, {label}"


def _case(
    label: str, base: str, world: World, channel: ChannelKind, shop: Shop, catalogue: Catalogue,
    carriers: Carriers,
) -> DataCase:  # fmt: skip
    context = build_context(
        world.order,
        shop,
        carriers=carriers,
        shipment=world.shipment,
        events=world.events,
        event=world.event,
        item_sku=world.event.item_sku,
        catalogue=catalogue,
        now=NOW,
    )
    customer = world.order.customer
    spec = spec_of(channel)
    to = spec.recipient(customer) or spec.sample_address
    return DataCase(label, context, to, base)


def market_label(market: Market) -> str:
    return f"for a customer in {market.country} writing {language_name(market.locale)}"
