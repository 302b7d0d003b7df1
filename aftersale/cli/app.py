"""The `aftersale` command line: the edge where settings are read and parts are wired.

Heavy imports (Prefect, the carriers, the SDKs) happen inside the commands that need
them, so `aftersale --help` and `aftersale check` stay quick.
"""

from __future__ import annotations

import json
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from aftersale.cli.common import fail
from aftersale.errors import AftersaleError
from aftersale.settings import PROJECT_ROOT

app = typer.Typer(
    name="aftersale",
    help="Proactive post-purchase notifications: track parcels, apply rules, send messages.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
messages_app = typer.Typer(help="Inspect messages and release those a crash left in doubt.")
app.add_typer(messages_app, name="messages")
console = Console()
err = Console(stderr=True)


def _now(value: str | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    try:
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            raise typer.BadParameter("needs a UTC offset, like 2026-11-23T07:00:00+00:00")
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        raise typer.BadParameter(
            f"{value!r} is not a time like 2026-11-23T07:00:00+00:00"
        ) from None


def plain(where: Console, text: str) -> None:
    """Print `text` as it is: file names, reasons and carrier texts hold user data, and
    `[bold]` or `[/]` in them is text, never markup."""
    where.print(text, markup=False, highlight=False, soft_wrap=True)


@app.command("import")
def import_orders(
    files: Annotated[list[Path], typer.Argument(help="NDJSON (.ndjson/.jsonl) or CSV order files")],
    format: Annotated[
        str,
        typer.Option(
            "--format",
            help="aftersale (NDJSON/CSV), or a shop platform's saved orders: shopify, woocommerce",
        ),
    ] = "aftersale",
) -> None:
    """Import order files. Bad rows are reported with their line (a platform payload's
    record number); the good rows load. Re-importing changes nothing."""
    from aftersale.intake.files import import_file
    from aftersale.intake.platform import import_platform_file
    from aftersale.intake.shops import PLATFORMS
    from aftersale.intake.shops.base import ShopMapping
    from aftersale.store import open_store
    from carriers.registry import DIRECTORY, load_settings

    if format != "aftersale" and format not in PLATFORMS:
        err.print(f"--format: use aftersale, {', '.join(PLATFORMS)} (not {format!r})", markup=False)
        raise typer.Exit(2)
    settings = load_settings()
    now = datetime.now(UTC)
    bad = 0
    try:
        mapping = ShopMapping.load(settings.shop_mapping_path)
        with open_store(settings.db, wait_s=settings.store_lock_wait_s) as store:
            for path in files:
                if format == "aftersale":
                    report = import_file(store, path, now=now, detect=DIRECTORY)
                else:
                    report = import_platform_file(
                        store, path, format, now=now, carriers=DIRECTORY, mapping=mapping
                    )
                plain(
                    console,
                    f"{path}: {report.loaded} orders loaded, {report.already_known} already "
                    f"known, {len(report.rejections)} rows rejected",
                )
                for r in report.rejections:
                    where = f"{path.parent / r.source}:{r.line}" if r.line else str(path)
                    plain(err, f"{where}: {r.reason}")
                for n in report.notices:
                    plain(err, f"{path.parent / n.source}:{n.line}: note: {n.text}")
                bad += len(report.rejections)
    except AftersaleError as exc:
        fail(exc)
    raise typer.Exit(1 if bad else 0)


@app.command()
def run(
    no_prefect: Annotated[
        bool, typer.Option("--no-prefect", help="Run the cycle in plain Python")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Decide and render, send nothing")
    ] = False,
    now: Annotated[
        str | None, typer.Option(help="Clock for this cycle (ISO 8601), for replays")
    ] = None,  # noqa: UP007
) -> None:
    """Run one cycle: intake, poll, detect, decide, render, dispatch."""
    from carriers.registry import load_settings

    clock = _now(now)
    try:
        if no_prefect:
            from aftersale.cycle import run_cycle
            from aftersale.ops.report import run_label
            from aftersale.store import open_store
            from flows.wiring import build_parts

            settings = load_settings()
            with open_store(
                settings.db, wait_s=settings.store_lock_wait_s, lease_s=settings.lease_s
            ) as store:
                parts, notes = build_parts(settings, store, dry_run=dry_run)
                for note in notes:
                    plain(console, note)
                label = run_label("cycle", clock, uuid.uuid4().hex[:6])
                summary = run_cycle(parts, clock, label).as_dict()
        else:
            from aftersale.cli.ops import prefect_started

            with prefect_started():
                from flows.cycle import run_cycle_flow

                summary = run_cycle_flow(now=clock, dry_run=dry_run)
    except AftersaleError as exc:
        fail(exc)
    console.print_json(json.dumps(summary, default=str))
    for reason in summary["degraded"]:
        err.print(f"[yellow]degraded:[/] {reason}", highlight=False)


@app.command()
def demo(
    workdir: Annotated[
        Path, typer.Option(help="Where the demo's database and outbox go")
    ] = PROJECT_ROOT / "var" / "demo",
) -> None:
    """The demo: sandbox carriers, example orders, several cycles, messages in the outbox.
    On the database AFTERSALE_DB names when it is a postgresql:// URL, else a fresh DuckDB
    file in the workdir."""
    from aftersale.cli.ops import prefect_started
    from flows.demo import demo_database, run_demo

    try:
        # The per-cycle table is wide; a pipe (make, CI logs) would otherwise wrap it at 80.
        with prefect_started():
            run_demo(workdir, Console(width=max(console.width, 150)), database=demo_database())
    except AftersaleError as exc:
        fail(exc)


@app.command()
def sandbox(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1")] = 8765,
    parcels: Annotated[Path, typer.Option(help="JSON list of parcels")] = PROJECT_ROOT
    / "examples"
    / "sandbox_parcels.json",
    start: Annotated[str | None, typer.Option(help="Initial clock (ISO 8601); default now")] = None,  # noqa: UP007
) -> None:
    """Run the carrier sandbox on its own (move its clock with POST /_sandbox/clock)."""
    from flows.demo import load_parcels
    from sandbox.app import SandboxClock, SandboxState
    from sandbox.server import serve_forever

    state = SandboxState(SandboxClock(_now(start)))
    state.add(load_parcels(parcels))
    plain(console, f"sandbox on http://127.0.0.1:{port} with {len(state.parcels)} parcels")
    serve_forever(state, port)


@app.command()
def check() -> None:
    """Check the catalogue, the rules and every template with every shape of data the
    rules can hand it. Every problem at once; exit 1 on any (CI / pre-commit)."""
    from aftersale.render.check import run_check
    from carriers.registry import DIRECTORY, load_settings

    try:
        settings = load_settings()
    except AftersaleError as exc:
        fail(exc)
    problems = run_check(
        rules_dir=settings.rules_dir,
        templates_dir=settings.templates_dir,
        catalogue_path=settings.catalogue_path,
        shop=settings.shop,
        carriers=DIRECTORY,
    )
    for p in problems:
        typer.echo(p, err=True)  # one problem per line, never wrapped
    if problems:
        err.print(f"[red]{len(problems)} problem(s)[/]")
        raise typer.Exit(1)
    console.print("catalogue, rules and templates OK")


@app.command()
def simulate(
    scenario: Annotated[
        Path | None, typer.Argument(help="Scenario YAML: orders and timed carrier events")
    ] = None,
    start: Annotated[
        str | None, typer.Option("--from", help="Replay the store from (ISO 8601)")
    ] = None,
    end: Annotated[str | None, typer.Option("--to", help="... up to (ISO 8601)")] = None,
) -> None:
    """What would be sent when, and why not: replay a scenario file, or the store's events
    over a time range (`--from … --to …`) with today's rules. Nothing is sent or queued."""
    from aftersale.decide.simulate import format_simulation
    from aftersale.decide.simulate import simulate as run_simulation
    from carriers.registry import load_settings
    from flows.wiring import cycle_thresholds, load_library, load_rules

    settings = load_settings()
    if (scenario is None) == (start is None or end is None):
        fail(ValueError("give a scenario file, or --from and --to to replay the store"))
    try:
        ruleset = load_rules(settings, load_library(settings))
        if scenario is not None:
            lines = run_simulation(scenario, ruleset, thresholds=cycle_thresholds(ruleset))
            typer.echo(format_simulation(lines))
            return
        from aftersale.decide.backfill import backfill
        from aftersale.store import open_store

        with open_store(settings.db, wait_s=settings.store_lock_wait_s) as store:
            report = backfill(store, ruleset, _now(start), _now(end), datetime.now(UTC))
        typer.echo(report.text())
    except (AftersaleError, ValueError) as exc:
        fail(exc)


@app.command()
def track(
    number: Annotated[str | None, typer.Argument(help="Tracking number to poll live")] = None,  # noqa: UP007
    carrier: Annotated[str | None, typer.Option(help="Carrier slug (default: detect)")] = None,  # noqa: UP007
    parse: Annotated[
        Path | None, typer.Option(help="Normalise a saved raw response, no network")
    ] = None,  # noqa: UP007
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout")] = False,
) -> None:
    """Poll one parcel and print its normalised tracking (support staff, new fixtures)."""
    from aftersale.carriers_meta import normalise_tracking_number
    from carriers.jsonout import tracking_to_json
    from carriers.poll import run_poll
    from carriers.registry import DIRECTORY, build_carriers, load_settings

    settings = load_settings()
    adapters = build_carriers(settings.carrier_urls)
    if parse is not None:
        if carrier not in adapters:
            fail(ValueError(f"--parse needs --carrier, one of {', '.join(adapters)}"))
        try:
            body = parse.read_bytes()
        except OSError as exc:
            fail(ValueError(f"{parse}: cannot read: {exc.strerror}"))
        tracking = adapters[carrier].parse_response(number or "", 200, body)  # type: ignore[index]
    else:
        if not number:
            fail(ValueError("give a tracking number, or --carrier and --parse FILE"))
        number = normalise_tracking_number(number)  # type: ignore[arg-type]
        slugs = [carrier] if carrier else DIRECTORY.detect(number)
        if not slugs:
            fail(ValueError(f"{number}: no carrier recognises this format; pass --carrier"))
        from aftersale.models import ShipmentState, Status

        tracking = None
        for slug in slugs:
            shipment = ShipmentState(number, "-", slug, number, Status.PENDING)
            result = run_poll([shipment], adapters)[0]
            if result.error:
                fail(ValueError(f"{slug}: {result.error}"))
            tracking = result.tracking
            if tracking and tracking.found:
                break
    out = tracking_to_json(tracking)  # type: ignore[arg-type]
    if as_json:
        sys.stdout.write(json.dumps(out, ensure_ascii=False) + "\n")
        return
    wide = Console(width=max(console.width, 140))
    wide.print(
        f"[bold]{escape(out['carrier'])} {escape(out['tracking_number'])}[/]: "
        f"{escape(out['status'])}",
        highlight=False,
    )
    table = Table("occurred_at (UTC)", "status", "code", "description", "location")
    for e in out["events"]:
        table.add_row(
            *(
                Text(value)  # carrier text is shown as is, never read as markup
                for value in (
                    e["occurred_at"],
                    e["status"] or "(info)",
                    e["code"],
                    e["description"],
                    e["location"] or "",
                )
            )
        )
    wide.print(table)
    for p in out["problems"]:
        plain(err, f"problem: {p}")


@messages_app.command("release")
def messages_release(
    message_ids: Annotated[list[str], typer.Argument(help="ids from `aftersale messages list`")],
    resend: Annotated[
        bool, typer.Option("--resend/--mark-sent", help="Queue again, or record as sent")
    ] = False,
) -> None:
    """After checking the provider: resend `unknown` messages, or record them as sent."""
    from aftersale.cli.common import configured_store

    with configured_store() as store:
        n = store.release_unknown(message_ids, resend=resend, now=datetime.now(UTC))
    console.print(f"{n} message(s) {'queued again' if resend else 'recorded as sent'}")


def _register_commands() -> None:
    """Commands kept in their own modules: the marketer's workbench, delivery upkeep, and
    the operators' views (alerts, health, messages, report)."""
    from aftersale.cli import ops
    from aftersale.cli.delivery import suppress_app, webhooks_app
    from aftersale.cli.orders import orders_app
    from aftersale.cli.privacy import forget
    from aftersale.cli.shops import shops_app
    from aftersale.cli.store import store_app
    from aftersale.cli.templates import preview, send_test
    from aftersale.cli.worker import worker

    app.command("preview")(preview)
    app.command("send-test")(send_test)
    app.add_typer(suppress_app, name="suppress")
    app.command("forget")(forget)
    app.add_typer(webhooks_app, name="webhooks")
    app.add_typer(store_app, name="store")
    app.add_typer(ops.alerts_app, name="alerts")
    app.command("health")(ops.health)
    app.command("report")(ops.report)
    messages_app.command("list")(ops.messages_list)
    messages_app.command("show")(ops.messages_show)
    app.add_typer(orders_app, name="orders")
    app.add_typer(shops_app, name="shops")
    app.command(
        "worker",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    )(worker)


_register_commands()


def main() -> None:  # pragma: no cover - console script entry
    """The `aftersale` command: a setting that cannot be read (shop.yaml, the environment)
    is one line naming the file and the problem, never a traceback."""
    try:
        app()
    except AftersaleError as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False)
        raise SystemExit(1) from None
