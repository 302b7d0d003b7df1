"""The cycle's collector tuning is scoped to the cycle: undone afterwards, even when the
cycle fails, so the process (a Prefect worker, a test run) keeps its own settings."""

from __future__ import annotations

import gc

import pytest

from aftersale.cycle import fewer_collections


def test_collector_settings_come_back_after_the_cycle_even_when_it_fails() -> None:
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), fewer_collections():
        assert gc.get_threshold() == (50_000, 20, 20)
        assert gc.get_freeze_count() > 0  # what was loaded before is out of the collector's way
        raise RuntimeError("a stage failed")
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
