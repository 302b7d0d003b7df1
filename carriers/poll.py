"""Poll a batch of shipments: grouped per carrier, bounded concurrency, retried outages.

One shipment's failure never stops the rest: every shipment ends as a `PollResult`
with either a tracking (possibly "not found" or with problems) or the error that
stopped it after its retries.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import httpx

from aftersale.errors import CarrierAuthError, CarrierUnavailable
from aftersale.models import PollResult, ShipmentState
from carriers.base import Carrier

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 3  # total tries per shipment
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0
    jitter: float = 0.25  # +-25 % so a burst of retries does not hit the carrier in step

    def delay(self, attempt: int, retry_after_s: float | None) -> float:
        if retry_after_s is not None:
            return min(retry_after_s, self.max_delay_s)
        base = min(self.base_delay_s * 2 ** (attempt - 1), self.max_delay_s)
        return base * (1 + random.uniform(-self.jitter, self.jitter))


async def poll_shipments(
    shipments: Sequence[ShipmentState],
    carriers: Mapping[str, Carrier],
    client: httpx.AsyncClient,
    *,
    concurrency: int = 16,
    retry: RetryPolicy = RetryPolicy(),
) -> list[PollResult]:
    """Fetch every shipment's tracking; the result list has one entry per shipment."""
    gates = {slug: asyncio.Semaphore(concurrency) for slug in carriers}

    async def one(shipment: ShipmentState) -> PollResult:
        slug = shipment.carrier or ""
        carrier = carriers.get(slug)
        if carrier is None:
            reason = "no carrier set" if not slug else f"carrier {slug!r} is not configured"
            return PollResult(shipment.shipment_id, slug, None, reason)
        async with gates[slug]:
            return await _fetch_with_retries(carrier, shipment, client, retry)

    return list(await asyncio.gather(*(one(s) for s in shipments)))


async def _fetch_with_retries(
    carrier: Carrier, shipment: ShipmentState, client: httpx.AsyncClient, retry: RetryPolicy
) -> PollResult:
    number = shipment.tracking_number
    for attempt in range(1, retry.attempts + 1):
        try:
            tracking = await carrier.fetch(client, number)
            return PollResult(shipment.shipment_id, carrier.slug, tracking)
        except CarrierAuthError as exc:
            return PollResult(shipment.shipment_id, carrier.slug, None, str(exc))
        except CarrierUnavailable as exc:
            if attempt == retry.attempts:
                log.warning("%s: giving up after %d attempts: %s", carrier.slug, attempt, exc)
                return PollResult(shipment.shipment_id, carrier.slug, None, str(exc))
            await asyncio.sleep(retry.delay(attempt, exc.retry_after_s))
    raise AssertionError("unreachable: the loop returns on its last attempt")


def run_poll(
    shipments: Sequence[ShipmentState],
    carriers: Mapping[str, Carrier],
    *,
    timeout_s: float = 10.0,
    concurrency: int = 16,
    retry: RetryPolicy = RetryPolicy(),
) -> list[PollResult]:
    """Synchronous entry point: one shared AsyncClient for the whole batch."""

    async def main() -> list[PollResult]:
        limits = httpx.Limits(max_connections=concurrency * max(1, len(carriers)))
        async with httpx.AsyncClient(timeout=timeout_s, limits=limits) as client:
            return await poll_shipments(
                shipments, carriers, client, concurrency=concurrency, retry=retry
            )

    return asyncio.run(main())
