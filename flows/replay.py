"""The on-demand `aftersale-replay` flow: re-evaluate the stored events of a date range
with the current rules (after a rule fix, or to see what a range would have sent).

Nothing already decided is decided again, so nothing sent is sent twice. By default it
only reports; with `apply=true` the new decisions still within `max_late_hours` of their
due time are queued for the next cycle. It polls no carrier, and waits for the store.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from prefect import flow, get_run_logger
from pydantic import Field

from aftersale.decide.backfill import backfill, check_range
from aftersale.errors import RuleSetError
from aftersale.ops.alerts import ruleset_alert
from aftersale.store import open_store
from carriers.registry import load_settings
from flows.alerts import (
    current_label,
    emit_alerts,
    install_masking,
    publish_artifacts,
    rename_run,
    run_clock,
)
from flows.wiring import load_library, load_rules


def _run_name() -> str:
    return current_label("replay")


@flow(name="aftersale-replay", flow_run_name=_run_name, log_prints=False)
def aftersale_replay(
    start: datetime,
    end: datetime,
    apply: bool = False,
    max_late_hours: Annotated[int, Field(ge=0, le=24 * 31)] = 24,
    store_wait_s: Annotated[float, Field(ge=0, le=7200)] = 1800,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Events that occurred in [start, end) (ISO 8601 with an offset, at most 92 days)."""
    install_masking()
    logger = get_run_logger()
    check_range(start, end)
    label = current_label("replay")
    clock = run_clock(take=True)
    settings = load_settings()
    try:
        ruleset = load_rules(settings, load_library(settings))
    except RuleSetError as exc:
        emit_alerts([ruleset_alert(exc.problems)])
        raise
    with open_store(settings.db, wait_s=store_wait_s) as store:
        report = backfill(
            store,
            ruleset,
            start.astimezone(UTC),
            end.astimezone(UTC),
            clock,
            apply=apply,
            max_late=timedelta(hours=max_late_hours),
            run_id=label,
        )
    summary = report.as_dict()
    logger.info("replay: %s", summary)
    verdict = f"{summary['queued']} queued" if apply else f"{summary['would_queue']} would queue"
    rename_run(
        f"{label} · {start:%Y-%m-%d} → {end:%Y-%m-%d} · {summary['events']} events · {verdict}"
    )
    publish_artifacts(
        "replay",
        report.markdown(),
        [("decisions", "new decisions the current rules make for the range", report.rows())],
    )
    return summary


if __name__ == "__main__":
    import sys

    print(
        aftersale_replay(datetime.fromisoformat(sys.argv[1]), datetime.fromisoformat(sys.argv[2]))
    )
