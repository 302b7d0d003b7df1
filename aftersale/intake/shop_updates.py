"""Apply what a shop platform says on its own about an order already stored: a refund, a
return's new state, the tracking number of a parcel the customer sends back (Shopify's
refunds/create, returns/*, reverse_deliveries/attach_deliverable).

Each is idempotent: a refund or return parcel already stored changes nothing, and a
return's state is replaced only by one at least as new. An update about an order (or a
return) not stored yet is rejected with its reason: the order's own webhook or the
reconcile brings the order, and the platform's order JSON carries its refunds again.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any, Protocol

from aftersale.carriers_meta import Carriers, normalise_tracking_number
from aftersale.errors import IntakeError
from aftersale.intake.files import ImportReport
from aftersale.intake.shops import PLATFORMS
from aftersale.intake.shops.base import (
    RecordError,
    RefundUpdate,
    ReturnParcelUpdate,
    ReturnUpdate,
    Update,
)
from aftersale.store.protocols import OrderStore, PlatformOrderStore, Transactional
from aftersale.store.records import (
    Notice,
    RefundRecord,
    Rejection,
    ReturnParcel,
    ReturnRecord,
)

log = logging.getLogger(__name__)


class _Store(Transactional, OrderStore, PlatformOrderStore, Protocol):
    """What applying platform updates needs of the store."""


def parse_updates(
    body: str, platform: str, topic: str, carriers: Carriers, at: datetime
) -> list[Update]:
    """Pure: what one delivery of `topic` says (RecordError when it is not that)."""
    spec = PLATFORMS.get(platform)
    if spec is None or topic not in spec.updates:
        raise IntakeError(f"{platform}: topic {topic!r} carries no refund or return")
    try:
        payload: Any = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise RecordError(f"payload: not JSON ({exc})") from exc
    return spec.updates[topic](payload, carriers, at)


def apply_shop_updates(
    store: _Store,
    platform: str,
    updates: list[Update],
    source: str,
    *,
    now: datetime,
    carriers: Carriers,
) -> ImportReport:
    refunds = [u for u in updates if isinstance(u, RefundUpdate)]
    returns = [u for u in updates if isinstance(u, ReturnUpdate)]
    parcels = [u for u in updates if isinstance(u, ReturnParcelUpdate)]
    orders = store.order_ids_by_platform_id(
        platform, [u.platform_order_id for u in refunds] + [u.platform_order_id for u in returns]
    )
    rejections: list[Rejection] = []

    def order_of(platform_order_id: str) -> str | None:
        if platform_order_id not in orders:
            rejections.append(
                Rejection(
                    source,
                    1,
                    f"order {platform_order_id}: not stored yet (its orders/* webhook or the "
                    "reconcile brings it, with its refunds)",
                )
            )
        return orders.get(platform_order_id)

    refund_rows = [
        RefundRecord(oid, r.refund_id, r.amount, r.currency, r.created_at)
        for u in refunds
        for r in (u.refund,)
        if (oid := order_of(u.platform_order_id))
    ]
    return_rows = [
        ReturnRecord(oid, u.ret.return_id, u.ret.status, u.ret.at, u.ret.at)
        for u in returns
        if (oid := order_of(u.platform_order_id))
    ]
    with store.transaction():
        new_refunds = store.save_refunds(refund_rows)
        changed_returns = store.save_returns(return_rows)
        known = store.returns_by_id(u.return_id for u in parcels)
        sent_back = []
        for u in parcels:
            if u.return_id not in known:
                rejections.append(
                    Rejection(source, 1, f"return {u.return_id}: not known yet (returns/request)")
                )
                continue
            number = normalise_tracking_number(u.tracking_number)
            ranked = [u.carrier] if u.carrier else carriers.detect(number)
            sent_back.append(
                ReturnParcel(
                    known[u.return_id].order_id,
                    u.return_id,
                    number,
                    ranked[0] if ranked else None,
                    tuple(ranked) if not u.carrier else (),
                )
            )
        new_parcels = store.add_return_parcels(sent_back, now)
        store.record_rejections(rejections, now)
    for rejection in rejections:
        log.warning("%s: %s", source, rejection.reason)
    notices = [
        Notice(source, 0, text)
        for count, text in (
            (new_refunds, f"{new_refunds} refund(s) recorded"),
            (changed_returns, f"{changed_returns} return(s) recorded or updated"),
            (new_parcels, f"{new_parcels} return parcel(s) to track"),
        )
        if count
    ]
    unchanged = len(updates) - len(rejections) - new_refunds - changed_returns - new_parcels
    return ImportReport(source, 0, max(0, unchanged), rejections, notices)
