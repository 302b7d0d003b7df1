"""`aftersale shops reconcile`: by hand, what the hourly `aftersale-shopify-reconcile` flow
does: pull the Shopify orders changed since the last pull and apply them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console

from aftersale.errors import AftersaleError

shops_app = typer.Typer(help="Shop platforms: pull what their webhooks may have missed.")
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def _since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(f"{value!r} is not an ISO 8601 time") from exc
    if parsed.tzinfo is None:
        raise typer.BadParameter("needs a UTC offset, like 2026-11-01T00:00:00+00:00")
    return parsed.astimezone(UTC)


@shops_app.command("reconcile")
def reconcile(
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="Pull the orders updated after this time (ISO 8601 with an offset) instead "
            "of since the last pull: a backfill",
        ),
    ] = None,
    first_run_days: Annotated[
        int,
        typer.Option("--first-run-days", min=1, max=60, help="How far the first pull looks back"),
    ] = 7,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON")] = False,
) -> None:
    """Pull the Shopify orders changed since the last pull (SHOPIFY_SHOP, SHOPIFY_ADMIN_TOKEN)
    and apply them; exit 1 when an order was rejected."""
    from flows.reconcile import reconcile_from_env

    try:
        report = reconcile_from_env(
            now=datetime.now(UTC), since=_since(since), first_run_days=first_run_days
        )
    except AftersaleError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        raise typer.Exit(2) from exc
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
    else:
        s = report.as_dict()
        for line in (
            f"{report.source}: orders updated after {s['since']}",
            f"{s['seen']} seen, {s['new']} new, {s['updated']} updated, "
            f"{s['unchanged']} unchanged, {s['rejected']} rejected "
            f"({s['pages']} page(s), {s['requests']} request(s), waited {s['waited_s']} s)",
            f"checkpoint: {s['checkpoint'] or 'none yet'}",
        ):
            console.print(line, markup=False, highlight=False)
    # as `aftersale import` prints them: record numbers count through the run
    for r in report.rejections:
        err.print(f"{r.source}:{r.line}: {r.reason}", markup=False, highlight=False)
    for n in report.notices:
        where = f"{n.source}:{n.line}" if n.line else n.source
        err.print(f"{where}: note: {n.text}", markup=False, highlight=False)
    if report.rejections:
        raise typer.Exit(1)
