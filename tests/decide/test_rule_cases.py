"""The example cases in rules/*.yaml: each must send what it says and nothing it forbids."""

from __future__ import annotations

from pathlib import Path

import pytest

from aftersale.decide.replay import run_cases
from aftersale.decide.ruleset import load_ruleset, rule_files
from carriers.registry import DIRECTORY
from flows.wiring import cycle_thresholds

RULES = Path(__file__).resolve().parents[2] / "rules"
FIXTURES = Path(__file__).parent / "rules_fixtures"
RULESET = load_ruleset(rule_files(RULES), carriers=DIRECTORY)
RESULTS = run_cases(RULESET, cycle_thresholds(RULESET))


@pytest.mark.parametrize("result", RESULTS, ids=[r.name for r in RESULTS])
def test_shipped_rule_case(result) -> None:
    assert result.ok, f"{result.source} case '{result.name}':\n" + "\n".join(result.failures)


def test_every_shipped_rule_has_a_case_that_sends_it() -> None:
    rs = load_ruleset(rule_files(RULES), carriers=DIRECTORY)
    expected = {ref.split(":")[0] for case in rs.cases for ref in case.model.should_send}
    assert expected == {r.id for r in rs.rules}


def test_a_failing_case_explains_why(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "r.yaml").write_text(
        (FIXTURES / "good_everything.yaml")
        .read_text()
        .replace(
            "should_send: [ofd:sms]", "should_send: [ofd:sms, tips]\n    should_not_send: [ofd]"
        )
    )
    ruleset = load_ruleset([rules / "r.yaml"], carriers=DIRECTORY)
    [result] = run_cases(ruleset, cycle_thresholds(ruleset))
    assert result.sent == ("ofd:email", "ofd:sms")
    assert result.failures == (
        "expected 'tips' to be sent: no event for it",
        "expected 'ofd' not to be sent, but ofd:email, ofd:sms was",
    )
