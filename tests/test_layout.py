"""The core's shape, checked on every run (README "How it works"): the core imports no
circle, only its command line reaches the edges (flows, carriers, the sandbox, Prefect),
and SQL is written only in the store."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

from aftersale.settings import PROJECT_ROOT

CORE = PROJECT_ROOT / "aftersale"
#: Top-level packages the core must not import, but for its command line (aftersale/cli/).
EDGES = ("flows", "carriers", "sandbox", "prefect")
#: Where SQL may be written: the store. Tests and benchmarks (the bulk floor) write their own.
STORE = CORE / "store"
#: Python code shipped beside the core, held to the same rule.
SHIPPED = [CORE, PROJECT_ROOT / "flows", PROJECT_ROOT / "carriers", PROJECT_ROOT / "sandbox"]
#: The start of a statement, in capitals as the store writes them (prose says "select").
SQL = re.compile(
    r"^\s*(SELECT\s.*\bFROM\s|INSERT\s+INTO\s|UPDATE\s+\w+\s+(\w+\s+)?SET\s|DELETE\s+FROM\s"
    r"|CREATE\s+(TABLE|(UNIQUE\s+)?INDEX|VIEW)\s|ALTER\s+TABLE\s|DROP\s+(TABLE|INDEX)\s"
    r"|BEGIN\s+TRANSACTION\b)",
    re.DOTALL,
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PROJECT_ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, *, module_level_only: bool) -> Iterator[tuple[int, str]]:
    """(line, module) of each absolute import of `path`; `from m import n` yields m and m.n
    (n may be a module). Imports under `if TYPE_CHECKING:` never run: left out."""

    def visit(node: ast.AST, in_function: bool) -> Iterator[tuple[int, str]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                yield from visit(ast.Module(body=child.orelse, type_ignores=[]), in_function)
                continue
            if isinstance(child, ast.Import | ast.ImportFrom) and not (
                module_level_only and in_function
            ):
                if isinstance(child, ast.Import):
                    yield from ((child.lineno, a.name) for a in child.names)
                elif child.module and not child.level:
                    yield child.lineno, child.module
                    yield from ((child.lineno, f"{child.module}.{a.name}") for a in child.names)
            nested = isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            yield from visit(child, in_function or nested)

    yield from visit(ast.parse(path.read_text(encoding="utf-8")), False)


def test_the_core_imports_no_circle() -> None:
    """Module-level imports only: a function may import lazily what it alone needs (the
    store's backend once chosen, the YAML parser once settings are built)."""
    modules = {module_name(p): p for p in sorted(CORE.rglob("*.py"))}
    graph = {
        name: sorted({m for _, m in imports(path, module_level_only=True) if m in modules} - {name})
        for name, path in modules.items()
    }
    circles: list[list[str]] = []
    done: set[str] = set()

    def walk(name: str, trail: list[str]) -> None:
        if name in trail:
            circles.append([*trail[trail.index(name) :], name])
            return
        if name in done:
            return
        for target in graph[name]:
            walk(target, [*trail, name])
        done.add(name)

    for name in graph:
        walk(name, [])
    assert circles == [], "\n".join(" -> ".join(c) for c in circles)


def test_only_the_command_line_imports_the_edges() -> None:
    found = [
        f"{path.relative_to(PROJECT_ROOT)}:{line}: imports {module}"
        for path in sorted(CORE.rglob("*.py"))
        if (CORE / "cli") not in path.parents
        for line, module in imports(path, module_level_only=False)
        if module.split(".")[0] in EDGES
    ]
    assert found == []


def test_sql_is_written_in_the_store_only() -> None:
    found = []
    for folder in SHIPPED:
        for path in sorted(folder.rglob("*.py")):
            if path == STORE or STORE in path.parents:
                continue
            where = path.relative_to(PROJECT_ROOT)
            found += [
                f"{where}:{line}: imports {module}"
                for line, module in imports(path, module_level_only=False)
                if module.split(".")[0] in ("duckdb", "psycopg", "psycopg_pool", "sqlite3")
            ]
            found += [
                f"{where}:{node.lineno}: {node.value[:60]!r}"
                for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                if isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and SQL.match(node.value)
            ]
    assert found == []


def test_the_checks_see_what_they_look_for(tmp_path: Path) -> None:
    """The three checks above pass on the code; here, that they would fail on a breach."""
    breach = tmp_path / "breach.py"
    breach.write_text(
        "import duckdb\n"
        "from flows.cycle import aftersale_cycle\n"
        "def later():\n"
        "    import carriers.registry\n"
        "QUERY = f'''SELECT id FROM orders WHERE x = {1}'''\n"
        "WRITE = 'UPDATE messages t SET state = 1'\n"
        "PROSE = 'Select the orders from the store'\n",
        encoding="utf-8",
    )
    assert [m for _, m in imports(breach, module_level_only=True)] == [
        "duckdb",
        "flows.cycle",
        "flows.cycle.aftersale_cycle",
    ]
    assert "carriers.registry" in [m for _, m in imports(breach, module_level_only=False)]
    strings = [
        node.value
        for node in ast.walk(ast.parse(breach.read_text(encoding="utf-8")))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]
    assert sorted(s for s in strings if SQL.match(s)) == [
        "SELECT id FROM orders WHERE x = ",
        "UPDATE messages t SET state = 1",
    ]
