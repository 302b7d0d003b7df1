"""One preview sample per market of shop.yaml (`market_gb`, `market_us`, ...): the typical
order as a customer of that market has it (its first country, that country's language
and time zone, prices in the market's currency), so the gallery and `aftersale preview`
show each market's contact block, money and legal line. A market added to shop.yaml
gets its sample without code.
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache
from pathlib import Path

from babel import Locale
from babel.core import get_global

from aftersale.carriers_meta import Carriers
from aftersale.markets import Market
from aftersale.render.samples import Sample, build_samples
from aftersale.settings import Shop

#: The tz database's country table lists each country's principal zone first.
_ZONE_TABLE = Path("/usr/share/zoneinfo/zone.tab")
#: A made-up UPS number: outside Poland the sample parcel goes by UPS (a Paczkomat in
#: Warsaw would be odd for a customer in Ohio).
_UPS_NUMBER = "1Z999AA10123456784"


def all_samples(shop: Shop, carriers: Carriers) -> tuple[Sample, ...]:
    """The built-in samples, then one per market."""
    return build_samples(carriers) + market_samples(shop, carriers)


def market_samples(shop: Shop, carriers: Carriers) -> tuple[Sample, ...]:
    typical = build_samples(carriers)[0]
    return tuple(_for_market(typical, m, carriers) for m in shop.markets if m.countries)


def _for_market(typical: Sample, market: Market, carriers: Carriers) -> Sample:
    country = market.countries[0]
    language = Locale.parse(f"und_{country}").language  # CLDR's likely language there
    order = typical.order
    customer = replace(
        order.customer,
        customer_id=f"C-{country}",
        locale=f"{language}-{country}",
        time_zone=principal_zone(country),
        country=country,
    )
    currency = market.currency or order.items[0].currency
    items = tuple(replace(i, currency=currency) for i in order.items)
    shipment = typical.shipment
    if country != "PL":
        carrier = next(iter(carriers.detect(_UPS_NUMBER)), None)
        shipment = replace(
            shipment, carrier=carrier, tracking_number=_UPS_NUMBER, pickup_point=None
        )
        order = replace(
            order,
            shipments=(replace(order.shipments[0], tracking_number=_UPS_NUMBER, carrier=carrier),),
        )
    order = replace(
        order,
        order_id=f"NW-{country}-1047",
        customer=customer,
        items=items,
        shipping_country=country,
    )
    shipment = replace(shipment, shipment_id=f"{order.order_id}-1", order_id=order.order_id)
    description = (
        f"market {market.code}: a customer in {country} ({customer.locale}, "
        f"{customer.time_zone}), prices in {currency}"
    )
    return Sample(f"market_{market.code.lower()}", description, order, shipment)


@lru_cache(maxsize=64)
def principal_zone(country: str) -> str:
    """The country's principal time zone: the first the tz database lists for it (the US:
    New York), else CLDR's first, else UTC."""
    if _ZONE_TABLE.is_file():
        for line in _ZONE_TABLE.read_text(encoding="utf-8").splitlines():
            fields = line.split("\t")
            if len(fields) >= 3 and fields[0] == country:
                return fields[2]
    zones = get_global("territory_zones").get(country) or ()
    return zones[0] if zones else "UTC"
