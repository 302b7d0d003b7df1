"""Rendering's shortcuts answer exactly as the code they stand in for: output escaping,
reading a context record's field, unsubscribe links signed only when read, and unescaping
a text block."""

from __future__ import annotations

import html
import json
from datetime import date
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jinja2 import DictLoader, StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup, escape

from aftersale.dispatch.unsubscribe import UnsubscribeLinks
from aftersale.models import ChannelKind
from aftersale.render.context import PENDING, Fields, LazyFields, build_context
from aftersale.render.filters import NAME_ONLY, add_utm, build_filters
from aftersale.render.library import unescape
from aftersale.render.memo import known_text, plan
from aftersale.render.samples import SAMPLE_NOW, build_samples, sample_situations
from aftersale.render.sandbox import (
    Sandbox,
    StrictFieldsUndefined,
    _escape_output,
    guard_filters,
    strict_mode,
)
from aftersale.settings import Shop
from carriers.registry import DIRECTORY

VALUES: list[Any] = [
    "Northwind",
    "",
    "Müller & Söhne",
    "<b>",
    "a > b",
    'say "hi"',
    "it's",
    "Tom & Jerry <3 \"x\" 'y' &amp; >",
    "https://x.example/a?b=1&c=2",
    "ﻣﺤﻤﺪ",
    Markup("<br>"),
    42,
    Decimal("9.90"),
    date(2025, 3, 12),
    None,
]


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_output_escaping_prints_what_markupsafe_prints(value: Any) -> None:
    assert str(_escape_output(value)) == str(escape(value))


def test_email_templates_escape_through_the_shortcut_and_text_templates_do_not() -> None:
    source = "{{ a }}|{{ b }}|{{ c }}"
    env = Sandbox(
        loader=DictLoader({"x.html": source, "x.txt": source}),
        autoescape=lambda name: (name or "").endswith(".html"),
    )
    values = {"a": "Tom & Jerry <3", "b": Markup("<i>ok</i>"), "c": "plain"}
    html = env.get_template("x.html")
    assert html.render(values) == "Tom &amp; Jerry &lt;3|<i>ok</i>|plain"
    assert env.get_template("x.txt").render(values) == "Tom & Jerry <3|<i>ok</i>|plain"
    # in place: a Jinja release that drops the hook would quietly be slower again
    assert html.root_render_func.__globals__["escape"] is _escape_output


RECORD = Fields(
    "order", {"total": Decimal("10"), "number": "NW-1", "items": ["first"], "empty": None}
)


@pytest.mark.parametrize(
    "source",
    [
        "{{ order.total }}",
        "{{ order.number }}",
        "{{ order.empty }}",
        "{{ order['number'] }}",
        "{{ order.items is callable }}",  # a dict method wins over the key, as in Jinja
        "{{ order.get('number') }}",
        "{{ order.keys()|list|length }}",
    ],
)
def test_a_record_field_reads_as_in_jinjas_sandbox(source: str) -> None:
    ours = Sandbox(undefined=StrictFieldsUndefined)
    theirs = ImmutableSandboxedEnvironment(undefined=StrictUndefined)
    assert ours.from_string(source).render(order=RECORD) == theirs.from_string(source).render(
        order=RECORD
    )
    lazy = LazyFields("order", lambda: {"number": "NW-1"}, {**RECORD, "number": PENDING})
    assert ours.from_string(source).render(order=lazy) == theirs.from_string(source).render(
        order=RECORD
    )


def test_a_missing_field_names_the_record_and_a_private_one_is_refused() -> None:
    env = Sandbox(undefined=StrictFieldsUndefined)
    with pytest.raises(
        Exception, match="'order' has no field 'totl' \\(did you mean 'total'\\?\\)"
    ):
        env.from_string("{{ order.totl }}").render(order=RECORD)
    with pytest.raises(Exception, match="access to attribute '_path' of 'Fields' object is unsafe"):
        env.from_string("{{ order._path }}").render(order=RECORD)
    lazy = LazyFields("order", None, RECORD)
    with pytest.raises(Exception, match="'_make' of 'LazyFields' object is unsafe"):
        env.from_string("{{ order._make }}").render(order=lazy)


def _lazy() -> tuple[LazyFields, list[int]]:
    made: list[int] = []

    def make() -> dict[str, str]:
        made.append(1)
        return {"unsubscribe": "https://x/u?t=signed", "unsubscribe_short": "x/u?t=signed"}

    record = LazyFields(
        "links",
        make,
        {"order": "https://x/o", "unsubscribe": PENDING, "unsubscribe_short": PENDING},
    )
    return record, made


READS = {
    "item": lambda r: r["unsubscribe"],
    "get": lambda r: r.get("unsubscribe"),
    "items": lambda r: dict(r.items())["unsubscribe"],
    "values": lambda r: list(r.values())[1],
    "dict": lambda r: dict(r)["unsubscribe"],
    "unpacked": lambda r: {**r}["unsubscribe"],
    "copy": lambda r: r.copy()["unsubscribe"],
    "json": lambda r: json.loads(json.dumps(r))["unsubscribe"],
    "repr": lambda r: repr(r).split("'unsubscribe': '")[1].split("'")[0],
    "template": lambda r: Sandbox().from_string("{{ links.unsubscribe }}").render(links=r),
    "dictsort": lambda r: (
        Sandbox()
        .from_string("{% for k, v in links|dictsort if k == 'unsubscribe' %}{{ v }}{% endfor %}")
        .render(links=r)
    ),
}


@pytest.mark.parametrize("read", READS.values(), ids=list(READS))
def test_deferred_links_are_made_once_on_the_first_read_of_any_kind(read: Any) -> None:
    record, made = _lazy()
    assert list(record) == ["order", "unsubscribe", "unsubscribe_short"] and not made
    assert record["order"] == "https://x/o" and not made  # other fields cost nothing
    assert read(record) == "https://x/u?t=signed"
    assert record["unsubscribe_short"] == "x/u?t=signed"
    assert made == [1]
    assert PENDING not in dict.values(record)


def test_a_message_that_never_reads_its_unsubscribe_link_signs_nothing() -> None:
    signer = UnsubscribeLinks(b"k" * 32, "https://hooks.example/unsubscribe", "u@shop.example")
    sample = build_samples(DIRECTORY)[0]
    _, kwargs = sample_situations("shipped", sample)[0]
    context = build_context(
        sample.order, Shop(), carriers=DIRECTORY, unsubscribe=signer, now=SAMPLE_NOW, **kwargs
    )
    links = context["links"]
    assert PENDING in dict.values(links)  # not signed by building the context
    email = sample.order.customer.email or ""
    token = signer.token(email, ChannelKind.EMAIL, sample.order.customer.locale, SAMPLE_NOW)
    assert links["unsubscribe"] == f"{signer.page_url}?t={token}"
    assert (
        links["unsubscribe_mailto"]
        == f"mailto:u@shop.example?subject={quote('unsubscribe ' + token)}"
    )
    assert PENDING not in dict.values(links)


# --- UTM links ------------------------------------------------------------------------


def _utm_by_parsing(url: str, medium: str, campaign: str, content: str | None = None) -> str:
    """add_utm as it was before its shortcut: every link taken apart and put together."""
    parts = urlsplit(url)
    params = {"utm_source": "aftersale", "utm_medium": medium, "utm_campaign": campaign}
    if content:
        params["utm_content"] = content
    query = f"{parts.query}&{urlencode(params)}" if parts.query else urlencode(params)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


LINKS = [
    "https://northwind.example",
    "https://northwind.example/",
    "https://northwind.example/account/orders/%231047",
    "https://inpost.pl/sledzenie-przesylek?number=642600027844200000002001",
    "http://localhost:8080/a/b?x=1&y=2",
    "https://shop.example/p?",
    "https://shop.example/p#top",
    "https://shop.example/p?q=1#top",
    "HTTPS://Shop.example/P",
    "https:///path",
    "https:////path",
    "https://[::1]:8080/x",
    " https://shop.example/lead-space",
    "https://shop.example/tab\there",
    "mailto:help@shop.example",
    "/relative/path?x=1",
    "https://shop.example/ünïcode",
]


@pytest.mark.parametrize("url", LINKS)
def test_utm_links_come_out_as_taking_the_link_apart_makes_them(url: str) -> None:
    assert add_utm(url, "email", "shipped") == _utm_by_parsing(url, "email", "shipped")
    assert add_utm(url, "sms", "x y", "c&d") == _utm_by_parsing(url, "sms", "x y", "c&d")


@given(
    st.sampled_from(["https://", "http://", "HTTP://", "ftp://", "", "//"]),
    st.text(alphabet="abc.-:[]@%/?#&=_~ \t09ß", max_size=30),
)
def test_any_link_gets_the_same_utm_parameters_either_way(scheme: str, rest: str) -> None:
    url = scheme + rest
    try:
        expected = _utm_by_parsing(url, "email", "shipped")
    except ValueError:  # urlsplit refuses it (a broken IPv6 host): so must add_utm
        with pytest.raises(ValueError):
            add_utm(url, "email", "shipped")
        return
    assert add_utm(url, "email", "shipped") == expected


# --- shared parts rendered once per set of values ----------------------------------------------

LAYOUT = (
    '{%- set ui = {"en": {"hi": "Hello"}, "pl": {"hi": "Cześć"}}[locale] -%}'
    '<a href="{{ shop.url|utm }}">{{ ui.hi }} {{ shop.name }}</a>'
    "[{% block body %}default{% endblock %}]"
    "{% if shop.hours %}({{ shop.hours }}){% endif %}{{ title or '' }}|{{ shop.phone|replace(' ', '') }}"
)
MESSAGE = (
    '{% extends "LAYOUT" %}{% set title = order.currency %}'
    "{% block body %}{{ ui.hi }}, {{ customer.name }}: {{ order.total|money }}{% endblock %}"
)


def _envs() -> tuple[Sandbox, Sandbox]:
    """The same templates, as a shared part (`_layout`) and as a message file (`layout`)."""
    loader = DictLoader(
        {
            "email/_layout.j2": LAYOUT,
            "email/layout.j2": LAYOUT,
            "email/shipped/en.j2": MESSAGE.replace("LAYOUT", "email/_layout.j2"),
            "email/plain/en.j2": MESSAGE.replace("LAYOUT", "email/layout.j2"),
        }
    )
    envs = []
    for _ in range(2):
        env = Sandbox(loader=loader, undefined=StrictFieldsUndefined, autoescape=True)
        env.filters.update(build_filters(DIRECTORY))
        env.filters = guard_filters(env.filters)
        envs.append(env)
    return envs[0], envs[1]


def _shop(**values: Any) -> Fields:
    base = {"name": "Northwind", "url": "https://nw.example", "hours": None, "phone": "+48 22"}
    return Fields("shop", {**base, **values})


CONTEXTS = [
    {"locale": "en", "shop": _shop()},
    {"locale": "pl", "shop": _shop()},
    {"locale": "en", "shop": _shop(hours="9-17")},
    {"locale": "en", "shop": _shop(name="Tom & Jerry <3")},
    {"locale": "en", "shop": _shop(hours=1)},
    {"locale": "en", "shop": _shop(hours=True)},
    {"locale": "en", "shop": _shop(hours=1.0)},
    {"locale": "en", "shop": _shop(hours=Decimal("1.0"))},
    {"locale": "en", "shop": _shop(hours=Decimal("1.00"))},
    {"locale": "en", "shop": _shop(hours=Markup("<b>9</b>"))},
    {"locale": "en", "shop": _shop(hours="<b>9</b>")},
    {"locale": "en", "shop": _shop(hours=["9", "17"])},
    {"locale": "en", "shop": _shop(hours=("9", "17"))},
    {"locale": "en", "shop": _shop(hours={"mon": "9"})},
    {"locale": "en", "shop": _shop(), "title": "Hi"},
]


def test_a_shared_part_prints_what_it_would_print_rendered_every_time() -> None:
    memo, _ = _envs()
    order = Fields("order", {"total": Decimal("12.5"), "currency": "EUR"})
    for round_ in range(2):  # the second round reads what the first kept
        for i, values in enumerate(CONTEXTS):
            customer = Fields("customer", {"name": f"Ann {i}", "locale": "en", "time_zone": "UTC"})
            context = {**values, "customer": customer, "order": order}
            shared = memo.get_template("email/shipped/en.j2").render(context)
            plain = memo.get_template("email/plain/en.j2").render(context)
            assert shared.replace("utm_campaign=shipped", "utm_campaign=plain") == plain, (
                round_,
                values,
            )
            assert f"Hello, Ann {i}:" in shared or f"Cześć, Ann {i}:" in shared


def test_a_shared_part_that_loops_calls_or_reads_the_customer_renders_every_time() -> None:
    env, _ = _envs()
    for source in [
        "{% for x in shop.list %}{{ x }}{% endfor %}",
        "{{ shop.name.upper() }}",
        "{{ order.total|money }}",
        '{% include "email/layout.j2" %}',
        "{% block body scoped %}{% endblock %}",
        "{% macro m() %}{% endmacro %}",
    ]:
        assert plan(env.parse(source), env.filters, env.tests, NAME_ONLY) is None, source
    assert plan(env.parse(LAYOUT), env.filters, env.tests, NAME_ONLY) == (
        "locale",
        "shop",
        "title",
        "ui",
    )


def test_check_still_sees_every_expression_of_a_shared_part() -> None:
    env, _ = _envs()
    context = {
        "locale": "en",
        "shop": _shop(name=None),
        "customer": Fields("customer", {"name": "Ann", "locale": "en", "time_zone": "UTC"}),
        "order": Fields("order", {"total": Decimal("1"), "currency": "EUR"}),
    }
    for _ in range(2):  # the second time from what the first kept
        assert "Hello None" in env.get_template("email/shipped/en.j2").render(context)
    checked = strict_mode(env).get_template("email/shipped/en.j2")
    for _ in range(2):
        with pytest.raises(Exception, match="prints 'None'"):
            checked.render(context)


def test_a_shared_part_reading_lazy_links_neither_signs_them_nor_keeps_its_text() -> None:
    record, made = _lazy()
    env = Sandbox(loader=DictLoader({"_part.j2": "{{ links.order }}"}))
    assert env.get_template("_part.j2").render(links=record) == "https://x/o"
    assert not made


def test_names_a_shared_part_sets_reach_the_blocks_as_they_would() -> None:
    part = '{% if shop.hours %}{% set note = "open" %}{% endif %}[{% block body %}{% endblock %}]'
    message = "{% extends LAYOUT %}{% set note = name %}{% block body %}{{ note }}{% endblock %}"
    env = Sandbox(
        loader=DictLoader(
            {
                "_part.j2": part,
                "part.j2": part,
                "shared.j2": message.replace("LAYOUT", "'_part.j2'"),
                "plain.j2": message.replace("LAYOUT", "'part.j2'"),
            }
        )
    )
    for hours, name in [(None, "Ann"), ("9-17", "open"), ("9-17", "Bob"), (None, "Cy"), (None, 1)]:
        values = {"shop": _shop(hours=hours), "name": name}
        expected = env.get_template("plain.j2").render(values)
        assert env.get_template("shared.j2").render(values) == expected


def test_a_shared_part_rendered_before_is_known_without_a_context() -> None:
    env = Sandbox(
        loader=DictLoader(
            {
                "_footer.j2": "{{ shop.name }} {{ shop.phone }}",
                "_l.j2": "[{% block b %}{% endblock %}]",
            }
        )
    )
    footer = env.get_template("_footer.j2")
    values = {"shop": _shop()}
    assert known_text(footer, values) is None  # not rendered yet
    text = footer.render(values)
    assert known_text(footer, values) == text == "Northwind +48 22"
    assert known_text(footer, {"shop": _shop(phone="+48 23")}) is None
    layout = env.get_template("_l.j2")
    layout.render(values)
    assert known_text(layout, values) is None  # it has a block to fill


def test_links_to_be_signed_come_in_the_order_of_plain_ones() -> None:
    sample = build_samples(DIRECTORY)[0]
    _, kwargs = sample_situations("shipped", sample)[0]
    signer = UnsubscribeLinks(b"k" * 32, "https://hooks.example/unsubscribe", "u@shop.example")
    made = [
        build_context(sample.order, Shop(), carriers=DIRECTORY, now=SAMPLE_NOW, **kwargs, **extra)
        for extra in ({}, {"unsubscribe": signer})
    ]
    assert list(made[0]["links"]) == list(made[1]["links"])


#: Pieces of text that make entities, near-entities and bare ampersands when joined.
ENTITY_PIECES = [
    "&amp;",
    "&amp",
    "&lt;",
    "&#34;",
    "&#39",
    "&#x27;",
    "&nbsp;",
    "&",
    "amp;",
    ";",
    "a",
    "ü",
]


@given(st.lists(st.sampled_from(ENTITY_PIECES), max_size=8).map("".join))
def test_unescape_is_html_unescape(text: str) -> None:
    assert unescape(text) == html.unescape(text)
