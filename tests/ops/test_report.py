"""The run report: name, markdown summary, message rows and alerts, from a CycleSummary."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aftersale.cycle import CycleSummary, DecideStage, DetectStage, PollStage
from aftersale.decide.engine import DecideOutcome, Skip, SkipWhy
from aftersale.dispatch.send import Outcome
from aftersale.models import (
    ChannelKind,
    Decision,
    DomainEvent,
    EventKind,
    PollResult,
    ShipmentState,
    Status,
    Tracking,
)
from aftersale.ops.alerts import ruleset_alert
from aftersale.ops.health import HealthUpdate, update_health
from aftersale.ops.report import build_report, message_rows, run_label, run_name

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
    decided: DecideOutcome | None = None,
) -> CycleSummary:
    polled = [shipment(i, r.carrier) for i, r in enumerate(results)]
    run = CycleSummary(NOW)
    run.add_page(
        PollStage(polled, results, list(breakers_open)),
        DetectStage(list(events), 0, []),
        DecideStage(len(outcomes), 0, decided or DecideOutcome([], [], []), list(events)),
    )
    run.dispatch.add(outcomes)
    run.health = update_health([], run.poll.observations(), NOW)
    return run


LABEL = run_label("cycle", NOW, "3f9a2c")


def test_a_run_has_one_name_from_its_start_and_adds_what_it_did() -> None:
    assert LABEL == "cycle 2026-11-22 10:15 · 3f9a2c"
    assert run_name(LABEL, 412, 37) == "cycle 2026-11-22 10:15 · 3f9a2c · 412 polled · 37 sent"


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
    report = build_report(summary(results, outcomes, events), label=LABEL)
    md = report.markdown
    assert report.name == "cycle 2026-11-22 10:15 · 3f9a2c · 4 polled · 2 sent"
    assert md.startswith(f"# {report.name}\n")
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
    assert report.alerts == [] and report.degraded == []  # 1 of 2 dhl polls: not most
    assert "**Degraded**" not in md


def test_rows_mask_addresses_a_provider_quoted_back() -> None:
    rows = message_rows(
        [outcome("m-9", "failed", reason="400: invalid To anna.kowalska@example.pl / +48601234567")]
    )
    assert "anna.kowalska" not in rows[0]["reason"] and "601234567" not in rows[0]["reason"]
    assert "a***@example.pl" in rows[0]["reason"]


def test_every_non_send_is_counted_per_rule_and_reason_and_held_messages_are_listed() -> None:
    placed = DomainEvent(EventKind.ORDER_PLACED, "O1", NOW)
    moving = DomainEvent(EventKind.STATUS_CHANGED, "O1", NOW, "S1", status=Status.IN_TRANSIT)
    skips = [
        Skip(moving, None, "no rule listens to status_changed(in_transit)", why=SkipWhy.NO_RULE),
        Skip(moving, None, "no rule listens to status_changed(in_transit)", why=SkipWhy.NO_RULE),
        Skip(placed, "thank_you", "sms: no SMS consent", ChannelKind.SMS, why=SkipWhy.CONSENT),
        Skip(placed, "thank_you", "already sent (key k)", ChannelKind.EMAIL, why=SkipWhy.ONCE_ONLY),
    ]
    later = Decision(
        "review", "review_request", ChannelKind.EMAIL, "O1", "review|O1|email",
        NOW + timedelta(days=3), placed, held="waits 3d after the event",
    )  # fmt: skip
    now = Decision("shipped", "shipped", ChannelKind.EMAIL, "O1", "shipped|O1|email", NOW, placed)
    run = summary([], [], decided=DecideOutcome([later, now], skips, []))
    md = build_report(run, label=LABEL).markdown
    assert "| (no rule) status_changed(in_transit) | no rule listens | 2 |" in md
    assert "| thank_you | no consent | 1 | sms: no SMS consent |" in md
    assert "| thank_you | already sent (once only) | 1 | already sent (key k) |" in md
    assert "## Queued for later" in md
    assert "| review | email | O1 | 2026-11-25 10:15 | waits 3d after the event |" in md
    assert "shipped | email | O1 | 2026-11-22 10:15" not in md  # goes out now
    assert run.as_dict()["skipped_by_reason"] == {
        "no rule listens": 2,
        "no consent": 1,
        "already sent (once only)": 1,
    }
    assert run.as_dict()["queued_for_later"] == 1


def test_a_carrier_failing_on_most_shipments_degrades_the_run_and_alerts() -> None:
    results = [
        PollResult("S1", "dhl", None, "dhl T1: HTTP 503 (after 3 attempts)"),
        PollResult("S2", "dhl", None, "dhl: circuit open after repeated failures; not polled"),
        found(3, "dhl"),
        PollResult("S4", "ups", None, "ups T4: HTTP 401: credentials refused"),
    ]
    outcomes = [outcome("m-2", "unknown", reason="left in sending by a crashed run")]
    report = build_report(
        summary(results, outcomes, breakers_open=["dhl"]), label=LABEL, unknown_total=3
    )
    by_event: dict[str, list[str]] = {}
    for a in report.alerts:
        by_event.setdefault(a.event, []).append(a.resource_id)
    assert by_event == {
        "aftersale.carrier.down": ["aftersale.carrier.dhl", "aftersale.carrier.ups"],
        "aftersale.messages.unknown": ["aftersale.messages"],
    }
    ups = next(a for a in report.alerts if a.resource_id == "aftersale.carrier.ups")
    assert "refuses our credentials" in ups.message
    assert [line.split(" since")[0] for line in report.degraded] == [
        "carrier dhl down",
        "carrier ups down",
    ]
    assert "**Degraded**:" in report.markdown
    assert "| dhl | 3 | 2 | 0 | 0 | **open** |" in report.markdown
    assert "| carrier | dhl | **failing** |" in report.health
    assert [r["message"] for r in report.failed] == ["m-2"]


def test_ruleset_alert_lists_the_first_problems() -> None:
    alert = ruleset_alert([f"rules/a.yaml:{i}:1 bad" for i in range(1, 6)])
    assert alert.event == "aftersale.ruleset.invalid"
    assert alert.message.endswith("rules/a.yaml:3:1 bad (+2 more)")
    assert len(alert.payload["problems"]) == 5


def test_an_empty_health_says_everything_answered() -> None:
    run = summary([], [])
    run.health = HealthUpdate()
    report = build_report(run, label=LABEL)
    assert "Every carrier and channel answered in its last run." in report.health
    assert "No shipment was due for a check." in report.markdown
