"""The store seam: `open_store` picks the backend from AFTERSALE_DB, a transaction spans
every aggregate, each statement passes through the one connection (so a proxy sees it),
and due messages come in pages that end."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest

from aftersale.dispatch.messages import new_messages, queue_decisions
from aftersale.errors import StoreError
from aftersale.models import (
    ChannelKind,
    Customer,
    Decision,
    DomainEvent,
    EventKind,
    Item,
    MessageState,
    Order,
    ShipmentRef,
    Status,
    TrackingEvent,
)
from aftersale.store import Store, is_url, open_store
from aftersale.store.records import DueCursor, DueMessage
from tests.support.postgres import PostgresCluster
from tests.support.servers import free_port

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
NUMBER = "642600027844200000000001"
DAY = timedelta(days=1)


def make_order() -> Order:
    customer = Customer(
        "C-1", "Anna", "anna@example.pl", None, "pl", "Europe/Warsaw", True, False, "PL"
    )
    item = Item("TV", "TV", "tv", 1, Decimal("10.00"), "PLN", 24)
    return Order(
        "NW-1", NOW - timedelta(hours=1), customer, (item,), (ShipmentRef(NUMBER, "inpost"),)
    )


@pytest.fixture
def store(store_target: str) -> Iterator[Store]:
    s = open_store(store_target)
    s.save_orders([make_order()], source="t", now=NOW)
    yield s
    s.close()


def queue(store: Store, n: int, due: datetime = NOW, rule: str = "r") -> list[str]:
    event = DomainEvent(EventKind.ORDER_PLACED, "NW-1", NOW - timedelta(hours=1))
    decided = [
        Decision(f"{rule}{i}", "thank_you", ChannelKind.EMAIL, "NW-1", f"{rule}{i}", due, event)
        for i in range(n)
    ]
    return queue_decisions(store, decided, {"NW-1": "C-1"}, run_id="r", now=NOW)


def test_a_path_opens_duckdb_and_memory_works_too(tmp_path: Path) -> None:
    with open_store(":memory:") as store:
        assert store.count("orders") == 0
    with open_store(str(tmp_path / "deep" / "a.duckdb")) as store:
        assert store.schema_version() >= 1
    assert (tmp_path / "deep" / "a.duckdb").exists()


def test_a_url_is_not_taken_for_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    target = "mysql://db.internal/aftersale"
    assert is_url(target)
    with pytest.raises(StoreError) as caught:
        open_store(target)
    assert str(caught.value) == (
        "mysql://db.internal/aftersale: unknown database URL scheme 'mysql'; AFTERSALE_DB "
        "is a DuckDB file path, :memory:, or a postgresql:// URL"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_postgresql_server_that_does_not_answer_is_waited_for_then_named() -> None:
    url = f"postgresql://shop:s3cret@127.0.0.1:{free_port()}/aftersale"
    with pytest.raises(StoreError) as caught:
        open_store(url, wait_s=0.5)
    assert str(caught.value) == (
        f"{url.replace('s3cret', '***')}: cannot connect to PostgreSQL (waited 1 s): "
        "Connection refused Is the server running on that host and accepting TCP/IP connections?"
    )


def test_a_postgresql_refusal_fails_at_once(postgres_cluster: PostgresCluster) -> None:
    url = postgres_cluster.url("no_such_database")
    with pytest.raises(StoreError) as caught:
        open_store(url, wait_s=30)
    assert str(caught.value) == (
        f'{url}: cannot connect to PostgreSQL: database "no_such_database" does not exist'
    )


def test_one_transaction_spans_states_scans_events_and_messages(store: Store) -> None:
    """The cycle commits a poll's outcome and the messages it causes together: a failure
    anywhere inside leaves none of it."""
    state = store.load_shipment(NUMBER)
    assert state is not None
    moved = replace(state, status=Status.IN_TRANSIT)
    scan = TrackingEvent(NOW, Status.IN_TRANSIT, "taken_by_courier", "taken by courier")
    shipped = DomainEvent(EventKind.SHIPPED, "NW-1", NOW, shipment_id=NUMBER)
    with pytest.raises(RuntimeError, match="killed"), store.transaction():
        store.save_shipment_states([moved])
        store.save_tracking_events([(NUMBER, scan)], NOW)
        store.record_domain_events([shipped], run_id="r", now=NOW)
        queue(store, 1)
        raise RuntimeError("killed")
    after = store.load_shipment(NUMBER)
    assert after is not None and after.status is Status.PENDING
    counts = {t: store.count(t) for t in ("tracking_events", "domain_events", "messages")}
    assert counts == {"tracking_events": 0, "domain_events": 0, "messages": 0}


class Counting:
    """A connection proxy, as a crash test installs one: counts the statements."""

    def __init__(self, con: Any) -> None:
        self._con = con
        self.statements: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)

    def execute(self, sql: str, *args: Any) -> Any:
        self.statements.append(sql.split()[0].upper())
        return self._con.execute(sql, *args)


def test_every_statement_passes_through_the_one_connection(store: Store) -> None:
    proxy = Counting(store.con)  # type: ignore[attr-defined]
    store.con = proxy  # type: ignore[attr-defined]
    with store.transaction():
        store.record_domain_events(
            [DomainEvent(EventKind.SHIPPED, "NW-1", NOW, shipment_id=NUMBER)], run_id="r", now=NOW
        )
        queue(store, 2)
    # DuckDB looks the keys up first; PostgreSQL's INSERT … RETURNING says what was new
    assert proxy.statements in (
        ["BEGIN", "SELECT", "INSERT", "SELECT", "INSERT", "COMMIT"],
        ["BEGIN", "INSERT", "INSERT", "COMMIT"],
    )
    assert store.count("messages") == 2 and proxy.statements[-1] == "SELECT"


def due_pages(store: Store, limit: int) -> list[list[DueMessage]]:
    """Every page of due messages, as dispatch reads them (leaving them pending)."""
    pages: list[list[DueMessage]] = []
    after = None
    while page := store.due_messages(NOW, limit=limit, after=after):
        pages.append(page)
        after = DueCursor.of(page[-1])
    return pages


def test_due_messages_come_in_pages_that_end(store: Store) -> None:
    queue(store, 5)
    queue(store, 1, due=NOW + timedelta(days=1), rule="tomorrow")
    pages = due_pages(store, limit=2)
    assert sorted(len(p) for p in pages) == [1, 2, 2]
    assert sorted(m.rule_id for p in pages for m in p) == ["r0", "r1", "r2", "r3", "r4"]
    assert all(m.state is MessageState.PENDING for m in store.list_messages())


def test_an_orders_messages_due_together_come_side_by_side(store: Store) -> None:
    """Dispatch reads each page's orders once: an order's messages due at one time come
    together whatever their (hashed) ids, the oldest due first, each message once."""
    placed = DomainEvent(EventKind.ORDER_PLACED, "NW-1", NOW - timedelta(hours=1))
    decided = [
        Decision(f"{o}-{i}", "thank_you", ChannelKind.EMAIL, o, f"{o}-{i}", NOW, placed)
        for o in ("NW-3", "NW-1", "NW-2")
        for i in range(3)
    ]
    decided.append(
        Decision("late", "thank_you", ChannelKind.SMS, "NW-3", "late", NOW - DAY, placed)
    )
    queue_decisions(
        store, decided, dict.fromkeys(("NW-1", "NW-2", "NW-3"), "C-1"), run_id="r", now=NOW
    )
    pages = due_pages(store, limit=2)
    assert [len(p) for p in pages] == [2, 2, 2, 2, 2]
    assert [m.order_id for p in pages for m in p] == [
        "NW-3",
        *["NW-1"] * 3,
        *["NW-2"] * 3,
        *["NW-3"] * 3,
    ]
    assert sorted(m.rule_id for p in pages for m in p) == sorted(d.rule_id for d in decided)


def test_a_message_without_an_order_is_refused(store: Store) -> None:
    """The due order compares (due_at, order_id, message_id) rows: a NULL order id would
    make the comparison NULL and a page skip or repeat messages, so none can be stored
    (every message is about an order: models.Decision)."""
    [message] = new_messages(
        [
            Decision(
                "r",
                "thank_you",
                ChannelKind.EMAIL,
                "NW-1",
                "k",
                NOW,
                DomainEvent(EventKind.ORDER_PLACED, "NW-1", NOW - timedelta(hours=1)),
            )
        ],
        {"NW-1": "C-1"},
        run_id="r",
    )
    orphan = replace(message, order_id=None)
    with pytest.raises((duckdb.ConstraintException, psycopg.errors.NotNullViolation)):
        store.queue_messages([orphan], NOW)
    assert store.count("messages") == 0


def test_shipments_of_leaves_out_the_parcels_the_caller_holds(store: Store) -> None:
    second = "642600027844200000000002"
    order = make_order()
    store.save_orders(
        [replace(order, order_id="NW-2", shipments=(ShipmentRef(second, "inpost"),))],
        source="t",
        now=NOW,
    )
    assert set(store.shipments_of(["NW-1", "NW-2"], leaving_out=[NUMBER])) == {second}
    # many orders: DuckDB scans the table instead of looking each up
    many = ["NW-1", "NW-2", *(f"X-{i}" for i in range(60))]
    assert set(store.shipments_of(many, leaving_out={second})) == {NUMBER}
    assert set(store.shipments_of(many)) == {NUMBER, second}
