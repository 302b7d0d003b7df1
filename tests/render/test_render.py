"""Rendering: every shipped template × locale × channel against every sample context, the
locale fallback chain, filters, links, CSS inlining and the documented context."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from aftersale.errors import ConfigError, TemplateError
from aftersale.models import ChannelKind
from aftersale.render.catalogue import parse_catalogue
from aftersale.render.css import inline_css_source
from aftersale.render.filters import add_utm, gsm_filter
from aftersale.render.library import TemplateLibrary, build_context
from aftersale.render.samples import SAMPLE_NOW, build_samples, sample_contexts, sample_situations
from aftersale.render.sms import sms_segments
from aftersale.settings import PROJECT_ROOT, Shop
from carriers.registry import DIRECTORY

TEMPLATES = PROJECT_ROOT / "templates"
CATALOGUE = PROJECT_ROOT / "catalogue" / "products.yaml"
MESSAGE_TYPES = (
    "thank_you", "shipped", "arriving_tomorrow", "out_for_delivery", "delayed",
    "available_for_pickup", "delivered", "setup_tip", "review_request", "warranty_expiry",
)  # fmt: skip
MARKETING = {"setup_tip", "review_request", "warranty_expiry"}


@pytest.fixture(scope="module")
def library() -> TemplateLibrary:
    return TemplateLibrary.load(TEMPLATES, Shop(), CATALOGUE, DIRECTORY)


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def test_every_message_type_exists_in_every_locale_and_channel(library: TemplateLibrary) -> None:
    assert library.locales() == ["de", "en", "pl"]
    for template in MESSAGE_TYPES:
        for channel in ChannelKind:
            assert sorted(library.variants[(template, channel)]) == ["de", "en", "pl"]
            assert library.has(template, channel)
            assert library.is_marketing(template, channel) == (template in MARKETING)
    assert not library.has("no_such_message", ChannelKind.EMAIL)


@pytest.mark.parametrize("template", MESSAGE_TYPES)
@pytest.mark.parametrize("locale", ["en", "pl", "de"])
def test_every_variant_renders_against_every_sample(
    library: TemplateLibrary, template: str, locale: str
) -> None:
    shop = library.shop
    contexts = sample_contexts(template, shop, library.catalogue, DIRECTORY)
    assert len(contexts) >= len(build_samples(DIRECTORY))
    for channel in ChannelKind:
        variant = library.variants[(template, channel)][locale]
        for label, context in contexts:
            message = library.render_variant(variant, context, "someone")
            assert "{{" not in message.text and "{%" not in message.text, label
            if channel is ChannelKind.SMS:
                assert message.sms_segments == 1, (label, message.text)
                assert shop.phone in message.text, label  # how to reach us, every time
                assert "\n" not in message.text
                if template in MARKETING:
                    assert "STOP" in message.text
                continue
            assert message.subject and message.html and message.text, label
            assert "\n" not in message.subject
            assert message.html.startswith("<!DOCTYPE html>")
            assert f'<html lang="{locale}">' in message.html
            # The contact block, in both parts of every email.
            for part in (message.html, message.text):
                assert shop.email in part and shop.phone in part and shop.help_url in part
            assert 'class="header" style="background-color: #0b5394;' in message.html
            if template in MARKETING:
                assert f'href="{context["links"]["unsubscribe"]}"' in message.html
                assert context["links"]["unsubscribe"] in message.text


def test_locale_fallback_chain(library: TemplateLibrary) -> None:
    _, context = sample_contexts("shipped", library.shop, library.catalogue, DIRECTORY)[0]

    def subject_for(locale: str) -> str | None:
        ctx = {**context, "customer": {**context["customer"], "locale": locale}}
        return library.render("shipped", ChannelKind.EMAIL, ctx, "x").subject

    assert subject_for("pl-PL") == "Twoje zamówienie NW-1047 jest już w drodze"
    assert subject_for("pl_PL") == subject_for("pl") == subject_for("pl-PL")
    assert subject_for("de-AT") == "Ihre Bestellung NW-1047 ist unterwegs"
    assert subject_for("fr-FR") == "Your order NW-1047 is on its way"  # shop default
    assert subject_for("") == "Your order NW-1047 is on its way"


def test_region_specific_variant_wins_over_language(tmp_path: Path) -> None:
    root = _write(tmp_path / "templates", {
        "sms/hello/en.j2": "Hello",
        "sms/hello/pl.j2": "Czesc",
        "sms/hello/pl-PL.j2": "Czesc z Polski",
    })  # fmt: skip
    library = TemplateLibrary.load(root, Shop(), None, DIRECTORY)
    context = {"customer": {"locale": "pl-PL"}}
    assert library.render("hello", ChannelKind.SMS, context, "+48").text == "Czesc z Polski"
    context = {"customer": {"locale": "pl"}}
    assert library.render("hello", ChannelKind.SMS, context, "+48").text == "Czesc"


def test_unknown_template_names_the_closest(library: TemplateLibrary) -> None:
    with pytest.raises(TemplateError) as caught:
        library.render("shiped", ChannelKind.SMS, {"customer": {"locale": "en"}}, "+48")
    assert str(caught.value) == (
        "templates/sms/shiped: no sms template 'shiped' in 'en' nor in the shop's default "
        "locale 'en' (did you mean 'shipped'?)"
    )


def test_money_dates_and_times_follow_locale_and_time_zone(library: TemplateLibrary) -> None:
    sample = build_samples(DIRECTORY)[0]  # Anna, pl-PL, Europe/Warsaw
    label, kwargs = sample_situations("out_for_delivery", sample)[0]
    context = build_context(
        sample.order, library.shop, carriers=DIRECTORY, now=SAMPLE_NOW, **kwargs
    )
    sms = library.render("out_for_delivery", ChannelKind.SMS, context, "+48")
    # The window is 12:00-15:00 UTC: 13:00-16:00 in Warsaw in March.
    assert "13:00-16:00" in sms.text
    thanks = library.render("thank_you", ChannelKind.EMAIL, context, "a@b")
    assert "899,00\xa0zł" in thanks.text and "Razem: 978,80\xa0zł" in thanks.text
    assert "czwartek, 13 marca 2025" in thanks.text
    german = {**context, "customer": {**context["customer"], "locale": "de-DE"}}
    thanks = library.render("thank_you", ChannelKind.EMAIL, german, "a@b")
    assert "Gesamt: 978,80\xa0PLN" in thanks.text and "Donnerstag, 13. März 2025" in thanks.text
    english = {**context, "customer": {**context["customer"], "locale": "en-GB"}}
    thanks = library.render("thank_you", ChannelKind.EMAIL, english, "a@b")
    # CLDR's currency spacing: a currency code is never glued to the digits
    assert "Total: PLN\xa0978.80" in thanks.text and "Thursday, 13 March 2025" in thanks.text
    american = {**context, "customer": {**context["customer"], "locale": "en-US"}}
    thanks = library.render("thank_you", ChannelKind.EMAIL, american, "a@b")
    assert "Thursday, March 13, 2025" in thanks.text and "of March 9, 2025" in thanks.text


def test_shipped_links_to_the_carrier_page_with_utm(library: TemplateLibrary) -> None:
    sample = build_samples(DIRECTORY)[0]
    _, kwargs = sample_situations("shipped", sample)[0]
    context = build_context(
        sample.order, library.shop, carriers=DIRECTORY, now=SAMPLE_NOW, **kwargs
    )
    email = library.render("shipped", ChannelKind.EMAIL, context, "a@b")
    assert (
        'href="https://inpost.pl/sledzenie-przesylek?number=620012345678901234567890'
        '&amp;utm_source=aftersale&amp;utm_medium=email&amp;utm_campaign=shipped"'
    ) in (email.html or "")
    sms = library.render("shipped", ChannelKind.SMS, context, "+48")
    assert "northwind.example/t/620012345678901234567890" in sms.text


@pytest.mark.parametrize(
    ("carrier", "locale", "expected"),
    [
        ("inpost", "pl", "https://inpost.pl/sledzenie-przesylek?number=N1"),
        ("ups", "de-DE", "https://www.ups.com/track?loc=de_DE&tracknum=N1"),
        ("dhl", "en-GB", "https://www.dhl.com/gb-en/home/tracking/tracking-parcel.html"
                         "?submit=1&tracking-id=N1"),
        ("dpd", "pl", "https://tracking.dpd.de/status/pl_PL/parcel/N1"),
        ("dpd", "fr", "https://tracking.dpd.de/status/en_GB/parcel/N1"),
        ("ups", "fr-FR", "https://www.ups.com/track?loc=fr_FR&tracknum=N1"),
        ("ups", "en-US", "https://www.ups.com/track?loc=en_US&tracknum=N1"),
        ("ups", "en_GB", "https://www.ups.com/track?loc=en_GB&tracknum=N1"),
        ("ups", "en", "https://www.ups.com/track?loc=en_US&tracknum=N1"),
        ("dhl", "en-US", "https://www.dhl.com/us-en/home/tracking/tracking-parcel.html"
                         "?submit=1&tracking-id=N1"),
        ("dhl", "pl-PL", "https://www.dhl.com/pl-pl/home/tracking/tracking-parcel.html"
                         "?submit=1&tracking-id=N1"),
        ("pigeon", "en", None),
        (None, "en", None),
    ],
)  # fmt: skip
def test_tracking_pages(carrier: str | None, locale: str, expected: str | None) -> None:
    assert DIRECTORY.tracking_page(carrier, "N1", locale) == expected


def test_utm_keeps_existing_query() -> None:
    assert add_utm("https://x.example/a?b=1", "sms", "shipped") == (
        "https://x.example/a?b=1&utm_source=aftersale&utm_medium=sms&utm_campaign=shipped"
    )


def test_gsm_transliteration_keeps_german_and_drops_what_it_cannot_spell() -> None:
    assert gsm_filter("Łukasz Żółć") == "Lukasz Zolc"
    assert gsm_filter("Jürgen Groß") == "Jürgen Groß"
    assert gsm_filter("محمد Ali") == "Ali"
    assert sms_segments(gsm_filter("Zażółć gęślą jaźń")).encoding == "GSM-7"


def test_html_is_escaped_and_text_is_not(tmp_path: Path) -> None:
    root = _write(tmp_path / "templates", {
        "email/note/en.j2": "{% block subject %}Hi {{ name }}{% endblock %}"
                            "{% block html %}<p>{{ name }}</p>{% endblock %}"
                            "{% block text %}Dear {{ name }}{% endblock %}",
    })  # fmt: skip
    library = TemplateLibrary.load(root, Shop(), None, DIRECTORY)
    name = 'Tom & "Jerry" <b>'
    message = library.render(
        "note", ChannelKind.EMAIL, {"customer": {"locale": "en"}, "name": name}, "a@b"
    )
    assert "<p>Tom &amp; &#34;Jerry&#34; &lt;b&gt;</p>" in (message.html or "")
    assert message.subject == f"Hi {name}"
    assert message.text == f"Dear {name}"


def test_text_part_is_derived_from_html_when_absent(tmp_path: Path) -> None:
    root = _write(tmp_path / "templates", {
        "email/note/en.j2": "{% block subject %}S{% endblock %}{% block html %}"
                            "<h1>Hello</h1><p>See <a href=\"https://x.example/a\">your order</a>."
                            "</p><ul><li>one</li><li>two</li></ul>{% endblock %}",
    })  # fmt: skip
    library = TemplateLibrary.load(root, Shop(), None, DIRECTORY)
    message = library.render("note", ChannelKind.EMAIL, {"customer": {"locale": "en"}}, "a@b")
    assert message.text == "Hello\n\nSee your order (https://x.example/a).\n\n- one\n- two"


def test_sms_is_one_line(tmp_path: Path) -> None:
    root = _write(tmp_path / "templates", {
        "sms/note/en.j2": "Order {{ n }}\n{% if n %}is here.{% endif %}\n  Bye",
    })  # fmt: skip
    library = TemplateLibrary.load(root, Shop(), None, DIRECTORY)
    message = library.render("note", ChannelKind.SMS, {"customer": {"locale": "en"}, "n": 7}, "+4")
    assert message.text == "Order 7 is here. Bye"
    assert message.sms_segments == 1 and message.subject is None and message.html is None


def test_css_is_inlined_into_the_source_without_moving_lines() -> None:
    source = (
        '{% block html %}\n<p class="lead">Hi {{ name }}</p>\n<table>\n{% for i in items %}\n'
        '<tr><td class="cell" style="width: 5px">{{ i }}</td><td class="{{ c }}">x</td></tr>\n'
        '{% endfor %}\n</table>\n<a class="button"\n   href="{{ url }}">Go</a>\n{% endblock %}'
    )
    css = ".lead{color:#333} .cell{padding:4px} td{border:0} .button{color:#fff}"
    inlined = inline_css_source(source, css)
    assert inlined == (
        '{% block html %}\n<p class="lead" style="color: #333;">Hi {{ name }}</p>\n<table>\n'
        "{% for i in items %}\n"
        '<tr><td class="cell" style="border: 0;padding: 4px;width: 5px">{{ i }}</td>'
        '<td class="{{ c }}" style="border: 0;">x</td></tr>\n'
        '{% endfor %}\n</table>\n<a class="button"\n   href="{{ url }}" style="color: #fff;">'
        "Go</a>\n{% endblock %}"
    )
    assert inlined.count("\n") == source.count("\n")


def test_runtime_errors_point_at_the_marketers_line(tmp_path: Path) -> None:
    root = _write(tmp_path / "templates", {
        "email/_style.css": "p { color: red; }",
        "email/note/en.j2": '{% block subject %}S{% endblock %}\n{% block html %}\n<p\n'
                            '  class="x">\n{{ customer.nmae }}</p>{% endblock %}',
    })  # fmt: skip
    library = TemplateLibrary.load(root, Shop(), None, DIRECTORY)
    context = {
        "customer": build_context(
            build_samples(DIRECTORY)[0].order, Shop(), carriers=DIRECTORY, now=SAMPLE_NOW
        )["customer"]
    }
    with pytest.raises(TemplateError) as caught:
        library.render("note", ChannelKind.EMAIL, context, "a@b")
    assert str(caught.value) == (
        "templates/email/note/en.j2:5: 'customer' has no field 'nmae' (did you mean 'name'?)"
    )
    assert caught.value.line == 5


def test_context_holds_the_documented_names_and_nothing_else() -> None:
    sample = build_samples(DIRECTORY)[1]
    _, kwargs = sample_situations("warranty_expiry", sample)[0]
    context = build_context(sample.order, Shop(), carriers=DIRECTORY, now=SAMPLE_NOW, **kwargs)
    assert sorted(context) == [
        "customer", "delay", "delivered_items", "dispatch", "item", "items", "links", "order", "product", "refund",
        "return_window", "shipment", "shop", "tracking_events",
    ]  # fmt: skip
    assert context["item"]["warranty_months"] is None  # no catalogue given, none on the item
    assert context["product"] is None and context["delay"] is None
    assert context["refund"] is None and context["return_window"] is None
    assert [e["description"] for e in context["tracking_events"]] == [
        "Parcel at the sorting centre", "Label created",
    ]  # fmt: skip
    readme = (TEMPLATES / "README.md").read_text(encoding="utf-8")
    for name, value in context.items():
        assert f"`{name}`" in readme, name
        if isinstance(value, dict):
            for field in value:
                assert f"`{name}.{field}`" in readme, f"{name}.{field}"


@pytest.mark.parametrize(
    ("template", "record"),
    [("refund_issued", "refund"), ("return_window_ending", "return_window"),
     ("fulfilment_delayed", "dispatch")],
)  # fmt: skip
def test_shop_side_records_are_documented(template: str, record: str) -> None:
    sample = build_samples(DIRECTORY)[0]
    [(_, kwargs)] = sample_situations(template, sample)
    context = build_context(sample.order, Shop(), carriers=DIRECTORY, now=SAMPLE_NOW, **kwargs)
    readme = (TEMPLATES / "README.md").read_text(encoding="utf-8")
    assert context[record] is not None and f"`{template}`" in readme
    for field in context[record]:
        assert f"`{record}.{field}`" in readme, f"{record}.{field}"
    others = {"refund", "return_window", "dispatch"} - {record}
    assert all(context[name] is None for name in others)


def test_delay_and_warranty_facts() -> None:
    sample = build_samples(DIRECTORY)[1]  # laptop, 24 months from the catalogue
    catalogue = parse_catalogue(CATALOGUE.read_text(encoding="utf-8"), "products.yaml")
    _, kwargs = sample_situations("warranty_expiry", sample)[0]
    context = build_context(
        sample.order, Shop(), carriers=DIRECTORY, catalogue=catalogue, now=SAMPLE_NOW, **kwargs
    )
    assert context["item"]["warranty_months"] == 24
    assert context["item"]["warranty_ends"] == date(2027, 3, 2)  # delivered 2025-03-02
    # a German order is offered the catalogue's EUR price (PLN 399.00 in Poland)
    assert context["product"]["extended_warranty"]["price"] == Decimal("89.00")
    assert context["product"]["extended_warranty"]["currency"] == "EUR"
    assert context["links"]["extend_warranty"].endswith("/nw-book-14")
    reasons = sample_situations("delayed", sample)
    label, kwargs = next(r for r in reasons if r[0] == "delay: eta_slipped")
    context = build_context(sample.order, Shop(), carriers=DIRECTORY, now=SAMPLE_NOW, **kwargs)
    assert context["delay"] == {
        "reason": "eta_slipped", "promised": date(2025, 3, 13), "new_estimate": date(2025, 3, 17),
        "days_late": 4, "days_since_scan": 4, "scanned": True,
    }  # fmt: skip


def test_catalogue_errors_name_file_and_line() -> None:
    text = (
        "categories:\n"
        "  headphones:\n"
        "    warranty_months: two\n"
        "    tipps:\n"
        "      en: [Charge it]\n"
        "    extended_warranty:\n"
        "      months: 12\n"
        "      prices: {pln: 49}\n"
        "      url: https://x.example\n"
        "products:\n"
        "  NW-1:\n"
        "    guide_url: ftp://x\n"
        "    tips:\n"
        "      en: []\n"
        "colours: {}\n"
    )
    with pytest.raises(ConfigError) as caught:
        parse_catalogue(text, "catalogue/products.yaml")
    assert str(caught.value).splitlines() == [
        "catalogue/products.yaml:3:5 category 'headphones': warranty_months must be a whole "
        "number of months, got 'two'",
        "catalogue/products.yaml:4:5 category 'headphones': unknown field 'tipps' (did you mean "
        "'tips'?)",
        "catalogue/products.yaml:8:16 category 'headphones': currency must be an ISO 4217 code "
        "such as PLN or EUR, got 'pln'",
        "catalogue/products.yaml:12:5 product 'NW-1': guide_url must be an https:// link, got "
        "'ftp://x'",
        "catalogue/products.yaml:14:7 product 'NW-1': tips for 'en' must be a list of non-empty "
        "texts",
        "catalogue/products.yaml:15:1 unknown section 'colours' (expected one of: categories, "
        "products)",
    ]


def test_shipped_catalogue_loads() -> None:
    catalogue = parse_catalogue(CATALOGUE.read_text(encoding="utf-8"), "products.yaml")
    info = catalogue.lookup("NW-ANC-700", "headphones")
    assert info is not None and info.warranty_months == 36 and info.category == "headphones"
    assert info.tips_for("pl-PL", "en")[0].startswith("Przed pierwszym użyciem")
    assert info.tips_for("fr", "en")[0].startswith("Charge the headphones")
    assert catalogue.lookup("UNKNOWN", "toasters") is None


def test_rendering_is_deterministic_for_a_fixed_now(library: TemplateLibrary) -> None:
    sample = build_samples(DIRECTORY)[0]
    _, kwargs = sample_situations("delayed", sample)[2]
    first = build_context(sample.order, library.shop, carriers=DIRECTORY, now=SAMPLE_NOW, **kwargs)
    later = build_context(
        sample.order,
        library.shop,
        carriers=DIRECTORY,
        now=datetime(2025, 3, 14, tzinfo=UTC),
        **kwargs,
    )
    assert first["delay"]["days_since_scan"] == 4
    assert later["delay"]["days_since_scan"] == 5  # whole days since the last scan


def test_pickup_facts_from_the_store_are_json() -> None:
    from dataclasses import replace

    sample = build_samples(DIRECTORY)[0]
    _, kwargs = sample_situations("available_for_pickup", sample)[0]
    stored = replace(
        kwargs["event"], facts={"pickup_code": 482913, "pickup_deadline": "2025-03-14T09:30:00"}
    )
    context = build_context(
        sample.order, Shop(), carriers=DIRECTORY, now=SAMPLE_NOW, **{**kwargs, "event": stored}
    )
    assert context["shipment"]["pickup_code"] == "482913"
    assert context["shipment"]["pickup_deadline"] == datetime(2025, 3, 14, 9, 30, tzinfo=UTC)


def test_a_new_type_copied_from_delayed_previews_with_a_delay(tmp_path: Path) -> None:
    """The gallery shows a type no shipped rule knows with every record, a delay included."""
    import shutil

    from aftersale.render.gallery import build_gallery

    shutil.copytree(PROJECT_ROOT / "templates", tmp_path / "templates")
    shutil.copytree(tmp_path / "templates/email/delayed", tmp_path / "templates/email/sorry")
    library = TemplateLibrary.load(tmp_path / "templates", Shop(), CATALOGUE, DIRECTORY)
    _, entries = build_gallery(library)
    sorry = [e for e in entries if e.template == "sorry"]
    assert len(sorry) == 3 and all(e.ok for e in sorry)


def test_region_variant_uses_the_shared_parts(tmp_path: Path) -> None:
    """pl-PL.j2 beside pl.j2, as templates/README.md describes: the layout's words for `pl`
    serve it, and dates follow the customer's region."""
    import shutil

    shutil.copytree(PROJECT_ROOT / "templates", tmp_path / "templates")
    for channel in ("email", "sms"):
        folder = tmp_path / "templates" / channel / "shipped"
        shutil.copy(folder / "pl.j2", folder / "pl-PL.j2")
    library = TemplateLibrary.load(tmp_path / "templates", Shop(), CATALOGUE, DIRECTORY)
    context = sample_contexts("shipped", Shop(), library.catalogue, DIRECTORY)[0][1]
    assert context["customer"]["locale"] == "pl-PL"
    email = library.render("shipped", ChannelKind.EMAIL, context, "a@b")
    assert '<html lang="pl">' in (email.html or "") and "Masz pytania?" in email.text
    assert library.render("shipped", ChannelKind.SMS, context, "+48").text.endswith(
        "Pomoc: +48 22 100 20 30"
    )
