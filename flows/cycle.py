"""The `aftersale-cycle` Prefect flow: each stage is one task over a batch.

Tasks receive the cycle's parts (a live DuckDB connection among them), so caching is
off and the arguments are `quote`d (Prefect need not walk 10,000 poll results). Retries
fit each stage: intake and poll retry once (both are safe to repeat: imports are keyed
by order id, a poll only reads), detect and decide write batches in transactions and
fail loudly, and dispatch never retries (a claimed send is never repeated).
At the end the run is renamed (`cycle 2026-11-22 10:15 · 412 polled · 37 sent`) and
publishes its summary and messages as artifacts and its alerts as events.
Run without a server: `python -m flows.cycle` or `aftersale run`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from prefect.utilities.annotations import quote

from aftersale import cycle as core
from aftersale.errors import RuleSetError
from aftersale.models import MessageState
from aftersale.ops.report import build_report, ruleset_alert
from aftersale.store import open_store
from carriers.registry import load_settings
from flows.alerts import emit_alerts, install_masking, publish_artifacts, rename_run
from flows.wiring import build_parts


@task(name="intake", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=5)
def intake_task(stage: Callable[..., Any], *args: Any) -> list[Any]:
    return stage(*args)


@task(name="poll", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=10)
def poll_task(stage: Callable[..., core.PollStage], *args: Any) -> core.PollStage:
    polled = stage(*args)
    get_run_logger().info("polled %d shipments: %s", len(polled.results), polled.by_carrier())
    return polled


@task(name="detect", cache_policy=NO_CACHE)
def detect_task(stage: Callable[..., core.DetectStage], *args: Any) -> core.DetectStage:
    detected = stage(*args)
    logger = get_run_logger()
    for error in detected.errors[:50]:
        logger.warning("poll failed: %s", error)
    if len(detected.errors) > 50:
        logger.warning("… and %d more poll failures (see the summary)", len(detected.errors) - 50)
    logger.info("detected %d new events", len(detected.events))
    return detected


@task(name="decide", cache_policy=NO_CACHE)
def decide_task(stage: Callable[..., core.DecideStage], *args: Any) -> core.DecideStage:
    decided = stage(*args)
    get_run_logger().info(
        "queued %d messages, cancelled %d, %d events sent nothing",
        decided.queued,
        decided.cancelled,
        len(decided.outcome.skipped),
    )
    return decided


@task(name="dispatch", cache_policy=NO_CACHE, retries=0)
def dispatch_task(stage: Callable[..., Any], *args: Any) -> Any:
    report = stage(*args)
    logger = get_run_logger()
    for o in report.outcomes:
        if o.outcome in ("failed", "unknown", "deferred"):
            logger.warning(
                "message %s rule=%s order=%s %s %s: %s",
                o.message_id,
                o.rule_id,
                o.order_id,
                o.channel,
                o.outcome,
                o.reason,
            )
    return report


# Retries fit each stage (module docstring); the sequence itself is aftersale.cycle's.
STAGE_TASKS = {
    "intake": intake_task,
    "poll": poll_task,
    "detect": detect_task,
    "decide": decide_task,
    "dispatch": dispatch_task,
}


def run_as_task(name: str, stage: Callable[..., Any], *args: Any) -> Any:
    # quote: Prefect need not walk the parts (a live connection) or 10,000 poll results
    return STAGE_TASKS[name](stage, *(quote(a) for a in args))


def _run_name() -> str:
    now = flow_run.get_parameters().get("now")
    clock = now if isinstance(now, datetime) else flow_run.get_scheduled_start_time()
    return f"cycle {clock:%Y-%m-%d %H:%M}"


@flow(name="aftersale-cycle", flow_run_name=_run_name, log_prints=False)
def aftersale_cycle(now: datetime | None = None, dry_run: bool = False) -> dict[str, Any]:
    """One cycle over the store named by AFTERSALE_DB. `now` is for replays and the demo."""
    install_masking()
    logger = get_run_logger()
    settings = load_settings()
    clock = (now or datetime.now(UTC)).astimezone(UTC)
    with open_store(settings.db, wait_s=settings.store_lock_wait_s) as store:
        try:
            parts, notes = build_parts(settings, store, dry_run=dry_run)
        except RuleSetError as exc:
            emit_alerts([ruleset_alert(exc.problems)])
            raise
        for note in notes:
            logger.info(note)
        summary = core.run_cycle(parts, clock, f"cycle-{uuid.uuid4().hex[:12]}", run_as_task)
        unknown_total = store.count_messages(MessageState.UNKNOWN)
    report = build_report(summary, unknown_total=unknown_total)
    rename_run(report.name + (" · dry run" if dry_run else ""))
    publish_artifacts(
        "cycle",
        report.markdown,
        [
            ("messages", "every message this run touched (recipients masked)", report.messages),
            ("failed-messages", "failed and unknown messages, with the reason", report.failed),
        ],
    )
    emit_alerts(report.alerts)
    return summary.as_dict()


if __name__ == "__main__":
    print(aftersale_cycle())
