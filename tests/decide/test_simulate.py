"""`simulate`: the example scenario sends every message type and explains every non-send."""

from __future__ import annotations

from pathlib import Path

import pytest

from aftersale.decide.ruleset import KNOWN_TEMPLATES, load_ruleset, rule_files
from aftersale.decide.simulate import ScenarioError, format_simulation, simulate
from carriers.registry import DIRECTORY
from flows.wiring import cycle_thresholds

ROOT = Path(__file__).resolve().parents[2]
RULESET = load_ruleset(rule_files(ROOT / "rules"), carriers=DIRECTORY)
THRESHOLDS = cycle_thresholds(RULESET)


@pytest.fixture(scope="module")
def lines():
    return simulate(ROOT / "examples" / "scenario.yaml", RULESET, thresholds=THRESHOLDS)


def find(lines, order_id, kind, rule=None, channel=None):
    return [x for x in lines if x.order_id == order_id and x.kind == kind
            and (rule is None or x.rule_id == rule)
            and (channel is None or x.channel == channel)]  # fmt: skip


def test_every_message_type_is_sent(lines) -> None:
    assert {x.template for x in lines if x.kind == "send"} == set(KNOWN_TEMPLATES)


def test_every_non_send_has_a_reason(lines) -> None:
    skips = [x for x in lines if x.kind == "skip"]
    assert skips and all(x.reason for x in skips)


def test_quiet_hours_defer_the_evening_sms_in_new_york(lines) -> None:
    [sms] = find(lines, "NW-1002", "send", "shipped", "sms")
    [email] = find(lines, "NW-1002", "send", "shipped", "email")
    assert email.at.isoformat() == "2026-03-03T03:30:00+00:00"  # 22:30 in New York
    assert sms.at.isoformat() == "2026-03-03T13:00:00+00:00" and sms.local == "Tue 08:00"


def test_late_out_for_delivery_scan_is_explained(lines) -> None:
    skips = find(lines, "NW-1004", "skip", "out_for_delivery")
    assert skips and all("too late" in x.reason for x in skips)
    assert not find(lines, "NW-1004", "send", "out_for_delivery")


def test_consent_and_conditions_are_explained(lines) -> None:
    [tip] = find(lines, "NW-1006", "skip", "setup_tip")
    assert tip.reason.startswith("condition 'shipment.item_categories in")
    [review] = find(lines, "NW-1006", "skip", "review_request")
    assert review.reason == "email: no marketing consent for email"
    assert find(lines, "NW-1005", "send", "delayed", "email")[0].event == "delayed(no_first_scan)"
    assert find(lines, "NW-1004", "send", "warranty_expiry")


def test_format(lines) -> None:
    text = format_simulation(lines)
    assert "order NW-1001" in text
    assert "SEND    thank_you" in text
    assert "NO SEND review_request" in text
    sends = sum(1 for x in lines if x.kind == "send")
    assert text.splitlines()[-1].startswith(f"{sends} messages would be sent;")


def test_bad_scenario_names_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        "start: 2026-03-02T06:00:00Z\nend: 2026-03-03T06:00:00Z\norders:\n"
        "  - order_id: A\n    placed_at: soon\n    customer: {customer_id: C}\n    items: []\n"
    )
    with pytest.raises(ScenarioError) as info:
        simulate(path, RULESET, thresholds=THRESHOLDS)
    assert info.value.problems[0].startswith(f"{path}:5:16 orders.0.placed_at: Input should be")


def test_a_declined_return_is_told_and_nothing_else_of_it(lines) -> None:
    assert find(lines, "NW-1010", "send", "return_requested", "email")
    [declined] = find(lines, "NW-1010", "send", "return_declined", "email")
    assert declined.event == "return_declined"
    for rule in ("return_in_transit", "return_received", "refund_issued"):
        assert not find(lines, "NW-1010", "send", rule)
