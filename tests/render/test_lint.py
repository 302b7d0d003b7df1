"""What check reads from a template's source: date patterns, escaping, dropped text."""

from __future__ import annotations

import pytest
from jinja2 import Environment

from aftersale.render.lint import lint_source, pattern_problem

HINT = " (Babel patterns: d day, M month, y year, H hour, m minute)"


@pytest.mark.parametrize(
    ("pattern", "kind", "expected"),
    [
        ("dd.MM.yyyy", "date", None),
        ("EEEE, d MMMM", "date", None),
        ("d 'of' MMMM", "date", None),
        ("HH:mm", "time", None),
        ("DD.MM.YYYY", "date",
         "'DD' is the day of the year (329); 'YYYY' is the week-based year (wrong around New "
         "Year); did you mean 'dd.MM.yyyy'?" + HINT),
        ("dd.mm.yyyy", "date",
         "'mm' is a time field, but |date shows a day; did you mean 'dd.MM.yyyy'?" + HINT),
        ("HH:MM", "time",
         "'MM' is a date field, but |time shows a time of day; did you mean 'HH:mm'?" + HINT),
        ("dd.jj", "date",
         "'j' is not a pattern letter and would be printed as it is; put words in single "
         "quotes (\"d 'of' MMMM\")"),
        ("ddd", "date", "'ddd' is not a valid field (use d or dd)"),
    ],
)  # fmt: skip
def test_date_patterns(pattern: str, kind: str, expected: str | None) -> None:
    assert pattern_problem(pattern, kind) == expected


def _lint(source: str) -> list[tuple[int | None, str]]:
    return [(f.line, f.message) for f in lint_source(Environment(), source, html=True)]


def test_safe_on_customer_data_through_a_loop_alias() -> None:
    source = "{% for line in items %}\n{{ line.name|safe }}\n{% endfor %}\n{{ shop.name|safe }}"
    assert _lint(source) == [
        (2, "|safe on 'line.name', which customers, orders or carriers provide: a name like "
            "'<script>' would become part of the email; remove |safe"),
    ]  # fmt: skip


def test_autoescape_off_around_customer_data() -> None:
    source = "{% autoescape false %}\n<p>{{ customer.name }}</p>\n{% endautoescape %}"
    assert _lint(source) == [
        (2, "'customer.name' is printed with autoescape off: customers, orders and carriers "
            "provide it, so it must stay escaped; remove {% autoescape false %}"),
    ]  # fmt: skip


def test_unclosed_tag_at_end_of_file() -> None:
    assert _lint("{% for x in items %}\n{{ x }}\n") == [
        (1, "syntax error: this {% for %} is never closed: add {% endfor %} where it should end")
    ]
