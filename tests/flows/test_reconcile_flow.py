"""The `aftersale-shopify-reconcile` flow against the local Admin API fake: its summary
and rejected orders as artifacts, its result the counts; a shop without Shopify gets a run
that does nothing and says so."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from aftersale.store import open_store
from tests.flows.test_ops_flows import artifact_keys
from tests.support.shopify_admin import FakeShop, FakeShopifyAdmin, load_orders

NOW = datetime(2026, 11, 25, tzinfo=UTC)


def test_the_flow_applies_the_shops_changes_and_publishes_its_summary(
    prefect_harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.reconcile import aftersale_shopify_reconcile

    db = tmp_path / "a.duckdb"
    monkeypatch.setenv("AFTERSALE_DB", str(db))
    for name in ("SHOPIFY_SHOP", "SHOPIFY_ADMIN_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    idle = aftersale_shopify_reconcile(now=NOW)
    monkeypatch.setenv("SHOPIFY_SHOP", "northwind")
    monkeypatch.setenv("SHOPIFY_ADMIN_TOKEN", "shpat_test")
    with FakeShopifyAdmin(FakeShop(load_orders())) as fake:
        monkeypatch.setenv("AFTERSALE_SHOPIFY_ADMIN_URL", fake.url)
        state = aftersale_shopify_reconcile(now=NOW, return_state=True)
    result = state.result()
    assert idle == {"connected": False}
    assert {k: result[k] for k in ("connected", "seen", "new", "updated", "rejected")} == {
        "connected": True,
        "seen": 5,
        "new": 4,
        "updated": 0,
        "rejected": 1,
    }
    assert {"shopify-reconcile-summary", "shopify-reconcile-rejected"} <= artifact_keys(
        state.state_details.flow_run_id
    )
    with open_store(str(db)) as store:
        assert store.sync_checkpoint("shopify-admin:northwind") == datetime(
            2026, 11, 24, 19, tzinfo=UTC
        )
