"""The `aftersale-cycle` Prefect flow: each stage is one task over a batch.

Tasks receive the cycle's parts (a live DuckDB connection among them), so caching is
off and the arguments are `quote`d (Prefect need not walk 10,000 poll results). Retries
fit each stage: intake and poll retry once (both are safe to repeat: imports are keyed
by order id, a poll only reads), detect and decide write batches in transactions and
fail loudly, and dispatch never retries (a claimed send is never repeated).

A run has one name from its start, `cycle 2026-11-22 10:15 · 3f9a2c` (its clock in UTC
and the end of its flow run id), used as the store's run id and in its artifacts; at
the end it gains what it did (`… · 412 polled · 37 sent`). It publishes its summary,
messages and the carriers' health as artifacts and its alerts as events. A run while a
carrier or channel is down ends in the state *Degraded* (type FAILED: red in the UI) with
the reasons as its message; `cycle_summary` reads its result all the same.
Run without a server: `python -m flows.cycle` or `aftersale run`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State
from prefect.states import Failed
from prefect.utilities.annotations import quote

from aftersale import cycle as core
from aftersale.errors import RuleSetError
from aftersale.models import MessageState
from aftersale.ops.alerts import RUN_DEGRADED, Alert, ruleset_alert
from aftersale.ops.report import build_report
from aftersale.ops.tally import MessageTally
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
from flows.wiring import build_parts

#: The name of the not-green final state of a run while something is down.
DEGRADED = "Degraded"


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
    why = Counter(s.why.value for s in decided.outcome.skipped)
    get_run_logger().info(
        "queued %d messages, cancelled %d; sent nothing: %s (per rule: the summary's "
        "'Why nothing was sent')",
        decided.queued,
        decided.cancelled,
        ", ".join(f"{n} {reason}" for reason, n in why.most_common()) or "none",
    )
    return decided


#: Outcomes logged message by message (the summary lists them too).
NOTED = ("failed", "unknown", "deferred")


@task(name="dispatch", cache_policy=NO_CACHE, retries=0)
def dispatch_task(stage: Callable[..., MessageTally], *args: Any) -> MessageTally:
    report = stage(*args)
    logger = get_run_logger()
    noted = [o for o in report.listed() if o.outcome in NOTED]
    for o in noted:
        logger.warning(
            "message %s rule=%s order=%s %s %s: %s",
            o.message_id,
            o.rule_id,
            o.order_id,
            o.channel,
            o.outcome,
            o.reason,
        )
    if (more := sum(report.count(o) for o in NOTED) - len(noted)) > 0:
        logger.warning("… and %d more failed, unknown or deferred (see the summary)", more)
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
    return current_label("cycle")


@flow(name="aftersale-cycle", flow_run_name=_run_name, log_prints=False)
def aftersale_cycle(now: datetime | None = None, dry_run: bool = False, intake: bool = True) -> Any:
    """One cycle over the store named by AFTERSALE_DB. `now` is for replays and the demo;
    `intake` off for all but one of several runs sharing a cycle (aftersale-fan-out).
    Returns the run's summary, or (something is down) a Degraded state holding it."""
    install_masking()
    logger = get_run_logger()
    settings = load_settings()
    label = current_label("cycle")
    clock = run_clock(take=True)
    logger.info("run %s, clock %s UTC", label, f"{clock:%Y-%m-%d %H:%M:%S}")
    with open_store(
        settings.db, wait_s=settings.store_lock_wait_s, lease_s=settings.lease_s
    ) as store:
        try:
            parts, notes = build_parts(settings, store, dry_run=dry_run)
        except RuleSetError as exc:
            emit_alerts([ruleset_alert(exc.problems)])
            raise
        for note in notes:
            logger.info(note)
        summary = core.run_cycle(parts, clock, label, run_as_task, intake=intake)
        unknown_total = store.count_messages(MessageState.UNKNOWN)
    report = build_report(summary, label=label, unknown_total=unknown_total)
    rename_run(report.name + (" · dry run" if dry_run else ""))
    publish_artifacts(
        "cycle",
        report.markdown,
        [
            (
                "messages",
                "every message this run touched (recipients masked)"
                + first_of(len(report.messages), report.message_total),
                report.messages,
            ),
            (
                "failed-messages",
                "failed and unknown messages, with the reason"
                + first_of(len(report.failed), report.failed_total),
                report.failed,
            ),
        ],
    )
    publish_markdown("carrier-health", report.health)
    emit_alerts(report.alerts)
    result = summary.as_dict()
    if not report.degraded:
        return result
    reasons = "; ".join(report.degraded)
    emit_alerts([Alert(RUN_DEGRADED, "aftersale.cycle", f"{report.name} is degraded: {reasons}")])
    return Failed(name=DEGRADED, message=f"degraded: {reasons}", data=result)


def first_of(shown: int, total: int) -> str:
    """What a table's description adds when it lists only the first rows (attention first)."""
    return f" (first {shown} of {total})" if total > shown else ""


def cycle_summary(state: State[Any]) -> dict[str, Any]:
    """A finished cycle's summary, degraded or not; a failed or crashed run raises."""
    if state.name == DEGRADED:
        return state.result(raise_on_failure=False)  # type: ignore[return-value]
    return state.result()  # type: ignore[return-value]


def run_cycle_flow(now: datetime | None = None, dry_run: bool = False) -> dict[str, Any]:
    """Run the flow here and return its summary (`summary["degraded"]` says why, if so)."""
    return cycle_summary(aftersale_cycle(now=now, dry_run=dry_run, return_state=True))


if __name__ == "__main__":
    print(run_cycle_flow())
