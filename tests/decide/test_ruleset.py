"""Rule validation: good fixtures load, bad ones give the exact text a marketer reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from aftersale.decide.ruleset import KNOWN_TEMPLATES, check_rules, load_ruleset, rule_files
from aftersale.errors import RuleSetError
from aftersale.models import ChannelKind, EventKind
from carriers.registry import DIRECTORY

FIXTURES = Path(__file__).parent / "rules_fixtures"
RULES = Path(__file__).resolve().parents[2] / "rules"
BAD = sorted(FIXTURES.glob("bad_*.yaml"))


def problems_of(*paths: Path, **kw) -> list[str]:
    with pytest.raises(RuleSetError) as info:
        load_ruleset(list(paths), carriers=DIRECTORY, **kw)
    return info.value.problems


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_fixture_reports_exact_text(path: Path) -> None:
    expected = path.with_suffix(".expected").read_text(encoding="utf-8").splitlines()
    assert problems_of(path) == expected


def test_every_problem_of_every_file_at_once() -> None:
    expected = [
        line
        for path in BAD
        for line in path.with_suffix(".expected").read_text(encoding="utf-8").splitlines()
    ]
    good = FIXTURES / "good_minimal.yaml"
    assert problems_of(good, *BAD) == expected


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("good_*.yaml")), ids=lambda p: p.stem)
def test_good_fixtures_load(path: Path) -> None:
    assert load_ruleset([path], carriers=DIRECTORY).rules


def test_good_everything_compiles_each_feature() -> None:
    rs = load_ruleset([FIXTURES / "good_everything.yaml"], carriers=DIRECTORY)
    ofd, late, tips = rs.rules
    assert ofd.fallback == {ChannelKind.SMS: ChannelKind.EMAIL}
    assert str(ofd.before) == "12h" and ofd.priority == 80 and ofd.supersedes == ("late",)
    assert [c.text for c in ofd.conditions] == [
        "shipment.carrier in [inpost, dpd]",
        "order.total >= 100",
        "customer.tags != vip",
    ]
    assert str(ofd.windows[ChannelKind.SMS]) == "08:00-21:00"  # quiet hours inverted
    assert str(late.windows[ChannelKind.SMS]) == "09:00-18:00"  # the rule's own window wins
    assert str(late.after) == "2bd" and late.once == "reason"
    assert tips.marketing and tips.days == 3
    assert rs.caps[0].exempt == frozenset({"ofd"})
    assert rs.superseded_by["late"] == (ofd,)
    assert [c.name for c in rs.cases] == ["out for delivery"]


def test_duplicate_ids_across_files(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    text = (
        "rules:\n  - id: a\n    on: order_placed\n    template: thank_you\n    channels: [email]\n"
    )
    (rules / "one.yaml").write_text(text)
    (rules / "two.yaml").write_text("\n" + text)
    assert check_rules(rules, carriers=DIRECTORY) == [
        "rules/two.yaml:3:9 rule 'a': duplicate rule id (first defined at rules/one.yaml:2)"
    ]


def test_defaults_only_once(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "a.yaml").write_text("defaults:\n  quiet_hours: {sms: '21:00-08:00'}\n")
    (rules / "b.yaml").write_text("defaults:\n  quiet_hours: {sms: '22:00-07:00'}\n")
    assert check_rules(rules, carriers=DIRECTORY) == [
        "rules/b.yaml:2:3 defaults: defined again (first in rules/a.yaml:2:3); keep one "
        "defaults section"
    ]


def test_unknown_template_with_template_exists() -> None:
    def exists(name: str, channel: ChannelKind) -> bool:
        return name in KNOWN_TEMPLATES and not (name == "delivered" and channel == "sms")

    path = FIXTURES / "good_minimal.yaml"
    assert load_ruleset([path], carriers=DIRECTORY, template_exists=exists).rules
    problems = problems_of(path, template_exists=lambda n, c: n == "shipped")
    assert problems == [
        "rules_fixtures/good_minimal.yaml:4:15 rule 'hello': unknown template 'thank_you'"
    ]


def test_template_missing_for_one_channel(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "r.yaml").write_text(
        "rules:\n  - id: d\n    on: shipped\n    template: shiped\n    channels: [email, sms]\n"
        "  - id: e\n    on: shipped\n    template: delivered\n    channels: [email, sms]\n"
    )

    def exists(name: str, channel: ChannelKind) -> bool:
        return name in KNOWN_TEMPLATES and not (name == "delivered" and channel == "sms")

    assert check_rules(rules, carriers=DIRECTORY, template_exists=exists) == [
        "rules/r.yaml:4:15 rule 'd': unknown template 'shiped' (did you mean 'shipped'?)",
        "rules/r.yaml:8:15 rule 'e': template 'delivered' has no sms version",
    ]


def test_shipped_rule_set_is_valid_and_complete() -> None:
    rs = load_ruleset(
        rule_files(RULES), carriers=DIRECTORY, template_exists=lambda n, c: n in KNOWN_TEMPLATES
    )
    assert sorted(r.template for r in rs.rules) == sorted(KNOWN_TEMPLATES)
    sms = {r.id for r in rs.rules if ChannelKind.SMS in r.channels}
    assert sms == {
        "shipped",
        "out_for_delivery",
        "delivery_attempted",
        "available_for_pickup",
        "pickup_reminder",
        "delayed",
        "fulfilment_delayed",
        "return_received",
        "refund_issued",
        "undeliverable",
        "returned_to_sender",
    }
    assert all(r.fallback == {ChannelKind.SMS: ChannelKind.EMAIL} for r in rs.rules if r.id in sms)
    assert all(ChannelKind.EMAIL in r.channels for r in rs.rules)
    assert {r.id for r in rs.rules if r.marketing} == {
        "setup_tip",
        "review_request",
        "warranty_expiry",
    }
    assert str(rs.by_id["thank_you"].after) == "10m"
    assert str(rs.by_id["delayed"].windows[ChannelKind.SMS]) == "08:00-21:00"
    assert rs.by_event[EventKind.DELIVERED_AGO]
    assert rs.cases
