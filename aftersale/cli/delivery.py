"""CLI commands for delivery: `aftersale suppress add|remove|list|import` and
`aftersale webhooks serve` (registered on the main app by aftersale/cli/app.py).

On DuckDB (one process per file) the receiver never opens the database: it writes
verified webhook facts to a spool that each cycle applies first (aftersale/dispatch/
spool.py). On PostgreSQL it writes them to the store straight away.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from aftersale.cli.common import configured_store, fail
from aftersale.errors import AftersaleError

suppress_app = typer.Typer(
    help="The suppression list: addresses that get no messages (or no marketing) on a channel.",
    no_args_is_help=True,
)
webhooks_app = typer.Typer(
    help="Receive SendGrid and Twilio webhooks (opt-outs, bounces, delivery states).",
    no_args_is_help=True,
)

T = TypeVar("T")


@webhooks_app.callback()
def _webhooks() -> None:
    """Receive SendGrid and Twilio webhooks (opt-outs, bounces, delivery states)."""


_CHANNEL_HELP = "email or sms (default: guessed from the address)"
_REASON_HELP = "manual, unsubscribe (marketing only), stop, bounce, spamreport, dropped"


def _checked(fn: Callable[[], T]) -> T:
    try:
        return fn()
    except AftersaleError as exc:
        fail(str(exc))


@suppress_app.command("add")
def suppress_add(
    address: Annotated[str, typer.Argument(help="Email address, or phone number in E.164")],
    channel: Annotated[str | None, typer.Option(help=_CHANNEL_HELP)] = None,
    reason: Annotated[str, typer.Option(help=_REASON_HELP)] = "manual",
) -> None:
    """Suppress an address. A stronger entry already there (a bounce) is kept."""
    from aftersale.dispatch import suppressions as sup

    addr, kind = _checked(lambda: sup.normalise_address(address, channel))
    why = _checked(lambda: sup.parse_reason(reason))
    with configured_store() as store:
        before = store.get_suppression(addr, kind)
        entry, outcome = sup.add_suppression(store, addr, kind, why, datetime.now(UTC))
    if outcome == "added":
        typer.echo(f"suppressed {addr} on {kind} ({why})")
    elif outcome == "replaced":
        assert before is not None
        typer.echo(f"suppressed {addr} on {kind} ({why}, replacing {before.reason})")
    else:
        typer.echo(
            f"already suppressed: {addr} on {kind} ({entry.reason} since "
            f"{entry.created_at:%Y-%m-%d %H:%M} UTC)"
        )


@suppress_app.command("remove")
def suppress_remove(
    address: Annotated[str, typer.Argument(help="Email address, or phone number in E.164")],
    channel: Annotated[str | None, typer.Option(help=_CHANNEL_HELP)] = None,
) -> None:
    """Lift a suppression, whatever its reason (an operator's decision: check bounces first)."""
    from aftersale.dispatch import suppressions as sup

    addr, kind = _checked(lambda: sup.normalise_address(address, channel))
    with configured_store() as store:
        removed = sup.remove_suppression(store, addr, kind)
    if removed is None:
        typer.echo(f"not suppressed: {addr} on {kind}")
    else:
        typer.echo(f"removed {addr} on {kind} (was {removed.reason})")


@suppress_app.command("list")
def suppress_list(
    channel: Annotated[str | None, typer.Option(help="email or sms")] = None,
    reason: Annotated[str | None, typer.Option(help=_REASON_HELP)] = None,
    unmasked: Annotated[
        bool, typer.Option("--unmasked", help="Show whole addresses (default: masked)")
    ] = False,
) -> None:
    """List suppressions, newest first (addresses masked unless --unmasked)."""
    from aftersale.dispatch import suppressions as sup
    from aftersale.masking import mask_recipient

    kind = _checked(lambda: sup.parse_channel(channel)) if channel else None
    why = _checked(lambda: sup.parse_reason(reason)) if reason else None
    with configured_store() as store:
        entries = sup.list_suppressions(store, channel=kind, reason=why)
    for e in entries:
        shown = e.address if unmasked else mask_recipient(e.address)
        typer.echo(f"{shown:<34} {e.channel:<5} {e.reason:<11} {e.created_at:%Y-%m-%d %H:%M} UTC")
    typer.echo(f"{len(entries)} suppression(s)")


@suppress_app.command("import")
def suppress_import(
    file: Annotated[
        Path, typer.Argument(help="CSV with a header: address,channel,reason[,created_at]")
    ],
) -> None:
    """Import suppressions from CSV. Bad rows are reported with their line; the rest load."""
    from aftersale.dispatch import suppressions as sup

    with configured_store() as store:
        result = sup.import_suppressions(store, file, datetime.now(UTC))
    typer.echo(
        f"{file}: {result.added} added, {result.replaced} replaced, "
        f"{result.kept} already suppressed, {len(result.problems)} rejected"
    )
    for problem in result.problems:
        typer.echo(problem, err=True)
    if result.problems:
        raise typer.Exit(1)


@webhooks_app.command("serve")
def webhooks_serve(
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (put an https reverse proxy in front)")] = 8787,
    answer_help: Annotated[
        bool,
        typer.Option(
            "--answer-help",
            help="Answer SMS HELP with the shop's contact text (when Twilio's own is off)",
        ),
    ] = False,
) -> None:
    """Serve the webhook receiver: verified facts are written to the store (PostgreSQL), or
    spooled and applied by the next cycle (DuckDB)."""
    import logging
    from contextlib import ExitStack

    import uvicorn

    from aftersale.dispatch.channels.config import webhook_config
    from aftersale.dispatch.channels.twilio_inbound import help_text_for
    from aftersale.dispatch.inbound import build_webhook_app
    from aftersale.dispatch.spool import SpoolSink, webhook_spool_dir
    from aftersale.dispatch.suppressions import StoreWebhookSink
    from aftersale.dispatch.unsubscribe import unsubscribe_links
    from aftersale.intake.shop_webhooks import (
        SpoolShopSink,
        StoreShopSink,
        shop_routes,
    )
    from aftersale.intake.shops.base import ShopMapping
    from aftersale.store import without_password
    from carriers.registry import DIRECTORY, load_settings

    logging.basicConfig(level=logging.INFO, format="%(levelname)-9s %(name)s: %(message)s")
    settings = load_settings()
    config = _checked(lambda: webhook_config(os.environ))
    spool = webhook_spool_dir(settings)
    mapping = _checked(lambda: ShopMapping.load(settings.shop_mapping_path))
    with ExitStack() as held:
        store = None
        if spool is None:
            store = held.enter_context(configured_store())
            sink: SpoolSink | StoreWebhookSink = StoreWebhookSink(store)
            shop_sink: SpoolShopSink | StoreShopSink = StoreShopSink(store, DIRECTORY, mapping)
            where = f"writing to {without_password(settings.db)} as facts arrive"
        else:
            sink = SpoolSink(spool)
            shop_sink = SpoolShopSink(spool)
            where = f"spooling to {spool}; each cycle applies it (`aftersale run`)"
        app = _checked(
            lambda: build_webhook_app(
                sink,
                twilio_auth_token=config.twilio_auth_token,
                sendgrid_public_key=config.sendgrid_public_key,
                public_url=config.public_url,
                help_text=help_text_for(settings.shop) if answer_help else None,
                extra_routes=lambda call_sink: shop_routes(
                    config.shop_secrets, shop_sink, call_sink, DIRECTORY
                ),
                unsubscribe=unsubscribe_links(settings, os.environ, store),
                shop=settings.shop,
            )
        )
        for note in config.notes:
            typer.echo(note)
        typer.echo(where)
        typer.echo(f"listening on http://{host}:{port} for {config.public_url}")
        uvicorn.run(app, host=host, port=port, log_level="info")
