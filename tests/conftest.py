"""Suite-wide settings: Prefect quiet and offline-friendly before anything imports it."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.support.postgres import PostgresCluster, running_cluster

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """One throwaway PostgreSQL server for the whole session (tests/support/postgres.py)."""
    with running_cluster() as cluster:
        if cluster is None:
            pytest.skip("PostgreSQL is not installed (`make test` installs Debian's postgresql)")
        yield cluster
