"""Every carrier moves through every scripted scenario: sandbox answer -> adapter -> status.

The sandbox app is driven in-process (httpx.ASGITransport) through each adapter's real
`fetch`, so auth (UPS token + bearer, DHL key) and paths are exercised too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from aftersale.models import Status, Tracking
from carriers.base import Carrier
from carriers.dpd import Dpd
from carriers.registry import CARRIERS, DIRECTORY, build_carriers
from carriers.transport import HttpxClient
from sandbox.app import SandboxClock, SandboxState, build_app
from sandbox.timelines import LOCAL_ZONE, SCENARIOS, SandboxParcel

BASE = "http://sandbox.test"
START = datetime(2026, 11, 23, 6, 40, tzinfo=UTC)
NUMBERS = {
    "ups": "1ZA1B2C30300000012",
    "dhl": "3318810014",
    "dpd": "01234567800001",
    "inpost": "642600027844200000000001",
}


def adapters() -> dict[str, Carrier]:
    """Every registered carrier, aimed at the sandbox with the credentials in its META."""
    sandbox_env = {k: v for meta in DIRECTORY for k, v in meta.sandbox_env.items()}
    return build_carriers({slug: BASE for slug in CARRIERS}, sandbox_env)


def test_every_registered_carrier_has_a_sandbox_number() -> None:
    assert set(NUMBERS) == set(CARRIERS)


def _cases() -> Iterator[pytest.param]:
    for carrier in NUMBERS:
        for scenario, steps in SCENARIOS.items():
            for index, step in enumerate(steps):
                yield pytest.param(
                    carrier, scenario, index, id=f"{carrier}-{scenario}-{index}-{step.status}"
                )


def _fetch_all(carrier: str, scenario: str) -> list[Tracking]:
    """The adapter's view of the parcel just after each step of the scenario."""
    state = SandboxState(SandboxClock(START))
    number = NUMBERS[carrier]
    state.add([SandboxParcel(carrier, number, scenario, START)])
    adapter = adapters()[carrier]

    async def go() -> list[Tracking]:
        transport = httpx.ASGITransport(app=build_app(state))
        async with httpx.AsyncClient(transport=transport) as client:
            seen = []
            for step in SCENARIOS[scenario]:
                state.clock.set(START + step.after + timedelta(minutes=1))
                seen.append(await adapter.fetch(HttpxClient(client), number))
            return seen

    return asyncio.run(go())


_CACHE: dict[tuple[str, str], list[Tracking]] = {}


def _tracking(carrier: str, scenario: str, index: int) -> Tracking:
    if (carrier, scenario) not in _CACHE:
        _CACHE[(carrier, scenario)] = _fetch_all(carrier, scenario)
    return _CACHE[(carrier, scenario)][index]


@pytest.mark.parametrize(("carrier", "scenario", "index"), list(_cases()))
def test_adapter_reads_the_step_status(carrier: str, scenario: str, index: int) -> None:
    step = SCENARIOS[scenario][index]
    tracking = _tracking(carrier, scenario, index)

    assert tracking.found, tracking.problems
    assert tracking.status is step.status, (tracking.code, tracking.problems)
    assert tracking.problems == ()
    assert tracking.carrier == carrier
    when = START + step.after
    if carrier == "dpd" and step.status is Status.LABEL_CREATED:
        assert tracking.events == ()  # DPD shows a label as a milestone only, no scan
    else:  # times survive each carrier's zone quirks (local without offset, gmt fields)
        assert tracking.events[-1].occurred_at >= when
        assert any(e.occurred_at == when for e in tracking.events)
    if step.status is Status.DELIVERED:
        assert tracking.delivered_at == when
    if step.status is Status.AVAILABLE_FOR_PICKUP:
        assert tracking.pickup_point


@pytest.mark.parametrize("carrier", ["ups", "dhl"])
def test_estimate_follows_the_step_and_slips(carrier: str) -> None:
    for index, step in enumerate(SCENARIOS["delayed"]):
        tracking = _tracking(carrier, "delayed", index)
        if step.eta_days is None:
            assert tracking.estimated_delivery is None
        else:
            expected = (START + timedelta(days=step.eta_days)).astimezone(LOCAL_ZONE).date()
            assert tracking.estimated_delivery == expected


@pytest.mark.parametrize("carrier", list(NUMBERS))
def test_unknown_number_is_not_found(carrier: str) -> None:
    state = SandboxState(SandboxClock(START))
    adapter = adapters()[carrier]

    async def go() -> Tracking:
        transport = httpx.ASGITransport(app=build_app(state))
        async with httpx.AsyncClient(transport=transport) as client:
            return await adapter.fetch(HttpxClient(client), NUMBERS[carrier])

    tracking = asyncio.run(go())
    assert not tracking.found
    assert tracking.problems


def test_parcel_not_yet_labelled_is_not_found() -> None:
    state = SandboxState(SandboxClock(START - timedelta(hours=1)))
    state.add([SandboxParcel("dpd", NUMBERS["dpd"], "normal", START)])

    async def go() -> Tracking:
        transport = httpx.ASGITransport(app=build_app(state))
        async with httpx.AsyncClient(transport=transport) as client:
            return await Dpd(BASE).fetch(
                HttpxClient(client), NUMBERS["dpd"] + "X"
            )  # printed check character

    assert not asyncio.run(go()).found
