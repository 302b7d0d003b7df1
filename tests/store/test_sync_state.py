"""Reconcile checkpoints on both backends: none before the first, one per source, never
moving back, and carried along by `aftersale store copy`."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from aftersale.store import open_store
from aftersale.store.transfer import copy_store
from tests.store.test_store import NOW


def test_a_checkpoint_per_source_that_never_moves_back(store_target: str) -> None:
    shop, other = "shopify-admin:northwind", "shopify-admin:southwind"
    with open_store(store_target) as store:
        assert store.sync_checkpoint(shop) is None
        store.save_sync_checkpoint(shop, NOW, NOW)
        store.save_sync_checkpoint(other, NOW - timedelta(days=1), NOW)
        store.save_sync_checkpoint(shop, NOW - timedelta(hours=1), NOW)  # an older run's
        assert store.sync_checkpoint(shop) == NOW
        store.save_sync_checkpoint(shop, NOW + timedelta(minutes=5), NOW)
    with open_store(store_target) as store:
        assert store.sync_checkpoint(shop) == NOW + timedelta(minutes=5)
        assert store.sync_checkpoint(other) == NOW - timedelta(days=1)
        assert store.count("sync_state") == 2


def test_store_copy_carries_the_checkpoints(tmp_path: Path) -> None:
    with open_store(str(tmp_path / "a.duckdb")) as source:
        source.save_sync_checkpoint("shopify-admin:northwind", NOW, NOW)
        with open_store(str(tmp_path / "b.duckdb")) as target:
            counts = {c.table: (c.source, c.target) for c in copy_store(source, target)}
            assert counts["sync_state"] == (1, 1)
            assert target.sync_checkpoint("shopify-admin:northwind") == NOW
