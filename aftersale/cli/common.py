"""What every command that touches the store does the same way: open the configured store,
and end with one `error:` line (never a traceback) when it can't."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from aftersale.errors import AftersaleError
from aftersale.store import Store, open_store

#: Errors go to stderr unwrapped: a path or a template line stays whole for a person to copy.
_err = Console(stderr=True, soft_wrap=True)


def fail(problem: str | Exception, code: int = 1) -> NoReturn:
    """Say what is wrong on stderr, in one line a person can act on, and exit. The text is
    printed as it is (a `[bold]` in a template error is not markup)."""
    _err.print(f"[red]error:[/] {escape(str(problem))}", highlight=False)
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
