"""`aftersale store migrate` and `aftersale store copy --to URL`: create or upgrade a
store's schema, and move a shop's store to another backend (DuckDB -> PostgreSQL)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from aftersale.cli.common import fail
from aftersale.errors import AftersaleError

store_app = typer.Typer(
    help="The store: create or upgrade its schema, copy it to another database.",
    no_args_is_help=True,
)
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

_DB_HELP = "A DuckDB file path or a postgresql:// URL (default: AFTERSALE_DB)"


def _shown(target: str) -> str:
    from aftersale.store import without_password

    return without_password(target)


@store_app.command("migrate")
def migrate(
    db: Annotated[str | None, typer.Option(help=_DB_HELP)] = None,
) -> None:
    """Create the store's tables, or upgrade them to this version's schema (either backend;
    several workers starting at once are safe: each migration is applied once)."""
    from aftersale.store import open_store
    from aftersale.store.migrations import MIGRATIONS
    from carriers.registry import load_settings

    settings = load_settings()
    target = db or settings.db
    try:
        with open_store(target, wait_s=settings.store_lock_wait_s, migrate=False) as store:
            before = store.schema_version()
            applied = store.migrate()
            after = store.schema_version()
    except AftersaleError as exc:
        fail(exc)
    described = dict((version, text) for version, text, _ in MIGRATIONS)
    for version in applied:
        console.print(f"applied migration {version}: {described[version]}")
    if applied:
        console.print(f"{_shown(target)}: schema version {before} -> {after}")
    else:
        console.print(f"{_shown(target)}: schema version {after}, up to date")


@store_app.command("copy")
def copy(
    to: Annotated[str, typer.Option("--to", help="The target: an empty database (a URL)")],
    source: Annotated[str | None, typer.Option("--from", help=_DB_HELP)] = None,
    batch: Annotated[int, typer.Option(help="Rows per read", min=100)] = 10_000,
) -> None:
    """Copy every table of the store (AFTERSALE_DB, or --from) into an empty database,
    then count the rows on both sides. Stop the cycles first: rows written during the
    copy would be missed. Exit 1 if any count differs."""
    from aftersale.store import open_store
    from aftersale.store.transfer import copy_store
    from carriers.registry import load_settings

    settings = load_settings()
    origin = source or settings.db
    if origin == to:
        fail(ValueError("--to names the store being copied"))
    try:
        with (
            open_store(origin, wait_s=settings.store_lock_wait_s) as src,
            open_store(to, wait_s=settings.store_lock_wait_s) as dst,
        ):
            counts = copy_store(
                src,
                dst,
                batch=batch,
                progress=lambda table, n: console.print(f"copied {n} rows of {table}"),
            )
    except AftersaleError as exc:
        fail(exc)
    table = Table("table", _shown(origin), _shown(to), "same")
    for c in counts:
        table.add_row(c.table, str(c.source), str(c.target), "yes" if c.same else "[red]NO[/]")
    Console(width=max(console.width, 120)).print(table)
    if not all(c.same for c in counts):
        err.print("[red]error:[/] row counts differ; the target is not a faithful copy")
        raise typer.Exit(1)
    console.print(f"copied: every table has the same row count in {_shown(to)}")
