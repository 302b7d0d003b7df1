"""True when sent: a message is checked against the newest tracking before it goes out;
what is no longer true is cancelled with its reason recorded, the rest goes out."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from aftersale.dispatch.recheck import stale_reason
from aftersale.dispatch.send import DispatchReport, dispatch_due
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
    ShipmentState,
    Status,
)
from aftersale.store import open_store
from tests.dispatch.test_dispatch import FakeRenderer, RecordingChannel, fake_context

NOW = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)  # Tuesday afternoon
CUSTOMER = Customer("C-1", "Emily", "emily@example.com", None, "en-US", "America/New_York",
                    True, False, "US")  # fmt: skip
ORDER = Order(
    "NW-1031",
    NOW - timedelta(days=2),
    CUSTOMER,
    (Item("CAM", "Camera", "camera", 1, Decimal("219"), "USD", 24),),
    (ShipmentRef("1Z1", "ups"),),
)
MOVING = ShipmentState(
    "1Z1", "NW-1031", "ups", "1Z1", Status.IN_TRANSIT,
    estimated_delivery=date(2026, 11, 25), status_since=NOW - timedelta(days=1),
    last_event_at=NOW - timedelta(hours=3),
)  # fmt: skip


def event(kind: EventKind, **kw: object) -> DomainEvent:
    return DomainEvent(kind, "NW-1031", NOW - timedelta(hours=6), shipment_id="1Z1", **kw)  # type: ignore[arg-type]


def test_arriving_tomorrow_only_while_the_estimate_stands_and_it_is_the_day_before() -> None:
    tomorrow = event(EventKind.ARRIVING_TOMORROW, facts={"estimated_delivery": "2026-11-25"})
    assert stale_reason(tomorrow, MOVING, ORDER, NOW) is None
    slipped = replace(MOVING, estimated_delivery=date(2026, 11, 27))
    assert stale_reason(tomorrow, slipped, ORDER, NOW) == "the carrier now expects it on 2026-11-27"
    early = replace(MOVING, status=Status.OUT_FOR_DELIVERY)
    assert stale_reason(tomorrow, early, ORDER, NOW) == "the parcel is out for delivery already"
    wednesday = NOW + timedelta(days=1)  # Wed 10:00 in New York: "tomorrow" was yesterday
    assert "not the day before" in (stale_reason(tomorrow, MOVING, ORDER, wednesday) or "")


def test_a_status_message_goes_while_the_parcel_is_in_that_status() -> None:
    out = event(EventKind.STATUS_CHANGED, status=Status.OUT_FOR_DELIVERY)
    assert stale_reason(out, replace(MOVING, status=Status.OUT_FOR_DELIVERY), ORDER, NOW) is None
    delivered = replace(MOVING, status=Status.DELIVERED)
    assert stale_reason(out, delivered, ORDER, NOW) == (
        "the parcel is delivered now, no longer out for delivery"
    )
    done = event(EventKind.STATUS_CHANGED, status=Status.DELIVERED)
    assert stale_reason(done, delivered, ORDER, NOW) is None
    assert stale_reason(event(EventKind.ORDER_PLACED), delivered, ORDER, NOW) is None


@pytest.mark.parametrize(
    ("reason", "facts", "now_state", "why"),
    [
        (DelayReason.ETA_SLIPPED, {"baseline": "2026-11-26"}, {"estimated_delivery": date(2026, 11, 26)},
         "the carrier's estimate is back on time"),
        (DelayReason.NO_FIRST_SCAN, {}, {}, "the carrier has scanned the parcel in since"),
        (DelayReason.STALE, {"last_event_at": "2026-11-23T09:00:00+00:00"}, {},
         "a new scan came in since"),
        (DelayReason.EXCEPTION, {}, {"status": Status.OUT_FOR_DELIVERY},
         "the parcel is out for delivery now"),
        (DelayReason.ETA_MISSED, {}, {"status": Status.DELIVERED},
         "the parcel is delivered already"),
        (DelayReason.ETA_SLIPPED, {"baseline": "2026-11-26"}, {"estimated_delivery": date(2026, 11, 28)},
         None),
        (DelayReason.UNDELIVERABLE, {}, {"status": Status.DELIVERED}, "the parcel is delivered already"),
        (DelayReason.PICKUP_WAITING, {}, {"status": Status.AVAILABLE_FOR_PICKUP,
                                          "pickup_deadline": NOW - timedelta(minutes=1)},
         f"its collect-by time {(NOW - timedelta(minutes=1)).isoformat()} has passed"),
        (DelayReason.PICKUP_WAITING, {}, {"status": Status.AVAILABLE_FOR_PICKUP,
                                          "pickup_deadline": NOW + timedelta(hours=5)}, None),
    ],
)  # fmt: skip
def test_a_delay_goes_only_while_it_holds(reason, facts, now_state, why) -> None:  # type: ignore[no-untyped-def]
    late = event(EventKind.DELAYED, reason=reason, facts=facts)
    assert stale_reason(late, replace(MOVING, **now_state), ORDER, NOW) == why


def test_dispatch_cancels_what_is_no_longer_true_and_says_why(tmp_path: Path) -> None:
    with open_store(tmp_path / "a.duckdb") as store:
        store.save_orders([ORDER], source="t", now=NOW - timedelta(days=2))
        store.save_shipment_states([replace(MOVING, estimated_delivery=date(2026, 11, 27))])
        tomorrow = event(EventKind.ARRIVING_TOMORROW, facts={"estimated_delivery": "2026-11-25"})
        store.record_domain_events([tomorrow], run_id="r", now=NOW)
        stale = Decision(
            "arriving_tomorrow", "arriving_tomorrow", ChannelKind.EMAIL, "NW-1031",
            "arriving_tomorrow|NW-1031/1Z1|email", NOW, tomorrow, False, "1Z1",
        )  # fmt: skip
        from aftersale.dispatch import messages as msgs

        msgs.queue_decisions(store, [stale], {"NW-1031": "C-1"}, run_id="r", now=NOW)
        email = RecordingChannel(ChannelKind.EMAIL)
        report = dispatch_due(
            store,
            FakeRenderer(),
            fake_context,
            {ChannelKind.EMAIL: email},
            now=NOW,
            run_id="d",
            into=DispatchReport(),
        )
        assert email.sent == []
        assert [(o.outcome, o.reason) for o in report.outcomes] == [
            ("cancelled", "no longer true: the carrier now expects it on 2026-11-27")
        ]
        (row,) = store.list_messages()
        assert row.state is MessageState.CANCELLED
