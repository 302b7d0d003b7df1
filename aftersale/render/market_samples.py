"""One preview sample per market of shop.yaml (`market_gb`, `market_us`, ...): the typical
order as a customer of that market has it (its first country, that country's language
and time zone, a customer, carrier and pickup place of that country from `samples.LOCALS`,
prices in the market's currency), so the gallery and `aftersale preview`
show each market's contact block, money and legal line. A market added to shop.yaml
gets its sample without code.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from babel import Locale
from babel.core import get_global

from aftersale.carriers_meta import Carriers
from aftersale.markets import Market
from aftersale.models import Customer
from aftersale.render.samples import Sample, build_samples, local_to, make_sample, typical_items
from aftersale.settings import Shop

#: The tz database's country table lists each country's principal zone first.
_ZONE_TABLE = Path("/usr/share/zoneinfo/zone.tab")


def all_samples(shop: Shop, carriers: Carriers) -> tuple[Sample, ...]:
    """The built-in samples, then one per market."""
    return build_samples(carriers) + market_samples(shop, carriers)


def market_samples(shop: Shop, carriers: Carriers) -> tuple[Sample, ...]:
    return tuple(_for_market(m, carriers) for m in shop.markets if m.countries)


def _for_market(market: Market, carriers: Carriers) -> Sample:
    country = market.countries[0]
    language = Locale.parse(f"und_{country}").language  # CLDR's likely language there
    local = local_to(country)  # a customer, carrier and pickup place of that country
    customer = Customer(
        f"C-{country}",
        local.name,
        local.email,
        local.phone,
        f"{language}-{country}",
        principal_zone(country),
        True,
        True,
        country,
    )
    code = market.code.lower()
    sample = make_sample(
        carriers,
        f"NW-{country}-1047",
        f"market_{code}",
        f"market {market.code}: a customer in {country} ({customer.locale}, "
        f"{customer.time_zone}), prices in {market.currency}",
        customer,
        typical_items(market.currency),
        local.tracking_number,
        local.pickup_point,
        local.pickup_type,
        shipping_country=country,
    )
    return sample


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
