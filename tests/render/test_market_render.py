"""What a customer reads depends on their market and locale: the market's contact block
and legal line, money in the order's own currency with the locale's spacing, one date
format per locale, offers priced in the order's currency or not made at all."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from babel import Locale

from aftersale.errors import TemplateError
from aftersale.markets import load_shop
from aftersale.models import ChannelKind
from aftersale.render.catalogue import load_catalogue
from aftersale.render.context import build_context
from aftersale.render.filters import _money, date_pattern
from aftersale.render.library import TemplateLibrary
from aftersale.render.samples import SAMPLE_NOW, build_samples, sample_situations
from aftersale.settings import PROJECT_ROOT
from carriers.registry import DIRECTORY

SHOP = load_shop(PROJECT_ROOT / "shop.yaml")
CATALOGUE = load_catalogue(PROJECT_ROOT / "catalogue" / "products.yaml")


@pytest.fixture(scope="module")
def library() -> TemplateLibrary:
    return TemplateLibrary.load(
        PROJECT_ROOT / "templates", SHOP, PROJECT_ROOT / "catalogue" / "products.yaml", DIRECTORY
    )


def _customer_in(
    country: str, locale: str, currency: str, template: str = "thank_you", sample_no: int = 0
) -> dict[str, Any]:
    """The sample order moved to `country`, in `locale`, paid in `currency`."""
    sample = build_samples(DIRECTORY)[sample_no]
    order = sample.order
    order = replace(
        order,
        shipping_country=country,
        customer=replace(order.customer, country=country, locale=locale),
        items=tuple(replace(i, currency=currency) for i in order.items),
    )
    _, kwargs = sample_situations(template, replace(sample, order=order))[0]
    return build_context(
        order, SHOP, carriers=DIRECTORY, catalogue=CATALOGUE, now=SAMPLE_NOW, **kwargs
    )


@pytest.mark.parametrize(
    ("country", "locale", "currency", "phone", "total", "legal"),
    [
        ("GB", "en-GB", "GBP", "+44 20 7946 0321", "Total: £978.80", "Registered in England"),
        ("US", "en-US", "USD", "+1 212 555 0142", "Total: $978.80", "New York, NY"),
        ("DE", "de-DE", "EUR", "+49 30 2000 4040", "Gesamt: 978,80\xa0€", "HRB 000000 B"),
        ("AT", "de-AT", "EUR", "+43 1 300 5050", "Gesamt: €\xa0978,80", "FN 000000a"),
        ("PL", "pl-PL", "PLN", "+48 22 100 20 30", "Razem: 978,80\xa0zł", "KRS 0000000000"),
    ],
)  # fmt: skip
def test_each_market_reads_its_own_contacts_money_and_legal_line(
    library: TemplateLibrary,
    country: str,
    locale: str,
    currency: str,
    phone: str,
    total: str,
    legal: str,
) -> None:
    context = _customer_in(country, locale, currency)
    email = library.render("thank_you", ChannelKind.EMAIL, context, "a@b.example")
    assert phone in email.text and total in email.text and legal in email.text
    assert phone in (email.html or "") and legal in (email.html or "")
    assert "+48 22 100 20 30" not in email.text or country == "PL"
    sms = library.render(
        "shipped", ChannelKind.SMS, _customer_in(country, locale, currency, "shipped"), "+1"
    )
    assert sms.text.endswith(phone)


def test_an_offer_is_made_in_the_orders_currency_or_not_at_all() -> None:
    laptop = 1  # NW-BOOK-14: its own extension offer in the catalogue
    context = _customer_in("GB", "en-GB", "GBP", "warranty_expiry", laptop)
    offer = context["product"]["extended_warranty"]
    assert (offer["price"], offer["currency"]) == (Decimal("79.0"), "GBP")
    swiss = _customer_in("CH", "de-CH", "CHF", "warranty_expiry", laptop)
    assert swiss["product"]["extended_warranty"] is None
    assert swiss["links"]["extend_warranty"] is None


def test_money_keeps_the_locales_spacing_between_a_code_and_the_digits() -> None:
    en = Locale.parse("en")
    assert _money(Decimal("899"), "PLN", en) == "PLN\xa0899.00"
    assert _money(Decimal("899"), "GBP", Locale.parse("en_GB")) == "£899.00"
    assert _money(Decimal("899"), "USD", Locale.parse("en_GB")) == "US$899.00"
    assert _money(Decimal("1299.5"), "PLN", Locale.parse("pl_PL")) == "1\xa0299,50\xa0zł"


@pytest.mark.parametrize(
    ("locale", "day", "day_short"),
    [
        ("en_GB", "Friday, 27 November", "27 Nov"),
        ("en_US", "Friday, November 27", "Nov 27"),
        ("de_AT", "Freitag, 27. November", "27.11."),
        ("pl_PL", "piątek, 27 listopada", "27 lis"),
    ],
)
def test_dates_without_the_year_follow_the_locale(locale: str, day: str, day_short: str) -> None:
    from babel.dates import format_date

    loc = Locale.parse(locale)
    when = date(2026, 11, 27)
    assert format_date(when, date_pattern("day", loc), locale=loc) == day
    assert format_date(when, date_pattern("day_short", loc), locale=loc) == day_short


def test_a_date_pattern_of_ones_own_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "templates"
    (root / "sms" / "note").mkdir(parents=True)
    (root / "sms" / "note" / "en.j2").write_text("On {{ order.placed_at|date('d MMM') }}")
    custom = TemplateLibrary.load(root, SHOP, None, DIRECTORY)
    with pytest.raises(
        TemplateError, match=r"\|date\(.d MMM.\): use a named format \(short, medium"
    ):
        custom.render("note", ChannelKind.SMS, _customer_in("GB", "en-GB", "GBP"), "+44")


@pytest.mark.parametrize(
    ("locale", "monday"), [("en-GB", "Monday"), ("de-DE", "Montag"), ("pl-PL", "poniedziałek")]
)
def test_weekday_names_the_day_in_the_customers_language(
    tmp_path: Path, locale: str, monday: str
) -> None:
    root = tmp_path / "templates"
    (root / "sms" / "note").mkdir(parents=True)
    for language in ("en", "de", "pl"):
        (root / "sms" / "note" / f"{language}.j2").write_text("Arrives {{ day|weekday }}")
    custom = TemplateLibrary.load(root, SHOP, None, DIRECTORY)
    context = {**_customer_in("GB", locale, "GBP"), "day": date(2026, 11, 30)}  # a Monday
    rendered = custom.render("note", ChannelKind.SMS, context, "+44")
    assert rendered.text == f"Arrives {monday}"
