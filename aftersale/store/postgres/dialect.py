"""PostgreSQL's words for the statements written once (aftersale/store/backend.py,
Dialect)."""

from __future__ import annotations

from collections.abc import Mapping

from aftersale.store.backend import Dialect


class PostgresDialect(Dialect):
    param = "%s"
    empty_list = "'{}'"
    release_lease = ", lease_owner = NULL, lease_until = NULL"

    def named(self, name: str, cast: str = "") -> str:
        return f"%({name})s::{cast}" if cast else f"%({name})s"

    def in_list(self, expr: str, param: str | None = None) -> str:
        return f"{expr} = ANY({param or self.param})"

    def not_in_list(self, expr: str, param: str | None = None) -> str:
        return f"{expr} <> ALL({param or self.param})"

    def interval(self, n: str, unit: str) -> str:
        return f"make_interval({unit} => {n})"

    def length(self, expr: str) -> str:
        return f"cardinality({expr})"

    def unnest(self, alias: str, columns: Mapping[str, tuple[str, str]]) -> str:
        arrays = ", ".join(f"%({param})s::{kind}[]" for param, kind in columns.values())
        return f"unnest({arrays}) AS {alias}({', '.join(columns)})"
