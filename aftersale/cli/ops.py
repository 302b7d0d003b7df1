"""Operators' commands: `aftersale alerts test`, `aftersale health`, `aftersale messages
list|show` (one order's or customer's story) and `aftersale report` (the period report
with charts). Registered on the main app by aftersale/cli/app.py.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from aftersale.cli.common import configured_store, fail

alerts_app = typer.Typer(help="Check that alerts reach the operators.", no_args_is_help=True)
#: Prefect's own default (20 s) is short for a first start on a busy machine.
STARTUP_TIMEOUT_S = "60"
STARTUP_SETTING = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
NEEDS_A_HUMAN = "aftersale · needs a human"
_ACTION_EVENTS = ("prefect.automation.action.executed", "prefect.automation.action.failed")


@alerts_app.callback()
def _alerts() -> None:
    """Check that alerts reach the operators."""


def _when(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        fail(f"{option} {value!r} is not an ISO 8601 date or time (like 2026-11-23)")
    if parsed.tzinfo is None:  # a date, or a time without offset: UTC
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


# --- Prefect start-up ------------------------------------------------------------------


@contextmanager
def prefect_started() -> Iterator[None]:
    """Run Prefect without a server (it starts a temporary one) with a start-up timeout
    that suits a busy machine, and say what to do when it is too slow all the same."""
    os.environ.setdefault(STARTUP_SETTING, STARTUP_TIMEOUT_S)
    try:
        yield
    except RuntimeError as exc:
        if "ephemeral Prefect API server" not in str(exc):
            raise
        waited = os.environ[STARTUP_SETTING]
        fail(
            f"Prefect's temporary API server did not start within {waited} s. "
            f"Give it longer (export {STARTUP_SETTING}=120), point PREFECT_API_URL at a "
            "running Prefect server, or run the cycle without Prefect: "
            "`aftersale run --no-prefect`."
        )


# --- alerts ----------------------------------------------------------------------------


@alerts_app.command("test")
def alerts_test(
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the notification")] = 60,
) -> None:
    """Send a test alert through the automations on the Prefect server (PREFECT_API_URL)
    and report whether its notification was delivered."""
    import httpx
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL

    from aftersale.ops.alerts import ALERTS_TEST

    api = PREFECT_API_URL.value()
    if not api:
        fail(
            "PREFECT_API_URL is not set: alerts live on a Prefect server; export "
            "PREFECT_API_URL=http://127.0.0.1:4200/api (docs/operations.md, step 2)"
        )
    event_id = uuid.uuid4()
    sent_at = datetime.now(UTC)
    message = (
        f"aftersale test alert from {socket.gethostname()} at {sent_at:%Y-%m-%d %H:%M:%S} UTC: "
        "if you read this, aftersale's alerts reach you"
    )
    event = {
        "id": str(event_id),
        "occurred": sent_at.isoformat(),
        "event": ALERTS_TEST,
        "resource": {
            "prefect.resource.id": "aftersale.alerts",
            "prefect.resource.name": "alerts",
            "aftersale.message": message,
        },
        "related": [{"prefect.resource.id": message, "prefect.resource.role": "message"}],
        "payload": {"message": message},
    }
    try:
        with get_client(sync_client=True) as client:
            if not client.read_automations_by_name(NEEDS_A_HUMAN):
                fail(
                    f"no automation named '{NEEDS_A_HUMAN}' on {api}: apply them first with "
                    "`python -m flows.automations --webhook-url URL`"
                )
            client.request("POST", "/events", json=[event])
            typer.echo(f"sent {ALERTS_TEST} ({event_id}) to {api}; waiting for the automation")
            outcome = _wait_for_action(client, event_id, timeout)
    except httpx.HTTPError as exc:
        fail(f"cannot reach the Prefect server at {api}: {exc}")
    if outcome is None:
        fail(
            f"no automation acted on the test alert within {timeout:g} s: is the server's "
            "automation service running (`prefect server start` runs it; with --no-services, "
            "`prefect server services start`)?"
        )
    took = (datetime.fromisoformat(outcome["occurred"]) - sent_at).total_seconds()
    related = outcome.get("related", [])
    block = next((r.get("prefect.resource.name") for r in related if _role(r) == "block"), None)
    via = f" through block '{block}'" if block else ""
    if outcome["event"].endswith(".executed"):
        typer.echo(f"delivered: '{NEEDS_A_HUMAN}' sent the notification{via} in {took:.1f} s")
        return
    payload = outcome.get("payload", {})
    reason = payload.get("reason", "failed")
    detail = payload.get("notification_log") or ""
    fail(f"NOT delivered{via}: {reason}. {detail}".strip() + _hint(f"{reason} {detail}"))


def _wait_for_action(client: Any, event_id: uuid.UUID, timeout: float) -> dict[str, Any] | None:
    """The automation's action event (executed or failed) for our event, or None."""
    deadline = time.monotonic() + timeout
    query = {
        "filter": {
            "event": {"name": list(_ACTION_EVENTS)},
            "related": {"id": [f"prefect.event.{event_id}"]},
        },
        "limit": 10,
    }
    while time.monotonic() < deadline:
        found = client.request("POST", "/events/filter", json=query).json()["events"]
        if found:
            return dict(found[0])
        time.sleep(0.5)
    return None


def _role(resource: dict[str, str]) -> str | None:
    return resource.get("prefect.resource.role")


def _hint(text: str) -> str:
    if "private" in text.lower():
        return (
            " The webhook is on a private address: for a catcher on this machine apply the "
            "automations with `--allow-private-urls`."
        )
    return ""


# --- health ------------------------------------------------------------------------------


def health() -> None:
    """Each carrier's and channel's health as the store remembers it across runs: failing
    since when, error kinds, shipments waiting, next check. Exit 1 while anything fails."""
    from aftersale.ops.health import HealthUpdate, describe_outage, health_rows

    now = datetime.now(UTC)
    with configured_store() as store:
        backlog = {b.carrier: b for b in store.carrier_backlog()}
        update = HealthUpdate(store.load_health(), backlog=backlog)
    for h in update.failing:
        typer.echo(describe_outage(h, now, backlog.get(h.name)))
    rows = health_rows(update, now)
    if not rows:
        typer.echo("nothing known yet: no cycle has run on this store")
        return
    _print_columns(
        [c or "kind" for c in rows[0]], [[v.replace("**", "") for v in r.values()] for r in rows]
    )
    if update.failing:
        raise typer.Exit(1)


# --- messages ----------------------------------------------------------------------------


def messages_list(
    order: Annotated[str | None, typer.Option(help="Messages of this order id")] = None,
    customer: Annotated[str | None, typer.Option(help="Messages of this customer id")] = None,
    since: Annotated[
        str | None, typer.Option(help="Changed since (ISO 8601; a date is UTC midnight)")
    ] = None,
    state: Annotated[
        str | None,
        typer.Option(help="pending, sending, sent, failed, cancelled, suppressed, unknown"),
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first")] = 200,
) -> None:
    """One order's or customer's messages (or those changed since a time, or in one
    state; without any option: those in `unknown`), newest first, recipients masked."""
    from aftersale.masking import mask_recipient
    from aftersale.models import MessageState

    wanted = None
    if state is not None or not (order or customer or since):
        try:
            wanted = MessageState((state or "unknown").strip().lower())
        except ValueError:
            fail(f"state {state!r} is not one of: {', '.join(MessageState)}")
    after = _when(since, "--since")
    with configured_store() as store:
        if order or customer or after:
            rows = store.find_messages(
                order_id=order, customer_id=customer, since=after, limit=limit
            )
            rows = [m for m in rows if wanted is None or m.state is wanted]
        else:
            assert wanted is not None
            rows = store.messages_in_state(wanted)[:limit]
    header = ("message", "state", "rule", "channel", "order", "to", "queued", "due", "sent")
    _print_columns(
        (*header, "provider id", "reason"),
        [
            (
                m.message_id,
                m.state.value,
                m.rule_id,
                m.channel.value,
                m.order_id,
                mask_recipient(m.recipient or ""),
                _t(m.created_at),
                _t(m.due_at),
                _t(m.sent_at),
                m.provider_id or "",
                _reason(m),
            )
            for m in rows
        ],
    )
    typer.echo(f"{len(rows)} message(s); times in UTC")


def messages_show(
    message_id: Annotated[str, typer.Argument(help="An id from `aftersale messages list`")],
    unmasked: Annotated[
        bool, typer.Option("--unmasked", help="Show the whole recipient address")
    ] = False,
) -> None:
    """Everything about one message, and exactly what was sent: its subject and text
    (kept until the customer's personal data is erased)."""
    from aftersale.masking import mask_recipient
    from aftersale.models import MessageState

    with configured_store() as store:
        m = store.load_message(message_id)
    if m is None:
        fail(f"no message {message_id!r} (ids look like m-0123456789abcdef0123)")
    recipient = m.recipient if unmasked else mask_recipient(m.recipient or "")
    facts = [
        ("message", m.message_id),
        ("state", m.state.value + (f" ({m.error_text})" if m.error_text else "")),
        ("rule / template", f"{m.rule_id} / {m.template}"),
        ("channel", m.channel.value + (" (marketing)" if m.marketing else "")),
        ("order / customer", f"{m.order_id} / {m.customer_id}"),
        ("shipment", m.shipment_id or ""),
        ("event", m.event_id),
        ("to", recipient or ""),
        ("queued", _t(m.created_at)),
        ("due", _t(m.due_at)),
        ("sent", _t(m.sent_at)),
        ("last change", _t(m.updated_at)),
        ("attempts", str(m.attempts)),
        ("provider", f"{m.provider or ''} {m.provider_id or ''}".strip()),
        ("error", f"{m.error_code or ''} {m.error_text or ''}".strip()),
        ("provider reports", m.delivery_state or ""),
        ("opened / clicked", f"{_t(m.opened_at) or '-'} / {_t(m.clicked_at) or '-'}"),
        ("run", m.run_id or ""),
    ]
    for label, value in facts:
        if value:
            typer.echo(f"{label + ':':<18} {value}")
    typer.echo("")
    if m.body_text is not None:
        if m.subject is not None:
            typer.echo(f"Subject: {m.subject}")
        typer.echo("")
        typer.echo(m.body_text)
    elif m.state is MessageState.PENDING:
        typer.echo("(not rendered yet: the text is rendered and kept when it goes out)")
    elif m.attempts == 0:
        typer.echo("(never rendered: it was closed before going out)")
    else:
        typer.echo(
            "(subject and text erased with the customer's personal data, past the retention "
            "period: see docs/operations.md, Logs and privacy)"
        )


def _print_columns(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Aligned plain columns, never cut: ids are copied from here, lines grepped."""
    widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        typer.echo("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _t(at: datetime | None) -> str:
    return f"{at:%Y-%m-%d %H:%M}" if at else ""


def _reason(m: Any) -> str:
    from aftersale.masking import mask_text

    parts = [m.error_text or ""]
    if m.delivery_state:
        parts.append(f"provider: {m.delivery_state}")
    return mask_text("; ".join(p for p in parts if p))


# --- report -----------------------------------------------------------------------------


def report(
    start: Annotated[
        str | None, typer.Option("--from", help="First day (ISO 8601, UTC); default 7 days ago")
    ] = None,
    end: Annotated[
        str | None, typer.Option("--to", help="Up to, not including (default: tomorrow 00:00)")
    ] = None,
    out: Annotated[Path, typer.Option(help="Where to write the HTML page")] = Path("report.html"),
) -> None:
    """The period report with charts, as one HTML page that needs no network: messages per
    day, rule, channel and outcome; provider reports; on-time delivery and transit times
    per carrier and lane; how often a delay message was followed by a late delivery."""
    from aftersale.ops.trends import read_trends
    from aftersale.ops.trends_page import render_html

    now = datetime.now(UTC)
    until = _when(end, "--to") or datetime.combine(
        now.date() + timedelta(days=1), datetime.min.time(), UTC
    )
    since = _when(start, "--from") or until - timedelta(days=7)
    with configured_store() as store:
        try:
            trends = read_trends(store, since, until)
        except ValueError as exc:
            fail(str(exc))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_html(trends, now), encoding="utf-8")
    on_time = trends.on_time_rate()
    precision = trends.delay_precision()
    typer.echo(
        f"{out}: {since:%Y-%m-%d} → {until - timedelta(microseconds=1):%Y-%m-%d}: "
        f"{trends.total('sent')} messages sent, {trends.total('failed')} failed; "
        f"{sum(lane.delivered for lane in trends.lanes)} parcels delivered, "
        f"{'–' if on_time is None else f'{100 * on_time:.0f} %'} on time; delay messages "
        f"right {'–' if precision is None else f'{100 * precision:.0f} %'}"
    )
