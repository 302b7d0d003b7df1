"""Rendering's shortcuts answer exactly as the code they stand in for: output escaping,
reading a context record's field, and unsubscribe links signed only when read."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import pytest
from jinja2 import DictLoader, StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup, escape

from aftersale.dispatch.unsubscribe import UnsubscribeLinks
from aftersale.models import ChannelKind
from aftersale.render.context import PENDING, Fields, LazyFields, build_context
from aftersale.render.samples import SAMPLE_NOW, build_samples, sample_situations
from aftersale.render.sandbox import Sandbox, StrictFieldsUndefined, _escape_output
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


RECORD = Fields("order", total=Decimal("10"), number="NW-1", items=["first"], empty=None)


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


def test_a_missing_field_names_the_record_and_a_private_one_is_refused() -> None:
    env = Sandbox(undefined=StrictFieldsUndefined)
    with pytest.raises(
        Exception, match="'order' has no field 'totl' \\(did you mean 'total'\\?\\)"
    ):
        env.from_string("{{ order.totl }}").render(order=RECORD)
    with pytest.raises(Exception, match="access to attribute '_path' of 'Fields' object is unsafe"):
        env.from_string("{{ order._path }}").render(order=RECORD)


def _lazy() -> tuple[LazyFields, list[int]]:
    made: list[int] = []

    def make() -> dict[str, str]:
        made.append(1)
        return {"unsubscribe": "https://x/u?t=signed", "unsubscribe_short": "x/u?t=signed"}

    record = LazyFields(
        "links", make, order="https://x/o", unsubscribe=PENDING, unsubscribe_short=PENDING
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
