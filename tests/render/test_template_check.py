"""`check_templates`: the exact line a marketer reads for each kind of problem.

Each folder under template_fixtures/ is a small, deliberately broken templates folder.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from aftersale.models import ChannelKind
from aftersale.render.check import check_templates
from aftersale.render.library import TemplateLibrary
from aftersale.settings import PROJECT_ROOT, Shop
from carriers.registry import DIRECTORY

FIXTURES = Path(__file__).parent / "template_fixtures"
ALL_SAMPLES = "[sample: typical (shipped) and 5 more]"


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
                "syntax/email/shipped/en.j2:5: syntax error: Encountered unknown tag 'endblock'. "
                "You probably made a nesting mistake. Jinja is expecting this tag, but currently "
                "looking for 'elif' or 'else' or 'endif'. The innermost block that needs to be "
                "closed is 'if'.",
                "syntax/sms/shipped/en.j2:1: syntax error: unexpected '}'",
            ],
        ),
        (
            "undefined",
            [
                "undefined/email/shipped/en.j2:3: 'customer' has no field 'nmae' "
                f"(did you mean 'name'?) {ALL_SAMPLES}",
                f"undefined/sms/shipped/en.j2:1: 'ordr' is undefined (did you mean 'order'?) "
                f"{ALL_SAMPLES}",
            ],
        ),
        (
            "sandbox",
            [
                "sandbox/sms/shipped/en.j2:2: not allowed in templates (sandbox): access to "
                f"attribute '__class__' of 'Fields' object is unsafe. {ALL_SAMPLES}",
            ],
        ),
        (
            "sms_long",
            [
                "sms_long/sms/shipped/en.j2: SMS too long: 3 segments (321 characters, GSM-7), "
                "the maximum is 1 [sample: long_everything (shipped)]",
            ],
        ),
        (
            "unsubscribe",
            [
                "unsubscribe/email/review_request/en.j2: marketing email without an unsubscribe "
                'link: add <a href="{{ links.unsubscribe }}">…</a> (e.g. in {% block footer %}) '
                "[sample: typical (delivered days ago) and 5 more]",
                "unsubscribe/sms/review_request/en.j2: marketing SMS without a way to opt out: "
                "add '{{ links.unsubscribe_short }}' or a 'reply STOP' line "
                "[sample: typical (delivered days ago) and 5 more]",
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
            [f"subject/email/shipped/en.j2: no {{% block subject %}}: every email needs one "
             f"{ALL_SAMPLES}"],
        ),
        (
            "runtime",
            [f"runtime/email/shipped/en.j2:4: uses 'email/_missing.j2', which does not exist "
             f"under runtime/ {ALL_SAMPLES}"],
        ),
    ],
)  # fmt: skip
def test_each_problem_kind_reads_exactly(case: str, expected: list[str]) -> None:
    assert _check(case) == expected


def test_templates_named_by_rules_must_exist() -> None:
    problems = _check(
        "missing_locale",
        template_names=[("shipped", ChannelKind.SMS), ("shiped", ChannelKind.EMAIL)],
    )
    assert problems == [
        "missing_locale/email/shiped/en.j2: missing: a rule sends 'shiped' by email, but there "
        "is no such template (did you mean 'shipped'?)",
        "missing_locale/sms/shipped/pl.j2: missing: no Polish (pl) variant; Polish-speaking "
        "customers would get the 'en' version",
    ]


def test_sms_maximum_is_configurable() -> None:
    assert _check("sms_long", max_sms_segments=3) == []
    assert _check("sms_long", max_sms_segments=2) == [
        "sms_long/sms/shipped/en.j2: SMS too long: 3 segments (321 characters, GSM-7), "
        "the maximum is 2 [sample: long_everything (shipped)]",
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
        "of '📦' '—'), the maximum is 1 [sample: long_everything (shipped)]",
    ]


def test_every_problem_of_every_file_is_reported_at_once() -> None:
    every = [line for case in ("syntax", "undefined", "sandbox") for line in _check(case)]
    assert len(every) == 5
