"""The fan-out's own logic: the workers' summaries added up into one, and its refusal of
a DuckDB store (one writer: nothing to fan out to). The runs it starts are ordinary
`aftersale-cycle` runs sharing the store through leases (tests/e2e/test_workers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from aftersale.errors import ConfigError
from flows.fanout import add_summaries, aftersale_fan_out, markdown

A = {
    "now": "2026-11-24T13:00:00+00:00",
    "polled": 40,
    "sent": 7,
    "poll_by_carrier": {"dhl": {"polled": 10, "errors": 1}, "ups": {"polled": 30}},
    "events_by_kind": {"shipped": 5},
    "poll_errors": ["dhl 1: timeout"],
    "degraded": [],
}
B = {
    "now": "2026-11-24T13:00:00+00:00",
    "polled": 60,
    "sent": 3,
    "poll_by_carrier": {"dhl": {"polled": 60}},
    "events_by_kind": {"shipped": 1, "delayed": 2},
    "poll_errors": [],
    "degraded": ["dhl down"],
}


def test_summaries_add_up_numbers_counts_and_lists() -> None:
    assert add_summaries([A, B]) == {
        "now": "2026-11-24T13:00:00+00:00",
        "polled": 100,
        "sent": 10,
        "poll_by_carrier": {"dhl": {"polled": 70, "errors": 1}, "ups": {"polled": 30}},
        "events_by_kind": {"shipped": 6, "delayed": 2},
        "poll_errors": ["dhl 1: timeout"],
        "degraded": ["dhl down"],
    }
    assert A["poll_by_carrier"]["dhl"] == {"polled": 10, "errors": 1}  # inputs untouched
    assert add_summaries([]) == {}


def test_the_artifact_has_a_row_per_worker_and_the_total() -> None:
    text = markdown("fan-out 2026-11-24 13:00 · abc123", [("w1", A), ("w2", B)])
    assert text.splitlines()[0] == "# fan-out 2026-11-24 13:00 · abc123: 2 workers"
    assert "| w1 | 40 | 0 | 0 | 0 | 7 | 0 | 0 | 0 |" in text
    assert text.splitlines()[-1] == "| **total** | 100 | 0 | 0 | 0 | 10 | 0 | 0 | 0 |"


def test_a_duckdb_store_is_refused(
    prefect_harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AFTERSALE_DB", str(tmp_path / "a.duckdb"))
    with pytest.raises(ConfigError, match="aftersale-fan-out needs a PostgreSQL store"):
        aftersale_fan_out(workers=2)
