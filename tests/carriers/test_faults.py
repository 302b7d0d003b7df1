"""Injected faults against the real sandbox server: each ends as documented, none loses a parcel.

The sandbox runs on a free port in this process (its own thread); the poller uses a real
httpx client with a short timeout and a retry policy of milliseconds.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from aftersale.models import ShipmentState, Status
from carriers.dhl import Dhl
from carriers.dpd import Dpd
from carriers.inpost import InPost
from carriers.poll import BreakerPolicy, CarrierLimits, PollReport, RetryPolicy, run_poll_report
from carriers.ups import Ups
from sandbox.app import SandboxClock, SandboxState
from sandbox.faults import Fault
from sandbox.server import SandboxServer
from sandbox.timelines import SandboxParcel

START = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
NUMBERS = {
    "ups": ["1ZA1B2C30300000012", "1ZA1B2C30300000021", "1ZA1B2C30300000030"],
    "dhl": ["3318810014", "3318810025", "3318810036"],
    "dpd": ["01234567800001", "01234567800002", "01234567800003"],
    "inpost": ["642600027844200000000001", "642600027844200000000002", "642600027844200000000003"],
}
QUICK = RetryPolicy(attempts=3, base_delay_s=0.01, max_delay_s=0.05)
OPEN_LIMITS = {slug: CarrierLimits(concurrency=4) for slug in NUMBERS}


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    state = SandboxState(SandboxClock(START + timedelta(hours=20)))  # all in transit
    state.add(
        SandboxParcel(carrier, number, "normal", START)
        for carrier, numbers in NUMBERS.items()
        for number in numbers
    )
    with SandboxServer(state) as running:
        yield running


@pytest.fixture()
def state(server: SandboxServer) -> Iterator[SandboxState]:
    server.state.clear_faults()
    server.state.requests.clear()
    server.state.calls.clear()
    yield server.state
    server.state.clear_faults()


def carriers(url: str) -> dict:
    return {
        "ups": Ups(url, "sandbox-client", "sandbox-secret"),
        "dhl": Dhl(url, "sandbox-key"),
        "dpd": Dpd(url),
        "inpost": InPost(url),
    }


def batch() -> list[ShipmentState]:
    return [
        ShipmentState(f"{carrier}-{i}", f"o-{carrier}-{i}", carrier, number, Status.LABEL_CREATED)
        for carrier, numbers in NUMBERS.items()
        for i, number in enumerate(numbers)
    ]


@pytest.fixture(params=["httpx", "aiohttp"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


def poll(server: SandboxServer, **kwargs) -> PollReport:
    kwargs.setdefault("retry", QUICK)
    kwargs.setdefault("limits", OPEN_LIMITS)
    return run_poll_report(
        batch(), carriers(server.url), timeout_s=kwargs.pop("timeout_s", 2.0), **kwargs
    )


def assert_all_in_transit(report: PollReport, carriers: set[str]) -> None:
    """Every shipment of these carriers came back, found and in transit."""
    for result in report.results:
        if result.shipment_id.split("-")[0] in carriers:
            assert result.error is None, result
            assert result.tracking is not None and result.tracking.status is Status.IN_TRANSIT


def test_no_fault_baseline(server: SandboxServer, state: SandboxState, backend: str) -> None:
    report = poll(server, http_backend=backend)
    assert len(report.results) == 12
    assert_all_in_transit(report, set(NUMBERS))
    assert report.retries == {} and report.breakers_open == []


def test_timeout_is_retried(server: SandboxServer, state: SandboxState, backend: str) -> None:
    state.set_fault("dhl", Fault(kind="timeout", times=1, hang_s=5))
    report = poll(server, timeout_s=0.3, http_backend=backend)

    assert_all_in_transit(report, set(NUMBERS))
    assert report.retries == {"dhl": 1}
    assert state.requests["dhl"] == 4  # three parcels, one asked twice


def test_latency_below_the_timeout_is_just_slow(server: SandboxServer, state: SandboxState) -> None:
    state.set_fault("*", Fault(latency_ms=30))
    report = poll(server, timeout_s=1.0)
    assert_all_in_transit(report, set(NUMBERS))
    assert report.retries == {}


def test_429_is_retried_after_retry_after(
    server: SandboxServer, state: SandboxState, backend: str
) -> None:
    state.set_fault("ups", Fault(kind="rate_limit", times=2, retry_after_s=0.05))
    report = poll(server, http_backend=backend)

    assert_all_in_transit(report, set(NUMBERS))
    assert report.rate_limited == {"ups": 2}
    assert report.retries == {"ups": 2}
    assert state.requests["ups"] == 5


def test_500_is_retried(server: SandboxServer, state: SandboxState, backend: str) -> None:
    state.set_fault("inpost", Fault(kind="server_error", times=2, status=503))
    report = poll(server, http_backend=backend)
    assert_all_in_transit(report, set(NUMBERS))
    assert report.retries == {"inpost": 2}


def test_persistent_500_opens_the_breaker_and_spares_the_others(
    server: SandboxServer, state: SandboxState, caplog: pytest.LogCaptureFixture
) -> None:
    state.set_fault("dpd", Fault(kind="server_error"))
    limits = {**OPEN_LIMITS, "dpd": CarrierLimits(concurrency=1)}
    with caplog.at_level(logging.WARNING, logger="carriers.poll"):
        report = poll(server, limits=limits, breaker=BreakerPolicy(threshold=2, cooldown_s=60))

    assert report.breakers_open == ["dpd"]
    assert state.requests["dpd"] == 2
    dpd = [r.error for r in report.results if r.carrier == "dpd"]
    n = NUMBERS["dpd"]
    assert dpd == [
        f"dpd {n[0]}: HTTP 500 (not retried: dpd circuit open)",
        f"dpd {n[1]}: HTTP 500 (not retried: dpd circuit open)",
        "dpd: circuit open after repeated failures; not polled this run",
    ]
    assert report.skipped == {"dpd": 1}
    assert_all_in_transit(report, {"ups", "dhl", "inpost"})
    assert (
        "carrier dpd: circuit open after 2 consecutive failed requests; 3 shipments failed "
        "this run, 1 of them not called at all" in caplog.text
    )


def test_a_malformed_answer_is_retried_like_an_outage(
    server: SandboxServer, state: SandboxState, backend: str
) -> None:
    state.set_fault("inpost", Fault(kind="malformed", times=1))
    report = poll(server, http_backend=backend)

    assert state.requests["inpost"] == 4  # the cut answer, then a good one on the retry
    assert report.retries == {"inpost": 1}
    assert_all_in_transit(report, {"ups", "dhl", "dpd", "inpost"})


@pytest.mark.parametrize("carrier", sorted(NUMBERS))
def test_an_unmapped_current_status_is_retried_like_an_outage(
    server: SandboxServer, state: SandboxState, carrier: str
) -> None:
    state.set_fault(carrier, Fault(kind="unknown_status", times=1))
    report = poll(server)

    assert report.retries == {carrier: 1}
    assert all(r.tracking is not None and not r.tracking.unusable for r in report.results)
    assert_all_in_transit(report, set(NUMBERS))


def test_revoked_ups_token_is_refreshed_once(server: SandboxServer, state: SandboxState) -> None:
    adapters = carriers(server.url)
    shipments = [s for s in batch() if s.carrier == "ups"]
    first = run_poll_report(shipments, adapters, retry=QUICK, limits=OPEN_LIMITS)
    state.revoke_tokens()
    second = run_poll_report(shipments, adapters, retry=QUICK, limits=OPEN_LIMITS)

    for report in (first, second):
        assert_all_in_transit(report, {"ups"})
        assert report.retries == {}


def test_wrong_credentials_fail_every_parcel_without_retry(
    server: SandboxServer, state: SandboxState
) -> None:
    adapters = {**carriers(server.url), "dhl": Dhl(server.url, "wrong-key")}
    report = run_poll_report(batch(), adapters, retry=QUICK, limits=OPEN_LIMITS)

    dhl = [r for r in report.results if r.carrier == "dhl"]
    assert [r.error for r in dhl] == [
        f"dhl {n}: HTTP 401: credentials refused" for n in NUMBERS["dhl"]
    ]
    assert state.requests["dhl"] == 0  # refused at the key check, before any tracking
    assert_all_in_transit(report, {"ups", "dpd", "inpost"})


def test_faults_over_http_and_a_seeded_fraction_is_repeatable(
    server: SandboxServer, state: SandboxState
) -> None:
    with httpx.Client(base_url=server.url) as http:
        bad = http.post("/_sandbox/faults", json={"carrier": "dhl", "kind": "meteor"})
        assert bad.status_code == 400 and "unknown fault kind 'meteor'" in bad.json()["error"]
        spec = {"carrier": "dhl", "kind": "server_error", "fraction": 0.5, "seed": 7}
        assert http.post("/_sandbox/faults", json=spec).status_code == 200

        def pattern() -> list[int]:
            return [
                http.get("/track/shipments", params={"trackingNumber": NUMBERS["dhl"][0]},
                         headers={"DHL-API-Key": "sandbox-key"}).status_code
                for _ in range(12)
            ]  # fmt: skip

        first = pattern()
        assert http.post("/_sandbox/faults", json=spec).status_code == 200  # same seed again
        assert pattern() == first
        assert set(first) == {200, 500}
        listed = http.get("/_sandbox/faults").json()
        assert listed["dhl"]["hits"] == first.count(500)
        assert http.delete("/_sandbox/faults").json() == {}


def test_fault_for_the_next_n_requests_only() -> None:
    fault = Fault(kind="server_error", times=2)
    assert [fault.draw() for _ in range(4)] == [True, True, False, False]
    assert fault.spent


@pytest.mark.parametrize("backend", ["httpx", "aiohttp"])
def test_nobody_listening_is_an_outage_after_retries(backend: str) -> None:
    from sandbox.server import free_port

    url = f"http://127.0.0.1:{free_port()}"
    shipments = [s for s in batch() if s.carrier == "dpd"]
    report = run_poll_report(
        shipments, carriers(url), retry=QUICK, limits=OPEN_LIMITS, http_backend=backend,
        breaker=BreakerPolicy(threshold=100),
    )  # fmt: skip
    assert report.attempts == {"dpd": 9} and report.retries == {"dpd": 6}
    assert all("connection failed" in (r.error or "") for r in report.results)
