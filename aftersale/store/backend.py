"""The seam inside the store: what the queries written once (aftersale/store/queries/) ask
of a backend, and the words in which the backends' SQL differs.

A backend folder (duckdb/, postgres/) holds only what differs: its connection and
transactions, its bulk writes (Arrow batches for DuckDB; array parameters and COPY for
PostgreSQL), its leases, and its `Dialect`. Every statement both run alike is written
once with the dialect's words, e.g. `f"WHERE {d.in_list('order_id')}"`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, ClassVar, Self

from aftersale.errors import StoreError
from aftersale.store.rows import TABLES

Params = Sequence[Any] | Mapping[str, Any] | None


class Dialect(ABC):
    """The words a backend's SQL spells its own way. `param` is the positional parameter;
    `named(n)` the named one (params passed as a mapping). An array parameter's element
    type (`cast`) is for PostgreSQL, which cannot always infer it; DuckDB takes it from
    the value."""

    #: a positional parameter
    param: ClassVar[str]
    #: an empty array literal (of VARCHAR)
    empty_list: ClassVar[str]
    #: what a statement settling leased rows (messages, shipments) adds to its SET:
    #: PostgreSQL's workers hold leases; DuckDB has one writer and no lease columns
    release_lease: ClassVar[str]

    def params(self, n: int) -> str:
        """`n` positional parameters, comma separated (a VALUES list)."""
        return ", ".join([self.param] * n)

    @abstractmethod
    def named(self, name: str, cast: str = "") -> str:
        """The named parameter `name`, typed `cast` where the backend needs it."""

    @abstractmethod
    def in_list(self, expr: str, param: str | None = None) -> str:
        """SQL true when `expr` is one of the array parameter `param` (positional when
        None)."""

    @abstractmethod
    def not_in_list(self, expr: str, param: str | None = None) -> str:
        """SQL true when `expr` is none of the array parameter `param`."""

    @abstractmethod
    def interval(self, n: str, unit: str) -> str:
        """An interval of `n` (an SQL expression) `unit`s: "days" or "months"."""

    @abstractmethod
    def length(self, expr: str) -> str:
        """The number of elements of the array `expr`."""

    @abstractmethod
    def unnest(self, alias: str, columns: Mapping[str, tuple[str, str]]) -> str:
        """A table `alias` from equally long array parameters zipped together, for FROM:
        `columns` maps each column to (named parameter, element type)."""


class Backend(ABC):
    """One store's database connection, as the shared queries use it. A statement runs in
    the calling thread's `transaction()` when one is open, else commits on its own."""

    dialect: ClassVar[Dialect]

    @abstractmethod
    def rows(self, sql: str, params: Params = None) -> list[tuple[Any, ...]]:
        """Run one statement and return all its rows."""

    def rows_in(
        self,
        select: str,
        column: str,
        values: Iterable[Any],
        rest: str = "",
        params: Sequence[Any] = (),
    ) -> list[tuple[Any, ...]]:
        """The rows of `select` (SELECT … FROM …) whose `column` is one of `values`, `rest`
        adding conditions (with their positional `params`) or an ORDER BY: one statement,
        none for no values."""
        wanted = list(set(values))
        if not wanted:
            return []
        return self.rows(f"{select} WHERE {self.dialect.in_list(column)} {rest}", [wanted, *params])

    def execute(self, sql: str, params: Params = None) -> None:
        """Run one statement whose rows (if any) nobody needs."""
        self.rows(sql, params)

    def one(self, sql: str, params: Params = None) -> tuple[Any, ...] | None:
        """Run one statement and return its first row (None when it has none)."""
        found = self.rows(sql, params)
        return found[0] if found else None

    @abstractmethod
    def transaction(self) -> AbstractContextManager[None]:
        """Everything written inside commits together, or (on any exception) not at all."""

    @abstractmethod
    def insert(self, table: str, rows: Sequence[Mapping[str, Any]], conflict: str = "") -> None:
        """Insert `rows` (dicts with the same columns) in bulk, in one statement; `conflict`
        is an ON CONFLICT clause."""

    @abstractmethod
    def insert_count(
        self, table: str, rows: Sequence[Mapping[str, Any]], conflict: str = ""
    ) -> int:
        """`insert`, returning how many rows it wrote (inserted, or updated by an upsert)."""

    @abstractmethod
    def insert_new(self, table: str, rows: Sequence[Mapping[str, Any]], key: str) -> set[str]:
        """Insert the rows whose `key` column is not stored yet; returns those keys."""

    def update_rows(
        self,
        table: str,
        rows: Sequence[Mapping[str, Any]],
        sets: str,
        *,
        where: str = "",
        params: Mapping[str, Any] | None = None,
        returning: str = "",
    ) -> list[tuple[Any, ...]]:
        """UPDATE `table` (as `t`) from `rows` (dicts with the same columns, as `u`) in one
        statement, each row matched on its first column; `sets` and `where` (a further
        condition) may read both and the named `params`. Returns the `returning` columns
        of the rows updated (nothing for no rows: no statement)."""
        if not rows:
            return []
        known_table(table)
        key = next(iter(rows[0]))
        with self.batch(table, rows) as (source, batch_params):
            sql = f"UPDATE {table} t SET {sets} FROM {source} WHERE t.{key} = u.{key}"
            if where:
                sql += f" AND {where}"
            if returning:
                sql += f" RETURNING {returning}"
            return self.rows(sql, {**batch_params, **(params or {})} or None)

    @abstractmethod
    def batch(
        self, table: str, rows: Sequence[Mapping[str, Any]]
    ) -> AbstractContextManager[tuple[str, dict[str, Any]]]:
        """`rows` (dicts with the same columns of `table`, typed by
        aftersale/store/columns.py) as a table `u` a statement inside the block may read:
        (its FROM item, the named parameters it needs)."""

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def count(self, table: str) -> int:
        known_table(table)
        row = self.one(f"SELECT count(*) FROM {table}")
        return int(row[0]) if row else 0

    def table_columns(self, table: str) -> list[str]:
        """The columns of one of the store's tables, in their order."""
        known_table(table)
        rows = self.rows(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = "
            f"current_schema() AND table_name = {self.dialect.param} ORDER BY ordinal_position",
            [table],
        )
        return [r[0] for r in rows]

    def schema_version(self) -> int:
        """The last migration applied; 0 for a database never migrated."""
        exists = self.one(
            "SELECT count(*) FROM information_schema.tables "
            "WHERE table_schema = current_schema() AND table_name = 'schema_version'"
        )
        if not exists or not exists[0]:
            return 0
        row = self.one("SELECT max(version) FROM schema_version")
        return int(row[0]) if row and row[0] is not None else 0


def known_table(table: str) -> None:
    """Table names are formatted into SQL: only the store's own pass."""
    if table not in TABLES:
        raise StoreError(f"unknown table {table!r}")


class _Closed:
    def __getattr__(self, name: str) -> Any:
        raise StoreError("this store is closed")


#: What a closed store's connection becomes: any use says the store is closed.
CLOSED: Any = _Closed()
