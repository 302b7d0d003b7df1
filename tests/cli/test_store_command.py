"""`aftersale store migrate` and `aftersale store copy`: a shop's DuckDB store moves into
PostgreSQL whole (same rows, same values), counted on both sides."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aftersale.cli.app import app
from aftersale.dispatch.messages import queue_decisions
from aftersale.intake.files import import_file
from aftersale.models import (
    ChannelKind,
    Decision,
    DomainEvent,
    EventKind,
    Status,
    TrackingEvent,
)
from aftersale.settings import PROJECT_ROOT
from aftersale.store import Store, open_store
from aftersale.store.migrations import MIGRATIONS
from aftersale.store.records import Suppression
from carriers.registry import DIRECTORY
from tests.support.postgres import PostgresCluster

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def fill(store: Store, tmp_path: Path) -> None:
    """A bit of everything a running shop has: orders, a rejected row, scans, events,
    messages, a suppression and a run."""
    import_file(store, PROJECT_ROOT / "examples" / "orders.ndjson", now=NOW, detect=DIRECTORY)
    bad = tmp_path / "bad.ndjson"
    bad.write_text('{"order_id": "X"}\n')
    import_file(store, bad, now=NOW, detect=DIRECTORY)
    shipment = store.list_shipments()[0]
    order_id = shipment.order_id
    scan = TrackingEvent(NOW, Status.IN_TRANSIT, "taken_by_courier", "taken by courier", "Waw")
    store.save_tracking_events([(shipment.shipment_id, scan)], NOW)
    event = DomainEvent(
        EventKind.SHIPPED, order_id, NOW, shipment_id=shipment.shipment_id, facts={"at": NOW}
    )
    store.record_domain_events([event], run_id="r", now=NOW)
    decision = Decision("shipped", "shipped", ChannelKind.EMAIL, order_id, "k1", NOW, event)
    customers = store.customer_ids_of([order_id])
    queue_decisions(store, [decision], customers, run_id="r", now=NOW)
    store.put_suppression(Suppression("a@example.pl", ChannelKind.EMAIL, "bounce", NOW))
    store.start_run("r", "cycle", NOW)
    store.finish_run("r", {"sent": 0, "nested": {"a": [1, 2]}})


def snapshot(store: Store) -> dict[str, object]:
    shipments = store.list_shipments()
    return {
        "orders": store.load_orders(s.order_id for s in shipments),
        "shipments": shipments,
        "scans": store.tracking_events_of(s.shipment_id for s in shipments),
        "events": store.domain_events_between(NOW - timedelta(days=1), NOW + timedelta(days=1)),
        "messages": store.list_messages(),
        "suppressions": store.list_suppressions(),
        "runs": [(r.run_id, r.kind, r.clock, r.summary) for r in store.list_runs()],
        "rejections": store.count("rejections"),
    }


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["store", *args])
    return result.exit_code, result.stdout + result.stderr


def test_migrate_creates_then_reports_up_to_date(tmp_path: Path) -> None:
    db = str(tmp_path / "new.duckdb")
    latest = MIGRATIONS[-1][0]
    code, out = cli("migrate", "--db", db)
    assert code == 0
    assert out.splitlines()[0].startswith("applied migration 1: orders, customers")
    assert out.splitlines()[-1] == f"{db}: schema version 0 -> {latest}"
    assert cli("migrate", "--db", db) == (0, f"{db}: schema version {latest}, up to date\n")


def test_a_duckdb_store_is_copied_into_postgresql_whole(
    tmp_path: Path, postgres_cluster: PostgresCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = str(tmp_path / "shop.duckdb")
    with open_store(source) as store:
        fill(store, tmp_path)
        before = snapshot(store)
        customers, orders = store.count("customers"), store.count("orders")
    monkeypatch.setenv("AFTERSALE_DB", source)
    with postgres_cluster.database() as url:
        code, out = cli("copy", "--to", url)
        assert code == 0, out
        assert f"copied {orders} rows of orders" in out
        assert out.splitlines()[-1] == f"copied: every table has the same row count in {url}"
        with open_store(url) as store:
            assert snapshot(store) == before
        # once is enough: a second copy would double the rows
        code, out = cli("copy", "--to", url)
        assert code == 1
        held = f"error: the target already holds data ({customers} customers, {orders} orders"
        assert out.startswith(held)
