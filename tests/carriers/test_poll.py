"""The poller against `httpx.MockTransport`: limits, retries, breaker, quotas, corrections.

Time is fake: `FakeTime.sleep` records each wait and moves the clock the guards read,
so backoff, Retry-After and rate limits are checked exactly and cost no real time.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections import Counter
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest

from aftersale.models import PollResult, ShipmentState, Status
from aftersale.store.records import Grant
from carriers.base import Carrier
from carriers.dhl import Dhl
from carriers.dpd import Dpd
from carriers.inpost import InPost
from carriers.poll import (
    BreakerPolicy,
    CarrierLimits,
    PollGuards,
    PollReport,
    RetryPolicy,
    poll_batch,
    poll_shipments,
)
from carriers.registry import build_carriers, limits_from_env
from carriers.transport import HttpxClient

PAYLOADS = Path(__file__).parent / "payloads"


def _anonymous(path: Path) -> bytes:
    """A recorded answer without the number it is about: these fakes answer one body to
    every number (an answer naming another number is refused, see test_answers_checked)."""
    doc = json.loads(path.read_text())
    doc.pop("tracking_number", None)
    for shipment in doc.get("shipments", []):
        shipment.pop("id", None)
        shipment.get("details", {}).pop("pieceIds", None)
    return json.dumps(doc).encode()


INPOST_BODY = _anonymous(PAYLOADS / "inpost" / "in_transit.json")
DHL_BODY = _anonymous(PAYLOADS / "dhl" / "express_in_transit.json")
DHL_404 = (PAYLOADS / "dhl" / "not_found.http404.json").read_bytes()
FAST = RetryPolicy(attempts=3, base_delay_s=0.1, max_delay_s=2.0, jitter=0.0)
UNLIMITED = CarrierLimits(concurrency=50)

Handler = Callable[[httpx.Request], httpx.Response]


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


def shipment(n: int, carrier: str | None = "inpost", number: str | None = None) -> ShipmentState:
    return ShipmentState(
        shipment_id=f"s{n}", order_id=f"o{n}", carrier=carrier,
        tracking_number=number or f"6426000278442000000000{n:02d}", status=Status.PENDING,
    )  # fmt: skip


def carriers() -> dict[str, Carrier]:
    return {
        "inpost": InPost("https://inpost.test"),
        "dhl": Dhl("https://dhl.test", api_key="k"),
        "dpd": Dpd("https://dpd.test"),
    }


def run(
    shipments: list[ShipmentState],
    handler: Handler,
    *,
    time: FakeTime | None = None,
    limits: dict[str, CarrierLimits] | None = None,
    guards: PollGuards | None = None,
    **kwargs,
) -> PollReport:
    time = time or FakeTime()
    limits = limits if limits is not None else {s: UNLIMITED for s in ("inpost", "dhl", "dpd")}
    guards = guards or PollGuards(limits, kwargs.pop("breaker", BreakerPolicy()), clock=time.clock)

    async def go() -> PollReport:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            return await poll_batch(
                shipments, carriers(), HttpxClient(client), retry=kwargs.pop("retry", FAST), guards=guards,
                sleep=time.sleep, rng=random.Random(1), **kwargs,
            )  # fmt: skip

    return asyncio.run(go())


def ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, content=INPOST_BODY)


def test_one_result_per_shipment_in_input_order() -> None:
    batch = [shipment(1), shipment(2, carrier=None), shipment(3, carrier="fedex"), shipment(4)]
    report = run(batch, ok)

    assert [r.shipment_id for r in report.results] == ["s1", "s2", "s3", "s4"]
    assert report.results[0].tracking is not None
    assert report.results[0].tracking.status is Status.IN_TRANSIT
    assert report.results[1].error == "no carrier set and none detected"
    assert report.results[2].error == "carrier 'fedex' is not configured"
    assert report.results[3].error is None


def test_concurrency_is_bounded_per_carrier() -> None:
    in_flight: Counter[str] = Counter()
    peak: Counter[str] = Counter()

    async def slow(request: httpx.Request) -> httpx.Response:
        host = request.url.host
        in_flight[host] += 1
        peak[host] = max(peak[host], in_flight[host])
        await asyncio.sleep(0.002)
        in_flight[host] -= 1
        body = DHL_BODY if host == "dhl.test" else INPOST_BODY
        return httpx.Response(200, content=body)

    batch = [shipment(i) for i in range(20)] + [
        shipment(20 + i, "dhl", "3318810014") for i in range(20)
    ]
    limits = {"inpost": CarrierLimits(concurrency=3), "dhl": CarrierLimits(concurrency=5)}
    report = run(batch, slow, limits=limits)

    assert all(r.error is None for r in report.results)
    assert peak == {"inpost.test": 3, "dhl.test": 5}


def test_outages_are_retried_with_exponential_backoff_then_succeed() -> None:
    answers = iter(
        [httpx.Response(503), httpx.Response(500), httpx.Response(200, content=INPOST_BODY)]
    )
    time = FakeTime()
    report = run([shipment(1)], lambda r: next(answers), time=time)

    assert report.results[0].error is None
    assert report.attempts == {"inpost": 3}
    assert report.retries == {"inpost": 2}
    assert time.sleeps == [0.1, 0.2]  # base 0.1 s doubling, jitter 0 in this policy


def test_timeouts_are_retried() -> None:
    calls = []

    def flaky(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 1:
            raise httpx.ReadTimeout("slow", request=request)
        return httpx.Response(200, content=INPOST_BODY)

    report = run([shipment(1)], flaky)
    assert report.results[0].error is None
    assert len(calls) == 2


def test_gives_up_after_the_last_attempt_and_says_so() -> None:
    report = run(
        [shipment(1), shipment(2)], lambda r: httpx.Response(502), breaker=BreakerPolicy(100)
    )

    assert all(r.tracking is None for r in report.results)
    assert report.results[0].error == "inpost 642600027844200000000001: HTTP 502 (after 3 attempts)"
    assert report.attempts == {"inpost": 6}


def test_retry_after_is_honoured_and_pauses_the_carrier() -> None:
    seen: list[float] = []
    time = FakeTime()

    def limited(request: httpx.Request) -> httpx.Response:
        seen.append(time.now)
        if len(seen) == 1:
            return httpx.Response(429, headers={"Retry-After": "7"})
        return httpx.Response(200, content=INPOST_BODY)

    limits = {"inpost": CarrierLimits(concurrency=1, rate_per_s=100)}
    report = run([shipment(1), shipment(2)], limited, time=time, limits=limits)

    assert [r.error for r in report.results] == [None, None]
    assert report.rate_limited == {"inpost": 1}
    assert seen[1] - seen[0] >= 7  # nobody called InPost before Retry-After passed
    assert seen[2] - seen[0] >= 7
    assert max(time.sleeps) >= 7


def test_a_retry_after_beyond_the_cap_fails_the_shipment_for_this_run() -> None:
    time = FakeTime()
    report = run(
        [shipment(1)], lambda r: httpx.Response(429, headers={"Retry-After": "3600"}), time=time
    )

    assert report.results[0].error == (
        "inpost 642600027844200000000001: HTTP 429; asked to retry after 3600 s"
    )
    assert time.sleeps == []


@pytest.mark.parametrize(
    ("status", "body"), [(404, DHL_404), (400, b'{"title": "Bad Request", "status": 400}')]
)
def test_no_retry_on_4xx(status: int, body: bytes) -> None:
    """404 is data ("not found"); another 4xx fails the poll (the schedule asks again
    later); neither is asked again within the run."""
    calls = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(status, content=body)

    report = run([shipment(1, "dhl", "3318810014")], answer)
    [result] = report.results
    assert len(calls) == 1
    if status == 404:
        assert result.error is None and result.tracking is not None
        assert not result.tracking.found and result.tracking.problems
    else:
        assert result.tracking is None
        assert result.error == "dhl 3318810014: DHL: HTTP 400: Bad Request"


def test_refused_credentials_are_not_retried() -> None:
    calls = []

    def refuse(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(401, json={"title": "Unauthorized", "status": 401})

    report = run([shipment(1, "dhl", "3318810014")], refuse)
    assert len(calls) == 1
    assert report.results[0].error == "dhl 3318810014: HTTP 401: credentials refused"


def test_breaker_opens_after_consecutive_failures_and_skips_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: Counter[str] = Counter()

    def answer(request: httpx.Request) -> httpx.Response:
        calls[request.url.host] += 1
        if request.url.host == "dhl.test":
            return httpx.Response(500)
        return httpx.Response(200, content=INPOST_BODY)

    batch = [shipment(i, "dhl", "3318810014") for i in range(10)] + [
        shipment(10 + i) for i in range(5)
    ]
    limits = {"dhl": CarrierLimits(concurrency=1), "inpost": UNLIMITED}
    with caplog.at_level(logging.WARNING, logger="carriers.poll"):
        report = run(
            batch, answer, limits=limits, breaker=BreakerPolicy(threshold=4, cooldown_s=60),
            retry=RetryPolicy(attempts=1),
        )  # fmt: skip

    assert calls["dhl.test"] == 4  # then the circuit opened
    assert report.breakers_open == ["dhl"]
    assert report.skipped == {"dhl": 6}
    dhl_errors = [r.error for r in report.results[:10]]
    assert dhl_errors[:4] == ["dhl 3318810014: HTTP 500 (after 1 attempts)"] * 4
    assert dhl_errors[4:] == ["dhl: circuit open after repeated failures; not polled this run"] * 6
    assert all(r.error is None for r in report.results[10:])  # InPost is not affected
    opened = [r.getMessage() for r in caplog.records if "circuit open" in r.getMessage()]
    assert opened == [
        "carrier dhl: circuit open after 4 consecutive failed requests; 10 shipments failed "
        "this run, 6 of them not called at all"
    ]


def test_breaker_stays_open_across_batches_until_the_cooldown_passes() -> None:
    time = FakeTime()
    guards = PollGuards(
        {"inpost": UNLIMITED}, BreakerPolicy(threshold=2, cooldown_s=60), clock=time.clock
    )
    fail = run([shipment(1), shipment(2)], lambda r: httpx.Response(500), time=time, guards=guards,
               retry=RetryPolicy(attempts=1))  # fmt: skip
    assert fail.breakers_open == ["inpost"]

    later = run([shipment(3)], ok, time=time, guards=guards)
    assert later.skipped == {"inpost": 1} and later.breakers_open == ["inpost"]

    time.now += 61
    recovered = run([shipment(4)], ok, time=time, guards=guards)
    assert recovered.results[0].error is None and recovered.breakers_open == []


def test_rate_limit_spaces_requests() -> None:
    time = FakeTime()
    seen: list[float] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(time.now)
        return httpx.Response(200, content=DHL_BODY)

    limits = {"dhl": CarrierLimits(concurrency=4, rate_per_s=1.0)}
    run([shipment(i, "dhl", "3318810014") for i in range(5)], answer, time=time, limits=limits)

    gaps = [b - a for a, b in zip(seen, seen[1:], strict=False)]
    assert len(seen) == 5 and all(g >= 0.999 for g in gaps)


def test_daily_budget_stops_calls_until_the_next_utc_day() -> None:
    day = [date(2026, 11, 23)]
    time = FakeTime()
    guards = PollGuards(
        {"dhl": CarrierLimits(concurrency=1, rate_per_day=3)},
        clock=time.clock,
        today=lambda: day[0],
    )
    batch = [shipment(i, "dhl", "3318810014") for i in range(5)]

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=DHL_BODY)

    first = run(batch, answer, time=time, guards=guards)
    assert [r.error is None for r in first.results] == [True, True, True, False, False]
    assert first.results[4].error == "dhl: daily budget of 3 requests used up; not polled"
    assert first.quota_exhausted == {"dhl": 2}
    assert run(batch[:1], answer, time=time, guards=guards).quota_exhausted == {"dhl": 1}

    day[0] = date(2026, 11, 24)
    assert run(batch[:1], answer, time=time, guards=guards).results[0].error is None


def test_a_wrong_guess_corrects_itself_with_the_next_candidate() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.host == "dpd.test":
            return httpx.Response(
                200, json={"parcellifecycleResponse": {"parcelLifeCycleData": None}}
            )
        return httpx.Response(200, content=DHL_BODY)

    guessed = shipment(1, "dpd", "33188100140000")
    report = run([guessed], answer, candidates={"s1": ["dpd", "dhl"]})
    [result] = report.results
    assert result.carrier == "dhl"
    assert (
        result.tracking is not None and result.tracking.carrier == "dhl" and result.tracking.found
    )
    assert report.corrections == {"s1": "dhl"}


def test_not_found_everywhere_keeps_the_first_carriers_answer() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.host == "dpd.test":
            return httpx.Response(
                200, json={"parcellifecycleResponse": {"parcelLifeCycleData": None}}
            )
        return httpx.Response(404, content=DHL_404)

    report = run([shipment(1, "dpd", "33188100140000")], answer, candidates={"s1": ["dpd", "dhl"]})
    [result] = report.results
    assert result.carrier == "dpd" and result.tracking is not None and not result.tracking.found
    assert report.corrections == {}


def test_detected_only_shipment_uses_its_candidates() -> None:
    report = run([shipment(1, None)], ok, candidates={"s1": ["fedex", "inpost"]})
    assert report.results[0].carrier == "inpost" and report.results[0].error is None
    assert report.corrections == {"s1": "inpost"}


class Broken(InPost):
    def parse_response(self, tracking_number: str, status_code: int, body: bytes):  # type: ignore[no-untyped-def]
        if tracking_number.endswith("01"):
            raise ValueError("adapter bug")
        return super().parse_response(tracking_number, status_code, body)


def test_an_adapter_bug_costs_one_shipment_not_the_batch() -> None:
    async def go() -> list[PollResult]:
        async with httpx.AsyncClient(transport=httpx.MockTransport(ok)) as client:
            return await poll_shipments(
                [shipment(1), shipment(2)], {"inpost": Broken("https://inpost.test")}, HttpxClient(client),
                limits={"inpost": UNLIMITED},
            )  # fmt: skip

    first, second = asyncio.run(go())
    assert first.error == "unexpected error: ValueError('adapter bug')"
    assert second.error is None


def test_registry_builds_all_four_and_limits_follow_the_environment() -> None:
    env = {
        "UPS_CLIENT_ID": "id", "UPS_CLIENT_SECRET": "secret", "DHL_API_KEY": "key",
        "AFTERSALE_DHL_RATE_PER_S": "50", "AFTERSALE_DHL_RATE_PER_DAY": "none",
        "AFTERSALE_INPOST_CONCURRENCY": "4",
    }  # fmt: skip
    urls = {slug: f"https://{slug}.test" for slug in ("ups", "dhl", "inpost", "dpd")}
    adapters = build_carriers(urls, env)
    assert sorted(adapters) == ["dhl", "dpd", "inpost", "ups"]
    limits = limits_from_env(adapters, env, concurrency=8)
    assert limits["dhl"] == CarrierLimits(concurrency=8, rate_per_s=50.0, rate_per_day=None)
    assert limits["inpost"] == CarrierLimits(concurrency=4, rate_per_s=5.0, rate_per_day=None)
    assert build_carriers(urls, {})["dhl"].build_request("1").headers.get("DHL-API-Key") is None
    assert limits_from_env(adapters, {}, 8)["dhl"] == CarrierLimits(8, 1.0, 250)


class SharedBudget:
    """The store's SharedLimits, in memory: a day budget per carrier, no rate."""

    def __init__(self) -> None:
        self.used: Counter[tuple[str, date]] = Counter()
        self.asked: list[tuple[str, int, float | None, float]] = []

    def take_requests(
        self,
        carrier: str,
        want: int,
        *,
        rate_per_s: float | None,
        capacity: float,
        per_day: int | None,
        today: date,
    ) -> Grant:
        self.asked.append((carrier, want, rate_per_s, capacity))
        left = want if per_day is None else per_day - self.used[(carrier, today)]
        granted = max(0, min(want, left))
        self.used[(carrier, today)] += granted
        return Grant(granted, day_spent=not granted and per_day is not None)


def test_workers_sharing_a_budget_never_exceed_it_together() -> None:
    """Two workers (two sets of guards) draw DHL's day budget from one shared store; each
    takes a chunk at a time and spends it one request each."""
    budget, time = SharedBudget(), FakeTime()
    limits = {"dhl": CarrierLimits(concurrency=2, rate_per_day=12)}
    workers = [PollGuards(dict(limits), clock=time.clock, shared=budget) for _ in range(2)]
    calls: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        return httpx.Response(200, content=DHL_BODY)

    batch = [shipment(i, "dhl", "3318810014") for i in range(8)]
    first = run(batch, answer, time=time, guards=workers[0])
    second = run(batch, answer, time=time, guards=workers[1])
    # the first took a chunk of 10 and spent 8 (2 kept for its next batch); the second got
    # the 2 left of the day's 12: together never more than the budget
    assert len(calls) == 10
    assert [r.error is None for r in second.results] == [True] * 2 + [False] * 6
    assert second.results[-1].error == (
        "dhl: daily budget of 12 requests (shared by every worker) used up; not polled"
    )
    assert first.quota_exhausted == {} and second.quota_exhausted == {"dhl": 6}
    # taken in chunks of 10 (no rate: a day budget only), not one store call per request
    assert budget.asked[:2] == [("dhl", 10, None, 10.0), ("dhl", 10, None, 10.0)]


def test_a_shared_rate_is_taken_a_tenth_of_a_second_at_a_time() -> None:
    budget, time = SharedBudget(), FakeTime()
    guards = PollGuards(
        {"inpost": CarrierLimits(concurrency=4, rate_per_s=50.0)}, clock=time.clock, shared=budget
    )
    run([shipment(i) for i in range(12)], ok, time=time, guards=guards)
    # 12 requests in 4 chunks of 0.1 s, from a bucket filling at 75% of the 50/s limit
    assert [a[1:] for a in budget.asked] == [(3, 37.5, 3.0)] * 4


def test_shared_requests_left_in_hand_are_dropped_after_a_tenth_of_a_second() -> None:
    """A worker that stops polling (writing its page) for a while must not come back with
    a saved-up burst: several of them at once would take a second over the limit."""
    budget, time = SharedBudget(), FakeTime()
    guards = PollGuards(
        {"inpost": CarrierLimits(concurrency=4, rate_per_s=50.0)}, clock=time.clock, shared=budget
    )
    run([shipment(0)], ok, time=time, guards=guards)  # 1 of a chunk of 3
    run([shipment(1)], ok, time=time, guards=guards)  # at once: one of the 2 in hand
    assert len(budget.asked) == 1
    time.now += 0.5
    run([shipment(2)], ok, time=time, guards=guards)
    assert len(budget.asked) == 2  # the one left over was dropped: a new chunk taken


def test_shared_requests_granted_late_are_not_spent_late() -> None:
    """The tenth of a second counts from the asking: a grant that came back after it (a
    slow round trip) is dropped, not spent in a bunch with the next workers' grants."""

    class SlowOnce(SharedBudget):
        def take_requests(self, carrier: str, want: int, **kwargs: Any) -> Grant:
            if not self.asked:
                time.now += 0.3  # the first round trip takes 0.3 s
            return super().take_requests(carrier, want, **kwargs)

    budget, time = SlowOnce(), FakeTime()
    guards = PollGuards(
        {"inpost": CarrierLimits(concurrency=1, rate_per_s=50.0)}, clock=time.clock, shared=budget
    )
    report = run([shipment(0)], ok, time=time, guards=guards)
    assert report.results[0].error is None
    assert len(budget.asked) == 2  # the late chunk was dropped, a fresh one spent


def test_a_store_that_always_grants_late_slows_polling_but_never_stalls_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every round trip 0.3 s (a database in another region): dropping every grant would
    poll nothing while spending the budget. The second late grant stretches the window
    to the round trip, and the operator is told why and what it costs."""

    class AlwaysSlow(SharedBudget):
        def take_requests(self, carrier: str, want: int, **kwargs: Any) -> Grant:
            time.now += 0.3
            return super().take_requests(carrier, want, **kwargs)

    budget, time = AlwaysSlow(), FakeTime()
    guards = PollGuards(
        {"inpost": CarrierLimits(concurrency=1, rate_per_s=50.0)}, clock=time.clock, shared=budget
    )
    with caplog.at_level(logging.WARNING, logger="carriers.poll"):
        report = run([shipment(i) for i in range(6)], ok, time=time, guards=guards)
    assert [r.error for r in report.results] == [None] * 6
    assert len(budget.asked) == 3  # the first dropped; the next two spent whole
    warned = [r.getMessage() for r in caplog.records if "to grant requests" in r.getMessage()]
    assert warned == [
        "inpost: the store took 0.30 s to grant requests (usually a few ms), longer than the "
        "0.1 s grants are kept for; they are now kept 0.40 s, and the busiest second may "
        "exceed 112% of the carrier's limit: run workers near the database"
    ]
