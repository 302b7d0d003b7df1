"""`check_templates`: the exact line a marketer reads for each kind of problem.

Each folder under template_fixtures/ is a small, deliberately broken templates folder.
Without rules, each template is rendered once with every record present; a problem that
shows only with some data names that case in parentheses.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from aftersale.render.check import check_templates
from aftersale.render.library import TemplateLibrary
from aftersale.settings import PROJECT_ROOT, Shop
from carriers.registry import DIRECTORY

FIXTURES = Path(__file__).parent / "template_fixtures"
LONG = "(with long names, product names and addresses)"


def _check(case: str, **kwargs: object) -> list[str]:
    return check_templates(TemplateLibrary.load(FIXTURES / case, Shop(), None, DIRECTORY), **kwargs)  # type: ignore[arg-type]


def test_shipped_templates_have_no_problems() -> None:
    library = TemplateLibrary.load(
        PROJECT_ROOT / "templates", Shop(), PROJECT_ROOT / "catalogue" / "products.yaml", DIRECTORY
    )
    assert check_templates(library) == []


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        (
            "syntax",
            [
                "syntax/email/shipped/en.j2:3: syntax error: this {% if %} is never closed: add "
                "{% endif %} before the {% endblock %} on line 5",
                "syntax/sms/shipped/en.j2:1: syntax error: unexpected '}'",
            ],
        ),
        (
            "undefined",
            [
                "undefined/email/shipped/en.j2:3: 'customer' has no field 'nmae' "
                "(did you mean 'name'?)",
                "undefined/sms/shipped/en.j2:1: 'ordr' is undefined (did you mean 'order'?)",
            ],
        ),
        (
            "sandbox",
            [
                "sandbox/sms/shipped/en.j2:2: not allowed in templates (sandbox): access to "
                "attribute '__class__' of 'Fields' object is unsafe.",
            ],
        ),
        (
            "sms_long",
            [
                "sms_long/sms/shipped/en.j2: SMS too long: 3 segments (309 characters, GSM-7), "
                f"the maximum is 1 {LONG}",
            ],
        ),
        (
            "unsubscribe",
            [
                "unsubscribe/email/review_request/en.j2: marketing email without an unsubscribe "
                'link: add <a href="{{ links.unsubscribe }}">…</a> (e.g. in {% block footer %})',
                "unsubscribe/sms/review_request/en.j2: marketing SMS without a way to opt out: "
                "add '{{ links.unsubscribe_short }}' or a 'reply STOP' line",
            ],
        ),
        (
            "missing_locale",
            [
                "missing_locale/sms/delivered/en.j2: missing: the shop's default locale 'en' is "
                "the fallback for every customer, every template needs it",
                "missing_locale/sms/shipped/pl.j2: missing: no Polish (pl) variant; "
                "Polish-speaking customers would get the 'en' version",
            ],
        ),
        (
            "subject",
            ["subject/email/shipped/en.j2: no {% block subject %}: every email needs one"],
        ),
        (
            "runtime",
            ["runtime/email/shipped/en.j2:4: uses 'email/_missing.j2', which does not exist "
             "under runtime/"],
        ),
    ],
)  # fmt: skip
def test_each_problem_kind_reads_exactly(case: str, expected: list[str]) -> None:
    assert _check(case) == expected


def test_sms_maximum_is_configurable() -> None:
    assert _check("sms_long", max_sms_segments=3) == []
    assert _check("sms_long", max_sms_segments=2) == [
        "sms_long/sms/shipped/en.j2: SMS too long: 3 segments (309 characters, GSM-7), "
        f"the maximum is 2 {LONG}",
    ]


def test_ucs2_sms_names_the_characters(tmp_path: Path) -> None:
    path = tmp_path / "templates" / "sms" / "shipped" / "en.j2"
    path.parent.mkdir(parents=True)
    path.write_text("Hi {{ customer.name }}, order {{ order.number }} is on its way 📦 — enjoy!")
    problems = check_templates(
        TemplateLibrary.load(tmp_path / "templates", Shop(), None, DIRECTORY)
    )
    assert problems == [
        "templates/sms/shipped/en.j2: SMS too long: 2 segments (106 characters, UCS-2 because "
        f"of '📦' '—'), the maximum is 1 {LONG}",
    ]


def test_every_problem_of_every_file_is_reported_at_once() -> None:
    every = [line for case in ("syntax", "undefined", "sandbox") for line in _check(case)]
    assert len(every) == 5
