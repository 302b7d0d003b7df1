"""DuckDB's words for the statements written once (aftersale/store/backend.py, Dialect)."""

from __future__ import annotations

from collections.abc import Mapping

from aftersale.store.backend import Dialect


class DuckDBDialect(Dialect):
    param = "?"
    empty_list = "[]"
    release_lease = ""

    def named(self, name: str, cast: str = "") -> str:
        return f"${name}"

    def in_list(self, expr: str, param: str | None = None) -> str:
        return f"{expr} IN (SELECT unnest({param or self.param}))"

    def not_in_list(self, expr: str, param: str | None = None) -> str:
        return f"{expr} NOT IN (SELECT unnest({param or self.param}))"

    def interval(self, n: str, unit: str) -> str:
        return f"to_{unit}({n})"

    def length(self, expr: str) -> str:
        return f"len({expr})"

    def unnest(self, alias: str, columns: Mapping[str, tuple[str, str]]) -> str:
        # unnest() calls side by side in one SELECT zip their lists
        zipped = ", ".join(f"unnest(${param}) AS {c}" for c, (param, _) in columns.items())
        return f"(SELECT {zipped}) {alias}"
