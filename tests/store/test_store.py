"""The store on both backends: migrations on open, idempotent writes; DuckDB: one writer
process per file."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from aftersale.errors import StoreLockedError
from aftersale.models import (
    Customer,
    DomainEvent,
    EventKind,
    Item,
    Order,
    ShipmentRef,
    Status,
    TrackingEvent,
)
from aftersale.store import open_store
from aftersale.store.migrations import MIGRATIONS

NOW = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)


def make_order(order_id: str = "NW-1", number: str = "642600027844200000000001") -> Order:
    from decimal import Decimal

    return Order(
        order_id=order_id,
        placed_at=NOW - timedelta(hours=1),
        customer=Customer(
            "C-1", "Anna", "anna@example.pl", None, "pl", "Europe/Warsaw", True, False, "PL"
        ),
        items=(Item("TV", "TV", "tv", 1, Decimal("10.00"), "PLN", 24),),
        shipments=(ShipmentRef(number, "inpost"),),
    )


def test_migrations_apply_once_and_record_the_version(store_target: str) -> None:
    with open_store(store_target) as store:
        assert store.schema_version() == MIGRATIONS[-1][0]
    with open_store(store_target) as store:
        assert store.migrate() == []


def test_saving_the_same_orders_twice_changes_nothing(store_target: str) -> None:
    with open_store(store_target) as store:
        assert store.save_orders([make_order()], source="t", now=NOW) == (1, 0)
        assert store.save_orders([make_order(), make_order()], source="t", now=NOW) == (0, 2)
        assert {t: store.count(t) for t in ("orders", "customers", "items", "shipments")} == {
            "orders": 1,
            "customers": 1,
            "items": 1,
            "shipments": 1,
        }
        loaded = store.load_order("NW-1")
        assert loaded == make_order()


def test_prices_come_back_with_the_columns_two_decimals(store_target: str) -> None:
    """Templates print a price as loaded: what the store reads is the column's DECIMAL(12, 2),
    scale and all, on both backends (DuckDB's comes as text, for speed)."""
    from decimal import Decimal

    tv, case = (
        Item("TV", "TV", "tv", 1, Decimal("0.5"), "PLN", 24),
        Item("CASE", "Case", "accessory", 2, Decimal("1234567.89"), "PLN"),
    )
    with open_store(store_target) as store:
        store.save_orders([replace(make_order(), items=(tv, case))], source="t", now=NOW)
        loaded = store.load_order("NW-1")
    assert loaded is not None
    assert [str(i.price) for i in loaded.items] == ["0.50", "1234567.89"]
    assert all(type(i.price) is Decimal for i in loaded.items)


def test_events_and_tracking_scans_are_stored_once(store_target: str) -> None:
    with open_store(store_target) as store:
        store.save_orders([make_order()], source="t", now=NOW)
        scan = TrackingEvent(NOW, Status.IN_TRANSIT, "taken_by_courier", "taken by courier")
        assert store.save_tracking_events([("642600027844200000000001", scan)] * 2, NOW) == 1
        assert store.save_tracking_events([("642600027844200000000001", scan)], NOW) == 0
        event = DomainEvent(
            EventKind.SHIPPED,
            "NW-1",
            NOW,
            shipment_id="642600027844200000000001",
            facts={"at": NOW},
        )
        assert store.record_domain_events([event, event], run_id="r1", now=NOW) == [event]
        assert store.record_domain_events([event], run_id="r2", now=NOW) == []
        loaded = store.load_domain_event(event.event_id)
        assert loaded is not None and loaded.kind is EventKind.SHIPPED
        assert loaded.facts == {"at": NOW.isoformat()}


def test_duckdb_reads_many_keys_by_a_scan_and_keeps_batches_on_the_index(tmp_path: Path) -> None:
    """A read of many keys (here 60) scans its table, cheaper in DuckDB than the index,
    and puts the setting back after, even when the read fails, so the claims' batches
    still find their rows through the index; inside a transaction nothing is switched (an
    aborted transaction would refuse to switch it back)."""
    import duckdb

    orders = [make_order(f"NW-{i}", f"6426000278442000000{i:05d}") for i in range(60)]
    ids = [o.order_id for o in orders]
    with open_store(tmp_path / "store.duckdb") as store:
        store.save_orders(orders, source="t", now=NOW)
        threshold = "SELECT current_setting('dynamic_or_filter_threshold')"
        assert store.one(threshold) == (1024,)
        assert store.load_orders(ids) == {o.order_id: o for o in orders}
        assert store.one(threshold) == (1024,)
        with pytest.raises(duckdb.BinderException):
            store.rows_in("SELECT no_such_column FROM orders", "order_id", ids)
        assert store.one(threshold) == (1024,)
        seen: list[str] = []
        con = store.con  # type: ignore[attr-defined]
        store.con = Recorder(con, seen)  # type: ignore[attr-defined]
        store.load_orders(ids)
        with store.transaction():
            assert len(store.rows_in("SELECT order_id FROM orders", "order_id", ids)) == 60
        assert [s.split()[0] for s in seen] == [
            *["SET", "SELECT", "SET"] * 3,
            *["BEGIN", "SELECT", "COMMIT"],
        ]
        store.con = con  # type: ignore[attr-defined]


class Recorder:
    """A connection proxy that notes each statement."""

    def __init__(self, con: Any, seen: list[str]) -> None:
        self._con, self._seen = con, seen

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)

    def execute(self, sql: str, *args: Any) -> Any:
        self._seen.append(sql)
        return self._con.execute(sql, *args)


def test_terminal_and_not_yet_due_shipments_are_not_due(store_target: str) -> None:
    from dataclasses import replace

    with open_store(store_target) as store:
        store.save_orders(
            [make_order("A", "1" * 24), make_order("B", "2" * 24), make_order("C", "3" * 24)],
            source="t",
            now=NOW,
        )
        a, b, c = sorted(store.due_shipments(NOW), key=lambda s: s.order_id)
        store.save_shipment_states(
            [
                replace(a, status=Status.DELIVERED, next_check_at=None),
                replace(b, next_check_at=NOW + timedelta(hours=2)),
            ]
        )
        assert [s.order_id for s in store.due_shipments(NOW)] == ["C"]
        # oldest check first: C was due at import, B two hours later
        assert [s.order_id for s in store.due_shipments(NOW + timedelta(hours=3))] == ["C", "B"]


HOLDER = textwrap.dedent(
    """
    import sys, time, duckdb
    con = duckdb.connect(sys.argv[1])
    print("holding", flush=True)
    time.sleep(float(sys.argv[2]))
    """
)


def _hold(path: Path, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "holding"
    return proc


def test_a_second_process_fails_clearly_after_its_bounded_wait(tmp_path: Path) -> None:
    path = tmp_path / "locked.duckdb"
    open_store(path).close()
    holder = _hold(path, 30)
    try:
        started = time.monotonic()
        with pytest.raises(StoreLockedError) as caught:
            open_store(path, wait_s=1.0, poll_s=0.2)
        assert 1.0 <= time.monotonic() - started < 10
        assert "held by another process (waited 1 s)" in str(caught.value)
        assert "DuckDB allows one writer process per file" in str(caught.value)
    finally:
        holder.kill()
        holder.communicate()


def test_a_second_process_waits_for_the_first_to_finish(tmp_path: Path) -> None:
    path = tmp_path / "locked.duckdb"
    open_store(path).close()
    holder = _hold(path, 1.5)
    try:
        with open_store(path, wait_s=30, poll_s=0.2) as store:
            assert store.count("orders") == 0
    finally:
        holder.communicate()
