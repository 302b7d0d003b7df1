"""A render's budget: loop steps and calls, time, and output size, each reported at the
template's line; a variant that overran fails at once afterwards."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from aftersale.errors import TemplateError
from aftersale.models import ChannelKind
from aftersale.render.library import TemplateLibrary
from aftersale.render.sandbox import RenderBudget
from aftersale.settings import Shop
from carriers.registry import DIRECTORY

CONTEXT = {"customer": {"locale": "en", "time_zone": "UTC"}, "n": 3}


def _library(tmp_path: Path, body: str, budget: RenderBudget) -> TemplateLibrary:
    path = tmp_path / "templates" / "sms" / "note" / "en.j2"
    path.parent.mkdir(parents=True)
    path.write_text(body, encoding="utf-8")
    return TemplateLibrary.load(tmp_path / "templates", Shop(), None, DIRECTORY, budget)


def test_steps_budget_stops_a_runaway_macro_at_its_line(tmp_path: Path) -> None:
    library = _library(
        tmp_path,
        "{% macro tick(n) %}{% for i in range(n) %}.{% endfor %}{% endmacro %}\n"
        "{% for a in range(9999) %}{{ tick(50) }}{% endfor %}\n",
        RenderBudget(steps=1000),
    )
    with pytest.raises(TemplateError) as caught:
        library.render("note", ChannelKind.SMS, CONTEXT, "+48")
    assert str(caught.value) == (
        "templates/sms/note/en.j2:1: more than 1,000 loop steps and calls (the budget per "
        "message): a loop or macro repeats too often"
    )


def test_time_budget_and_then_failing_fast(tmp_path: Path) -> None:
    library = _library(
        tmp_path,
        "Hi\n{% for a in range(99999) %}{% for b in range(99999) %}{% endfor %}{% endfor %}\n",
        RenderBudget(seconds=0.1, steps=10**12),
    )
    expected = (
        "templates/sms/note/en.j2:2: rendering takes longer than 0.1 s (the budget per "
        "message): a loop or macro repeats too often"
    )
    for _ in range(2):
        with pytest.raises(TemplateError) as caught:
            library.render("note", ChannelKind.SMS, CONTEXT, "+48")
        assert str(caught.value) == expected
    started = time.thread_time()
    with pytest.raises(TemplateError):
        library.render("note", ChannelKind.SMS, CONTEXT, "+48")
    assert time.thread_time() - started < 0.05


def test_output_budget(tmp_path: Path) -> None:
    library = _library(
        tmp_path, "{% for a in range(500) %}{{ 'x' * 99 }}{% endfor %}", RenderBudget()
    )
    assert library.render("note", ChannelKind.SMS, CONTEXT, "+48").text.startswith("xxx")
    small = _library(tmp_path / "small", "{% for a in range(500) %}{{ 'x' * 99 }}{% endfor %}",
                     RenderBudget(output_chars=10_000))  # fmt: skip
    with pytest.raises(TemplateError) as caught:
        small.render("note", ChannelKind.SMS, CONTEXT, "+48")
    assert str(caught.value) == (
        "templates/sms/note/en.j2: the message is 49,500 characters long, beyond the budget of "
        "10,000 per message"
    )


def test_loops_keep_length_and_else(tmp_path: Path) -> None:
    library = _library(
        tmp_path,
        "{% for x in [1, 2] %}{{ loop.index }}/{{ loop.length }}{% if loop.last %}!{% endif %} "
        "{% endfor %}{% for y in [] %}{{ y }}{% else %}none{% endfor %}",
        RenderBudget(),
    )
    assert library.render("note", ChannelKind.SMS, CONTEXT, "+48").text == "1/2 2/2! none"
