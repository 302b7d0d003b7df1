"""Decisions: quiet hours across zones and DST, caps, consent, fallback, collapse, supersede."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from aftersale.decide.engine import PendingMessage, SendHistory, SentRecord, decide
from aftersale.decide.ruleset import RuleSet, load_ruleset, rule_files
from aftersale.models import (
    ChannelKind,
    Customer,
    DomainEvent,
    EventKind,
    Item,
    Order,
    ShipmentRef,
    ShipmentState,
    Status,
)
from carriers.registry import DIRECTORY

RULES = Path(__file__).resolve().parents[2] / "rules"
EMAIL, SMS = ChannelKind.EMAIL, ChannelKind.SMS


@pytest.fixture(scope="module")
def shipped() -> RuleSet:
    return load_ruleset(rule_files(RULES), carriers=DIRECTORY)


def inline(tmp_path: Path, text: str) -> RuleSet:
    rules = tmp_path / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "r.yaml").write_text(text)
    return load_ruleset([rules / "r.yaml"], carriers=DIRECTORY)


def make_order(tz: str = "Europe/Warsaw", **customer: object) -> Order:
    c = Customer("C-1", "Anna", "anna@example.com", "+48500100200", "en", tz, True, True, "PL")
    c = replace(c, **customer)  # type: ignore[arg-type]
    item = Item("NW-ANC-700", "ANC 700", "headphones", 1, Decimal("899"), "PLN", 24)
    placed = datetime(2026, 3, 2, 8, tzinfo=UTC)
    return Order("O-1", placed, c, (item,), (ShipmentRef("TN1", "inpost"),))


def ship(status: Status = Status.IN_TRANSIT) -> dict[str, ShipmentState]:
    return {"S-1": ShipmentState("S-1", "O-1", "inpost", "TN1", status)}


def status_event(status: Status, at: datetime) -> DomainEvent:
    return DomainEvent(EventKind.STATUS_CHANGED, "O-1", at, shipment_id="S-1", status=status)


def run(events, ruleset, now, order=None, history=None, shipments=None):
    order = order or make_order()
    history = history or SendHistory()
    return decide(events, {"O-1": order}, shipments or ship(), ruleset, now, history)


def sent(outcome) -> list[tuple[str, str, datetime]]:
    return [(d.rule_id, str(d.channel), d.due_at) for d in outcome.decisions]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- quiet hours --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tz", "event_at", "sms_due"),
    [
        # 06:30 in Warsaw (CET, +1): the SMS waits for 08:00 local = 07:00 UTC
        ("Europe/Warsaw", utc(2026, 3, 3, 5, 30), utc(2026, 3, 3, 7, 0)),
        # 20:59 local: inside the window, goes at once
        ("Europe/Warsaw", utc(2026, 3, 3, 19, 59), utc(2026, 3, 3, 19, 59)),
        # 21:00 local: quiet, waits until 08:00 next day
        ("Europe/Warsaw", utc(2026, 3, 3, 20, 0), utc(2026, 3, 4, 7, 0)),
        # the same instant is 15:00 in New York: no wait there
        ("America/New_York", utc(2026, 3, 3, 20, 0), utc(2026, 3, 3, 20, 0)),
        # 23:30 in New York (EST, -5) -> 08:00 EST = 13:00 UTC
        ("America/New_York", utc(2026, 3, 4, 4, 30), utc(2026, 3, 4, 13, 0)),
        # DST: night of 7-8 March in New York; 08:00 on the 8th is EDT (-4) = 12:00 UTC
        ("America/New_York", utc(2026, 3, 8, 4, 30), utc(2026, 3, 8, 12, 0)),
        # DST in Europe: night of 28-29 March; 08:00 CEST (+2) = 06:00 UTC
        ("Europe/Warsaw", utc(2026, 3, 28, 23, 30), utc(2026, 3, 29, 6, 0)),
        # autumn: 25 October 08:00 CET (+1) = 07:00 UTC
        ("Europe/Warsaw", utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 7, 0)),
    ],
)
def test_sms_quiet_hours_in_recipient_time_zone(shipped, tz, event_at, sms_due) -> None:
    out = run([status_event(Status.OUT_FOR_DELIVERY, event_at)], shipped, event_at,
              make_order(tz))  # fmt: skip
    assert sent(out) == [
        ("out_for_delivery", "email", event_at),
        ("out_for_delivery", "sms", sms_due),
    ]


def test_deferred_message_never_dropped_but_expires_by_before(shipped) -> None:
    at = utc(2026, 3, 3, 20, 30)  # 21:30 Warsaw; SMS waits 10.5 h, within `before: 12h`
    assert ("out_for_delivery", "sms", utc(2026, 3, 4, 7, 0)) in sent(
        run([status_event(Status.OUT_FOR_DELIVERY, at)], shipped, at)
    )
    late = run([status_event(Status.OUT_FOR_DELIVERY, at)], shipped, at + timedelta(hours=13))
    assert sent(late) == []
    assert all("too late" in s.reason for s in late.skipped)


def test_after_offset_then_window(tmp_path) -> None:
    rs = inline(
        tmp_path,
        """
rules:
  - id: tip
    on: order_placed
    template: setup_tip
    channels: [email]
    after: 2bd
    send_window: {email: "09:00-17:00"}
""",
    )
    friday_evening = utc(2026, 3, 6, 18, 0)  # 19:00 Warsaw, Friday
    ev = DomainEvent(EventKind.ORDER_PLACED, "O-1", friday_evening)
    # two business days later is Tuesday 19:00, outside the window -> Wednesday 09:00 (08:00 UTC)
    assert sent(run([ev], rs, friday_evening)) == [("tip", "email", utc(2026, 3, 11, 8, 0))]


def test_thank_you_after_ten_minutes(shipped) -> None:
    order = make_order()
    ev = DomainEvent(EventKind.ORDER_PLACED, "O-1", order.placed_at)
    assert sent(run([ev], shipped, order.placed_at)) == [
        ("thank_you", "email", order.placed_at + timedelta(minutes=10))
    ]


# --- consent and fallback ------------------------------------------------------------


def test_sms_without_consent_or_phone_falls_back_to_email(shipped) -> None:
    at = utc(2026, 3, 3, 10, 0)
    for customer in ({"consent_sms": False}, {"phone": None}):
        out = run([status_event(Status.OUT_FOR_DELIVERY, at)], shipped, at, make_order(**customer))
        assert sent(out) == [("out_for_delivery", "email", at)]
        [skip] = out.skipped
        assert skip.channel is SMS
        assert skip.reason in (
            "sms: no SMS consent; the email message of this rule covers it",
            "sms: no phone number; the email message of this rule covers it",
        )


def test_sms_only_rule_falls_back_to_email(tmp_path) -> None:
    rs = inline(
        tmp_path,
        """
rules:
  - id: ofd
    on: status_changed
    status: out_for_delivery
    template: out_for_delivery
    channels: [sms]
    fallback: {sms: email}
""",
    )
    at = utc(2026, 3, 3, 10, 0)
    out = run([status_event(Status.OUT_FOR_DELIVERY, at)], rs, at, make_order(consent_sms=False))
    assert [(d.channel, d.idempotency_key) for d in out.decisions] == [(EMAIL, "ofd|O-1/S-1|email")]
    assert out.skipped[0].reason == "sms: no SMS consent; fell back to email"


def test_marketing_needs_consent(shipped) -> None:
    ev = DomainEvent(EventKind.DELIVERED_AGO, "O-1", utc(2026, 3, 10, 12), shipment_id="S-1",
                     facts={"days": 14})  # fmt: skip
    ok = run([ev], shipped, ev.occurred_at, shipments=ship(Status.DELIVERED))
    assert sent(ok) == [("review_request", "email", ev.occurred_at)]
    assert ok.decisions[0].marketing
    no = run([ev], shipped, ev.occurred_at, make_order(consent_email=False),
             shipments=ship(Status.DELIVERED))  # fmt: skip
    assert sent(no) == []
    assert no.skipped[0].reason == "email: no marketing consent for email"


def test_condition_false_is_explained(shipped) -> None:
    order = make_order()
    order = replace(order, items=(replace(order.items[0], category="accessories"),))
    ev = DomainEvent(EventKind.DELIVERED_AGO, "O-1", utc(2026, 3, 6, 12), shipment_id="S-1",
                     facts={"days": 7})  # fmt: skip
    out = run([ev], shipped, ev.occurred_at, order)
    assert out.decisions == []
    assert out.skipped[0].reason == (
        "condition 'shipment.item_categories in [headphones, speakers, laptops, smartwatches, tv, "
        "vacuum, camera]' is false (shipment.item_categories = [accessories])"
    )


def test_no_rule_listens(shipped) -> None:
    at = utc(2026, 3, 3, 10, 0)
    out = run([status_event(Status.LABEL_CREATED, at)], shipped, at)
    assert [(s.rule_id, s.reason) for s in out.skipped] == [
        (None, "no rule listens to status_changed(label_created)")
    ]


# --- caps ------------------------------------------------------------------------------


def test_sms_cap_with_exception_and_fallback(shipped) -> None:
    at = utc(2026, 3, 3, 10, 0)
    history = SendHistory(recent={("C-1", SMS): (SentRecord(at - timedelta(hours=3), "shipped"),)})
    delay = DomainEvent(EventKind.DELAYED, "O-1", at, shipment_id="S-1", reason="exception")
    out = run([delay], shipped, at, history=history)
    assert sent(out) == [("delayed", "email", at)]
    assert out.skipped[0].reason.startswith("sms: cap hit: at most 1 sms per 24h (rules/policy")
    # out_for_delivery is exempt from the SMS cap
    ofd = run([status_event(Status.OUT_FOR_DELIVERY, at)], shipped, at, history=history)
    assert ("out_for_delivery", "sms", at) in sent(ofd)
    # a day later the cap no longer applies
    later = run([replace(delay, occurred_at=at + timedelta(hours=22))], shipped,
                at + timedelta(hours=22), history=history)  # fmt: skip
    assert ("delayed", "sms", at + timedelta(hours=22)) in sent(later)


def test_cap_counts_messages_decided_in_the_same_cycle(shipped) -> None:
    at = utc(2026, 3, 3, 10, 0)
    shipped_ev = DomainEvent(EventKind.SHIPPED, "O-1", at, shipment_id="S-1")
    other = DomainEvent(EventKind.DELAYED, "O-1", at, shipment_id="S-2", reason="stale")
    shipments = {**ship(), "S-2": ShipmentState("S-2", "O-1", "inpost", "TN2", Status.IN_TRANSIT)}
    out = run([shipped_ev, other], shipped, at, shipments=shipments)
    assert [d.channel for d in out.decisions if d.rule_id == "delayed"] == [EMAIL]


# --- once, collapse, supersede ----------------------------------------------------------


def test_already_sent_key(shipped) -> None:
    at = utc(2026, 3, 3, 10, 0)
    ev = status_event(Status.DELIVERED, at)
    first = run([ev], shipped, at)
    history = SendHistory(used_keys=frozenset(d.idempotency_key for d in first.decisions))
    again = run([ev], shipped, at, history=history)
    assert again.decisions == []
    assert again.skipped[0].reason == "already sent (key delivered|O-1/S-1|email)"


def test_collapse_keeps_the_newest_meaningful_message(shipped) -> None:
    at = utc(2026, 3, 3, 10, 0)
    events = [
        DomainEvent(EventKind.SHIPPED, "O-1", at - timedelta(hours=5), shipment_id="S-1"),
        status_event(Status.OUT_FOR_DELIVERY, at - timedelta(hours=1)),
        status_event(Status.DELIVERED, at),
    ]
    out = run(events, shipped, at, shipments=ship(Status.DELIVERED))
    assert sent(out) == [("delivered", "email", at)]
    assert sorted(s.rule_id for s in out.skipped) == ["out_for_delivery", "shipped"]
    assert all(s.reason.startswith("collapsed: 'delivered'") for s in out.skipped)


def test_delivered_cancels_pending_out_for_delivery(shipped) -> None:
    at = utc(2026, 3, 3, 6, 30)
    due = at + timedelta(hours=1)
    pending = (
        PendingMessage("out_for_delivery|O-1/S-1|sms", "out_for_delivery", "S-1", due),
        PendingMessage("out_for_delivery|O-2/S-9|sms", "out_for_delivery", "S-9", due),
        PendingMessage("thank_you|O-1|email", "thank_you", None, due),
    )
    history = SendHistory(used_keys=frozenset(p.idempotency_key for p in pending), pending=pending)
    out = run([status_event(Status.DELIVERED, at)], shipped, at, history=history)
    assert sent(out) == [("delivered", "email", at)]
    assert out.cancel_keys == ["out_for_delivery|O-1/S-1|sms"]


def test_superseded_once_newer_message_went_out(shipped) -> None:
    at = utc(2026, 3, 3, 10, 0)
    history = SendHistory(used_keys=frozenset({"delivered|O-1/S-1|email"}))
    ev = DomainEvent(EventKind.ARRIVING_TOMORROW, "O-1", at, shipment_id="S-1")
    out = run([ev], shipped, at, history=history)
    assert out.decisions == []
    assert out.skipped[0].reason == "superseded: 'delivered' was already decided for this shipment"


def test_recurring_due_event_superseded_in_the_same_cycle(shipped) -> None:
    at = utc(2026, 3, 4, 9, 0)
    events = [
        DomainEvent(EventKind.ARRIVING_TOMORROW, "O-1", at - timedelta(hours=9), shipment_id="S-1"),
        status_event(Status.OUT_FOR_DELIVERY, at),
    ]
    out = run(events, shipped, at)
    assert [d.rule_id for d in out.decisions] == ["out_for_delivery", "out_for_delivery"]
    assert out.skipped[0].reason == "superseded by 'out_for_delivery' in this cycle"


def test_one_incident_one_message(shipped) -> None:
    """Two delays of one parcel found in one cycle make one message, the best-informed;
    the key is the incident detection named, so a later delay of it sends nothing."""
    at = utc(2026, 3, 4, 9, 0)
    since = {"incident": "in_transit@2026-03-02T08:00:00+00:00"}
    stale = DomainEvent(
        EventKind.DELAYED, "O-1", at, shipment_id="S-1", reason="stale", facts=since
    )
    missed = replace(stale, reason="eta_missed", facts={"incident": "missed:2026-03-03"})
    out = run([stale, missed], shipped, at)
    keys = [d.idempotency_key for d in out.decisions if d.channel is EMAIL]
    assert keys == ["delayed|O-1/S-1/missed:2026-03-03|email"]
    assert any("one incident, one message" in s.reason for s in out.skipped)
    history = SendHistory(used_keys=frozenset(d.idempotency_key for d in out.decisions))
    again = run([replace(missed, occurred_at=at + timedelta(days=1))], shipped, at, history=history)
    assert again.decisions == []
    slipped = replace(stale, reason="eta_slipped", facts={"incident": "eta:2026-03-06"})
    later = run([slipped], shipped, at, history=history)
    assert [d.idempotency_key for d in later.decisions if d.channel is EMAIL] == [
        "delayed|O-1/S-1/eta:2026-03-06|email"  # a new date from the carrier is news
    ]
