"""Shop platforms' webhooks: `POST /webhooks/shopify` and `POST /webhooks/woocommerce`.

Each request is verified the platform's way (base64 HMAC-SHA256 of the raw body with the
shop's secret, compared in constant time) before anything else is read; a body over
`MAX_BODY_BYTES` is refused unread. A verified order (Shopify orders/create|updated|
cancelled, WooCommerce order.created|updated) is handed to the sink, which stores it
like `aftersale import --format …` (aftersale/intake/platform.py): the platform's
`updated_at` decides, so a replayed or out-of-order delivery changes nothing. A verified
refund, return or return parcel (Shopify refunds/create, returns/*,
reverse_deliveries/attach_deliverable: the platform's `updates`) is read at once (a body
that is not what its topic says is refused with the reason) and stored by
aftersale/intake/shop_updates.py, each once. On DuckDB the sink spools the body (one file
per delivery, applied by the next cycle, like the providers' webhooks); on PostgreSQL it
writes to the store at once.

Shopify's fulfillments/* are acknowledged and not stored on their own: Shopify follows
each with orders/updated, which carries every fulfilment. WooCommerce pings a new webhook
with `webhook_id=…` as a form body: answered 200.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from aftersale.carriers_meta import Carriers
from aftersale.dispatch.spool import write_atomically
from aftersale.intake.files import ImportReport
from aftersale.intake.platform import apply_platform_orders, parse_platform
from aftersale.intake.shop_updates import apply_shop_updates, parse_updates
from aftersale.intake.shops import PLATFORMS
from aftersale.intake.shops.base import RecordError, ShopMapping, signature_valid
from aftersale.store.protocols import Store
from aftersale.store.records import Rejection

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 2 * 1024 * 1024
#: Topics whose body is an order; the others are acknowledged (module docstring).
ORDER_TOPICS = {
    "shopify": {"orders/create", "orders/updated", "orders/cancelled", "orders/edited"},
    "woocommerce": {"order.created", "order.updated", "order.restored"},
}
ACKNOWLEDGED_TOPICS = {
    "shopify": {"fulfillments/create", "fulfillments/update", "orders/delete"},
    "woocommerce": {"order.deleted"},
}


#: When Shopify says the event happened (deliveries come late and out of order).
TRIGGERED_AT_HEADER = "X-Shopify-Triggered-At"


def sent_at(header: str | None, now: datetime) -> datetime:
    """The platform's own time of a delivery when it gives a sane one, else `now`."""
    try:
        said = datetime.fromisoformat((header or "").replace("Z", "+00:00"))
    except ValueError:
        return now
    if said.tzinfo is None or said > now:
        return now
    return said.astimezone(UTC)


class ShopSink(Protocol):
    def shop_order(
        self, platform: str, topic: str, delivery_id: str, body: str, at: datetime
    ) -> None: ...


def apply_shop_delivery(
    store: Store,
    platform: str,
    topic: str,
    body: str,
    source: str,
    *,
    now: datetime,
    carriers: Carriers,
    mapping: ShopMapping,
    at: datetime | None = None,
) -> ImportReport:
    """Store one delivery: an order like a file import, or a refund/return update (`at`:
    when the platform sent it, the time of a return's new state; else `now`)."""
    if topic not in PLATFORMS[platform].updates:
        return apply_shop_order(
            store, platform, body, source, now=now, carriers=carriers, mapping=mapping
        )
    try:
        updates = parse_updates(body, platform, topic, carriers, at or now)
    except RecordError as exc:
        log.warning("webhook %s: %s", source, exc)
        store.record_rejections([Rejection(source, 1, str(exc))], now)
        return ImportReport(source, 0, 0, [Rejection(source, 1, str(exc))])
    return apply_shop_updates(store, platform, updates, source, now=now, carriers=carriers)


def apply_shop_order(
    store: Store,
    platform: str,
    body: str,
    source: str,
    *,
    now: datetime,
    carriers: Carriers,
    mapping: ShopMapping,
) -> ImportReport:
    """Store one delivered order the way a file import would."""
    parsed, facts = parse_platform(body, source, platform, mapping, carriers, now=now)
    report = apply_platform_orders(store, parsed, facts, source, now, carriers)
    for rejection in report.rejections:
        log.warning("webhook %s: %s", source, rejection.reason)
    return report


class StoreShopSink:
    """PostgreSQL: apply each verified order at once."""

    def __init__(self, store: Store, carriers: Carriers, mapping: ShopMapping) -> None:
        self.store, self.carriers, self.mapping = store, carriers, mapping

    def shop_order(
        self, platform: str, topic: str, delivery_id: str, body: str, at: datetime
    ) -> None:
        apply_shop_delivery(
            self.store,
            platform,
            topic,
            body,
            f"{platform} webhook {delivery_id}",
            now=at,
            carriers=self.carriers,
            mapping=self.mapping,
        )


class SpoolShopSink:
    """DuckDB: keep each verified order as a file for the next cycle (one writer)."""

    def __init__(self, spool_dir: Path) -> None:
        self.folder = Path(spool_dir) / "shops"

    def shop_order(
        self, platform: str, topic: str, delivery_id: str, body: str, at: datetime
    ) -> None:
        record = {
            "platform": platform,
            "topic": topic,
            "delivery_id": delivery_id,
            "at": at.isoformat(),
        }
        # a retried delivery is a second file: applying it changes nothing (same updated_at)
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in delivery_id)[:80]
        name = f"{at:%Y%m%dT%H%M%S%f}-{platform}-{safe}.json"
        write_atomically(self.folder, name, json.dumps(record) + "\n" + body)


def ingest_shop_spool(
    store: Store, spool_dir: Path, *, now: datetime, carriers: Carriers, mapping: ShopMapping
) -> list[ImportReport]:
    """Apply spooled shop orders oldest first (the cycle's intake); each file is deleted
    once stored, or moved to `rejected/` when it cannot be read at all."""
    folder = Path(spool_dir) / "shops"
    if not folder.is_dir():
        return []
    reports = []
    for path in sorted(folder.glob("*.json")):
        try:
            head, body = path.read_text(encoding="utf-8").split("\n", 1)
            record = json.loads(head)
            platform = record["platform"]
        except (OSError, UnicodeDecodeError, ValueError, KeyError) as exc:
            (folder / "rejected").mkdir(exist_ok=True)
            os.replace(path, folder / "rejected" / path.name)
            log.error("shop webhook spool %s: unreadable (%s), moved to rejected/", path, exc)
            continue
        # spooled before topics were kept: every one of those was an order
        topic = record.get("topic") or next(iter(ORDER_TOPICS[platform]))
        sent_at = datetime.fromisoformat(record["at"]) if record.get("at") else None
        reports.append(
            apply_shop_delivery(
                store,
                platform,
                topic,
                body,
                f"{platform} webhook {record.get('delivery_id', path.name)}",
                now=now,
                carriers=carriers,
                mapping=mapping,
                at=sent_at,
            )
        )
        path.unlink()
    return reports


def shop_routes(
    secrets: Mapping[str, str],
    sink: ShopSink,
    call_sink: Callable[[Callable[[], None]], Any],
    carriers: Carriers,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> list[Route]:
    """The routes for every platform with a secret (others answer 404: nothing unsigned
    is ever accepted). `call_sink` runs the sink off the event loop, one call at a time;
    `carriers` names the carriers of return parcels."""

    async def receive(request: Request) -> Response:
        platform = request.path_params["platform"]
        spec = PLATFORMS.get(platform)
        secret = secrets.get(platform)
        if spec is None or not secret:
            return PlainTextResponse(f"{platform}: not configured on this receiver", 404)
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            return PlainTextResponse("body too large", 413)
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                return PlainTextResponse("body too large", 413)
        if not signature_valid(secret, body, request.headers.get(spec.signature_header)):
            log.warning("webhook %s: bad or missing %s", platform, spec.signature_header)
            return PlainTextResponse("signature does not match", 401)
        topic = request.headers.get(spec.topic_header, "")
        delivery = request.headers.get(spec.delivery_header) or "unnamed"
        if platform == "woocommerce" and body.startswith(b"webhook_id="):
            return JSONResponse({"ok": True, "ping": True})
        if topic in ACKNOWLEDGED_TOPICS.get(platform, set()):
            return JSONResponse({"ok": True, "stored": False, "topic": topic})
        if topic not in ORDER_TOPICS.get(platform, set()) and topic not in spec.updates:
            return PlainTextResponse(f"{platform}: topic {topic!r} is not one aftersale takes", 400)
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return PlainTextResponse("body is not UTF-8", 400)
        at = sent_at(request.headers.get(TRIGGERED_AT_HEADER), now())
        if topic in spec.updates:
            # read now, so a body that is not what its topic says is refused, not spooled
            try:
                parse_updates(text, platform, topic, carriers, at)
            except RecordError as exc:
                return PlainTextResponse(f"{platform} {topic}: {exc}", 400)
        await call_sink(lambda: sink.shop_order(platform, topic, delivery, text, at))
        log.info("webhook %s %s delivery %s accepted", platform, topic, delivery)
        return JSONResponse({"ok": True, "stored": True, "topic": topic})

    return [Route("/webhooks/{platform}", receive, methods=["POST"])]
