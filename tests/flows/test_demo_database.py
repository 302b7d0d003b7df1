"""`AFTERSALE_DB=postgresql://… make demo` runs on that database: an earlier demo's orders
are cleared first, a shop's never."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from aftersale.errors import StoreError
from aftersale.intake.files import import_file
from aftersale.settings import PROJECT_ROOT
from aftersale.store import open_store
from carriers.registry import DIRECTORY
from flows.demo import demo_database, empty_for_demo
from tests.store.test_seam import make_order
from tests.support.postgres import PostgresCluster

ORDERS = PROJECT_ROOT / "examples" / "orders.ndjson"
NOW = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)


def test_the_demo_uses_a_postgresql_url_and_keeps_duckdb_in_its_workdir() -> None:
    assert demo_database({"AFTERSALE_DB": "postgresql://shop@db/demo"}) == (
        "postgresql://shop@db/demo"
    )
    assert demo_database({"AFTERSALE_DB": "var/aftersale.duckdb"}) is None
    assert demo_database({}) is None


def test_an_earlier_demo_is_cleared_and_a_shops_data_is_refused(
    postgres_cluster: PostgresCluster,
) -> None:
    with postgres_cluster.database() as url:
        with open_store(url) as store:
            import_file(store, ORDERS, now=NOW, detect=DIRECTORY)
        empty_for_demo(url, ORDERS)
        with open_store(url) as store:
            assert store.count("orders") == store.count("shipments") == 0
            import_file(store, ORDERS, now=NOW, detect=DIRECTORY)
            store.save_orders([make_order()], source="shop", now=NOW)
        held = len(ORDERS.read_text(encoding="utf-8").splitlines()) + 1  # the demo's and one
        with pytest.raises(StoreError) as caught:
            empty_for_demo(url, ORDERS)
        assert str(caught.value) == (
            f"{url} holds {held} orders, not all the demo's; the demo needs an empty database "
            "(or one an earlier demo used)"
        )
        with open_store(url) as store:
            assert store.count("orders") == held
