"""`aftersale forget CUSTOMER_ID`: erase one customer's personal data on request (GDPR
art. 17) everywhere aftersale keeps it; registered on the main app by aftersale/cli/app.py.
What is erased and what is kept: aftersale/privacy.py and docs/operations.md."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from aftersale.errors import AftersaleError


def forget(
    customer_id: Annotated[str, typer.Argument(help="The customer's id (customer.id, else email)")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask; erase (for scripts)")] = False,
) -> None:
    """Erase one customer's personal data: the store (name, contacts, their messages'
    recipients and texts, their history), outbox copies, kept order files and set-aside
    webhook files. Counts stay, and a record that the erasure happened."""
    from aftersale.dispatch.spool import webhook_spool_dir
    from aftersale.privacy import forget_customer
    from aftersale.store import open_store
    from carriers.registry import load_settings

    if not yes:
        typer.confirm(
            f"Erase the personal data of customer {customer_id!r}? This cannot be undone",
            abort=True,
        )
    settings = load_settings()
    now = datetime.now(UTC)
    try:
        spool = webhook_spool_dir(settings)
        with open_store(settings.db, wait_s=settings.store_lock_wait_s) as store:
            report = forget_customer(
                store,
                customer_id,
                now,
                outbox_dir=settings.outbox_dir,
                inbox_dir=settings.inbox_dir,
                spool_dir=spool,
            )
    except AftersaleError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    erasure = report.erasure
    if erasure is None:
        typer.echo(f"no customer {customer_id!r} in the store (nothing erased)", err=True)
        raise typer.Exit(1)
    if erasure.already:
        typer.echo(
            f"customer {customer_id!r} was already erased on {erasure.erased_at:%Y-%m-%d %H:%M} UTC"
        )
        return
    counts = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in erasure.counts.items())
    files = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in report.files.items())
    typer.echo(f"erased customer {customer_id!r} (now {erasure.erased_id}): {counts}")
    typer.echo(f"files: {files}")
