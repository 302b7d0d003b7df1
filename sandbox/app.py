"""The carrier sandbox: each carrier's wire format at its real paths, on a movable clock.

Parcels follow scripted timelines (`sandbox.timelines`); the clock only moves when told
(`state.clock.set(...)` in-process, or `POST /_sandbox/clock {"now": ISO}`), so demos and
tests are deterministic. Control endpoints live under `/_sandbox/`.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox import inpost
from sandbox.timelines import SCENARIOS, SandboxParcel


class SandboxClock:
    def __init__(self, now: datetime) -> None:
        self._now = now
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, now: datetime) -> None:
        if now.tzinfo is None:
            raise ValueError("the sandbox clock takes aware datetimes")
        with self._lock:
            self._now = now.astimezone(UTC)


@dataclass
class SandboxState:
    clock: SandboxClock
    parcels: dict[tuple[str, str], SandboxParcel] = field(default_factory=dict)
    requests: Counter[str] = field(default_factory=Counter)

    def add(self, parcels: Iterable[SandboxParcel]) -> None:
        for p in parcels:
            if p.scenario not in SCENARIOS:
                raise ValueError(f"unknown sandbox scenario {p.scenario!r} for {p.tracking_number}")
            self.parcels[(p.carrier, p.tracking_number)] = p

    def parcel(self, carrier: str, number: str) -> SandboxParcel | None:
        return self.parcels.get((carrier, number))


def build_app(state: SandboxState) -> Starlette:
    async def inpost_tracking(request: Request) -> Response:
        number = request.path_params["number"]
        state.requests["inpost"] += 1
        status, body = inpost.render(state.parcel("inpost", number), number, state.clock.now())
        return JSONResponse(body, status_code=status)

    async def clock(request: Request) -> Response:
        if request.method == "POST":
            payload = await request.json()
            try:
                state.clock.set(datetime.fromisoformat(payload["now"]))
            except (KeyError, TypeError, ValueError) as exc:
                return JSONResponse({"error": f"expected {{'now': ISO 8601 with offset}}: {exc}"}, 400)
        return JSONResponse({"now": state.clock.now().isoformat()})

    async def parcels(request: Request) -> Response:
        if request.method == "POST":
            payload = await request.json()
            try:
                state.add(
                    SandboxParcel(p["carrier"], p["tracking_number"], p["scenario"],
                                  datetime.fromisoformat(p["start"]))
                    for p in payload
                )
            except (KeyError, TypeError, ValueError) as exc:
                return JSONResponse({"error": str(exc)}, 400)
        return JSONResponse(
            [
                {"carrier": p.carrier, "tracking_number": p.tracking_number,
                 "scenario": p.scenario, "start": p.start.isoformat()}
                for p in state.parcels.values()
            ]
        )

    return Starlette(
        routes=[
            Route("/v1/tracking/{number}", inpost_tracking),
            Route("/_sandbox/clock", clock, methods=["GET", "POST"]),
            Route("/_sandbox/parcels", parcels, methods=["GET", "POST"]),
        ]
    )
