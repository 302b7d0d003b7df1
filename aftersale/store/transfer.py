"""Copy every table of one store into another (a shop moving from DuckDB to PostgreSQL),
then count the rows on both sides. Through the store protocols only: either backend can
be the source or the target."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aftersale.errors import StoreError
from aftersale.store.protocols import Store
from aftersale.store.rows import TABLES


@dataclass(frozen=True, slots=True)
class TableCount:
    table: str
    source: int
    target: int

    @property
    def same(self) -> bool:
        return self.source == self.target


def copy_store(
    source: Store,
    target: Store,
    *,
    batch: int = 10_000,
    progress: Callable[[str, int], None] | None = None,
) -> list[TableCount]:
    """Copy each table (the columns both sides have) into `target`, which must be empty,
    each table in one transaction; returns the row counts of both sides per table."""
    held = {t: n for t in TABLES if (n := target.count(t))}
    if held:
        listed = ", ".join(f"{n} {t}" for t, n in held.items())
        raise StoreError(f"the target already holds data ({listed}); copy into an empty database")
    for table in TABLES:
        wanted = set(target.table_columns(table))
        columns = [c for c in source.table_columns(table) if c in wanted]
        written = target.write_table(table, columns, source.read_table(table, columns, batch))
        if progress is not None:
            progress(table, written)
    return [TableCount(t, source.count(t), target.count(t)) for t in TABLES]
