"""Pull what a shop changed since the last pull (webhooks can be missed) and apply it the
way every platform import is applied (aftersale.intake.platform): new orders are stored,
newer copies add later fulfilments, cancel pending messages and record refunds; the parcels
sent back for approved returns are applied like reverse_deliveries/attach_deliverable.

The checkpoint is the newest `updated_at` seen, kept in the store per shop. A run asks for
the orders updated after it, less LOOKBACK (Shopify's order search lags its writes by
seconds; a copy seen twice changes nothing); the first run looks back FIRST_RUN. Each page
is applied and its checkpoint saved before the next page is asked for, so a run that stops
resumes where it got to. The store is open only while a page is written, never while the
platform makes us wait: a DuckDB file has one writer, and the cycle must not queue behind
Shopify's throttle.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from aftersale.carriers_meta import Carriers
from aftersale.intake.files import ParseResult
from aftersale.intake.platform import apply_platform_orders, parse_platform
from aftersale.intake.shop_updates import apply_shop_updates
from aftersale.intake.shops.base import (
    PlatformFacts,
    RecordError,
    ShopMapping,
    Update,
    timestamp,
)
from aftersale.intake.shops.shopify import map_reverse_delivery
from aftersale.intake.shops.shopify_admin import Page
from aftersale.masking import mask_text
from aftersale.store.protocols import (
    OrderStore,
    PlatformOrderStore,
    SyncStateStore,
    Transactional,
)
from aftersale.store.records import Notice, Rejection

LOOKBACK = timedelta(minutes=5)
FIRST_RUN = timedelta(days=7)


class OrderPuller(Protocol):
    """A platform API client (shopify_admin.AdminClient) as a run sees it."""

    requests: int
    throttled: int
    waited_s: float

    def orders_updated_since(self, since: datetime) -> Iterator[Page]: ...


class ReconcileStore(Transactional, OrderStore, PlatformOrderStore, SyncStateStore, Protocol):
    """What a reconcile run needs of the store."""


@dataclass(slots=True)
class ReconcileReport:
    source: str  # shopify-admin:<shop>
    since: datetime  # orders updated after this were asked for
    checkpoint: datetime | None  # the newest updated_at seen, after the run
    pages: int = 0
    seen: int = 0
    new: int = 0
    updated: int = 0  # stored orders a newer copy changed (fulfilments, cancellation, refunds)
    unchanged: int = 0
    rejections: list[Rejection] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    requests: int = 0
    throttled: int = 0  # THROTTLED answers, each waited out
    waited_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "since": self.since.isoformat(timespec="seconds"),
            "checkpoint": self.checkpoint.isoformat(timespec="seconds")
            if self.checkpoint
            else None,
            "pages": self.pages,
            "seen": self.seen,
            "new": self.new,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "rejected": len(self.rejections),
            "requests": self.requests,
            "throttled": self.throttled,
            "waited_s": round(self.waited_s, 1),
        }

    def markdown(self) -> str:
        """The run for the Prefect UI; addresses and phone numbers in reasons masked."""
        lines = [
            f"# Shopify reconcile · {self.source}",
            "",
            f"Orders updated after {self.since:%Y-%m-%d %H:%M:%S} UTC, in {self.pages} page(s) "
            f"and {self.requests} request(s); waited {self.waited_s:.1f} s for Shopify's "
            f"rate limit ({self.throttled} throttled answer(s)). Checkpoint now: "
            + (f"{self.checkpoint:%Y-%m-%d %H:%M:%S} UTC." if self.checkpoint else "none."),
            "",
            "| seen | new | updated | unchanged | rejected |",
            "| ---: | ---: | ---: | ---: | ---: |",
            f"| {self.seen} | {self.new} | {self.updated} | {self.unchanged} "
            f"| {len(self.rejections)} |",
        ]
        if self.rejections:
            lines += ["", "## Rejected", ""]
            lines += [f"- {mask_text(r.reason)}" for r in self.rejections[:50]]
            if len(self.rejections) > 50:
                lines.append(f"- … and {len(self.rejections) - 50} more (the rejections table)")
        if self.notices:
            lines += ["", "## Notes", ""] + [f"- {n.text}" for n in self.notices[:50]]
        return "\n".join(lines) + "\n"

    def rejection_rows(self) -> list[dict[str, str]]:
        return [{"record": str(r.line), "reason": mask_text(r.reason)} for r in self.rejections]


def reconcile_shopify(
    client: OrderPuller,
    session: Callable[[], AbstractContextManager[ReconcileStore]],
    *,
    source: str,
    mapping: ShopMapping,
    carriers: Carriers,
    now: datetime,
    since: datetime | None = None,
    first_run: timedelta = FIRST_RUN,
) -> ReconcileReport:
    """Apply every order the shop changed since the checkpoint (or `since`, when given:
    a backfill); `session()` opens the store for one page's writes."""
    with session() as store:
        checkpoint = store.sync_checkpoint(source)
    if since is None:
        since = checkpoint - LOOKBACK if checkpoint else now - first_run
    report = ReconcileReport(source, since, checkpoint)
    for page in client.orders_updated_since(since):
        parsed, facts, rejections = _parse_page(page, source, report.seen, mapping, carriers, now)
        parcels = _return_parcels(page, source, carriers, now, rejections)
        ids = [o.order_id for o in parsed.orders]
        newest = _newest(page)
        with session() as store:
            known = store.known_order_ids(ids)
            before = store.platform_orders(ids)
            applied = apply_platform_orders(store, parsed, facts, source, now, carriers, rejections)
            after = store.platform_orders(ids)
            # after the orders: a parcel belongs to a return the page's orders just stored
            sent_back = apply_shop_updates(store, "shopify", parcels, source, now=now,
                                           carriers=carriers)  # fmt: skip
            if newest is not None:
                store.save_sync_checkpoint(source, newest, now)
        updated = sum(1 for i in known if after.get(i) != before.get(i))
        report.pages += 1
        report.seen += len(page.orders)
        report.new += applied.loaded
        report.updated += updated
        report.unchanged += len(known) - updated
        report.rejections += applied.rejections + sent_back.rejections
        report.notices += applied.notices + sent_back.notices
        if newest is not None and (report.checkpoint is None or newest > report.checkpoint):
            report.checkpoint = newest
    report.requests, report.throttled = client.requests, client.throttled
    report.waited_s = client.waited_s
    return report


def _parse_page(
    page: Page,
    source: str,
    offset: int,
    mapping: ShopMapping,
    carriers: Carriers,
    now: datetime,
) -> tuple[ParseResult, dict[str, PlatformFacts], list[Rejection]]:
    """The page's orders through the one platform parser. Records are numbered through the
    run (`offset` came before) and each rejection names its order, since a number alone
    means nothing to someone looking at the shop."""
    parsed, facts = parse_platform(
        json.dumps(page.orders), source, "shopify", mapping, carriers, now=now
    )
    names = {
        i: str(o.get("name") or o.get("admin_graphql_api_id")) for i, o in enumerate(page.orders, 1)
    }
    problems = {index + 1: reason for index, reason in page.problems.items()}

    def named(line: int, reason: str) -> Rejection:
        return Rejection(source, offset + line, f"order {names.get(line, '?')}: {reason}")

    rejections = [named(line, reason) for line, reason in sorted(problems.items())]
    rejections += [named(r.line, r.reason) for r in parsed.rejections if r.line not in problems]
    orders = [o for o in parsed.orders if parsed.lines[o.order_id] not in problems]
    lines = {o.order_id: offset + parsed.lines[o.order_id] for o in orders}
    return (
        ParseResult(orders, [], lines),
        {o.order_id: facts[o.order_id] for o in orders},
        rejections,
    )


def _return_parcels(
    page: Page, source: str, carriers: Carriers, now: datetime, rejections: list[Rejection]
) -> list[Update]:
    """The page's return parcels, read as their webhook's body is read."""
    updates: list[Update] = []
    for body in page.return_parcels:
        try:
            updates += map_reverse_delivery(body, carriers, now)
        except RecordError as exc:
            rejections.append(Rejection(source, 0, f"return parcel: {exc}"))
    return updates


def _newest(page: Page) -> datetime | None:
    """The page's newest `updated_at`: rejected orders count too (they are recorded with
    their reason; asking for them again each run would not change them)."""
    times = []
    for order in page.orders:
        try:
            times.append(timestamp(order.get("updated_at"), "updated_at"))
        except RecordError:
            continue
    return max(times, default=None)
