"""The `aftersale-fan-out` flow: one cycle shared by several workers (PostgreSQL only).

It starts `workers` runs of the cycle deployment `aftersale-cycle/worker` (prefect.yaml)
with its own clock; the work pool hands each to a free worker, each its own flow run in
the UI (under this one). They share the cycle's work through the store's leases: each
claims the next page of due parcels, and of due messages, that nobody holds, so no
parcel is polled twice and no message sent twice, and a worker that dies leaves its
pages to the others. There are no fixed shards (carrier x hash): a slow carrier or a
lost worker never leaves one shard behind while the others idle (docs/operations.md).
This run waits for them and publishes their summaries, added up.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Annotated, Any

from prefect import flow, get_run_logger
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from pydantic import Field

from aftersale.errors import ConfigError
from aftersale.ops.report import run_label
from aftersale.store import is_url, open_store
from carriers.registry import load_settings
from flows.alerts import current_label, publish_markdown, rename_run, run_clock, token_of
from flows.cycle import DEGRADED

#: The deployment whose runs do the work (prefect.yaml: no schedule, no concurrency limit).
WORKER_DEPLOYMENT = "aftersale-cycle/worker"
#: The figures of a cycle's summary added up over its workers, in the artifact's order.
FIGURES = ("polled", "events", "queued", "cancelled", "sent", "deferred", "failed", "unknown")


def add_summaries(summaries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The workers' cycle summaries as one: numbers summed, counts per key merged, lists
    joined; other values (the clock) taken from the first."""
    total: dict[str, Any] = {}
    for summary in summaries:
        for key, value in summary.items():
            if isinstance(value, bool) or key not in total:
                total.setdefault(key, _copy(value))
            elif isinstance(value, int | float):
                total[key] += value
            elif isinstance(value, Mapping):
                total[key] = add_summaries([total[key], value])
            elif isinstance(value, list):
                total[key] = total[key] + value
    return total


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return add_summaries([value])
    return list(value) if isinstance(value, list) else value


def markdown(label: str, parts: Sequence[tuple[str, Mapping[str, Any]]]) -> str:
    total = add_summaries([s for _, s in parts])
    lines = [f"# {label}: {len(parts)} workers", "", "| run | " + " | ".join(FIGURES) + " |"]
    lines.append("|---" * (len(FIGURES) + 1) + "|")
    for name, summary in [*parts, ("**total**", total)]:
        lines.append(f"| {name} | " + " | ".join(str(summary.get(f, 0)) for f in FIGURES) + " |")
    return "\n".join(lines) + "\n"


def wait_for_runs(runs: Sequence[FlowRun], timeout_s: float, poll_s: float = 2.0) -> list[FlowRun]:
    """The runs as they ended (or stood when `timeout_s` ran out)."""
    deadline = time.monotonic() + timeout_s
    with get_client(sync_client=True) as client:
        while True:
            current = [client.read_flow_run(run.id) for run in runs]
            if all(r.state and r.state.is_final() for r in current):
                return current
            if time.monotonic() > deadline:
                return current
            time.sleep(poll_s)


def _run_name() -> str:
    return current_label("fan-out")


@flow(name="aftersale-fan-out", flow_run_name=_run_name, log_prints=False)
def aftersale_fan_out(
    workers: Annotated[int, Field(ge=1, le=64)] = 2,
    now: datetime | None = None,
    dry_run: bool = False,
    timeout_s: Annotated[int, Field(ge=60)] = 3600,
) -> dict[str, Any]:
    """Run one cycle as `workers` flow runs of `aftersale-cycle/worker` sharing its work;
    returns their summaries added up. A worker run that failed fails this one."""
    logger = get_run_logger()
    settings = load_settings()
    if not is_url(settings.db):
        raise ConfigError(
            f"aftersale-fan-out needs a PostgreSQL store (AFTERSALE_DB is {settings.db}): "
            "one process at a time holds a DuckDB file; run aftersale-cycle instead"
        )
    label = current_label("fan-out")
    clock = run_clock(take=True)
    started = [
        run_deployment(
            WORKER_DEPLOYMENT,
            # one of them imports the inbox's files (each moves once); all poll and send
            parameters={"now": clock, "dry_run": dry_run, "intake": n == 0},
            timeout=0,  # started, not awaited: they run side by side
            as_subflow=True,
        )
        for n in range(workers)
    ]
    logger.info("started %d worker runs of %s for %s", workers, WORKER_DEPLOYMENT, label)
    finished = wait_for_runs(started, timeout_s)
    # each worker run keeps its summary in the store's runs table, under its label
    labels = {run_label("cycle", clock, token_of(run.id)): run for run in finished}
    with open_store(settings.db, wait_s=settings.store_lock_wait_s) as store:
        stored = {r.run_id: r.summary for r in store.list_runs() if r.run_id in labels}
    parts = [(name, stored[name] or {}) for name in labels if name in stored]
    total = add_summaries([s for _, s in parts])
    publish_markdown("fan-out-summary", markdown(label, parts))
    rename_run(f"{label} · {len(parts)} workers · {total.get('polled', 0)} polled · "
               f"{total.get('sent', 0)} sent")  # fmt: skip
    failed = [
        run.name
        for run in finished
        if not run.state or not (run.state.is_completed() or run.state.name == DEGRADED)
    ]
    if failed:
        raise RuntimeError(f"worker runs did not complete: {', '.join(failed)}")
    return total


if __name__ == "__main__":
    print(aftersale_fan_out())
