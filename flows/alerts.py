"""What a flow run publishes to the Prefect UI: its final name, artifacts and alert events,
plus a logging filter that masks any address or phone number before a log line leaves.

Alerts are Prefect events (`aftersale.*`, resource `aftersale.<thing>.<id>`); the
automations in `automations/` turn them, and failed or crashed runs, into notifications.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.client.orchestration import get_client
from prefect.events import emit_event
from prefect.runtime import flow_run

from aftersale.masking import mask_text
from aftersale.ops.report import Alert

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


def rename_run(name: str) -> None:
    """Give the current flow run its readable, final name (`cycle … · 412 polled · 37 sent`)."""
    run_id = flow_run.get_id()
    if run_id is None:
        return
    with get_client(sync_client=True) as client:
        client.update_flow_run(run_id, name=name)


def publish_artifacts(
    key: str,
    markdown: str,
    tables: Sequence[tuple[str, str, list[dict[str, str]]]] = (),
) -> None:
    """One markdown artifact `<key>-summary` and a table artifact per (suffix, description,
    rows) with rows; keys stay stable so the UI shows each artifact's history across runs."""
    create_markdown_artifact(
        key=f"{key}-summary", markdown=markdown, description=markdown_title(markdown)
    )
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
    """One Prefect event per alert, related to the flow run; each also logged as a warning."""
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
    for alert in alerts:
        logger.warning("ALERT %s: %s", alert.event, alert.message)
        emit_event(
            event=alert.event,
            resource={"prefect.resource.id": alert.resource_id, "aftersale.message": alert.message},
            related=related,
            payload=dict(alert.payload),
        )
