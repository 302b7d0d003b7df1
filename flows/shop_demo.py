"""The demo's shop: Shopify orders, fulfilments, a cancellation, a return and refunds
delivered as signed webhooks to the real receiver (`aftersale webhooks serve`'s app) on
127.0.0.1, which spools them for the next cycle like any installation on DuckDB.

examples/shop_demo.json holds the deliveries (hours after the demo's start, topic, body
in Shopify's documented shape) and the sandbox parcels of these orders. Each body is
signed the way Shopify signs it (base64 HMAC-SHA256 of the raw body with the app's
secret) and carries the headers Shopify sends.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import uvicorn

from aftersale.dispatch.inbound import build_webhook_app
from aftersale.dispatch.spool import SpoolSink
from aftersale.intake.shop_webhooks import TRIGGERED_AT_HEADER, SpoolShopSink, shop_routes
from carriers.registry import DIRECTORY
from sandbox.app import SandboxClock
from sandbox.server import ThreadedServer, free_port
from sandbox.timelines import SandboxParcel

#: The demo shop's app secret (SHOPIFY_WEBHOOK_SECRET of a real installation).
DEMO_SECRET = "demo-shopify-webhook-secret"


@dataclass(frozen=True, slots=True)
class Delivery:
    hours: float  # after the demo's start
    topic: str
    payload: dict[str, Any]

    @property
    def body(self) -> bytes:
        return json.dumps(self.payload, ensure_ascii=False).encode()


@dataclass(frozen=True, slots=True)
class ShopDemo:
    parcels: list[SandboxParcel]
    deliveries: list[Delivery]

    @property
    def order_names(self) -> list[str]:
        return sorted({d.payload["name"] for d in self.deliveries if "line_items" in d.payload})

    def between(self, after: float, until: float) -> list[Delivery]:
        """The deliveries due in (after, until] hours, in order."""
        return [d for d in self.deliveries if after < d.hours <= until]


def load_shop_demo(path: Path) -> ShopDemo:
    data = json.loads(path.read_text(encoding="utf-8"))
    return ShopDemo(
        [SandboxParcel.from_json(p) for p in data["parcels"]],
        sorted(
            (Delivery(float(d["hours"]), d["topic"], d["payload"]) for d in data["deliveries"]),
            key=lambda d: d.hours,
        ),
    )


def sign(body: bytes, secret: str = DEMO_SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


class ShopReceiver:
    """The webhook receiver on a free 127.0.0.1 port, in a thread, spooling to `spool`;
    its clock is the sandbox's (deliveries are stamped with the demo's time)."""

    def __init__(self, spool: Path, clock: SandboxClock) -> None:
        self.port = free_port()
        app = build_webhook_app(
            SpoolSink(spool),
            twilio_auth_token=None,
            sendgrid_public_key=None,
            public_url=f"http://127.0.0.1:{self.port}",
            now=clock.now,
            extra_routes=lambda call_sink: shop_routes(
                {"shopify": DEMO_SECRET}, SpoolShopSink(spool), call_sink, DIRECTORY, clock.now
            ),
        )
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self._server = ThreadedServer(config, "the shop webhook receiver")

    def __enter__(self) -> ShopReceiver:
        self._server.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.stop()

    def post(self, delivery: Delivery, at: datetime, number: int) -> httpx.Response:
        """Send one delivery as Shopify would: signed body, topic, webhook id, time."""
        body = delivery.body
        return httpx.post(
            f"http://127.0.0.1:{self.port}/webhooks/shopify",
            content=body,
            headers={
                "Content-Type": "application/json",
                "X-Shopify-Topic": delivery.topic,
                "X-Shopify-Hmac-Sha256": sign(body),
                "X-Shopify-Shop-Domain": "northwind.myshopify.com",
                "X-Shopify-Webhook-Id": f"demo-{number}",
                TRIGGERED_AT_HEADER: at.isoformat(),
            },
            timeout=10,
        )


class DemoShop:
    """The demo's Shopify: its receiver listening while the demo runs, and before each
    cycle the deliveries due since the last one posted at their own times."""

    def __init__(self, demo: ShopDemo, spool: Path, clock: SandboxClock, start: datetime) -> None:
        self.demo, self.clock, self.start = demo, clock, start
        self.receiver = ShopReceiver(spool, clock)
        self.done = float("-inf")  # hours up to which deliveries were posted

    def __enter__(self) -> DemoShop:
        self.receiver.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.receiver.__exit__(exc_type, exc, tb)

    def before_cycle(self, hours: float) -> int:
        """Post what is due up to `hours` after the start; the caller sets the clock to the
        cycle's time after. Returns how many; a refused delivery is the demo's bug."""
        due = self.demo.between(self.done, hours)
        for delivery in due:
            at = self.start + timedelta(hours=delivery.hours)
            self.clock.set(at)
            response = self.receiver.post(delivery, at, self.demo.deliveries.index(delivery))
            if response.status_code != 200:
                raise RuntimeError(f"{delivery.topic} at +{delivery.hours}h: {response.text}")
        self.done = hours
        return len(due)
