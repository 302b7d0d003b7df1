"""The `aftersale-cycle` Prefect flow: each stage is one task over a batch.

Tasks receive the cycle's parts (a live DuckDB connection among them), so caching is
off: a stage must run every time. Polling retries live inside the carrier layer
(per shipment, with backoff), and dispatch never retries a claimed send.
Run without a server: `python -m flows.cycle` or `aftersale run`.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from aftersale import cycle as core
from aftersale.cycle import CycleParts, CycleSummary
from aftersale.settings import Settings
from aftersale.store import Store
from flows.wiring import build_parts


@task(name="intake", cache_policy=NO_CACHE)
def intake_task(parts: CycleParts, now: datetime) -> list[Any]:
    return core.intake_pending(parts, now)


@task(name="poll", cache_policy=NO_CACHE)
def poll_task(parts: CycleParts, now: datetime) -> core.PollStage:
    stage = core.poll_due(parts, now)
    get_run_logger().info("polled %d shipments: %s", len(stage.results), stage.by_carrier())
    return stage


@task(name="detect", cache_policy=NO_CACHE)
def detect_task(parts: CycleParts, poll: core.PollStage, now: datetime, run_id: str) -> core.DetectStage:
    stage = core.detect_stage(parts, poll, now, run_id)
    logger = get_run_logger()
    for error in stage.errors:
        logger.warning("poll failed: %s", error)
    logger.info("detected %d new events", len(stage.events))
    return stage


@task(name="decide", cache_policy=NO_CACHE)
def decide_task(parts: CycleParts, detected: core.DetectStage, now: datetime, run_id: str) -> core.DecideStage:
    stage = core.decide_stage(parts, detected.events, now, run_id)
    get_run_logger().info(
        "queued %d messages, cancelled %d, %d events sent nothing",
        stage.queued, stage.cancelled, len(stage.outcome.skipped),
    )
    return stage


@task(name="dispatch", cache_policy=NO_CACHE)
def dispatch_task(parts: CycleParts, now: datetime, run_id: str) -> Any:
    report = core.dispatch_stage(parts, now, run_id)
    logger = get_run_logger()
    for o in report.outcomes:
        if o.outcome in ("failed", "unknown", "deferred"):
            logger.warning("message %s rule=%s %s: %s", o.message_id, o.rule_id, o.outcome, o.reason)
    return report


def run_stages(parts: CycleParts, now: datetime, run_id: str) -> CycleSummary:
    parts.store.start_run(run_id, "cycle", now)
    imports = intake_task(parts, now)
    poll = poll_task(parts, now)
    detected = detect_task(parts, poll, now, run_id)
    decided = decide_task(parts, detected, now, run_id)
    dispatched = dispatch_task(parts, now, run_id)
    summary = CycleSummary(now, imports, poll, detected, decided, dispatched)
    parts.store.finish_run(run_id, summary.as_dict())
    return summary


@flow(name="aftersale-cycle", log_prints=False)
def aftersale_cycle(now: datetime | None = None, dry_run: bool = False) -> dict[str, Any]:
    """One cycle over the store named by AFTERSALE_DB. `now` is for replays and the demo."""
    logger = get_run_logger()
    settings = Settings.from_env()
    clock = now or datetime.now(UTC)
    with Store.open(settings.db_path, wait_s=settings.store_lock_wait_s) as store:
        parts, notes = build_parts(settings, store, dry_run=dry_run)
        for note in notes:
            logger.info(note)
        summary = run_stages(parts, clock, f"cycle-{uuid.uuid4().hex[:12]}")
    return summary.as_dict()


if __name__ == "__main__":
    print(aftersale_cycle())
