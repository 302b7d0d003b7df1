"""Dispatch: claim before send, record after, never twice; one bad message never blocks the rest."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from aftersale.dispatch import messages as msgs
from aftersale.dispatch.channels.base import InDoubt
from aftersale.dispatch.channels.outbox import OutboxChannel
from aftersale.dispatch.send import DispatchReport, dispatch_due
from aftersale.dispatch.suppressions import add_suppression, is_suppressed
from aftersale.errors import TemplateError
from aftersale.models import (
    ChannelKind,
    Customer,
    Decision,
    DomainEvent,
    EventKind,
    Item,
    Order,
    OutgoingMessage,
    RenderedMessage,
    SendResult,
    ShipmentRef,
)
from aftersale.store import Store, open_store
from aftersale.store.records import Claim

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


class FakeRenderer:
    def render(
        self, template: str, channel: ChannelKind, context: Mapping[str, Any], to: str
    ) -> RenderedMessage:
        if template == "broken":
            raise TemplateError(
                "templates/email/broken/en.j2",
                "'ordr' is undefined (did you mean 'order'?)",
                line=3,
            )
        return RenderedMessage(
            channel,
            to,
            f"{template} for {context['order_id']}",
            f"text {template}",
            sms_segments=1 if channel is ChannelKind.SMS else None,
        )


def fake_context(order: Order, **kwargs: Any) -> dict[str, Any]:
    return {"order_id": order.order_id}


class RecordingChannel:
    name = "recording"

    def __init__(self, kind: ChannelKind, answers: list[SendResult] | None = None) -> None:
        self.kind = kind
        self.sent: list[OutgoingMessage] = []
        self.answers = answers or []

    def send(self, message: OutgoingMessage) -> SendResult:
        self.sent.append(message)
        return (
            self.answers.pop(0)
            if self.answers
            else SendResult(ok=True, provider_id=f"p-{len(self.sent)}")
        )


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = open_store(tmp_path / "d.duckdb")
    customer = Customer(
        "C-1", "Anna", "anna@example.pl", "+48601234567", "pl", "Europe/Warsaw", True, True, "PL"
    )
    s.save_orders(
        [
            Order(
                "NW-1",
                NOW - timedelta(hours=2),
                customer,
                (Item("TV", "TV", "tv", 1, Decimal("10"), "PLN", 24),),
                (ShipmentRef("1" * 24, "inpost"),),
            ),
        ],
        source="t",
        now=NOW,
    )
    yield s
    s.close()


def decision(
    rule: str,
    channel: ChannelKind = ChannelKind.EMAIL,
    *,
    template: str | None = None,
    marketing: bool = False,
    due: datetime = NOW,
) -> Decision:
    event = DomainEvent(EventKind.ORDER_PLACED, "NW-1", NOW - timedelta(hours=2))
    return Decision(
        rule, template or rule, channel, "NW-1", f"{rule}:NW-1:{channel}", due, event, marketing
    )


def queue(store: Store, *decisions: Decision) -> list[str]:
    store.record_domain_events([d.event for d in decisions], run_id="r", now=NOW)
    return msgs.queue_decisions(store, decisions, {"NW-1": "C-1"}, run_id="r", now=NOW)


def run(store: Store, *channels: RecordingChannel, now: datetime = NOW):  # type: ignore[no-untyped-def]
    return dispatch_due(
        store,
        FakeRenderer(),
        fake_context,
        {c.kind: c for c in channels},
        now=now,
        run_id="r2",
        into=DispatchReport(),
    )


def states(store: Store) -> dict[str, str]:
    return {m.rule_id: m.state for m in store.list_messages()}


def test_the_same_decision_queues_one_message(store: Store) -> None:
    assert len(queue(store, decision("thank_you"), decision("thank_you"))) == 1
    assert queue(store, decision("thank_you")) == []
    assert store.count("messages") == 1


def test_a_sent_message_is_never_sent_again(store: Store) -> None:
    email = RecordingChannel(ChannelKind.EMAIL)
    queue(store, decision("thank_you"))
    report = run(store, email)
    assert [o.outcome for o in report.outcomes] == ["sent"]
    assert report.outcomes[0].recipient != "anna@example.pl"  # masked
    assert run(store, email).outcomes == []
    assert len(email.sent) == 1
    [m] = store.list_messages()
    assert (m.state, m.provider_id, m.recipient, m.subject) == (
        "sent",
        "p-1",
        "anna@example.pl",
        "thank_you for NW-1",
    )


def test_messages_wait_until_due(store: Store) -> None:
    email = RecordingChannel(ChannelKind.EMAIL)
    queue(store, decision("review_request", due=NOW + timedelta(days=7)))
    assert run(store, email).outcomes == []
    assert [o.outcome for o in run(store, email, now=NOW + timedelta(days=7)).outcomes] == ["sent"]


def test_transient_failure_is_deferred_then_retried(store: Store) -> None:
    email = RecordingChannel(
        ChannelKind.EMAIL, [SendResult(False, error_code="503", error_text="busy", transient=True)]
    )
    queue(store, decision("thank_you"))
    assert [(o.outcome, o.reason) for o in run(store, email).outcomes] == [
        ("deferred", "503: busy")
    ]
    assert states(store) == {"thank_you": "pending"}
    assert run(store, email).outcomes == []  # not before the retry delay
    assert [o.outcome for o in run(store, email, now=NOW + timedelta(minutes=15)).outcomes] == [
        "sent"
    ]
    assert [m.attempts for m in store.list_messages()] == [2]


def test_permanent_failure_and_a_broken_template_do_not_block_the_rest(store: Store) -> None:
    sms = RecordingChannel(
        ChannelKind.SMS,
        [SendResult(False, error_code="21211", error_text="Invalid 'To' Phone Number")],
    )
    email = RecordingChannel(ChannelKind.EMAIL)
    queue(
        store,
        decision("shipped_sms", ChannelKind.SMS, template="shipped"),
        decision("oops", template="broken"),
        decision("thank_you"),
    )
    outcomes = {o.rule_id: (o.outcome, o.reason) for o in run(store, sms, email).outcomes}
    assert outcomes == {
        "shipped_sms": ("failed", "21211: Invalid 'To' Phone Number"),
        "oops": (
            "failed",
            "templates/email/broken/en.j2:3: 'ordr' is undefined (did you mean 'order'?)",
        ),
        "thank_you": ("sent", None),
    }
    assert states(store) == {"shipped_sms": "failed", "oops": "failed", "thank_you": "sent"}


def test_unsubscribed_recipient_gets_transactional_but_no_marketing(store: Store) -> None:
    add_suppression(store, "anna@example.pl", ChannelKind.EMAIL, "unsubscribe", NOW)
    email = RecordingChannel(ChannelKind.EMAIL)
    queue(store, decision("shipped"), decision("review_request", marketing=True))
    outcomes = {o.rule_id: o.outcome for o in run(store, email).outcomes}
    assert outcomes == {"shipped": "sent", "review_request": "suppressed"}


def test_hard_bounce_blocks_every_message_on_that_channel(store: Store) -> None:
    add_suppression(store, "anna@example.pl", ChannelKind.EMAIL, "bounce", NOW)
    email, sms = RecordingChannel(ChannelKind.EMAIL), RecordingChannel(ChannelKind.SMS)
    queue(store, decision("shipped"), decision("shipped_sms", ChannelKind.SMS, template="shipped"))
    outcomes = {o.rule_id: o.outcome for o in run(store, email, sms).outcomes}
    assert outcomes == {"shipped": "suppressed", "shipped_sms": "sent"}
    assert email.sent == []


def test_a_message_left_sending_by_a_crash_becomes_unknown_and_is_not_resent(store: Store) -> None:
    email = RecordingChannel(ChannelKind.EMAIL)
    (message_id,) = queue(store, decision("thank_you"))
    claim = Claim(message_id, "anna@example.pl", "s", "t", None, "recording", 1)
    assert store.claim_messages([claim], run_id="crashed", now=NOW) == {message_id}
    assert store.claim_messages([claim], run_id="other", now=NOW) == set()
    report = run(store, email)
    assert [o.outcome for o in report.outcomes] == ["unknown"]
    assert email.sent == [] and states(store) == {"thank_you": "unknown"}
    assert store.release_unknown([message_id], resend=True, now=NOW) == 1
    assert [o.outcome for o in run(store, email).outcomes] == ["sent"]


def test_outbox_sends_a_crash_left_in_doubt_are_settled_without_a_person(
    store: Store, tmp_path: Path
) -> None:
    """A run claimed four messages and died after writing two of them: the next run finds
    those two in the outbox (sent) and sends the other two, each exactly once."""
    outbox = {kind: OutboxChannel(tmp_path / "outbox", kind) for kind in ChannelKind}
    queue(store, *(decision(r) for r in "ab"), *(decision(r, ChannelKind.SMS) for r in "cd"))
    due = store.due_messages(NOW, limit=10)
    claims = [
        Claim(m.message_id, "anna@example.pl", "s", f"text {m.rule_id}", None, "outbox", 1)
        if m.channel is ChannelKind.EMAIL
        else Claim(m.message_id, "+48601234567", None, f"text {m.rule_id}", 1, "outbox", 1)
        for m in due
    ]
    assert len(store.claim_messages(claims, run_id="dead", now=NOW)) == 4
    renderer = FakeRenderer()
    for m in due:
        if m.rule_id in "ac":
            to = next(c.recipient for c in claims if c.message_id == m.message_id)
            rendered = renderer.render(m.rule_id, m.channel, {"order_id": "NW-1"}, to)
            outgoing = OutgoingMessage(m.message_id, m.idempotency_key, m.rule_id, m.template,
                                       m.order_id, m.marketing, rendered, attempt=1)  # fmt: skip
            assert outbox[m.channel].send(outgoing).ok
    report = dispatch_due(
        store, renderer, fake_context, outbox, now=NOW, run_id="next", into=DispatchReport()
    )
    # settled in the same run: none is reported `unknown` (no alert for a person)
    assert sorted((o.rule_id, o.outcome) for o in report.outcomes) == [
        ("a", "reconciled_sent"),
        ("b", "reconciled_resend"),
        ("b", "sent"),
        ("c", "reconciled_sent"),
        ("d", "reconciled_resend"),
        ("d", "sent"),
    ]
    assert states(store) == dict.fromkeys("abcd", "sent")
    by_rule = {m.rule_id: m for m in store.list_messages()}
    assert {r: (m.attempts, m.provider_id) for r, m in by_rule.items()} == {
        r: (1 if r in "ac" else 2, f"outbox:{where}:{by_rule[r].message_id}")
        for r, where in (
            ("a", f"{by_rule['a'].message_id}.eml"),
            ("b", f"{by_rule['b'].message_id}.eml"),
            ("c", "sms.jsonl"),
            ("d", "sms.jsonl"),
        )
    }
    emails = sorted(p.name for p in (tmp_path / "outbox" / "email").iterdir())
    assert emails == sorted(f"{by_rule[r].message_id}.eml" for r in "ab")
    lines = (tmp_path / "outbox" / "sms.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["message_id"] for line in lines) == sorted(
        by_rule[r].message_id for r in "cd"
    )


def test_a_channel_that_settles_its_doubt_claims_large_batches_the_others_small(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Settling(RecordingChannel):
        reconcile_after = timedelta(0)
        batch_size = 5

        def reconcile(self, messages: Sequence[InDoubt]) -> dict[str, str | None]:
            return {}

    batches: list[list[str]] = []
    record_and_claim = store.record_and_claim

    def recording(results: Any, claims: Sequence[Claim], **kwargs: Any) -> set[str]:
        if claims:
            batches.append(sorted(c.provider for c in claims))
        return record_and_claim(results, claims, **kwargs)

    monkeypatch.setattr(store, "record_and_claim", recording)
    channels = {
        ChannelKind.EMAIL: RecordingChannel(ChannelKind.EMAIL),
        ChannelKind.SMS: Settling(ChannelKind.SMS),
    }

    def dispatch() -> None:
        dispatch_due(
            store,
            FakeRenderer(),
            fake_context,
            channels,
            now=NOW,
            run_id="r",
            batch_size=2,
            into=DispatchReport(),
        )

    queue(store, *(decision(f"sms-{i}", ChannelKind.SMS) for i in range(12)))
    dispatch()
    assert [len(b) for b in batches] == [5, 5, 2]
    batches.clear()
    queue(store, *(decision(f"email-{i}") for i in range(5)))
    dispatch()
    assert [len(b) for b in batches] == [2, 2, 1]
    assert set(states(store).values()) == {"sent"}


def test_dry_run_renders_but_changes_nothing(store: Store) -> None:
    email = RecordingChannel(ChannelKind.EMAIL)
    queue(store, decision("thank_you"))
    report = dispatch_due(
        store,
        FakeRenderer(),
        fake_context,
        {ChannelKind.EMAIL: email},
        now=NOW,
        run_id="r",
        dry_run=True,
        into=DispatchReport(),
    )
    assert [o.outcome for o in report.outcomes] == ["would_send"]
    assert email.sent == [] and states(store) == {"thank_you": "pending"}


def test_a_channel_that_raises_is_recorded_as_failed(store: Store) -> None:
    class Exploding(RecordingChannel):
        def send(self, message: OutgoingMessage) -> SendResult:
            raise RuntimeError("boom")

    queue(store, decision("thank_you"))
    report = run(store, Exploding(ChannelKind.EMAIL))
    assert [(o.outcome, o.reason) for o in report.outcomes] == [
        ("failed", "channel_crash: RuntimeError: boom")
    ]


def test_an_opted_out_answer_suppresses_further_sms(store: Store) -> None:
    sms = RecordingChannel(
        ChannelKind.SMS,
        [
            SendResult(
                False, error_code="21610", error_text="unsubscribed recipient", opted_out=True
            )
        ],
    )
    queue(store, decision("shipped_sms", ChannelKind.SMS, template="shipped"))
    assert [o.outcome for o in run(store, sms).outcomes] == ["failed"]
    assert is_suppressed(store, "+48601234567", "sms") == "stop"
    queue(store, decision("out_for_delivery_sms", ChannelKind.SMS, template="out_for_delivery"))
    assert [o.outcome for o in run(store, sms).outcomes] == ["suppressed"]
    assert len(sms.sent) == 1


def test_messages_go_in_batches_each_with_its_own_fate(store: Store) -> None:
    class FailsB(RecordingChannel):
        def send(self, message: OutgoingMessage) -> SendResult:
            self.sent.append(message)
            if message.rule_id == "b":
                return SendResult(False, error_code="400", error_text="bad")
            return SendResult(True, f"p-{message.rule_id}")

    email = FailsB(ChannelKind.EMAIL)
    queue(store, decision("a"), decision("b"), decision("c"), decision("oops", template="broken"))
    report = dispatch_due(
        store,
        FakeRenderer(),
        fake_context,
        {ChannelKind.EMAIL: email},
        now=NOW,
        run_id="r",
        batch_size=2,
        into=DispatchReport(),
    )
    assert sorted((o.rule_id, o.outcome) for o in report.outcomes) == [
        ("a", "sent"),
        ("b", "failed"),
        ("c", "sent"),
        ("oops", "failed"),
    ]
    rows = sorted(
        (m.rule_id, m.state, m.provider_id, m.error_code, m.attempts) for m in store.list_messages()
    )
    assert rows == [
        ("a", "sent", "p-a", None, 1),
        ("b", "failed", None, "400", 1),
        ("c", "sent", "p-c", None, 1),
        ("oops", "failed", None, None, 0),
    ]
    assert len(email.sent) == 3


def test_every_due_message_goes_in_one_dispatch_page_after_page(store: Store) -> None:
    email = RecordingChannel(ChannelKind.EMAIL)
    queue(store, *(decision(f"rule-{i}") for i in range(7)))
    report = dispatch_due(
        store,
        FakeRenderer(),
        fake_context,
        {ChannelKind.EMAIL: email},
        now=NOW,
        run_id="r",
        batch_size=2,
        page_size=3,
        into=DispatchReport(),
    )
    assert [o.outcome for o in report.outcomes] == ["sent"] * 7
    assert len(email.sent) == 7 and set(states(store).values()) == {"sent"}


def test_a_dry_run_pages_through_without_reading_a_message_twice(store: Store) -> None:
    queue(store, *(decision(f"rule-{i}") for i in range(5)))
    report = dispatch_due(
        store,
        FakeRenderer(),
        fake_context,
        {ChannelKind.EMAIL: RecordingChannel(ChannelKind.EMAIL)},
        now=NOW,
        run_id="r",
        dry_run=True,
        page_size=2,
        into=DispatchReport(),
    )
    assert sorted(o.rule_id for o in report.outcomes) == [f"rule-{i}" for i in range(5)]


def test_a_runaway_template_fails_its_messages_within_budget_and_the_rest_go_out(
    store: Store, tmp_path: Path
) -> None:
    """Nested loops over range(99999) would take hours: the budget stops the first message
    at the loop's line, the next one of that template fails at once, the rest are sent."""
    from functools import partial

    from aftersale.render.library import TemplateLibrary
    from aftersale.render.sandbox import RenderBudget
    from aftersale.settings import Shop
    from carriers.registry import DIRECTORY

    for name, body in (
        ("runaway", "{% for a in range(99999) %}{% for b in range(99999) %}{% endfor %}"
                    "{% endfor %}"),
        ("thank_you", "Thanks, {{ customer.first_name }}"),
    ):  # fmt: skip
        path = tmp_path / "templates" / "email" / name / "en.j2"
        path.parent.mkdir(parents=True)
        path.write_text(f"{{% block subject %}}Hi{{% endblock %}}\n{{% block html %}}\n{body}\n"
                        f"{{% endblock %}}\n")  # fmt: skip
    library = TemplateLibrary.load(
        tmp_path / "templates", Shop(), None, DIRECTORY, RenderBudget(seconds=0.2, steps=10**12)
    )
    from aftersale.render.context import build_context

    context = partial(build_context, shop=Shop(), carriers=DIRECTORY)
    queue(
        store,
        decision("loop_1", template="runaway"),
        decision("loop_2", template="runaway"),
        decision("thank_you"),
    )
    email = RecordingChannel(ChannelKind.EMAIL)
    started = time.thread_time()  # CPU time: a busy test machine does not count
    report = dispatch_due(
        store,
        library,
        context,
        {ChannelKind.EMAIL: email},
        now=NOW,
        run_id="r",
        into=DispatchReport(),
    )
    assert time.thread_time() - started < 1.0
    expected = (
        "failed",
        "templates/email/runaway/en.j2:3: rendering takes longer than 0.2 s (the budget per "
        "message): a loop or macro repeats too often",
    )
    outcomes = {o.rule_id: (o.outcome, o.reason) for o in report.outcomes}
    assert outcomes == {"loop_1": expected, "loop_2": expected, "thank_you": ("sent", None)}
