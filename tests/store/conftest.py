"""The store suite runs on both backends: `store_target` is a fresh DuckDB file, then a
fresh database on the session's PostgreSQL server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(params=["duckdb", "postgres"])
def store_target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "duckdb":
        yield str(tmp_path / "store.duckdb")
        return
    with request.getfixturevalue("postgres_cluster").database() as url:
        yield url
