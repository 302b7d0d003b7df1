"""Shop platforms: one file per platform maps its order JSON to aftersale's order rows.

A platform module exposes `PLATFORM` (a `base.Platform`): its name, how it signs webhooks,
and `map_order`, a pure function from one platform order to aftersale's order row (the
NDJSON schema of README "Order files", validated by the same code) plus the facts a row
does not carry (when the platform last changed the order, cancellation, refunds).
A third platform is one more file and one line here.
"""

from __future__ import annotations

from aftersale.intake.shops import shopify, woocommerce
from aftersale.intake.shops.base import Platform

PLATFORMS: dict[str, Platform] = {
    "shopify": shopify.PLATFORM,
    "woocommerce": woocommerce.PLATFORM,
}
