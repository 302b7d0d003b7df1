"""Housekeeping: expire stale shipments, stuck `sending` -> `unknown`, retention purges."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from aftersale.dispatch import messages as msgs
from aftersale.models import (
    ChannelKind,
    Customer,
    Decision,
    DomainEvent,
    EventKind,
    Item,
    MessageState,
    Order,
    SendResult,
    ShipmentRef,
    Status,
    TrackingEvent,
)
from aftersale.ops.housekeeping import Retention, run_housekeeping
from aftersale.store import Store, open_store
from aftersale.store.records import ERASED, Claim

NOW = datetime(2027, 6, 1, 3, 0, tzinfo=UTC)
LONG_AGO = NOW - timedelta(days=500)


def order(oid: str, cid: str, placed: datetime, number: str, warranty: int | None = None) -> Order:
    customer = Customer(
        cid,
        f"Name {cid}",
        f"{cid.lower()}@example.pl",
        "+48601234567",
        "pl",
        "Europe/Warsaw",
        True,
        True,
        "PL",
    )
    item = Item("SKU", "Thing", "cables", 1, Decimal("9"), "PLN", warranty)
    return Order(oid, placed, customer, (item,), (ShipmentRef(number, "inpost"),))


@pytest.fixture(params=["duckdb", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """The same old, warranty and new customers on each backend (retention's statements
    are written once for both)."""
    if request.param == "duckdb":
        yield from _filled(str(tmp_path / "h.duckdb"))
        return
    with request.getfixturevalue("postgres_cluster").database() as url:
        yield from _filled(url)


def _filled(target: str) -> Iterator[Store]:
    s = open_store(target)
    s.save_orders([order("O-OLD", "C-OLD", LONG_AGO, "N-OLD")], source="t", now=LONG_AGO)
    s.save_orders(
        [order("O-WAR", "C-WAR", LONG_AGO, "N-WAR", warranty=24)], source="t", now=LONG_AGO
    )
    s.save_orders(
        [order("O-NEW", "C-NEW", NOW - timedelta(days=3), "N-NEW")],
        source="t",
        now=NOW - timedelta(days=3),
    )
    delivered = [s.load_shipment("N-OLD"), s.load_shipment("N-WAR")]
    s.save_shipment_states([replace(d, status=Status.DELIVERED) for d in delivered if d])
    yield s
    s.close()


def add_message(
    store: Store, oid: str, cid: str, rule: str, state: MessageState, updated: datetime
) -> str:
    """A message claimed at `updated` and left `sending`, or taken on to `sent` or (as a
    crashed run leaves it) `unknown`."""
    event = DomainEvent(EventKind.ORDER_PLACED, oid, updated)
    store.record_domain_events([event], run_id="r", now=updated)
    d = Decision(rule, rule, ChannelKind.EMAIL, oid, f"{rule}:{oid}", updated, event)
    [mid] = msgs.queue_decisions(store, [d], {oid: cid}, run_id="r", now=updated)
    claim = Claim(mid, f"{cid.lower()}@example.pl", "Hello", "Hi", None, "outbox", 1)
    assert store.claim_messages([claim], run_id="r", now=updated) == {mid}
    if state is MessageState.SENT:
        result = msgs.message_result(mid, SendResult(True), updated, retry_in=timedelta(0))
        store.record_results([result], updated)
    elif state is MessageState.UNKNOWN:
        store.mark_stuck_unknown("crashed")
    else:
        assert state is MessageState.SENDING
    return mid


def test_a_shipment_silent_for_30_days_expires_and_a_fresh_one_does_not(store: Store) -> None:
    fresh = store.load_shipment("N-NEW")
    assert fresh is not None
    silent = replace(fresh, status=Status.IN_TRANSIT, last_event_at=NOW - timedelta(days=31))
    store.save_shipment_states([silent])
    report = run_housekeeping(store, NOW)
    assert report.expired == ["N-NEW"]
    s = store.load_shipment("N-NEW")
    assert s is not None and s.status is Status.EXPIRED and s.next_check_at is None
    assert run_housekeeping(store, NOW).expired == []  # idempotent


def test_stuck_sending_becomes_unknown_masked_and_a_recent_claim_is_left(store: Store) -> None:
    old = add_message(
        store, "O-NEW", "C-NEW", "shipped", MessageState.SENDING, NOW - timedelta(hours=2)
    )
    recent = add_message(
        store, "O-NEW", "C-NEW", "thank_you", MessageState.SENDING, NOW - timedelta(minutes=5)
    )
    report = run_housekeeping(store, NOW)
    assert report.stuck == [
        {
            "message": old,
            "rule": "shipped",
            "channel": "email",
            "order": "O-NEW",
            "recipient": "c***@example.pl",
        }
    ]
    assert report.unknown_total == 1
    state = {m.message_id: m.state for m in store.list_messages()}
    assert state == {old: "unknown", recent: "sending"}
    md = report.markdown(NOW, Retention())
    assert "| messages stuck in `sending` -> `unknown` | 1 |" in md and "c-new@example.pl" not in md


def test_retention_purges_old_scans_of_settled_parcels_only(store: Store) -> None:
    old_scan = TrackingEvent(LONG_AGO, Status.DELIVERED, "delivered", "Delivered")
    store.save_tracking_events(
        [
            ("N-OLD", old_scan),
            ("N-NEW", old_scan),
            ("N-OLD", TrackingEvent(NOW - timedelta(days=10), None, "x", "info")),
        ],
        NOW,
    )
    report = run_housekeeping(store, NOW, Retention(tracking_events_days=180))
    assert report.purged_tracking_events == 1  # N-NEW is not settled; the recent N-OLD scan stays
    assert store.count("tracking_events") == 2


def test_personal_data_is_erased_only_when_nothing_is_live(store: Store) -> None:
    sent = add_message(store, "O-OLD", "C-OLD", "shipped", MessageState.SENT, LONG_AGO)
    add_message(store, "O-WAR", "C-WAR", "shipped", MessageState.SENT, LONG_AGO)
    report = run_housekeeping(store, NOW, Retention(personal_data_days=365))
    customers = {
        o.customer.customer_id: (o.customer.name, o.customer.email, o.customer.phone)
        for o in store.load_orders(["O-OLD", "O-WAR", "O-NEW"]).values()
    }
    assert customers["C-OLD"] == (ERASED, None, None)
    assert customers["C-WAR"][1] == "c-war@example.pl"  # a 24-month warranty still runs
    assert customers["C-NEW"][1] == "c-new@example.pl"  # recent order
    assert (report.erased_customers, report.scrubbed_messages) == (1, 1)
    m = store.load_message(sent)
    assert m is not None and (m.state, m.recipient, m.subject, m.body_text) == (
        "sent",
        None,
        None,
        None,
    )
    again = run_housekeeping(store, NOW, Retention(personal_data_days=365))
    assert (again.erased_customers, again.scrubbed_messages) == (0, 0)


def test_an_unknown_message_keeps_its_customer_data(store: Store) -> None:
    add_message(store, "O-OLD", "C-OLD", "shipped", MessageState.UNKNOWN, LONG_AGO)
    assert run_housekeeping(store, NOW).erased_customers == 0


def test_retention_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Retention(tracking_events_days=0)
