"""The store seam: protocols per aggregate (protocols.py), the values they exchange
(records.py), one folder per backend, and `open_store`, which picks the backend from
the target AFTERSALE_DB names: a file path or `:memory:` (DuckDB), or a URL.

Importing this package loads no database driver; `open_store` imports the backend.
"""

from __future__ import annotations

import re
from pathlib import Path

from aftersale.errors import StoreError
from aftersale.store.protocols import Store

__all__ = ["Store", "is_url", "open_store", "without_password"]

_URL = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://")
_POSTGRES_SCHEMES = ("postgresql", "postgres")


def is_url(target: str | Path) -> bool:
    """True when `target` is a database URL rather than a file path."""
    return isinstance(target, str) and _URL.match(target) is not None


def open_store(
    target: str | Path,
    *,
    wait_s: float = 60.0,
    poll_s: float = 0.5,
    lease_s: float | None = None,
    migrate: bool = True,
) -> Store:
    """Open (and, unless told not to, migrate) the store `target` names. A DuckDB file
    held by another process, or a PostgreSQL server not answering yet, is waited for up
    to `wait_s`; StoreError says what is wrong otherwise. `lease_s` is how long work a
    PostgreSQL worker claims stays its own (DuckDB has one writer and no leases)."""
    if isinstance(target, str) and (match := _URL.match(target)):
        scheme = match["scheme"].lower()
        if scheme in _POSTGRES_SCHEMES:
            from aftersale.store.postgres.connection import DEFAULT_LEASE_S
            from aftersale.store.postgres.store import PostgresStore

            return PostgresStore.open(
                target,
                wait_s=wait_s,
                lease_s=DEFAULT_LEASE_S if lease_s is None else lease_s,
                migrate=migrate,
            )
        raise StoreError(
            f"{without_password(target)}: unknown database URL scheme {scheme!r}; "
            "AFTERSALE_DB is a DuckDB file path, :memory:, or a postgresql:// URL"
        )
    from aftersale.store.duckdb.store import DuckDBStore

    return DuckDBStore.open(target, wait_s=wait_s, poll_s=poll_s, migrate=migrate)


def without_password(url: str) -> str:
    """A database URL fit for logs and messages: its password replaced by ***."""
    return re.sub(r"(://[^/:@]*):[^/@]*@", r"\1:***@", url)
