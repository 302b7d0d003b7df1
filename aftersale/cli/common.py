"""What every command that touches the store does the same way: open the configured store,
and end with one `error:` line (never a traceback) when it can't."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import typer

from aftersale.errors import AftersaleError
from aftersale.store import Store, open_store


def fail(problem: str | Exception, code: int = 1) -> NoReturn:
    """Say what is wrong on stderr, in one line a person can act on, and exit."""
    typer.echo(f"error: {problem}", err=True)
    raise typer.Exit(code)


@contextmanager
def configured_store() -> Iterator[Store]:
    """The store the settings name (AFTERSALE_DB), opened and migrated; a store that is
    locked, unreachable or newer than this code ends the command with its reason."""
    from carriers.registry import load_settings

    try:
        settings = load_settings()
        store = open_store(settings.db, wait_s=settings.store_lock_wait_s)
    except AftersaleError as exc:
        fail(exc)
    with store:
        yield store
