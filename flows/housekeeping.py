"""The daily `aftersale-housekeeping` flow: expire stale shipments, turn messages stuck in
`sending` into `unknown` (reported, never resent), purge old scans and personal data, and
publish the `report` artifact (the last days' messages, deliveries and delay notices).

It waits for the store (a running cycle holds the DuckDB file) up to `store_wait_s`,
instead of failing on the lock.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Annotated, Any

from prefect import flow, get_run_logger
from pydantic import Field

from aftersale.ops.alerts import unknown_alert
from aftersale.ops.housekeeping import Retention, run_housekeeping
from aftersale.ops.trends import read_trends
from aftersale.ops.trends_page import render_markdown
from aftersale.store import open_store
from carriers.registry import load_settings
from flows.alerts import (
    current_label,
    emit_alerts,
    install_masking,
    publish_artifacts,
    publish_markdown,
    rename_run,
    run_clock,
)


def _run_name() -> str:
    return current_label("housekeeping")


@flow(name="aftersale-housekeeping", flow_run_name=_run_name, log_prints=False)
def aftersale_housekeeping(
    tracking_events_days: Annotated[int, Field(ge=1, le=3650)] = 180,
    personal_data_days: Annotated[int, Field(ge=1, le=3650)] = 365,
    stuck_sending_minutes: Annotated[int, Field(ge=5, le=1440)] = 30,
    store_wait_s: Annotated[float, Field(ge=0, le=7200)] = 1800,
    report_days: Annotated[int, Field(ge=0, le=92)] = 7,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Retention periods in days; a message `sending` for longer than
    `stuck_sending_minutes` was left by a crashed run. The `report` artifact covers the
    `report_days` whole days (UTC) before today (0: none)."""
    install_masking()
    logger = get_run_logger()
    label = current_label("housekeeping")
    clock = run_clock(take=True)
    retention = Retention(
        tracking_events_days=tracking_events_days,
        personal_data_days=personal_data_days,
        stuck_sending_after=timedelta(minutes=stuck_sending_minutes),
    )
    settings = load_settings()
    today = datetime.combine(clock.date(), time(), UTC)
    with open_store(settings.db, wait_s=store_wait_s) as store:
        report = run_housekeeping(store, clock, retention)
        since = today - timedelta(days=report_days)
        trends = read_trends(store, since, today) if report_days else None
    summary = report.as_dict()
    logger.info("housekeeping: %s", summary)
    rename_run(
        f"{label} · {len(report.expired)} expired · "
        f"{len(report.stuck)} stuck · {report.unknown_total} unknown"
    )
    publish_artifacts(
        "housekeeping",
        report.markdown(clock, retention),
        [("stuck-messages", "messages found stuck in sending, now unknown", report.stuck)],
    )
    if trends is not None:
        # the daily report: its history under one key is the pipeline's trend
        publish_markdown("report", render_markdown(trends))
    if report.unknown_total:
        emit_alerts([unknown_alert(report.unknown_total, len(report.stuck), "housekeeping")])
    return summary


if __name__ == "__main__":
    print(aftersale_housekeeping())
