"""shop.yaml: markets, their contact blocks and the documented fallback; every problem
reported with file:line:col."""

from __future__ import annotations

from pathlib import Path

import pytest

from aftersale.errors import ConfigError
from aftersale.markets import load_shop, parse_shop, pick_text
from aftersale.settings import PROJECT_ROOT, Settings, Shop
from carriers.registry import DIRECTORY


def test_the_shipped_shop_has_a_market_per_demo_country() -> None:
    shop = load_shop(PROJECT_ROOT / "shop.yaml")
    assert {m.code for m in shop.markets} == {"PL", "DE", "AT", "GB", "US"}
    assert shop.market_for("AT").phone.startswith("+43")
    assert shop.market_for(None, "IE").code == "GB"  # the UK market serves Ireland too
    assert shop.market_for("US").currency == "USD"


def test_shipping_country_first_then_the_customers_then_the_fallback() -> None:
    shop = load_shop(PROJECT_ROOT / "shop.yaml")
    assert shop.market_for("DE", "PL").code == "DE"
    assert shop.market_for(None, "PL").code == "PL"
    fallback = shop.market_for("JP", None)
    assert (fallback.code, fallback.phone, fallback.email) == ("*", shop.phone, shop.email)


def test_texts_per_language_fall_back_to_the_default_then_any() -> None:
    texts = {"de": "Mo-Fr", "en": "Mon-Fri"}
    assert pick_text(texts, ["de-AT", "de", "en"]) == "Mo-Fr"
    assert pick_text(texts, ["fr", "en"]) == "Mon-Fri"
    assert pick_text({"*": "same for all"}, ["pl", "en"]) == "same for all"
    assert pick_text({}, ["en"]) is None


def test_settings_read_the_file_named_by_aftersale_shop(tmp_path: Path) -> None:
    path = tmp_path / "shop.yaml"
    path.write_text("name: Kettle Corner\nbase_url: https://kettle.example\n", encoding="utf-8")
    settings = Settings.from_env({"AFTERSALE_SHOP": str(path)}, carriers=DIRECTORY)
    assert settings.shop.name == "Kettle Corner" and settings.shop.markets == ()
    with pytest.raises(ConfigError, match="no such file"):
        Settings.from_env({"AFTERSALE_SHOP": str(tmp_path / "nope.yaml")}, carriers=DIRECTORY)


def test_an_empty_file_is_the_built_in_shop() -> None:
    assert parse_shop("", "shop.yaml") == Shop()


def test_every_problem_is_reported_with_its_place() -> None:
    text = (
        "name: Kettle Corner\n"
        "base_url: http://kettle.example\n"
        "phnoe: +48 1\n"
        "markets:\n"
        "  DE:\n"
        "    countries: [DE, at]\n"
        "    currency: euro\n"
        "    phone: +49 1\n"
        "    email: nobody\n"
        "    help_url: https://kettle.example/de\n"
        "    hours: {deutsch: Mo-Fr}\n"
        "  AT:\n"
        "    countries: [DE]\n"
        "    currency: EUR\n"
        "    phone: +43 1\n"
        "    email: at@kettle.example\n"
        "    help_url: https://kettle.example/at\n"
        "  PL:\n"
        "    currency: PLN\n"
    )
    with pytest.raises(ConfigError) as caught:
        parse_shop(text, "shop.yaml")
    assert str(caught.value).splitlines() == [
        "shop.yaml:2:11 shop: base_url must be an https:// link, got 'http://kettle.example'",
        "shop.yaml:3:1 unknown field 'phnoe' (did you mean 'phone'?)",
        "shop.yaml:6:21 market 'DE': 'at' is not a two-letter upper-case country code such as GB",
        "shop.yaml:7:15 market 'DE': currency must be an ISO 4217 code such as EUR or GBP, "
        "got 'euro'",
        "shop.yaml:9:12 market 'DE': email must be an email address, got 'nobody'",
        "shop.yaml:11:13 market 'DE': hours: 'deutsch' is not a language such as en, pl or de",
        "shop.yaml:13:16 market 'AT': country DE is already served by market 'DE' (a country "
        "belongs to one market)",
        "shop.yaml:18:3 market 'PL': missing countries, phone, email, help_url",
    ]


def test_a_broken_file_is_one_line_not_a_traceback() -> None:
    with pytest.raises(ConfigError, match=r"^shop.yaml:2:1 not valid YAML"):
        parse_shop("name: [\n:", "shop.yaml")


def test_the_shops_promises_are_read_and_checked() -> None:
    shop = load_shop(PROJECT_ROOT / "shop.yaml")
    assert (shop.time_zone, shop.dispatch_days, shop.return_days) == ("Europe/Warsaw", 2, 30)
    assert (Shop().dispatch_days, Shop().return_days) == (None, None)  # promised nothing
    with pytest.raises(ConfigError) as caught:
        parse_shop("time_zone: Europe/Warsav\ndispatch_days: two\nreturn_days: -1\n", "s.yaml")
    assert str(caught.value).splitlines() == [
        "s.yaml:1:12 shop: time_zone must be an IANA time zone such as Europe/Warsaw, "
        "got 'Europe/Warsav'",
        "s.yaml:2:16 shop: dispatch_days must be a whole number of days (0 or more), got 'two'",
        "s.yaml:3:14 shop: return_days must be a whole number of days (0 or more), got -1",
    ]
