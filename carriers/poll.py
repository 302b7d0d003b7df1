"""Poll a batch of shipments: per carrier bounded concurrency, rate limits, retries, breaker.

Every shipment ends as one `PollResult`, in input order, and nothing raises:
- a tracking (maybe "not found", maybe with problems: that is data about the parcel);
- or the error that stopped it: outage after its retries, credentials refused, the
  carrier's circuit open, its daily request budget used up, no carrier configured.

Per carrier (`CarrierLimits`): at most `concurrency` requests in flight; a token bucket
of `rate_per_s` (burst one second's worth); an optional daily budget (`rate_per_day`,
DHL's starter plan: 250) after which the rest waits for the next run. Timeouts,
connection failures, 5xx and 429 are retried with exponential backoff and jitter
(`RetryPolicy`); a 429's Retry-After is honoured and pauses the whole carrier. Other
4xx are never retried (404 is "not found", others fail the poll); an answer that cannot be
believed (malformed, an unmapped current status, about another parcel) is retried like
an outage (`CarrierAnswerError`); UPS refreshes
its token once on 401 inside its own `fetch`. After `BreakerPolicy.threshold`
consecutive failed requests a carrier's circuit opens for `cooldown_s`: its remaining
shipments are not called this run, and the log says so once per carrier.

`PollGuards` holds the buckets, budgets and breakers; keep one per process to make the
daily budget and breaker cooldown span runs (a fresh one per batch otherwise). When
several workers poll at once (PostgreSQL), give it the store's `SharedLimits`: each
carrier's per-second and per-day limits then hold for all workers together
(`SharedBucket`: requests are taken from the store's budget in chunks of ~0.1 s, and
the budget fills at 75% of the limit so no second goes over it).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import httpx

from aftersale.errors import CarrierAnswerError, CarrierAuthError, CarrierUnavailable
from aftersale.models import PollResult, ShipmentState
from aftersale.store.protocols import SharedLimits
from carriers.base import Carrier
from carriers.transport import AiohttpClient, HttpClient, HttpxClient

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[Any]]
#: One client for every carrier, or one per carrier slug (each with its own pool).
Clients = HttpClient | Mapping[str, HttpClient]
HTTP_BACKENDS = ("httpx", "aiohttp")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 3  # total tries per shipment
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0
    jitter: float = 0.25  # +-25 % so a burst of retries does not hit the carrier in step
    #: A Retry-After longer than this is not waited for: the shipment fails this run and
    #: the schedule tries it again later (a cycle should not sleep for an hour).
    max_retry_after_s: float = 60.0

    def delay(
        self, attempt: int, retry_after_s: float | None, rng: random.Random | None = None
    ) -> float:
        """Seconds to wait before try `attempt + 1`; never shorter than Retry-After."""
        base = min(self.base_delay_s * 2 ** (attempt - 1), self.max_delay_s)
        jittered = base * (1 + (rng or random).uniform(-self.jitter, self.jitter))
        return max(jittered, retry_after_s) if retry_after_s is not None else jittered


@dataclass(frozen=True, slots=True)
class CarrierLimits:
    concurrency: int = 16
    rate_per_s: float | None = None  # None: no limit
    rate_per_day: int | None = None  # None: no daily budget


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    threshold: int = 5  # consecutive failed requests (outages, refused credentials)
    cooldown_s: float = 300.0


def default_limits(carrier: Carrier, concurrency: int = 16) -> CarrierLimits:
    """What the adapter documents: its requests/s and, where it has one, its daily budget."""
    return CarrierLimits(
        concurrency=concurrency,
        rate_per_s=carrier.default_rate_per_s,
        rate_per_day=getattr(carrier, "default_rate_per_day", None),
    )


class TokenBucket:
    """`rate` tokens per second, at most `capacity` saved up; `pause` empties it for a while."""

    def __init__(self, rate: float, capacity: float, clock: Callable[[], float]) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be > 0, got {rate}")
        self.rate = rate
        self.capacity = max(1.0, capacity)
        self.tokens = self.capacity
        self._clock = clock
        self._updated = clock()
        self._paused_until = 0.0

    def wait_time(self) -> float:
        """0 and a token taken, or how long to wait before asking again."""
        now = self._clock()
        self.tokens = min(self.capacity, self.tokens + (now - self._updated) * self.rate)
        self._updated = now
        if now < self._paused_until:
            return self._paused_until - now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate

    async def acquire(self, sleep: Sleep) -> bool:
        """Wait for a token; always True (a process's own bucket has no day budget)."""
        while (wait := self.wait_time()) > 0:
            await sleep(wait)
        return True

    def pause(self, seconds: float) -> None:
        """The carrier said "retry after": nobody calls it before then."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)
        self.tokens = 0.0


#: Seconds of a carrier's rate a worker takes from the shared budget at a time (and the
#: most the shared bucket saves up): fewer store round trips, bursts stay small. Requests
#: a worker took are its to spend for this long after it asked; then it drops what is
#: left, so however many workers there are, none holds a saved-up burst in hand. A store
#: round trip is a millisecond or two; one longer than this would waste every grant, so
#: the window then stretches to the round trip (see `SharedBucket._late`).
SHARED_CHUNK_S = 0.1
#: The shared bucket fills at this share of the limit. The requests made in any one
#: second were taken within 1.1 s (they keep 0.1 s), plus what the bucket had saved up
#: (0.1 s worth): 1.2 s at 75% is 90% of the limit; the rest is a margin for the network
#: (bench/scale.py saw a busiest second of 97.5% at 80%).
SHARED_HEADROOM = 0.75
#: Requests taken at a time when a carrier has a day budget but no rate.
SHARED_DAY_CHUNK = 10


class SharedBucket:
    """A carrier's limits held for every worker together: requests are taken from the
    store's shared budget (`SharedLimits`) a chunk at a time and spent one per request.
    `acquire` is False once the carrier's day budget is used up, by anyone."""

    def __init__(
        self,
        budget: SharedLimits,
        slug: str,
        limits: CarrierLimits,
        clock: Callable[[], float],
        today: Callable[[], date],
    ) -> None:
        self.budget, self.slug = budget, slug
        self.rate = limits.rate_per_s * SHARED_HEADROOM if limits.rate_per_s else None
        self.per_day = limits.rate_per_day
        self.chunk = max(1, int(self.rate * SHARED_CHUNK_S)) if self.rate else SHARED_DAY_CHUNK
        self.tokens = 0
        self._taken_at = 0.0
        self._clock, self._today = clock, today
        self._paused_until = 0.0
        self._spent_on: date | None = None
        self._window = SHARED_CHUNK_S  # how long after asking requests in hand may be spent
        self._late_once = False  # the last grant came back after its window
        self._lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def acquire(self, sleep: Sleep) -> bool:
        async with self._refill_lock():  # one store round trip at a time per process
            while True:
                if (pause := self._paused_until - self._clock()) > 0:
                    await sleep(pause)
                    continue
                if self.tokens >= 1 and self._usable():
                    self.tokens -= 1
                    return True
                today = self._today()
                if self._spent_on == today:
                    return False
                asked_at = self._clock()
                grant = await asyncio.to_thread(
                    self.budget.take_requests,
                    self.slug,
                    self.chunk,
                    rate_per_s=self.rate,
                    capacity=float(self.chunk),
                    per_day=self.per_day,
                    today=today,
                )
                self.tokens = grant.granted  # what was left in hand has run out
                # timed from the asking: a grant that comes back late (a slow round trip,
                # a busy machine) is not spent late, bunched with the next ones
                self._taken_at = asked_at
                self._late(self._clock() - asked_at)
                if grant.day_spent:
                    self._spent_on = today
                elif not grant.granted:
                    await sleep(max(grant.wait_s, 0.001))

    def _usable(self) -> bool:
        """Requests in hand may still be spent: with a rate, only within SHARED_CHUNK_S of
        asking for them (dropped after: they count as used today, which errs on the safe
        side); a day budget alone puts no time on them."""
        return self.rate is None or self._clock() - self._taken_at <= self._window

    def _late(self, round_trip_s: float) -> None:
        """A grant that came back after its window: once may be a hiccup (it is dropped
        and a fresh one asked for), but a store that always answers this slowly (another
        region, an overloaded server) would have every grant dropped and polling stall.
        The second time the window stretches to the round trip plus a chunk, and the
        operator is told: requests are then spent up to that much later than granted, so
        a busy second can go over the 75% headroom by that share of the rate."""
        if round_trip_s <= self._window:
            self._late_once = False
            return
        if not self._late_once:
            self._late_once = True
            return
        self._window = round_trip_s + SHARED_CHUNK_S
        self._late_once = False
        log.warning(
            "%s: the store took %.2f s to grant requests (usually a few ms), longer than the "
            "%.1f s grants are kept for; they are now kept %.2f s, and the busiest second "
            "may exceed %d%% of the carrier's limit: run workers near the database",
            self.slug,
            round_trip_s,
            SHARED_CHUNK_S,
            self._window,
            round((SHARED_CHUNK_S * 2 + 1 + round_trip_s) * SHARED_HEADROOM * 100),
        )

    def pause(self, seconds: float) -> None:
        """The carrier said "retry after": this worker does not call it before then."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)

    def _refill_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()  # each batch runs in its own event loop
        if self._lock is None or self._loop is not loop:
            self._lock, self._loop = asyncio.Lock(), loop
        return self._lock


class DailyQuota:
    """At most `limit` requests per UTC day (DHL resets its quota at 00:00 GMT)."""

    def __init__(self, limit: int, today: Callable[[], date]) -> None:
        self.limit = limit
        self.used = 0
        self._today = today
        self._day = today()

    def take(self) -> bool:
        day = self._today()
        if day != self._day:
            self._day, self.used = day, 0
        if self.used >= self.limit:
            return False
        self.used += 1
        return True


class Breaker:
    """Opens after `threshold` consecutive failures; after the cooldown one failure reopens it."""

    def __init__(self, policy: BreakerPolicy, clock: Callable[[], float]) -> None:
        self.policy = policy
        self.failures = 0
        self.open_until = 0.0
        self._clock = clock

    @property
    def is_open(self) -> bool:
        return self._clock() < self.open_until

    def success(self) -> None:
        self.failures = 0

    def failure(self) -> bool:
        """Count one failed request; True when this failure opened the circuit."""
        self.failures += 1
        if self.failures >= self.policy.threshold and not self.is_open:
            self.open_until = self._clock() + self.policy.cooldown_s
            return True
        return False


class PollGuards:
    """Per-carrier rate buckets, daily budgets and breakers; they outlive a batch if kept."""

    def __init__(
        self,
        limits: Mapping[str, CarrierLimits] | None = None,
        breaker: BreakerPolicy = BreakerPolicy(),
        *,
        clock: Callable[[], float] = time.monotonic,
        today: Callable[[], date] = lambda: datetime.now(UTC).date(),
        shared: SharedLimits | None = None,
    ) -> None:
        self.limits = dict(limits or {})
        self.breaker_policy = breaker
        self.clock = clock
        self._today = today
        self.shared = shared
        self.buckets: dict[str, TokenBucket | SharedBucket | None] = {}
        self.quotas: dict[str, DailyQuota | None] = {}
        self.breakers: dict[str, Breaker] = {}

    def limits_for(self, slug: str, carrier: Carrier, concurrency: int) -> CarrierLimits:
        if slug not in self.limits:
            self.limits[slug] = default_limits(carrier, concurrency)
        return self.limits[slug]

    def bucket(self, slug: str, limits: CarrierLimits) -> TokenBucket | SharedBucket | None:
        if slug not in self.buckets:
            rate = limits.rate_per_s
            if self.shared is not None and (rate or limits.rate_per_day):
                self.buckets[slug] = SharedBucket(
                    self.shared, slug, limits, self.clock, self._today
                )
            else:
                self.buckets[slug] = TokenBucket(rate, rate, self.clock) if rate else None
        return self.buckets[slug]

    def quota(self, slug: str, limits: CarrierLimits) -> DailyQuota | None:
        """This process's day budget (None with shared limits: the shared bucket has it)."""
        if slug not in self.quotas:
            budget = limits.rate_per_day if self.shared is None else None
            self.quotas[slug] = DailyQuota(budget, self._today) if budget else None
        return self.quotas[slug]

    def breaker(self, slug: str) -> Breaker:
        if slug not in self.breakers:
            self.breakers[slug] = Breaker(self.breaker_policy, self.clock)
        return self.breakers[slug]


@dataclass
class PollReport:
    """The batch's results (one per shipment, input order) and what the guards did."""

    results: list[PollResult]
    breakers_open: list[str] = field(default_factory=list)  # carriers whose circuit is open
    rate_limited: dict[str, int] = field(default_factory=dict)  # 429 answers per carrier
    quota_exhausted: dict[str, int] = field(default_factory=dict)  # shipments over the day budget
    skipped: dict[str, int] = field(default_factory=dict)  # shipments not called: circuit open
    attempts: dict[str, int] = field(default_factory=dict)  # calls per carrier, retries included
    retries: dict[str, int] = field(default_factory=dict)
    corrections: dict[str, str] = field(default_factory=dict)  # shipment_id -> carrier that knew it

    def as_dict(self) -> dict[str, Any]:
        return {
            "polled": len(self.results),
            "errors": sum(1 for r in self.results if r.error),
            "breakers_open": list(self.breakers_open),
            "rate_limited": dict(self.rate_limited),
            "quota_exhausted": dict(self.quota_exhausted),
            "skipped": dict(self.skipped),
            "attempts": dict(self.attempts),
            "retries": dict(self.retries),
            "corrections": dict(self.corrections),
        }


class _Batch:
    """One batch's run: semaphores are bound to its event loop, counters to its report."""

    def __init__(
        self,
        carriers: Mapping[str, Carrier],
        client: Clients,
        guards: PollGuards,
        concurrency: int,
        retry: RetryPolicy,
        sleep: Sleep,
        rng: random.Random,
    ) -> None:
        self.carriers = carriers
        self.client = client
        self.guards = guards
        self.concurrency = concurrency
        self.retry = retry
        self.sleep = sleep
        self.rng = rng
        self.gates: dict[str, asyncio.Semaphore] = {}
        self.rate_limited: Counter[str] = Counter()
        self.quota_exhausted: Counter[str] = Counter()
        self.skipped: Counter[str] = Counter()
        self.attempts: Counter[str] = Counter()
        self.retries: Counter[str] = Counter()
        self.opened: dict[str, int] = {}  # carrier -> consecutive failures when it opened

    def gate(self, slug: str, limits: CarrierLimits) -> asyncio.Semaphore:
        if slug not in self.gates:
            self.gates[slug] = asyncio.Semaphore(max(1, limits.concurrency))
        return self.gates[slug]

    def order(self, shipment: ShipmentState, candidates: Sequence[str]) -> list[str]:
        """The carriers to ask, in turn: the stored one first, then the candidates."""
        order = list(dict.fromkeys(s for s in (shipment.carrier, *candidates) if s))
        if not shipment.carrier:  # detected only: start with the first candidate we can ask
            order = [slug for slug in order if slug in self.carriers] or order
        return order

    def workers(self, slug: str) -> int:
        """Coroutines draining one carrier's queue: twice its slots, so that shipments
        sleeping in backoff do not leave a slot idle (the gate still bounds requests)."""
        if slug not in self.carriers:
            return 1  # nothing to call: each such shipment answers at once
        limits = self.guards.limits_for(slug, self.carriers[slug], self.concurrency)
        return 2 * max(1, limits.concurrency)

    async def poll(self, shipment: ShipmentState, order: Sequence[str]) -> PollResult:
        """Ask the carriers of `order` (`self.order`'s) in turn."""
        if not order:
            return PollResult(shipment.shipment_id, "", None, "no carrier set and none detected")
        if order[0] not in self.carriers:
            return PollResult(
                shipment.shipment_id, order[0], None, f"carrier {order[0]!r} is not configured"
            )
        try:
            result = await self.fetch(order[0], shipment)
            if result.tracking is None or result.tracking.found:
                return result
            # The first carrier does not know the number: a wrong guess corrects itself
            # when the next candidate does.
            for slug in order[1:]:
                if slug not in self.carriers:
                    continue
                other = await self.fetch(slug, shipment)
                if other.tracking is not None and other.tracking.found:
                    log.info(
                        "%s %s: unknown to %s, known to %s; carrier corrected",
                        shipment.shipment_id, shipment.tracking_number, order[0], slug,
                    )  # fmt: skip
                    return other
            return result
        except Exception as exc:  # a bug in an adapter must not cost the rest of the batch
            log.exception(
                "%s %s: unexpected error while polling", order[0], shipment.tracking_number
            )
            return PollResult(shipment.shipment_id, order[0], None, f"unexpected error: {exc!r}")

    async def fetch(self, slug: str, shipment: ShipmentState) -> PollResult:
        carrier = self.carriers[slug]
        limits = self.guards.limits_for(slug, carrier, self.concurrency)
        breaker = self.guards.breaker(slug)
        bucket = self.guards.bucket(slug, limits)
        quota = self.guards.quota(slug, limits)
        sid, number = shipment.shipment_id, shipment.tracking_number
        error: CarrierUnavailable | None = None
        for attempt in range(1, self.retry.attempts + 1):
            if breaker.is_open:  # do not even queue for a slot
                return self._not_called(sid, slug, error)
            async with self.gate(slug, limits):
                if bucket is not None and not await bucket.acquire(self.sleep):
                    self.quota_exhausted[slug] += 1
                    return PollResult(
                        sid,
                        slug,
                        None,
                        f"{slug}: daily budget of {limits.rate_per_day} requests (shared by "
                        "every worker) used up; not polled",
                    )
                if breaker.is_open:  # checked after waiting: it may have opened meanwhile
                    return self._not_called(sid, slug, error)
                if quota is not None and not quota.take():
                    self.quota_exhausted[slug] += 1
                    return PollResult(
                        sid,
                        slug,
                        None,
                        f"{slug}: daily budget of {quota.limit} requests used up; not polled",
                    )
                self.attempts[slug] += 1
                try:
                    tracking = await carrier.fetch(self._client(slug), number)
                except CarrierAuthError as exc:
                    self._failed(slug, breaker)
                    return PollResult(sid, slug, None, str(exc))
                except CarrierAnswerError as exc:
                    if not exc.retryable:  # a 4xx refusal: asking again now changes nothing
                        return PollResult(sid, slug, None, str(exc))
                    self._failed(slug, breaker)
                    error = exc
                except (CarrierUnavailable, httpx.RequestError) as exc:
                    self._failed(slug, breaker)
                    error = (
                        exc
                        if isinstance(exc, CarrierUnavailable)
                        else _unavailable(slug, number, exc)
                    )
                else:
                    breaker.success()
                    return PollResult(sid, slug, tracking)
            assert error is not None  # only the outage branch leaves the slot without returning
            retry_after = error.retry_after_s
            if _is_rate_limit(error):
                self.rate_limited[slug] += 1
            if attempt == self.retry.attempts:
                log.warning("%s: giving up after %d attempts: %s", slug, attempt, error)
                return PollResult(sid, slug, None, f"{error} (after {attempt} attempts)")
            if retry_after is not None and retry_after > self.retry.max_retry_after_s:
                return PollResult(
                    sid, slug, None, f"{error}; asked to retry after {retry_after:g} s"
                )
            if retry_after is not None and bucket is not None:
                bucket.pause(retry_after)
            self.retries[slug] += 1
            await self.sleep(self.retry.delay(attempt, retry_after, self.rng))
        raise AssertionError("unreachable: the loop returns on its last attempt")

    def _client(self, slug: str) -> HttpClient:
        return self.client[slug] if isinstance(self.client, Mapping) else self.client

    def _not_called(self, sid: str, slug: str, error: CarrierUnavailable | None) -> PollResult:
        if error is not None:  # it was called and failed; the retry is what the circuit stops
            return PollResult(sid, slug, None, f"{error} (not retried: {slug} circuit open)")
        self.skipped[slug] += 1
        return PollResult(sid, slug, None, _circuit_open(slug))

    def _failed(self, slug: str, breaker: Breaker) -> None:
        if breaker.failure():
            self.opened[slug] = breaker.failures


def _unavailable(slug: str, number: str, exc: httpx.RequestError) -> CarrierUnavailable:
    return CarrierUnavailable(slug, number, f"request failed: {exc!r}")


def _circuit_open(slug: str) -> str:
    return f"{slug}: circuit open after repeated failures; not polled this run"


def _is_rate_limit(error: CarrierUnavailable) -> bool:
    # CarrierUnavailable carries no status code; carriers.base.raise_for_outage names it.
    return error.retry_after_s is not None or "HTTP 429" in str(error)


def _corrections(shipments: Sequence[ShipmentState], results: list[PollResult]) -> dict[str, str]:
    """Shipments answered by another carrier than the stored one (or by a detected one)."""
    return {
        r.shipment_id: r.carrier
        for s, r in zip(shipments, results, strict=True)
        if r.tracking is not None and r.tracking.found and r.carrier != (s.carrier or "")
    }


async def _poll_all(
    batch: _Batch, shipments: Sequence[ShipmentState], candidates: Mapping[str, Sequence[str]]
) -> list[PollResult]:
    """Poll through a fixed pool of workers per first carrier, results in input order.

    A task per shipment costs more CPU than the request it waits for at volume, and
    one shared queue would let a slow carrier's backlog hold up the others."""
    queues: dict[str, list[int]] = {}
    orders = [batch.order(s, candidates.get(s.shipment_id, ())) for s in shipments]
    for i, order in enumerate(orders):
        queues.setdefault(order[0] if order else "", []).append(i)
    results: list[PollResult | None] = [None] * len(shipments)

    async def work(queue: Iterator[int]) -> None:
        for i in queue:
            results[i] = await batch.poll(shipments[i], orders[i])

    workers = []
    for slug, indices in queues.items():
        queue = iter(indices)  # shared by the carrier's workers: each index is taken once
        workers += [work(queue) for _ in range(min(len(indices), batch.workers(slug)))]
    await asyncio.gather(*workers)
    missing = [shipments[i].shipment_id for i, r in enumerate(results) if r is None]
    if missing:  # cannot happen: `poll` returns for every shipment and never raises
        raise AssertionError(f"no result for shipments {missing[:5]}")
    return results  # type: ignore[return-value]  # no None left, checked above


async def poll_batch(
    shipments: Sequence[ShipmentState],
    carriers: Mapping[str, Carrier],
    client: Clients,
    *,
    concurrency: int = 16,
    retry: RetryPolicy = RetryPolicy(),
    limits: Mapping[str, CarrierLimits] | None = None,
    breaker: BreakerPolicy = BreakerPolicy(),
    guards: PollGuards | None = None,
    candidates: Mapping[str, Sequence[str]] | None = None,
    sleep: Sleep = asyncio.sleep,
    rng: random.Random | None = None,
) -> PollReport:
    """Poll every shipment; `limits` default to each adapter's documented ones.

    `candidates` (shipment_id -> carrier slugs, best first) lets a shipment whose carrier
    says "not found" be asked of the next candidate; the result then names that carrier."""
    guards = guards if guards is not None else PollGuards(limits, breaker)
    batch = _Batch(carriers, client, guards, concurrency, retry, sleep, rng or random.Random())
    candidates = candidates or {}
    results = await _poll_all(batch, shipments, candidates)
    for slug, failures in batch.opened.items():
        failed = sum(1 for r in results if r.carrier == slug and r.error)
        log.warning(
            "carrier %s: circuit open after %d consecutive failed requests; %d shipments "
            "failed this run, %d of them not called at all",
            slug, failures, failed, batch.skipped[slug],
        )  # fmt: skip
    open_now = [slug for slug, b in guards.breakers.items() if b.is_open and slug in carriers]
    return PollReport(
        results=results,
        breakers_open=sorted(set(open_now) | set(batch.opened)),
        rate_limited=dict(batch.rate_limited),
        quota_exhausted=dict(batch.quota_exhausted),
        skipped=dict(batch.skipped),
        attempts=dict(batch.attempts),
        retries=dict(batch.retries),
        corrections=_corrections(shipments, results),
    )


async def poll_shipments(
    shipments: Sequence[ShipmentState],
    carriers: Mapping[str, Carrier],
    client: Clients,
    *,
    concurrency: int = 16,
    retry: RetryPolicy = RetryPolicy(),
    **kwargs: Any,
) -> list[PollResult]:
    """Fetch every shipment's tracking; the result list has one entry per shipment."""
    report = await poll_batch(
        shipments, carriers, client, concurrency=concurrency, retry=retry, **kwargs
    )
    return report.results


def run_poll_report(
    shipments: Sequence[ShipmentState],
    carriers: Mapping[str, Carrier],
    *,
    timeout_s: float = 10.0,
    concurrency: int = 16,
    retry: RetryPolicy = RetryPolicy(),
    limits: Mapping[str, CarrierLimits] | None = None,
    breaker: BreakerPolicy = BreakerPolicy(),
    guards: PollGuards | None = None,
    candidates: Mapping[str, Sequence[str]] | None = None,
    http_backend: str = "aiohttp",
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
) -> PollReport:
    """Synchronous entry point: the clients live for the batch (`loop_factory`: e.g. uvloop's).

    `http_backend="aiohttp"` (default): one `carriers.transport.AiohttpClient`, about 5x
    less CPU per request at volume than `"httpx"`: one `httpx.AsyncClient` per carrier,
    each pool sized to that carrier's concurrency (httpcore's pool cost grows with its
    size)."""
    if http_backend not in HTTP_BACKENDS:
        raise ValueError(f"http_backend must be one of {HTTP_BACKENDS}, got {http_backend!r}")
    guards = guards if guards is not None else PollGuards(limits, breaker)
    sizes = {
        slug: guards.limits_for(slug, c, concurrency).concurrency for slug, c in carriers.items()
    }

    reports: list[PollReport] = []

    async def main() -> None:
        async with contextlib.AsyncExitStack() as stack:
            clients: Clients
            if http_backend == "aiohttp":
                clients = await stack.enter_async_context(
                    AiohttpClient(limit=max(1, sum(sizes.values())), timeout_s=timeout_s)
                )
            else:
                clients = {
                    slug: HttpxClient(
                        await stack.enter_async_context(
                            httpx.AsyncClient(
                                timeout=timeout_s,
                                limits=httpx.Limits(
                                    max_connections=max(1, n), max_keepalive_connections=max(1, n)
                                ),
                            )
                        )
                    )
                    for slug, n in sizes.items()
                }
            report = await poll_batch(
                shipments, carriers, clients, concurrency=concurrency, retry=retry,
                guards=guards, candidates=candidates,
            )  # fmt: skip
            reports.append(report)

    # The report is not the task's result on purpose: asyncio.run formats the finished
    # main task (repr of its result, every tracking in it) when it restores SIGINT.
    with _fewer_gc_passes(), asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(main())
    return reports[0]


@contextlib.contextmanager
def _fewer_gc_passes(young: int = 10_000) -> Iterator[None]:
    """Collect the young generation every `young` allocations instead of 700 for the batch.

    A batch allocates many short-lived objects per request; at the default threshold the
    collector took about 10 % of the poller's CPU (bench/poll.py). Restored afterwards
    unless someone changed it meanwhile; a larger threshold already set is left alone."""
    before = gc.get_threshold()
    if before[0] >= young:
        yield
        return
    gc.set_threshold(young, *before[1:])
    try:
        yield
    finally:
        if gc.get_threshold()[0] == young:
            gc.set_threshold(*before)


def run_poll(
    shipments: Sequence[ShipmentState],
    carriers: Mapping[str, Carrier],
    *,
    timeout_s: float = 10.0,
    concurrency: int = 16,
    retry: RetryPolicy = RetryPolicy(),
    **kwargs: Any,
) -> list[PollResult]:
    """Like `run_poll_report`, results only (one per shipment, input order)."""
    return run_poll_report(
        shipments, carriers, timeout_s=timeout_s, concurrency=concurrency, retry=retry, **kwargs
    ).results
