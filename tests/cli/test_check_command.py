"""`aftersale check` as a marketer runs it: every problem on one line, exit 1 on any."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aftersale.cli.app import app
from aftersale.settings import PROJECT_ROOT


def run_check(monkeypatch: pytest.MonkeyPatch, rules: Path) -> tuple[int, str]:
    monkeypatch.setenv("AFTERSALE_RULES", str(rules))
    result = CliRunner().invoke(app, ["check"])
    return result.exit_code, result.stderr + result.stdout


def test_shipped_rules_and_templates_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    assert run_check(monkeypatch, PROJECT_ROOT / "rules") == (
        0,
        "catalogue, rules and templates OK\n",
    )


def test_a_rule_whose_kind_contradicts_its_template_is_reported(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(PROJECT_ROOT / "rules", rules)
    path = rules / "aftercare.yaml"
    path.write_text(path.read_text().replace("    kind: marketing\n    once:", "    once:", 1))
    code, output = run_check(monkeypatch, rules)
    assert code == 1
    assert output.splitlines()[0] == (
        "rules/aftercare.yaml:7 rule 'setup_tip': template 'setup_tip' (email) is marketing but "
        "the rule is transactional: set `kind: marketing` on the rule, or change the template's "
        "'{# kind: marketing #}' marker"
    )


def test_rule_errors_come_with_file_line_and_a_suggestion(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(PROJECT_ROOT / "rules", rules)
    path = rules / "shipping.yaml"
    path.write_text(path.read_text().replace("template: shipped", "template: shiped", 1))
    code, output = run_check(monkeypatch, rules)
    assert code == 1
    assert (
        "rules/shipping.yaml:" in output
        and "'shiped'" in output
        and "did you mean 'shipped'" in output
    )


def test_a_rules_file_case_that_no_longer_holds_is_reported(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(PROJECT_ROOT / "rules", rules)
    path = rules / "aftercare.yaml"
    path.write_text(
        path.read_text().replace(
            "should_send: [setup_tip:email]", "should_send: [setup_tip:sms]", 1
        )
    )
    code, output = run_check(monkeypatch, rules)
    assert code == 1
    [problem] = [line for line in output.splitlines() if "case '" in line]
    assert problem.startswith("rules/aftercare.yaml:")
    assert "expected 'setup_tip:sms'" in problem
