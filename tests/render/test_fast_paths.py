"""Rendering's shortcuts answer exactly as the Jinja and markupsafe code they stand in for:
output escaping, and reading a context record's field."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from jinja2 import DictLoader, StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup, escape

from aftersale.render.context import Fields
from aftersale.render.sandbox import Sandbox, StrictFieldsUndefined, _escape_output

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
