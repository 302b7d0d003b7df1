"""The one DuckDB connection of a store: open (waiting for the file lock), migrate,
transactions, bulk inserts, close.

DuckDB lets one process hold a file; while it does, no other process can even read it.
`Connection.open` therefore waits with a bounded, logged retry and then fails with
`StoreLockedError` saying who to wait for, never touching the file meanwhile.

Every statement of the store goes through `Connection.rows`, the one call of
`self.con.execute` (Arrow batches through `self.con.register` / `unregister`), and
`self.con` is set in one place, `open`: a test can swap it for a proxy
(`store.con = Proxy(store.con)`) and see every statement, BEGIN and COMMIT included.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

import duckdb
import pyarrow as pa

from aftersale.errors import StoreError, StoreLockedError
from aftersale.store.backend import CLOSED, Backend, Params, known_table
from aftersale.store.columns import column_types
from aftersale.store.duckdb.dialect import DuckDBDialect
from aftersale.store.migrations import MIGRATIONS, migration_sql
from aftersale.store.rows import TABLES, to_db

log = logging.getLogger(__name__)

_LOCK_TEXT = "Could not set lock"
#: A join with a batch of up to this many keys (a page of dispatch's claims and results,
#: aftersale/store/queries/messages.py) becomes a lookup in the key's index instead of a
#: scan of the table: DuckDB's default, 50, makes a batch of 500 cost in proportion to the
#: table's size.
_INDEX_KEYS = 1024
#: Settings of every connection. One thread: the store's statements are a page's
#: (at most a few thousand rows), where a second thread buys little, while each thread
#: keeps its own buffers in a checkpoint and a scan. A 40,000-shipment cycle's peak was
#: 32 MB lower with one thread (212 against 244 MB over its start), its growth from
#: 10,000 shipments 1.9 against 2.5 KB a shipment, at the same user CPU (bench/cycle.py,
#: docs/operations.md "Benchmarks"). A large one-off statement (an import of a big file,
#: a report over years) takes longer by up to the number of cores it no longer uses.
_CONFIG: dict[str, str | bool | int | float | list[str]] = {
    "dynamic_or_filter_threshold": _INDEX_KEYS,
    "threads": 1,
}
#: A read of more keys than this scans its table instead (`Connection.rows_in`).
_SCAN_KEYS = 50


def make_private(path: Path) -> None:
    """The database holds names, emails and phones: owner-only, whatever the umask, and so
    are the files this process creates next to it (the WAL, the outbox, the spool)."""
    os.umask(os.umask(0o077) | 0o077)
    for file in (path, path.with_name(path.name + ".wal")):
        if file.exists():
            os.chmod(file, 0o600)


#: Arrow's type for each SQL type of aftersale/store/columns.py
_ARROW_TYPES = {
    "varchar": pa.string(),
    "json": pa.string(),
    "timestamp": pa.timestamp("us"),
    "date": pa.date32(),
    "integer": pa.int32(),
    "boolean": pa.bool_(),
    "varchar[]": pa.list_(pa.string()),
}


def arrow_schema(table: str, columns: Iterable[str]) -> pa.Schema:
    """The Arrow schema of a batch of these columns of `table` (aftersale/store/columns.py)."""
    return pa.schema([(c, _ARROW_TYPES[t]) for c, t in column_types(table, columns).items()])


class Connection(Backend):
    """Holds the DuckDB connection; the queries written once (aftersale/store/queries/) and
    this backend's own (messages.py, shipments.py) run their statements on it."""

    dialect = DuckDBDialect()

    def __init__(self, con: duckdb.DuckDBPyConnection, path: str) -> None:
        self.con = con
        self.path = path
        self._depth = 0  # open transaction() blocks: only the outermost one commits

    @classmethod
    def open(
        cls, path: Path | str, *, wait_s: float = 60.0, poll_s: float = 0.5, migrate: bool = True
    ) -> Self:
        """Open (creating it if need be) and migrate the DuckDB file at `path`."""
        path = str(path)
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        attempt = 0
        while True:
            try:
                con = duckdb.connect(path, config=_CONFIG)
                break
            except duckdb.IOException as exc:
                if _LOCK_TEXT not in str(exc):
                    raise StoreError(f"{path}: cannot open the database: {exc}") from exc
                waited = time.monotonic() - started
                if waited >= wait_s:
                    raise StoreLockedError(path, waited, str(exc).splitlines()[0]) from exc
                attempt += 1
                if attempt == 1 or attempt % 20 == 0:
                    log.warning(
                        "%s is held by another process; waiting (%.0f s so far)", path, waited
                    )
                time.sleep(poll_s)
        store = cls(con, path)
        if path != ":memory:":
            make_private(Path(path))
        if migrate:
            store.migrate()
        return store

    def shared_limits(self) -> None:
        """One process holds the file: its own token buckets are the carriers' limits."""
        return None

    def close(self) -> None:
        self.con.close()
        # Drop the handle too: something (a Prefect task's parameters, a traceback) may keep
        # this store alive until exit, where DuckDB would report the connection as leaked.
        self.con = CLOSED

    # --- statements ----------------------------------------------------------

    def rows(self, sql: str, params: Params = None) -> list[tuple[Any, ...]]:
        """Run one statement and return all its rows. Every statement of the store runs
        here, and is read to the end: DuckDB refuses other work on a connection (an Arrow
        registration) while a result is half read."""
        return self.con.execute(sql, params).fetchall()

    def rows_in(
        self,
        select: str,
        column: str,
        values: Iterable[Any],
        rest: str = "",
        params: Sequence[Any] = (),
    ) -> list[tuple[Any, ...]]:
        """A read of many keys (a dispatch page's orders, parcels, scans, events) scans the
        table and joins it to the keys instead of fetching each row through the key's
        index: DuckDB fetches an indexed row for ~10 µs, more as the table grows, and scans
        a key column at ~0.05 µs a row (bench/store.py: 1,000 orders by id out of 50,000,
        19 ms through the index, 3.5 ms by a scan). Outside a transaction only: the setting
        is put back after the read, which a transaction aborted by a failed read refuses."""
        wanted = list(set(values))
        if len(wanted) <= _SCAN_KEYS or self._depth:
            return super().rows_in(select, column, wanted, rest, params)
        self.execute("SET dynamic_or_filter_threshold = 0")
        try:
            return super().rows_in(select, column, wanted, rest, params)
        finally:
            self.execute(f"SET dynamic_or_filter_threshold = {_INDEX_KEYS}")

    @contextmanager
    def arrow(self, name: str, table: pa.Table) -> Iterator[None]:
        """`table` is visible to statements as `name` inside the block."""
        self.con.register(name, table)
        try:
            yield
        except BaseException:
            # A statement that failed aborted the transaction it ran in, which refuses
            # the unregister; its ROLLBACK, which follows, drops the registration.
            with suppress(duckdb.TransactionException):
                self.con.unregister(name)
            raise
        self.con.unregister(name)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One transaction; a block inside another joins it (the outer one commits)."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self.execute("BEGIN TRANSACTION")
        self._depth = 1
        try:
            yield
        except BaseException:
            self.execute("ROLLBACK")
            raise
        else:
            self.execute("COMMIT")
        finally:
            self._depth = 0

    def insert_rows(self, table: str, rows: Sequence[Mapping[str, Any]], conflict: str = "") -> int:
        """Bulk insert through Arrow (types inferred from the values); returns how many
        rows were actually inserted."""
        if not rows:
            return 0
        batch = pa.Table.from_pylist(list(rows))
        cols = ", ".join(batch.column_names)
        with self.arrow("_batch", batch):
            result = self.one(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM _batch {conflict}")
        return int(result[0]) if result else 0

    def insert(self, table: str, rows: Sequence[Mapping[str, Any]], conflict: str = "") -> None:
        self.insert_rows(table, rows, conflict)

    def insert_count(
        self, table: str, rows: Sequence[Mapping[str, Any]], conflict: str = ""
    ) -> int:
        return self.insert_rows(table, rows, conflict)

    def insert_new(self, table: str, rows: Sequence[Mapping[str, Any]], key: str) -> set[str]:
        """Looks the keys up first, then inserts the rest. The conflict names its key: a
        bare ON CONFLICT DO NOTHING on a table with two unique keys (messages) costs DuckDB
        a pass whose cost grows with the table (bench/store.py: 0.5 s for a page's 4,500
        messages at 10k orders, 2.3 s at 50k; 30 ms with the key named)."""
        if not rows:
            return set()
        known_table(table)
        seen = {
            r[0]
            for r in self.rows(
                f"SELECT {key} FROM {table} WHERE {self.dialect.in_list(key)}",
                [[r[key] for r in rows]],
            )
        }
        fresh = [r for r in rows if r[key] not in seen]
        self.insert_rows(table, fresh, f"ON CONFLICT ({key}) DO NOTHING")
        return {r[key] for r in fresh}

    @contextmanager
    def batch(
        self, table: str, rows: Sequence[Mapping[str, Any]]
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """An Arrow batch: a join with it on the key is an index lookup (`_CONFIG`)."""
        with self.arrow(
            "_rows", pa.Table.from_pylist(list(rows), schema=arrow_schema(table, rows[0]))
        ):
            yield "_rows u", {}

    # --- whole tables (aftersale store copy) ---------------------------------

    def read_table(
        self, table: str, columns: Sequence[str], batch: int = 10_000
    ) -> Iterator[list[tuple[Any, ...]]]:
        known_table(table)
        cursor = self.con.execute(f"SELECT {', '.join(columns)} FROM {table}")
        while rows := cursor.fetchmany(batch):
            yield rows

    def write_table(
        self, table: str, columns: Sequence[str], batches: Iterable[list[tuple[Any, ...]]]
    ) -> int:
        known_table(table)
        written = 0
        with self.transaction():
            for rows in batches:
                written += self.insert_rows(
                    table, [dict(zip(columns, r, strict=True)) for r in rows]
                )
        return written

    def empty_tables(self) -> None:
        with self.transaction():
            for table in TABLES:
                self.execute(f"DELETE FROM {table}")

    # --- schema --------------------------------------------------------------

    def migrate(self) -> list[int]:
        """Apply the migrations this file has not seen yet, each in its own transaction."""
        self.execute(
            "CREATE TABLE IF NOT EXISTS schema_version "
            "(version INTEGER PRIMARY KEY, description VARCHAR, applied_at TIMESTAMP)"
        )
        done = {r[0] for r in self.rows("SELECT version FROM schema_version")}
        applied = []
        for version, description, sql in MIGRATIONS:
            if version in done:
                continue
            with self.transaction():
                if statements := migration_sql(sql, "duckdb"):
                    self.execute(statements)
                self.execute(
                    "INSERT INTO schema_version VALUES (?, ?, ?)",
                    [version, description, to_db(datetime.now(UTC))],
                )
            applied.append(version)
        return applied
