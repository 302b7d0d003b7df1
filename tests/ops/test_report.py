"""The run report: name, markdown summary, message rows and alerts, from a CycleSummary."""

from __future__ import annotations

from datetime import UTC, datetime

from aftersale.cycle import CycleSummary, DecideStage, DetectStage, PollStage
from aftersale.decide.engine import DecideOutcome
from aftersale.dispatch.send import DispatchReport, Outcome
from aftersale.models import DomainEvent, EventKind, PollResult, ShipmentState, Status, Tracking
from aftersale.ops.report import build_report, message_rows, ruleset_alert, run_name

NOW = datetime(2026, 11, 22, 10, 15, tzinfo=UTC)


def shipment(n: int, carrier: str) -> ShipmentState:
    return ShipmentState(f"S{n}", f"O{n}", carrier, f"T{n}", Status.IN_TRANSIT)


def found(n: int, carrier: str) -> PollResult:
    return PollResult(f"S{n}", carrier, Tracking(carrier, f"T{n}", Status.IN_TRANSIT))


def outcome(
    mid: str, outcome: str, *, rule: str = "shipped", channel: str = "email", **kw: str
) -> Outcome:
    return Outcome(
        mid, rule, rule, channel, "O1", outcome, kw.pop("recipient", "a***@example.pl"), **kw
    )


def summary(
    results: list[PollResult],
    outcomes: list[Outcome],
    events: list[DomainEvent] = (),  # type: ignore[assignment]
    breakers_open: list[str] = (),  # type: ignore[assignment]
) -> CycleSummary:
    polled = [shipment(i, r.carrier) for i, r in enumerate(results)]
    return CycleSummary(
        NOW,
        [],
        PollStage(polled, results, list(breakers_open)),
        DetectStage(list(events), 0, []),
        DecideStage(len(outcomes), 0, DecideOutcome([], [], [])),
        DispatchReport(outcomes),
    )


def test_run_name_reads_like_the_issue_example() -> None:
    assert run_name("cycle", NOW, 412, 37) == "cycle 2026-11-22 10:15 · 412 polled · 37 sent"


def test_report_counts_carriers_events_and_messages_by_rule_channel_outcome() -> None:
    results = [
        found(1, "inpost"),
        found(2, "inpost"),
        found(3, "dhl"),
        PollResult("S4", "dhl", None, "dhl T4: HTTP 503"),
    ]
    events = [
        DomainEvent(EventKind.STATUS_CHANGED, "O1", NOW, "S1", status=Status.OUT_FOR_DELIVERY),
        DomainEvent(EventKind.STATUS_CHANGED, "O2", NOW, "S2", status=Status.OUT_FOR_DELIVERY),
        DomainEvent(EventKind.DELAYED, "O3", NOW, "S3", reason="eta_slipped"),
    ]
    outcomes = [
        outcome("m-1", "sent", provider="outbox", provider_id="p1"),
        outcome("m-2", "sent", channel="sms", recipient="+48******567"),
        outcome(
            "m-3",
            "failed",
            rule="delay",
            reason="templates/email/delay/en.j2:3: 'ordr' is undefined",
        ),
        outcome("m-4", "deferred", rule="delay", channel="sms", reason="http_429: rate limited"),
    ]
    report = build_report(summary(results, outcomes, events))
    md = report.markdown
    assert report.name == "cycle 2026-11-22 10:15 · 4 polled · 2 sent"
    assert "| dhl | 2 | 1 | 0 | 0 | closed |" in md
    assert "| inpost | 2 | 0 | 0 | 0 | closed |" in md
    assert "| dhl | 1 | HTTP 503 |" in md  # carrier errors grouped without the number
    assert "| out_for_delivery | 2 |" in md
    assert "| eta_slipped | 1 |" in md
    assert "| rule | channel | failed | deferred | sent |" in md
    assert "| delay | email | 1 |  |  |" in md
    assert "| shipped | sms |  |  | 1 |" in md
    assert "2 sent, 1 deferred, 1 failed" in md
    assert (
        "| m-3 | failed | delay | email | O1 | a***@example.pl "
        "| templates/email/delay/en.j2:3: 'ordr' is undefined |" in md
    )
    assert [r["message"] for r in report.messages] == ["m-3", "m-4", "m-1", "m-2"]
    assert [r["message"] for r in report.failed] == ["m-3"]
    assert report.alerts == []


def test_rows_mask_addresses_a_provider_quoted_back() -> None:
    rows = message_rows(
        [outcome("m-9", "failed", reason="400: invalid To anna.kowalska@example.pl / +48601234567")]
    )
    assert "anna.kowalska" not in rows[0]["reason"] and "601234567" not in rows[0]["reason"]
    assert "a***@example.pl" in rows[0]["reason"]


def test_alerts_for_breaker_auth_and_unknown() -> None:
    results = [
        PollResult("S1", "dhl", None, "dhl T1: circuit breaker open after 5 failures"),
        PollResult("S2", "ups", None, "ups T2: HTTP 401: credentials refused"),
    ]
    outcomes = [
        outcome(
            "m-1",
            "deferred",
            provider="sendgrid",
            reason="http_401: SendGrid refused the API key: bad",
        ),
        outcome("m-2", "unknown", reason="left in sending by a crashed run"),
    ]
    report = build_report(summary(results, outcomes, breakers_open=["dhl"]), unknown_total=3)
    by_event = {a.event: a for a in report.alerts}
    assert set(by_event) == {
        "aftersale.carrier.breaker-open",
        "aftersale.carrier.auth-failed",
        "aftersale.provider.auth-failed",
        "aftersale.messages.unknown",
    }
    assert by_event["aftersale.carrier.breaker-open"].resource_id == "aftersale.carrier.dhl"
    assert by_event["aftersale.carrier.auth-failed"].resource_id == "aftersale.carrier.ups"
    assert by_event["aftersale.provider.auth-failed"].payload == {
        "provider": "sendgrid",
        "messages": 1,
    }
    assert by_event["aftersale.messages.unknown"].payload == {"unknown": 3, "new": 1}
    assert "| dhl | 1 | 1 | 0 | 0 | **open** |" in report.markdown
    assert [r["message"] for r in report.failed] == ["m-2"]


def test_explicit_open_breakers_win_over_error_text() -> None:
    report = build_report(summary([found(1, "dpd")], []), open_breakers=["dpd"])
    assert [a.resource_id for a in report.alerts] == ["aftersale.carrier.dpd"]
    assert "No message was due." in report.markdown


def test_ruleset_alert_lists_the_first_problems() -> None:
    alert = ruleset_alert([f"rules/a.yaml:{i}:1 bad" for i in range(1, 6)])
    assert alert.event == "aftersale.ruleset.invalid"
    assert alert.message.endswith("rules/a.yaml:3:1 bad (+2 more)")
    assert len(alert.payload["problems"]) == 5
