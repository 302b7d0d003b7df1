"""What a flow run publishes to the Prefect UI: its one name, artifacts and alert events,
plus a logging filter that masks any address or phone number before a log line leaves.

Alerts are Prefect events (`aftersale.*`, resource `aftersale.<thing>.<id>`); the
automations in `automations/` turn them, and failed or crashed runs, into notifications.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.client.orchestration import get_client
from prefect.events import emit_event
from prefect.runtime import flow_run
from prefect.settings import PREFECT_UI_URL

from aftersale.masking import mask_text
from aftersale.ops.alerts import Alert
from aftersale.ops.report import run_label

#: A table artifact holds at most this many rows; the markdown says how many were left out.
MAX_TABLE_ROWS = 2000
#: Loggers whose records reach the Prefect UI (PREFECT_LOGGING_EXTRA_LOGGERS in prefect.yaml).
MASKED_LOGGERS = ("prefect.flow_runs", "prefect.task_runs", "aftersale", "carriers")


class MaskingFilter(logging.Filter):
    """Mask email addresses and phone numbers in a record's final message."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_text(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def install_masking() -> None:
    """Idempotent: each logger gets one MaskingFilter."""
    for name in MASKED_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, MaskingFilter) for f in logger.filters):
            logger.addFilter(MaskingFilter())


#: Each flow run's clock, fixed by whichever asks first (its name, at the start), so the
#: name and the body agree on the minute; the body takes it out again.
_CLOCKS: dict[str, datetime] = {}


def run_clock(take: bool = False) -> datetime:
    """The current run's clock: its `now` parameter (replays, the demo), else the moment
    it was first asked for. The same for the run's name and its body."""
    run_id = str(flow_run.get_id())
    clock = _CLOCKS.get(run_id)
    if clock is None:
        now = flow_run.get_parameters().get("now")
        clock = (now if isinstance(now, datetime) else datetime.now(UTC)).astimezone(UTC)
        _CLOCKS[run_id] = clock
    if take:
        _CLOCKS.pop(run_id, None)
    return clock


def run_token() -> str:
    """Six characters that tell apart runs of the same minute: the end of the flow run's
    id (its random part)."""
    run_id = flow_run.get_id()
    return token_of(run_id) if run_id else uuid.uuid4().hex[:6]


def token_of(flow_run_id: object) -> str:
    """The token of the flow run with this id (the runs table names runs by it)."""
    return str(flow_run_id).replace("-", "")[-6:]


def current_label(kind: str) -> str:
    """`cycle 2026-11-22 10:15 · 3f9a2c`: the run's name from its start, the store's run
    id, and the head of its final name."""
    return run_label(kind, run_clock(), run_token())


def rename_run(name: str) -> None:
    """Give the current flow run its readable, final name (`cycle … · 412 polled · 37 sent`)."""
    run_id = flow_run.get_id()
    if run_id is None:
        return
    with get_client(sync_client=True) as client:
        client.update_flow_run(run_id, name=name)


def publish_markdown(key: str, markdown: str) -> None:
    """A markdown artifact under a stable key: the UI keeps its history across runs."""
    create_markdown_artifact(key=key, markdown=markdown, description=markdown_title(markdown))


def publish_artifacts(
    key: str,
    markdown: str,
    tables: Sequence[tuple[str, str, list[dict[str, str]]]] = (),
) -> None:
    """One markdown artifact `<key>-summary` and a table artifact per (suffix, description,
    rows) with rows; keys stay stable so the UI shows each artifact's history across runs."""
    publish_markdown(f"{key}-summary", markdown)
    for suffix, description, rows in tables:
        if not rows:
            continue
        shown = rows[:MAX_TABLE_ROWS]
        if len(rows) > len(shown):
            description += f" (first {len(shown)} of {len(rows)})"
        create_table_artifact(key=f"{key}-{suffix}", table=shown, description=description)


def markdown_title(markdown: str) -> str:
    first = markdown.splitlines()[0] if markdown else ""
    return first.lstrip("# ").strip()


def emit_alerts(alerts: Sequence[Alert]) -> None:
    """One Prefect event per alert, related to the flow run; each also logged as a warning.

    The Event Feed's card shows an event's resources but not its payload, so the message
    also travels as a related resource of role `message`: the card then reads as a sentence."""
    logger = get_run_logger()
    related: list[dict[str, Any]] = []
    run_id = flow_run.get_id()
    if run_id is not None:
        related.append(
            {
                "prefect.resource.id": f"prefect.flow-run.{run_id}",
                "prefect.resource.role": "flow-run",
                "prefect.resource.name": flow_run.get_name() or "",
            }
        )
    base = PREFECT_UI_URL.value()  # the UI's own address: what the failed-run links use
    run_url = f"{base.rstrip('/')}/runs/flow-run/{run_id}" if base and run_id else None
    for alert in alerts:
        logger.warning("ALERT %s: %s", alert.event, alert.message)
        emit_event(
            event=alert.event,
            resource={
                "prefect.resource.id": alert.resource_id,
                "prefect.resource.name": alert.resource_id.rpartition(".")[2],
                "aftersale.message": alert.message,
            },
            related=[
                *related,
                {"prefect.resource.id": alert.message, "prefect.resource.role": "message"},
            ],
            payload={**alert.payload, "message": alert.message, "run_url": run_url or ""},
        )
