"""The PostgreSQL backend's connections: a psycopg pool, the one runner every statement
goes through, transactions, bulk inserts, migrations, and the lease owner this store is.

Statements run in autocommit on any pooled connection; `transaction()` pins one pooled
connection to the calling thread and runs BEGIN … COMMIT on it, so every statement inside
(and BEGIN and COMMIT themselves) passes through `self.con.execute`. As in the DuckDB
backend, `self.con` is set in one place, `open`, and a test can swap it for a proxy.

Several worker processes share one database. Each store is one lease owner: its name
is the `application_name` of all its connections, so a lease is free once it expires or
once PostgreSQL no longer lists a session of its owner (a killed worker's connections
close with it, and its leases are taken over at once).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Self

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from aftersale.errors import StoreError
from aftersale.store import without_password
from aftersale.store.backend import CLOSED, Backend, Params, known_table
from aftersale.store.columns import column_types
from aftersale.store.migrations import MIGRATIONS, migration_sql
from aftersale.store.postgres.dialect import PostgresDialect
from aftersale.store.rows import TABLES, to_db

log = logging.getLogger(__name__)
#: pg_advisory_xact_lock key held while migrating: workers starting together migrate once.
_MIGRATION_LOCK = 0x61667473  # "afts"
#: How long a claimed shipment or message stays with its worker unless the worker is gone.
DEFAULT_LEASE_S = 300.0


def lease_free(alias: str) -> str:
    """SQL true when row `alias` may be taken by this store (named parameter `me`): not
    leased, leased by this store, lease expired, or its owner has no session left."""
    return (
        f"({alias}.lease_owner IS NULL OR {alias}.lease_owner = %(me)s "
        f"OR {alias}.lease_until < now() OR NOT EXISTS (SELECT 1 FROM pg_stat_activity a "
        f"WHERE a.application_name = {alias}.lease_owner))"
    )


def lease_until() -> str:
    """SQL for a lease taken now (named parameter `lease_s`)."""
    return "now() + make_interval(secs => %(lease_s)s)"


class Runner:
    """Runs statements: on the connection the calling thread's transaction pinned, else
    on any pooled connection. Every statement of the store goes through `execute`."""

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool
        self._local = threading.local()

    def execute(self, sql: str, params: Params = None) -> list[tuple[Any, ...]]:
        pinned: psycopg.Connection | None = getattr(self._local, "conn", None)
        if pinned is not None:
            return _fetch(pinned.execute(sql, params))
        with self.pool.connection() as conn:
            return _fetch(conn.execute(sql, params))

    def copy(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        """COPY … FROM STDIN with `rows`; returns how many were written."""
        with self._connection() as conn, conn.cursor() as cur, cur.copy(sql) as copy:
            written = 0
            for row in rows:
                copy.write_row(row)
                written += 1
        return written

    def stream(self, sql: str, batch: int) -> Iterator[list[tuple[Any, ...]]]:
        """A large result in batches, through a server-side cursor."""
        with self._connection() as conn:
            conn.execute("BEGIN")
            try:
                with conn.cursor(name="aftersale_stream") as cur:
                    cur.execute(sql)
                    while rows := cur.fetchmany(batch):
                        yield rows
            finally:
                conn.execute("COMMIT")

    @contextmanager
    def pinned(self) -> Iterator[None]:
        """Statements of this thread run on one connection inside the block."""
        if getattr(self._local, "conn", None) is not None:
            raise StoreError("transactions do not nest")
        with self.pool.connection() as conn:
            self._local.conn = conn
            try:
                yield
            finally:
                self._local.conn = None

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection]:
        pinned: psycopg.Connection | None = getattr(self._local, "conn", None)
        if pinned is not None:
            yield pinned
            return
        with self.pool.connection() as conn:
            yield conn


def _fetch(cur: psycopg.Cursor[Any]) -> list[tuple[Any, ...]]:
    return cur.fetchall() if cur.description is not None else []


class Connection(Backend):
    """Holds the pool and the runner; the queries written once (aftersale/store/queries/)
    and this backend's own (messages.py, shipments.py, limits.py) run their statements
    on it."""

    dialect = PostgresDialect()

    def __init__(self, pool: ConnectionPool, url: str, owner: str, lease_s: float) -> None:
        self.pool = pool
        self.con: Any = Runner(pool)
        self.url = url
        #: this store's lease owner: the application_name of its sessions
        self.owner = owner
        self.lease_s = lease_s

    @classmethod
    def open(
        cls,
        url: str,
        *,
        wait_s: float = 60.0,
        lease_s: float = DEFAULT_LEASE_S,
        max_connections: int = 4,
        migrate: bool = True,
    ) -> Self:
        """Connect to the database at `url` (waiting up to `wait_s` for it) and migrate."""
        owner = f"aftersale {socket.gethostname()[:30]}:{os.getpid()}:{secrets.token_hex(3)}"
        _wait_for_server(url, wait_s)
        pool = ConnectionPool(
            url,
            min_size=1,
            max_size=max(1, max_connections),
            # every session in UTC: naive timestamps (leases too) mean the same to all workers
            kwargs={"autocommit": True, "application_name": owner, "options": "-c TimeZone=UTC"},
            # a connection the server dropped (restart, failover) is replaced, not used
            check=ConnectionPool.check_connection,
            name="aftersale",
            open=False,
        )
        try:
            pool.open(wait=True, timeout=max(wait_s, 5.0))
        except PoolTimeout as exc:
            pool.close()
            raise StoreError(f"{without_password(url)}: the connection pool did not fill") from exc
        store = cls(pool, url, owner, lease_s)
        if migrate:
            try:
                store.migrate()
            except BaseException:
                store.close()
                raise
        return store

    def close(self) -> None:
        self.pool.close()
        self.con = CLOSED

    # --- statements ----------------------------------------------------------

    def rows(self, sql: str, params: Params = None) -> list[tuple[Any, ...]]:
        """Run one statement and return all its rows."""
        try:
            return self.con.execute(sql, params)
        except psycopg.OperationalError as exc:
            raise StoreError(f"{without_password(self.url)}: {exc}") from exc

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self.con.pinned():
            self.execute("BEGIN")
            try:
                yield
            except BaseException:
                self.execute("ROLLBACK")
                raise
            self.execute("COMMIT")

    def lease_params(self, **params: Any) -> dict[str, Any]:
        """Named parameters for statements that take or honour leases."""
        return {"me": self.owner, "lease_s": self.lease_s, **params}

    def insert_unnest(
        self,
        table: str,
        types: Mapping[str, str],
        rows: Sequence[Mapping[str, Any]],
        tail: str = "",
    ) -> list[tuple[Any, ...]]:
        """Insert `rows` in one statement, one array parameter per column (`types`: column
        -> SQL type). `tail` adds ON CONFLICT / RETURNING. Array-typed columns travel as
        JSON text (unnest would flatten an array of arrays)."""
        if not rows:
            return []
        cols = list(types)
        exprs = [
            f"ARRAY(SELECT jsonb_array_elements_text(u.{c}::jsonb))::{types[c]}"
            if types[c].endswith("[]")
            else f"u.{c}"
            for c in cols
        ]
        arrays = [
            [_json_list(r[c]) for r in rows] if types[c].endswith("[]") else [r[c] for r in rows]
            for c in cols
        ]
        casts = ", ".join(
            "%s::text[]" if types[c].endswith("[]") else f"%s::{types[c]}[]" for c in cols
        )
        return self.rows(
            f"INSERT INTO {table} ({', '.join(cols)}) SELECT {', '.join(exprs)} "
            f"FROM unnest({casts}) AS u({', '.join(cols)}) {tail}",
            arrays,
        )

    def insert(self, table: str, rows: Sequence[Mapping[str, Any]], conflict: str = "") -> None:
        if rows:
            self.insert_unnest(table, column_types(table, rows[0]), rows, conflict)

    def insert_count(
        self, table: str, rows: Sequence[Mapping[str, Any]], conflict: str = ""
    ) -> int:
        if not rows:
            return 0
        types = column_types(table, rows[0])
        return len(self.insert_unnest(table, types, rows, f"{conflict} RETURNING 1"))

    def insert_new(self, table: str, rows: Sequence[Mapping[str, Any]], key: str) -> set[str]:
        """One INSERT … RETURNING: with several workers, the insert decides who wrote a
        row first, and only the rows this one wrote come back."""
        if not rows:
            return set()
        types = column_types(table, rows[0])
        tail = f"ON CONFLICT DO NOTHING RETURNING {key}"
        return {r[0] for r in self.insert_unnest(table, types, rows, tail)}

    @contextmanager
    def batch(
        self, table: str, rows: Sequence[Mapping[str, Any]]
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """One array parameter per column, zipped by unnest."""
        types = column_types(table, rows[0])
        columns = {c: (f"_c{i}", kind) for i, (c, kind) in enumerate(types.items())}
        yield (
            self.dialect.unnest("u", columns),
            {param: [r[c] for r in rows] for c, (param, _) in columns.items()},
        )

    # --- whole tables (aftersale store copy) ---------------------------------

    def read_table(
        self, table: str, columns: Sequence[str], batch: int = 10_000
    ) -> Iterator[list[tuple[Any, ...]]]:
        known_table(table)
        json_columns = {
            r[0]
            for r in self.rows(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = "
                "current_schema() AND table_name = %s AND data_type IN ('json', 'jsonb')",
                [table],
            )
        }
        select = ", ".join(f"{c}::text" if c in json_columns else c for c in columns)
        yield from self.con.stream(f"SELECT {select} FROM {table}", batch)

    def write_table(
        self, table: str, columns: Sequence[str], batches: Iterable[list[tuple[Any, ...]]]
    ) -> int:
        known_table(table)
        rows = (row for batch in batches for row in batch)
        with self.transaction():
            return int(self.con.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN", rows))

    def empty_tables(self) -> None:
        self.execute(f"TRUNCATE {', '.join(TABLES)}")

    # --- schema --------------------------------------------------------------

    def migrate(self) -> list[int]:
        """Apply the migrations this database has not seen, each in its own transaction,
        under an advisory lock: workers starting together apply each once."""
        applied = []
        for version, description, sql in MIGRATIONS:
            with self.transaction():
                self.execute("SELECT pg_advisory_xact_lock(%s)", [_MIGRATION_LOCK])
                self.execute(
                    "CREATE TABLE IF NOT EXISTS schema_version "
                    "(version INTEGER PRIMARY KEY, description VARCHAR, applied_at TIMESTAMP)"
                )
                if self.one("SELECT 1 FROM schema_version WHERE version = %s", [version]):
                    continue
                if statements := migration_sql(sql, "postgres"):
                    self.execute(statements)
                self.execute(
                    "INSERT INTO schema_version VALUES (%s, %s, %s)",
                    [version, description, to_db(datetime.now(UTC))],
                )
            applied.append(version)
        return applied


def _wait_for_server(url: str, wait_s: float, poll_s: float = 0.25) -> None:
    """Return once PostgreSQL accepts a connection to `url`; a server not answering (or
    still starting) is waited for up to `wait_s`, any other refusal fails at once."""
    started = time.monotonic()
    attempt = 0
    while True:
        try:
            psycopg.connect(url, connect_timeout=max(1, int(wait_s))).close()
            return
        except psycopg.OperationalError as exc:
            # libpq: 'connection to server at "h", port p failed: FATAL:  database "x" …'
            reason = " ".join(str(exc).split()).rsplit(" failed: ", 1)[-1]
            answered = reason.startswith("FATAL:")
            reason = reason.removeprefix("FATAL:").strip()
            waited = time.monotonic() - started
            starting = "starting up" in reason or "shutting down" in reason
            if (answered and not starting) or waited >= wait_s:
                raise StoreError(
                    f"{without_password(url)}: cannot connect to PostgreSQL"
                    f"{f' (waited {waited:.0f} s)' if attempt else ''}: {reason}"
                ) from None
            attempt += 1
            if attempt == 1 or attempt % 20 == 0:
                log.warning("PostgreSQL at %s not answering; waiting", without_password(url))
            time.sleep(poll_s)


def _json_list(value: Sequence[str] | None) -> str | None:
    return None if value is None else json.dumps(list(value))
