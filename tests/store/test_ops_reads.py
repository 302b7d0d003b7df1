"""What operators read, on both backends: health kept across runs, one order's and one
customer's messages, and the period report's three queries."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from aftersale.dispatch.messages import queue_decisions
from aftersale.models import (
    ChannelKind,
    Customer,
    Decision,
    DelayReason,
    DomainEvent,
    EventKind,
    Item,
    MessageState,
    Order,
    ShipmentRef,
    Status,
    TrackingEvent,
)
from aftersale.store import Store, open_store
from aftersale.store.records import Claim, Closure, HealthRecord, MessageResult, MessageStat

NOW = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
DAY = timedelta(days=1)
NUMBER = "1Z0000000000000001"


def order() -> Order:
    customer = Customer(
        "C-1", "Anna", "anna@example.pl", None, "pl", "Europe/Warsaw", True, False, "PL"
    )
    item = Item("TV", "TV", "tv", 1, Decimal("10.00"), "PLN", 24)
    return Order(
        "NW-1",
        NOW - DAY,
        customer,
        (item,),
        (ShipmentRef(NUMBER, "ups"),),
        promised_delivery=date(2026, 11, 25),
        shipping_country="DE",
    )


def send(store: Store, decision: Decision, at: datetime) -> str:
    [mid] = queue_decisions(store, [decision], {"NW-1": "C-1"}, run_id="cycle · 1", now=at)
    claim = Claim(mid, "anna@example.pl", "Subject", "text", None, "outbox", 1)
    store.claim_messages([claim], run_id="cycle · 2", now=at)
    store.record_results([MessageResult(mid, MessageState.SENT, "p-1")], at)
    return mid


def test_health_is_saved_replaced_and_read_back(store_target: str) -> None:
    dhl = HealthRecord(
        "carrier", "dhl", "failing", NOW, NOW, None, 11, 11, {"HTTP 503": 11}, "dhl 1: HTTP 503"
    )
    with open_store(store_target) as store:
        store.save_health([dhl, replace(dhl, component="channel", name="email")])
        store.save_health([replace(dhl, failures=20, alerted_at=NOW + DAY)])
        assert store.load_health() == [
            replace(dhl, failures=20, alerted_at=NOW + DAY),
            replace(dhl, component="channel", name="email"),
        ]


def test_the_backlog_counts_what_waits_after_failed_polls(store_target: str) -> None:
    with open_store(store_target) as store:
        store.save_orders([order()], source="t", now=NOW)
        [state] = store.list_shipments()
        later = NOW + timedelta(minutes=30)
        store.save_shipment_states([replace(state, next_check_at=later)], {NUMBER: 2})
        [backlog] = store.carrier_backlog()
    assert (backlog.carrier, backlog.active, backlog.waiting, backlog.next_check_at) == (
        "ups",
        1,
        1,
        later,
    )


def test_one_orders_story_and_the_report_queries(store_target: str) -> None:
    delayed = DomainEvent(
        EventKind.DELAYED, "NW-1", NOW, NUMBER, reason=DelayReason.ETA_SLIPPED.value
    )
    placed = DomainEvent(EventKind.ORDER_PLACED, "NW-1", NOW - DAY)
    with open_store(store_target) as store:
        store.save_orders([order()], source="t", now=NOW)
        store.record_domain_events([delayed, placed], run_id="r", now=NOW)
        thanks = send(
            store,
            Decision("thank_you", "thank_you", ChannelKind.EMAIL, "NW-1", "k1", NOW, placed),
            NOW,
        )
        late = Decision(
            "late", "delayed", ChannelKind.EMAIL, "NW-1", "k2", NOW, delayed, shipment_id=NUMBER
        )
        notice = send(store, late, NOW + DAY)
        store.set_delivery_state(thanks, "delivered", None)
        store.record_engagement(thanks, "opened", NOW + timedelta(hours=2))
        store.record_engagement(thanks, "opened", NOW + timedelta(hours=5))  # first one kept
        store.record_engagement(thanks, "clicked", NOW + timedelta(hours=3))
        # handed over in Poznań, delivered a day after the promise (Warsaw time)
        store.save_tracking_events(
            [
                (NUMBER, TrackingEvent(NOW, Status.LABEL_CREATED, "MP", "label", "Poznań, PL")),
                (NUMBER, TrackingEvent(NOW + DAY, Status.IN_TRANSIT, "I", "out", "Poznań, PL")),
            ],
            NOW,
        )
        [state] = store.list_shipments()
        delivered_at = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
        store.save_shipment_states(
            [replace(state, status=Status.DELIVERED, delivered_at=delivered_at)]
        )

        story = store.find_messages(order_id="NW-1")
        assert [m.message_id for m in story] == [notice, thanks]  # newest first
        assert story[1].opened_at == NOW + timedelta(hours=2)
        assert story[1].clicked_at == NOW + timedelta(hours=3)
        assert (story[1].created_at, story[1].run_id) == (NOW, "cycle · 2")
        assert [m.message_id for m in store.find_messages(customer_id="C-1", since=NOW + DAY)] == [
            notice
        ]
        assert store.find_messages(order_id="NW-2") == []

        start, end = NOW - DAY, NOW + 7 * DAY
        assert store.message_stats(start, end) == [
            MessageStat(
                date(2026, 11, 23), "thank_you", ChannelKind.EMAIL, MessageState.SENT,
                "delivered", 1, 1, 1,
            ),
            MessageStat(
                date(2026, 11, 24), "late", ChannelKind.EMAIL, MessageState.SENT, None, 0, 0, 1
            ),
        ]  # fmt: skip
        [parcel] = store.delivered_shipments(start, end)
        assert (parcel.carrier, parcel.destination, parcel.promised) == (
            "ups",
            "DE",
            date(2026, 11, 25),
        )
        assert (parcel.handed_over_at, parcel.delivered_at) == (NOW + DAY, delivered_at)
        assert (parcel.first_location, parcel.time_zone) == ("Poznań, PL", "Europe/Warsaw")
        assert store.delivered_shipments(end, end + DAY) == []
        [sent_notice] = store.delay_notices(start, end)
        assert (sent_notice.message_id, sent_notice.status) == (notice, "delivered")
        assert sent_notice.sent_at == NOW + DAY


def queue_thanks(store: Store, n: int) -> list[str]:
    """n pending thank-you messages of order NW-1, each under its own rule."""
    placed = DomainEvent(EventKind.ORDER_PLACED, "NW-1", NOW - DAY)
    store.save_orders([order()], source="t", now=NOW)
    store.record_domain_events([placed], run_id="r", now=NOW)
    decisions = [
        Decision(f"r{i}", "thank_you", ChannelKind.EMAIL, "NW-1", f"k{i}", NOW, placed)
        for i in range(n)
    ]
    return queue_decisions(store, decisions, {"NW-1": "C-1"}, run_id="cycle · 1", now=NOW)


def claim(mid: str) -> Claim:
    return Claim(mid, "anna@example.pl", f"Subject {mid}", "text", None, "outbox", 1)


def test_one_batch_is_recorded_as_the_next_is_claimed(store_target: str) -> None:
    """record_and_claim: the batch's closures (only of messages still `pending`), the
    previous batch's outcomes (only of messages still `sending`) and the next batch's
    claim (only of messages still `pending`) in one transaction."""
    with open_store(store_target) as store:
        ids = queue_thanks(store, 4)
        first, second, third, fourth = sorted(ids)

        assert store.record_and_claim([], [claim(first)], run_id="r", now=NOW) == {first}
        got = store.record_and_claim(
            [
                MessageResult(first, MessageState.SENT, "p-1"),
                MessageResult(fourth, MessageState.SENT, "p-4"),  # never claimed: ignored
            ],
            [claim(first), claim(second), claim(third)],  # first is no longer pending
            closures=[
                Closure(fourth, MessageState.SUPPRESSED, "recipient suppressed (bounce)"),
                Closure(first, MessageState.FAILED, "not pending: ignored"),
            ],
            run_id="r",
            now=NOW + DAY,
        )
        assert got == {second, third}
        states = {m.message_id: m for m in store.list_messages()}
        assert (states[first].state, states[first].provider_id) == (MessageState.SENT, "p-1")
        assert states[first].attempts == 1
        assert [states[m].state for m in (second, third)] == [MessageState.SENDING] * 2
        assert states[second].subject == f"Subject {second}"
        assert (states[fourth].state, states[fourth].error_text) == (
            MessageState.SUPPRESSED,
            "recipient suppressed (bounce)",
        )


def test_a_batch_moves_only_messages_it_finds(store_target: str) -> None:
    """A batch whose every message is as expected writes them all; one naming a message
    not stored (any more) writes the others and claims only those found."""
    with open_store(store_target) as store:
        ids = queue_thanks(store, 5)
        first, second, third, fourth, fifth = sorted(ids)

        assert store.record_and_claim([], [claim(first)], run_id="r", now=NOW) == {first}
        got = store.record_and_claim(
            [MessageResult(first, MessageState.FAILED, error_code="550", error_text="no")],
            [claim(second), claim(third)],
            closures=[Closure(fourth, MessageState.CANCELLED, "superseded")],
            run_id="r2",
            now=NOW + DAY,
        )
        assert got == {second, third}
        got = store.record_and_claim(
            [
                MessageResult(second, MessageState.SENT, "p-2"),
                MessageResult("m-gone", MessageState.SENT, "p-x"),
            ],
            [claim(fifth), claim("m-gone-too")],
            closures=[Closure("m-gone-as-well", MessageState.FAILED, "gone")],
            run_id="r3",
            now=NOW + 2 * DAY,
        )
        assert got == {fifth}
        states = {m.message_id: m for m in store.list_messages()}
        assert set(states) == set(ids)
        assert (states[first].state, states[first].error_code) == (MessageState.FAILED, "550")
        assert (states[second].state, states[second].provider_id) == (MessageState.SENT, "p-2")
        assert (states[third].state, states[third].run_id) == (MessageState.SENDING, "r2")
        assert (states[fourth].state, states[fourth].error_text) == (
            MessageState.CANCELLED,
            "superseded",
        )
        assert (states[fifth].state, states[fifth].attempts) == (MessageState.SENDING, 1)
        assert states[fifth].subject == f"Subject {fifth}"
