"""The gallery and `aftersale preview` have a sample per market of shop.yaml: each shows
that market's contact block, legal line and money in its currency, in its language."""

from __future__ import annotations

from decimal import Decimal

from babel.numbers import get_territory_currencies

from aftersale.markets import load_shop, parse_shop
from aftersale.models import ChannelKind
from aftersale.render.catalogue import load_catalogue
from aftersale.render.context import build_context
from aftersale.render.gallery import build_gallery
from aftersale.render.library import TemplateLibrary
from aftersale.render.market_samples import all_samples, market_samples, principal_zone
from aftersale.render.samples import SAMPLE_NOW, local_to, sample_situations
from aftersale.settings import PROJECT_ROOT
from carriers.registry import DIRECTORY

SHOP = load_shop(PROJECT_ROOT / "shop.yaml")
SYMBOL = {"PLN": "zł", "EUR": "€", "GBP": "£", "USD": "$"}


def test_every_market_has_a_sample_that_shows_its_own_data() -> None:
    library = TemplateLibrary.load(
        PROJECT_ROOT / "templates", SHOP, PROJECT_ROOT / "catalogue" / "products.yaml", DIRECTORY
    )
    catalogue = load_catalogue(PROJECT_ROOT / "catalogue" / "products.yaml")
    samples = {s.name: s for s in market_samples(SHOP, DIRECTORY)}
    assert sorted(samples) == sorted(f"market_{m.code.lower()}" for m in SHOP.markets)
    for market in SHOP.markets:
        sample = samples[f"market_{market.code.lower()}"]
        _, kwargs = sample_situations("thank_you", sample)[0]
        context = build_context(sample.order, SHOP, carriers=DIRECTORY, catalogue=catalogue,
                                now=SAMPLE_NOW, **kwargs)  # fmt: skip
        text = library.render("thank_you", ChannelKind.EMAIL, context, "a@b").text
        assert market.phone in text and market.email in text, market.code
        legal = market.legal if isinstance(market.legal, str) else None
        assert legal is None or legal in text, market.code
        assert SYMBOL[market.currency or ""] in text, (market.code, text)
    assert samples["market_us"].order.customer.locale == "en-US"
    assert samples["market_at"].order.customer.locale == "de-AT"
    assert principal_zone("US") == "America/New_York"


def test_a_market_added_to_shop_yaml_gets_its_sample_in_the_gallery() -> None:
    text = (PROJECT_ROOT / "shop.yaml").read_text(encoding="utf-8")
    text += (
        "  FR:\n    countries: [FR]\n    currency: EUR\n    phone: +33 1 00 00 00 00\n"
        "    email: aide@northwind.example\n    help_url: https://northwind.example/fr/aide\n"
    )
    shop = parse_shop(text, "shop.yaml")
    library = TemplateLibrary.load(
        PROJECT_ROOT / "templates", shop, PROJECT_ROOT / "catalogue" / "products.yaml", DIRECTORY
    )
    page, entries = build_gallery(library, sample="market_fr")
    assert 'href="/?sample=market_fr"' in page and "market FR" in page
    assert all(e.ok for e in entries)
    assert "+33 1 00 00 00 00" in page


#: What only a Polish sample may show: its cities, its lockers, its customer.
POLISH = ("Kraków", "Warszawa", "Paczkomat", "Kowalsk", "inpost")


def test_every_sample_is_priced_and_placed_in_its_own_country() -> None:
    """Items and offers in the currency of the sample's market (its country's, where no
    market serves it); outside Poland no Polish city, locker, carrier or customer."""
    catalogue = load_catalogue(PROJECT_ROOT / "catalogue" / "products.yaml")
    headphones: dict[str, Decimal] = {}
    for sample in all_samples(SHOP, DIRECTORY):
        order = sample.order
        country = order.shipping_country or order.customer.country or ""
        currency = SHOP.market_for(country).currency or get_territory_currencies(country)[0]
        assert {i.currency for i in order.items} == {currency}, sample.name
        headphones.update((currency, i.price) for i in order.items if i.sku == "NW-ANC-700")
        for template in ("warranty_expiry", "shipped", "available_for_pickup", "pickup_reminder",
                         "undeliverable", "delivered"):  # fmt: skip
            for label, kwargs in sample_situations(template, sample):
                context = build_context(order, SHOP, carriers=DIRECTORY, catalogue=catalogue,
                                        now=SAMPLE_NOW, **kwargs)  # fmt: skip
                offer = context["product"] and context["product"]["extended_warranty"]
                if offer:
                    info = catalogue.lookup(context["item"]["sku"], context["item"]["category"])
                    assert info and info.extended_warranty
                    assert offer["currency"] == currency, (sample.name, label)
                    assert offer["price"] == info.extended_warranty.prices[currency]
                if country != "PL":
                    # the customer's side (the shop's own address may well be in Warsaw)
                    seen = repr({k: v for k, v in context.items() if k != "shop"})
                    assert not [w for w in POLISH if w in seen], (sample.name, label)
    # a price list per currency, not a Polish price relabelled
    assert len(set(headphones.values())) == len(headphones) >= 4, headphones


def test_a_parcel_waits_at_a_place_of_its_own_carrier() -> None:
    """A sample whose parcel has no pickup place of its own waits at its country's sample
    place; that must be its own carrier's (no DPD parcel in an InPost locker)."""
    for sample in all_samples(SHOP, DIRECTORY):
        _, kwargs = sample_situations("available_for_pickup", sample)[0]
        place = kwargs["shipment"].pickup_point or kwargs["pickup_point"]
        carrier = sample.shipment.carrier
        if carrier is None or sample.shipment.pickup_point:
            continue
        local = local_to(sample.order.shipping_country or sample.order.customer.country)
        assert carrier in DIRECTORY.detect(local.tracking_number), (sample.name, carrier, place)
