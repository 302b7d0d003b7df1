"""The `aftersale-shopify-reconcile` flow: pull the Shopify orders changed since the last
run from the Admin GraphQL API and apply them like a webhook would (webhooks can be missed).

Scheduled hourly in prefect.yaml. A run where no Shopify shop is connected (neither
SHOPIFY_SHOP nor SHOPIFY_ADMIN_TOKEN set) does nothing and says so. One task, retried when
Shopify was unreachable or kept throttling (pages already applied stay applied: a retry
resumes at the checkpoint); a refused token or scope fails at once with what to fix. Its
summary (orders seen, new, updated, rejected) is an artifact; rejected orders a table.
Run without a server: `python -m flows.reconcile` or `aftersale shops reconcile`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import httpx
from prefect import Task, flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State, TaskRun
from pydantic import Field

from aftersale.errors import ShopApiError
from aftersale.intake.reconcile import ReconcileReport, reconcile_shopify
from aftersale.intake.shops.base import ShopMapping
from aftersale.intake.shops.shopify_admin import AdminClient, AdminConfig
from aftersale.store import open_store
from carriers.registry import DIRECTORY, load_settings
from flows.alerts import current_label, install_masking, publish_artifacts, rename_run, run_clock


def reconcile_from_env(
    *,
    now: datetime,
    since: datetime | None = None,
    first_run_days: int = 7,
    store_wait_s: float | None = None,
    env: Mapping[str, str] | None = None,
) -> ReconcileReport:
    """One reconcile of the shop the environment names (SHOPIFY_SHOP, SHOPIFY_ADMIN_TOKEN)
    into the store AFTERSALE_DB names: the composition the flow and the CLI share."""
    env = os.environ if env is None else env
    config = AdminConfig.from_env(env)
    settings = load_settings()
    mapping = ShopMapping.load(settings.shop_mapping_path)
    wait_s = settings.store_lock_wait_s if store_wait_s is None else store_wait_s
    with httpx.Client(timeout=httpx.Timeout(30.0, connect=10.0)) as http:
        return reconcile_shopify(
            AdminClient(config, http),
            lambda: open_store(settings.db, wait_s=wait_s),
            source=config.source,
            mapping=mapping,
            carriers=DIRECTORY,
            now=now,
            since=since,
            first_run=timedelta(days=first_run_days),
        )


def _transient(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Retry an outage or a throttle that did not clear; not a refused token."""
    return isinstance(state.data, ShopApiError) and state.data.transient


@task(
    name="reconcile",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=60,
    retry_condition_fn=_transient,
)
def reconcile_task(
    now: datetime, since: datetime | None, first_run_days: int, store_wait_s: float
) -> ReconcileReport:
    return reconcile_from_env(
        now=now, since=since, first_run_days=first_run_days, store_wait_s=store_wait_s
    )


def _run_name() -> str:
    return current_label("shopify-reconcile")


@flow(name="aftersale-shopify-reconcile", flow_run_name=_run_name, log_prints=False)
def aftersale_shopify_reconcile(
    first_run_days: Annotated[int, Field(ge=1, le=60)] = 7,
    since: datetime | None = None,
    store_wait_s: Annotated[float, Field(ge=0, le=7200)] = 600,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Orders updated since the last run (the first run: `first_run_days` back; `since`,
    an ISO time with an offset, pulls from there instead: a backfill)."""
    install_masking()
    logger = get_run_logger()
    label = current_label("shopify-reconcile")
    clock = run_clock(take=True)
    if not AdminConfig.connected(os.environ):
        # a shop without Shopify: the hourly schedule does nothing rather than fail
        note = "Shopify is not connected (no SHOPIFY_SHOP in the environment): nothing to pull"
        logger.info(note)
        rename_run(f"{label} · not connected")
        publish_artifacts("shopify-reconcile", f"# Shopify reconcile\n\n{note}.\n")
        return {"connected": False}
    report = reconcile_task(
        clock, since.astimezone(UTC) if since else None, first_run_days, store_wait_s
    )
    summary = {"connected": True, **report.as_dict()}
    logger.info("shopify reconcile: %s", summary)
    for rejection in report.rejections[:50]:
        logger.warning("rejected: %s", rejection.reason)
    rename_run(
        f"{label} · {report.seen} seen · {report.new} new · {report.updated} updated"
        + (f" · {len(report.rejections)} rejected" if report.rejections else "")
    )
    publish_artifacts(
        "shopify-reconcile",
        report.markdown(),
        [("rejected", "Shopify orders aftersale rejected, and why", report.rejection_rows())],
    )
    return summary


if __name__ == "__main__":
    print(aftersale_shopify_reconcile())
