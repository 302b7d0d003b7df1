"""The composition root: build a cycle's parts (store, carriers, rules, templates, channels).

Used by the Prefect flows and by the CLI. This is the one place that knows every
package; the core (`aftersale`) stays free of `carriers` and Prefect, and gets the
carriers' facts as the registry's `DIRECTORY`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from functools import partial

from aftersale.cycle import CycleParts, PollBatch
from aftersale.decide.ruleset import RuleSet, load_ruleset, rule_files
from aftersale.dispatch.channels.config import build_channels
from aftersale.dispatch.unsubscribe import unsubscribe_links
from aftersale.intake.shops.base import ShopMapping
from aftersale.models import ShipmentState
from aftersale.render.library import TemplateLibrary, build_context
from aftersale.settings import Settings
from aftersale.store import Store
from aftersale.tracking.detect import DelayThresholds, default_thresholds
from aftersale.tracking.schedule import PollSchedule
from carriers.base import Carrier
from carriers.poll import PollGuards, run_poll_report
from carriers.registry import DIRECTORY, build_carriers, limits_from_env

log = logging.getLogger(__name__)


def load_library(settings: Settings) -> TemplateLibrary:
    return TemplateLibrary.load(
        settings.templates_dir, settings.shop, settings.catalogue_path, DIRECTORY
    )


def load_rules(settings: Settings, library: TemplateLibrary) -> RuleSet:
    """Raises RuleSetError listing every problem: a broken rule set sends nothing."""
    return load_ruleset(
        rule_files(settings.rules_dir), carriers=DIRECTORY, template_exists=library.has
    )


def cycle_thresholds(ruleset: RuleSet) -> DelayThresholds:
    """Detection's thresholds: each carrier's own (its META), emitting exactly the day
    counts the rules listen for (delivered + N, warranty end - N)."""
    return ruleset.due_thresholds(default_thresholds(DIRECTORY))


def build_parts(
    settings: Settings,
    store: Store,
    *,
    env: Mapping[str, str] | None = None,
    dry_run: bool = False,
    carriers: Mapping[str, Carrier] | None = None,
) -> tuple[CycleParts, list[str]]:
    """The parts of a cycle, plus notes for the run log (which channel is live and why)."""
    env = os.environ if env is None else env
    library = load_library(settings)
    ruleset = load_rules(settings, library)
    adapters = (
        dict(carriers) if carriers is not None else build_carriers(settings.carrier_urls, env)
    )
    setup = build_channels(env, settings.shop, settings.outbox_dir, dry_run=dry_run)
    # One set of guards per process: the daily budgets and breaker cooldowns span cycles.
    # On PostgreSQL the carriers' limits are shared by every worker polling at once.
    guards = PollGuards(
        limits_from_env(adapters, env, settings.poll_concurrency), shared=store.shared_limits()
    )

    def poll(due: Sequence[ShipmentState], candidates: Mapping[str, list[str]]) -> PollBatch:
        report = run_poll_report(
            due,
            adapters,
            timeout_s=settings.poll_timeout_s,
            concurrency=settings.poll_concurrency,
            guards=guards,
            candidates=dict(candidates),
        )
        details = report.as_dict()
        return PollBatch(report.results, report.breakers_open, report.corrections, details)

    parts = CycleParts(
        store=store,
        settings=settings,
        poll=poll,
        ruleset=ruleset,
        renderer=library,
        build_context=partial(_context, library, settings, unsubscribe_links(settings, env, store)),
        channels=setup.channels,
        detect_carrier=DIRECTORY,
        shop_mapping=ShopMapping.load(settings.shop_mapping_path),
        thresholds=cycle_thresholds(ruleset),
        schedule=PollSchedule.from_env(env),
        dry_run=dry_run,
        page_size=settings.page_size,
    )
    return parts, list(setup.notes)


def _context(library: TemplateLibrary, settings: Settings, unsubscribe, order, **kwargs):  # type: ignore[no-untyped-def]
    return build_context(
        order,
        settings.shop,
        carriers=library.carriers,
        catalogue=library.catalogue,
        unsubscribe=unsubscribe,
        **kwargs,
    )
