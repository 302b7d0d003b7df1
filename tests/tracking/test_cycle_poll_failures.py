"""A carrier outage is recorded on each shipment and backs its next check off; it is never lost."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from aftersale.cycle import PollBatch, claim_pages, decide_stage, detect_stage, poll_page
from aftersale.models import Customer, Item, Order, PollResult, ShipmentRef, ShipmentState
from aftersale.settings import Settings
from aftersale.store import open_store
from flows.wiring import build_parts

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def test_failed_polls_count_up_back_off_and_reset_on_success(tmp_path: Path) -> None:
    settings = Settings(db=str(tmp_path / "a.duckdb"), outbox_dir=tmp_path / "out")
    with open_store(settings.db) as store:
        customer = Customer("C", "Anna", "a@example.pl", None, "pl", "Europe/Warsaw", True, False)
        store.save_orders(
            [
                Order(
                    "O",
                    NOW - timedelta(hours=1),
                    customer,
                    (Item("S", "n", "tv", 1, Decimal("1"), "PLN"),),
                    (ShipmentRef("1" * 24, "inpost"),),
                )
            ],
            source="t",
            now=NOW,
        )
        parts, _ = build_parts(settings, store, env={}, carriers={})

        def outage(due: Sequence[ShipmentState], _: Mapping[str, list[str]]) -> PollBatch:
            return PollBatch(
                [PollResult(s.shipment_id, "inpost", None, "inpost: HTTP 503") for s in due]
            )

        parts = replace(parts, poll=outage)
        checks = []
        now = NOW
        for _ in range(3):
            ((page, _),) = claim_pages(parts, now)
            stage = detect_stage(parts, poll_page(parts, page), now, None)
            decide_stage(parts, stage, now, "r")  # commits the page
            assert stage.errors == [f"inpost {'1' * 24}: inpost: HTTP 503"]
            (state,) = store.shipments_of(["O"]).values()
            checks.append(state.next_check_at - now)
            now = state.next_check_at
        assert store.poll_failures(["1" * 24]) == {"1" * 24: 3}
        assert checks == [timedelta(minutes=15), timedelta(minutes=30), timedelta(minutes=60)]
        assert state.problem == "inpost: HTTP 503"
