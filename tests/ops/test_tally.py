"""A run's tally holds counts and bounded lists however large the run, and reads the same
as the whole run would: the listed messages are the first of the full table, health sees
every page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from aftersale.cycle import CycleSummary, DueWork
from aftersale.decide.engine import DecideOutcome
from aftersale.dispatch.send import Outcome
from aftersale.models import ChannelKind, Decision, DomainEvent, EventKind, PollResult
from aftersale.ops.health import observe_carriers, observe_channels
from aftersale.ops.report import build_report
from aftersale.ops.tally import (
    MAX_HELD,
    MAX_LISTED,
    MAX_MESSAGE_ROWS,
    MessageTally,
    PollTally,
    outcome_rank,
)
from aftersale.store.records import RefundRecord

NOW = datetime(2026, 11, 22, 10, 15, tzinfo=UTC)


def outcome(n: int, fate: str, channel: str = "email") -> Outcome:
    reason = None if fate == "sent" else f"code_{n % 3}: refused"
    provider = None if fate == "suppressed" else "outbox"
    return Outcome(
        f"m-{n:05d}", f"rule-{n % 4}", "t", channel, f"O{n}", fate, "a***", provider, None, reason
    )


def test_a_large_dispatch_lists_the_first_rows_of_the_whole_table_and_counts_the_rest() -> None:
    fates = ["sent", "failed", "deferred", "suppressed", "unknown", "cancelled"]
    every = [
        outcome(n, fates[n % 7 % len(fates)], "sms" if n % 5 else "email") for n in range(7_000)
    ]
    tally = MessageTally()
    for start in range(0, len(every), 20):  # batch by batch, as dispatch hands them over
        tally.add(every[start : start + 20])
    assert tally.listed() == sorted(every, key=outcome_rank)[:MAX_MESSAGE_ROWS]
    assert tally.total == 7_000
    assert tally.count("failed") == sum(1 for o in every if o.outcome == "failed")
    assert tally.observations() == observe_channels(every)


def test_more_failures_than_rows_says_how_many_it_lists() -> None:
    run = CycleSummary(NOW)
    run.dispatch.add([outcome(n, "failed") for n in range(MAX_MESSAGE_ROWS + 100)])
    run.dispatch.add([outcome(90_000, "sent")])
    report = build_report(run, label="cycle")
    assert len(report.messages) == len(report.failed) == MAX_MESSAGE_ROWS
    assert (report.message_total, report.failed_total) == (MAX_MESSAGE_ROWS + 101, 2_100)
    assert f"The first {MAX_MESSAGE_ROWS} of 2100 (attention first" in report.markdown
    assert "| rule-0 | email | 525 | 1 |" in report.markdown  # the counts are whole
    assert "2100 failed" in report.markdown.splitlines()[2]


def test_polls_page_by_page_observe_the_carriers_as_one_run_would() -> None:
    pages = [
        [
            PollResult(f"S{n}", "dhl", None, f"dhl T{n}: HTTP 503 (after 3 attempts)")
            for n in range(3)
        ],
        [PollResult(f"S{n}", "dhl", None, f"dhl T{n}: weird answer {n}") for n in range(3, 200)],
        [PollResult("S9", "ups", None, "ups T9: timeout")],
    ]
    tally = PollTally()
    for n, page in enumerate(pages):
        tally.add(page, ["dhl"] if n == 0 else [])
    everything = [r for page in pages for r in page]
    assert tally.observations() == observe_carriers(everything, ["dhl"])
    assert tally.polled == 201 and tally.by_carrier()["dhl"] == {"polled": 200, "errors": 200}
    assert tally.first_errors == [r.error for r in everything][:MAX_LISTED]
    texts = tally.errors["dhl"]
    assert len(texts) <= 51 and texts["HTTP 503 (after 3 attempts)"] == 3
    assert sum(texts.values()) == 200 and texts["(other errors)"] > 0


def test_held_messages_keep_the_soonest_and_count_them_all() -> None:
    run = CycleSummary(NOW)
    event = DomainEvent(EventKind.ORDER_PLACED, "O1", NOW)
    later = [
        Decision(
            "review", "review", ChannelKind.EMAIL, f"O{n}", f"k{n}", NOW + timedelta(hours=n), event
        )
        for n in range(1, 200)
    ]
    run.decide.add(len(later), 0, DecideOutcome(later[::-1], [], []), NOW)
    assert run.decide.held.items() == later[:MAX_HELD]
    assert run.as_dict()["queued_for_later"] == 199
    assert f"The first {MAX_HELD} of 199, soonest first." in build_report(run, label="c").markdown


def test_due_work_goes_in_pages_with_the_last_polled_orders_first() -> None:
    work = DueWork(
        time_events=[f"O{n:03d}" for n in range(0, 250)],
        placed=["O900", "O001"],
        refunds=[RefundRecord("O249", "R1", Decimal("10.00"), "PLN", NOW)],
    )
    pages = work.pages(100, first={"O200", "O900", "O999"})
    assert [len(p.order_ids()) for p in pages] == [99, 100, 52]
    assert {"O200", "O900"} <= pages[0].order_ids() and pages[0].placed == ["O900", "O001"]
    assert sorted(o for p in pages for o in p.order_ids()) == sorted(work.order_ids())
    assert [r.order_id for p in pages for r in p.refunds] == ["O249"]
    assert len(DueWork().pages(100, first=set())) == 1  # nothing due: one empty page
