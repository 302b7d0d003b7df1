"""Replaying any sequence of cycles a second time sends nothing new."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from aftersale.decide.engine import SendHistory, decide, history_after
from aftersale.decide.ruleset import load_ruleset, rule_files
from aftersale.models import (
    Customer,
    DelayReason,
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
RULESET = load_ruleset(rule_files(RULES), carriers=DIRECTORY)
T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
SHIPMENTS = ("S-1", "S-2")


def make_order(consent_sms: bool, consent_email: bool, tz: str, phone: bool) -> Order:
    customer = Customer("C-1", "Anna", "anna@example.com", "+48500100200" if phone else None,
                        "en", tz, consent_email, consent_sms, "PL")  # fmt: skip
    items = (
        Item("NW-ANC-700", "ANC 700", "headphones", 1, Decimal("899"), "PLN", 24),
        Item("NW-USB", "Cable", "accessories", 2, Decimal("39"), "PLN", 12),
    )
    refs = tuple(ShipmentRef(f"TN{i}", "inpost") for i in range(len(SHIPMENTS)))
    return Order("O-1", T0, customer, items, refs)


@st.composite
def events(draw: st.DrawFn) -> DomainEvent:
    kind = draw(st.sampled_from(list(EventKind)))
    at = T0 + timedelta(minutes=draw(st.integers(0, 60 * 24 * 10)))
    sid = draw(st.sampled_from(SHIPMENTS))
    if kind is EventKind.ORDER_PLACED:
        return DomainEvent(kind, "O-1", at)
    if kind is EventKind.STATUS_CHANGED:
        return DomainEvent(
            kind, "O-1", at, shipment_id=sid, status=draw(st.sampled_from(list(Status)))
        )
    if kind is EventKind.DELAYED:
        reason = draw(st.sampled_from(list(DelayReason)))
        return DomainEvent(kind, "O-1", at, shipment_id=sid, reason=str(reason))
    if kind is EventKind.DELIVERED_AGO:
        return DomainEvent(
            kind, "O-1", at, shipment_id=sid, facts={"days": draw(st.sampled_from([3, 7, 5]))}
        )
    if kind is EventKind.WARRANTY_ENDING:
        sku = draw(st.sampled_from(["NW-ANC-700", "NW-USB"]))
        return DomainEvent(kind, "O-1", at, item_sku=sku, facts={"days": 30})
    return DomainEvent(kind, "O-1", at, shipment_id=sid)


cycles = st.lists(st.lists(events(), min_size=1, max_size=6), min_size=1, max_size=6)
customers = st.tuples(st.booleans(), st.booleans(),
                      st.sampled_from(["Europe/Warsaw", "America/New_York", "Asia/Tokyo"]),
                      st.booleans())  # fmt: skip


def run(batches, order, history):
    orders = {"O-1": order}
    shipments = {
        s: ShipmentState(s, "O-1", "inpost", f"TN-{s}", Status.IN_TRANSIT) for s in SHIPMENTS
    }
    decided = []
    for i, batch in enumerate(batches):
        now = max(e.occurred_at for e in batch) + timedelta(minutes=i)
        outcome = decide(batch, orders, shipments, RULESET, now, history)
        history = history_after(history, outcome, orders)
        decided.extend(outcome.decisions)
    return decided, history


# A delay SMS superseded by `delivered` in the same cycle once used up the SMS cap, so the
# first run skipped `shipped` by SMS and the replay (its cap free) decided it.
_SUPERSEDED_CAP = [
    [
        DomainEvent(EventKind.DELAYED, "O-1", T0, shipment_id="S-1", reason="no_first_scan"),
        DomainEvent(EventKind.SHIPPED, "O-1", T0, shipment_id="S-2"),
        DomainEvent(
            EventKind.STATUS_CHANGED, "O-1", T0, shipment_id="S-1", status=Status.DELIVERED
        ),
    ]
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=cycles, who=customers)
@example(batches=_SUPERSEDED_CAP, who=(True, False, "Europe/Warsaw", True))
def test_replaying_any_cycles_twice_sends_nothing_new(batches, who) -> None:
    order = make_order(*who)
    first, history = run(batches, order, SendHistory())
    keys = [d.idempotency_key for d in first]
    assert len(keys) == len(set(keys)), "a key was decided twice in one run"
    second, _ = run(batches, order, history)
    assert second == []


@settings(max_examples=60, deadline=None)
@given(batches=cycles, who=customers)
def test_replaying_with_only_the_keys_sends_no_key_twice(batches, who) -> None:
    order = make_order(*who)
    first, history = run(batches, order, SendHistory())
    keys_only = SendHistory(used_keys=history.used_keys)
    second, _ = run(batches, order, keys_only)
    assert not {d.idempotency_key for d in second} & {d.idempotency_key for d in first}
    assert all(d.idempotency_key not in history.used_keys for d in second)
