"""The carrier sandbox: each carrier's wire format at its real paths, on a movable clock.

Parcels follow scripted timelines (`sandbox.timelines`); the clock only moves when told
(`state.clock.set(...)` in-process, or `POST /_sandbox/clock {"now": ISO}`), so demos and
tests are deterministic. One module per carrier (`WIRES`) speaks its wire format and
checks auth the way that carrier does (UPS OAuth client credentials then a bearer token,
DHL's key header), accepting the test credentials in the carrier's META. Faults are
injected on request (`sandbox.faults`). Control endpoints live under `/_sandbox/`:

    GET/POST  /_sandbox/clock      {"now": ISO 8601 with offset}
    GET/POST  /_sandbox/parcels    [{"carrier", "tracking_number", "scenario", "start"}]
    GET/POST/DELETE /_sandbox/faults   {"carrier": "dhl" | "*", "kind": ..., ...}
                                   or {"carrier": ..., "clear": true}
    GET/DELETE /_sandbox/requests  tracking requests served, per carrier
    POST      /_sandbox/ups/revoke  forget every UPS token issued (the next call gets 401)
                                   (sandbox/ups.py)
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox import dhl, dpd, inpost, ups
from sandbox.faults import Fault, format_retry_after
from sandbox.timelines import SCENARIOS, SandboxParcel

Renderer = Callable[..., tuple[int, Any]]
#: The shared tracking responder a wire module's routes call: counts the request, applies
#: any fault, renders (carrier slug, number, request, the module's render function).
Answer = Callable[[str, str, Request, Renderer], Awaitable[Response]]

#: slug -> the module speaking that carrier's wire format. Each has `routes(state, answer)`;
#: `aliases(number)`, where present, lists other numbers the carrier is asked for.
WIRES: dict[str, ModuleType] = {"ups": ups, "dhl": dhl, "inpost": inpost, "dpd": dpd}


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
    #: tracking requests served per carrier, and per (carrier, number)
    requests: Counter[str] = field(default_factory=Counter)
    calls: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: tracking requests per carrier and wall-clock second (time.time()), for rate checks
    per_second: Counter[tuple[str, int]] = field(default_factory=Counter)
    #: carrier slug (or "*") -> the fault its tracking answers get
    faults: dict[str, Fault] = field(default_factory=dict)
    #: bearer tokens issued -> expiry (epoch seconds, real time: tokens outlive clock jumps)
    tokens: dict[str, float] = field(default_factory=dict)
    closing: threading.Event = field(default_factory=threading.Event)
    _aliases: dict[tuple[str, str], SandboxParcel] = field(default_factory=dict)

    def add(self, parcels: Iterable[SandboxParcel]) -> None:
        for p in parcels:
            if p.scenario not in SCENARIOS:
                raise ValueError(f"unknown sandbox scenario {p.scenario!r} for {p.tracking_number}")
            self.parcels[(p.carrier, p.tracking_number)] = p
            aliases = getattr(WIRES.get(p.carrier), "aliases", None)
            for alias in aliases(p.tracking_number) if aliases else ():
                self._aliases[(p.carrier, alias)] = p

    def parcel(self, carrier: str, number: str) -> SandboxParcel | None:
        return self.parcels.get((carrier, number)) or self._aliases.get((carrier, number))

    def set_fault(self, carrier: str, fault: Fault) -> None:
        self.faults[carrier] = fault

    def clear_faults(self, carrier: str | None = None) -> None:
        if carrier is None:
            self.faults.clear()
        else:
            self.faults.pop(carrier, None)

    def fault_for(self, carrier: str) -> Fault | None:
        return self.faults.get(carrier) or self.faults.get("*")

    def revoke_tokens(self) -> None:
        self.tokens.clear()


def build_app(state: SandboxState) -> Starlette:
    async def tracking(carrier: str, number: str, request: Request, render: Renderer) -> Response:
        state.requests[carrier] += 1
        state.calls[(carrier, number)] += 1
        state.per_second[(carrier, int(time.time()))] += 1
        fault = state.fault_for(carrier)
        kind = None
        if fault is not None and fault.draw():
            kind = fault.kind
            if fault.latency_ms:
                await asyncio.sleep(fault.latency_ms / 1000)
            if kind == "timeout":
                await _hang(request, fault.hang_s, state.closing)
            elif kind == "rate_limit":
                return JSONResponse(
                    {"title": "Too Many Requests", "status": 429, "detail": "sandbox: rate limit"},
                    status_code=429,
                    headers={"Retry-After": format_retry_after(fault.retry_after_s)},
                )
            elif kind == "server_error":
                return JSONResponse({"error": "sandbox: injected server error"}, fault.status)
        status, body = render(
            state.parcel(carrier, number), number, state.clock.now(),
            unknown_status=kind == "unknown_status",
        )  # fmt: skip
        if kind == "malformed":
            text = json.dumps(body)
            return Response(text[: len(text) // 2], 200, media_type="application/json")
        return JSONResponse(body, status_code=status)

    async def clock(request: Request) -> Response:
        if request.method == "POST":
            payload = await request.json()
            try:
                state.clock.set(datetime.fromisoformat(payload["now"]))
            except (KeyError, TypeError, ValueError) as exc:
                return JSONResponse(
                    {"error": f"expected {{'now': ISO 8601 with offset}}: {exc}"}, 400
                )
        return JSONResponse({"now": state.clock.now().isoformat()})

    async def parcels(request: Request) -> Response:
        if request.method == "POST":
            payload = await request.json()
            try:
                state.add(SandboxParcel.from_json(p) for p in payload)
            except (KeyError, TypeError, ValueError) as exc:
                return JSONResponse({"error": str(exc)}, 400)
        return JSONResponse(
            [p.to_json() for p in state.parcels.values()]
        )  # fmt: skip

    async def faults(request: Request) -> Response:
        if request.method == "DELETE":
            state.clear_faults()
        elif request.method == "POST":
            payload = await request.json()
            if not isinstance(payload, dict) or not isinstance(payload.get("carrier"), str):
                return JSONResponse({"error": 'expected {"carrier": slug or "*", ...fault}'}, 400)
            payload = dict(payload)
            carrier = payload.pop("carrier")
            if payload.pop("clear", False):
                state.clear_faults(carrier)
            else:
                try:
                    state.set_fault(carrier, Fault.from_dict(payload))
                except ValueError as exc:
                    return JSONResponse({"error": str(exc)}, 400)
        return JSONResponse({slug: f.as_dict() for slug, f in state.faults.items()})

    async def requests(request: Request) -> Response:
        if request.method == "DELETE":
            state.requests.clear()
            state.calls.clear()
            state.per_second.clear()
        return JSONResponse(
            {"by_carrier": dict(state.requests), "total": sum(state.requests.values())}
        )

    return Starlette(
        routes=[
            *(route for wire in WIRES.values() for route in wire.routes(state, tracking)),
            Route("/_sandbox/clock", clock, methods=["GET", "POST"]),
            Route("/_sandbox/parcels", parcels, methods=["GET", "POST"]),
            Route("/_sandbox/faults", faults, methods=["GET", "POST", "DELETE"]),
            Route("/_sandbox/requests", requests, methods=["GET", "DELETE"]),
        ]
    )


async def _hang(request: Request, seconds: float, closing: threading.Event) -> None:
    """Wait like a stuck upstream, but stop early once the client gave up or we shut down."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not closing.is_set():
        if await request.is_disconnected():
            return
        await asyncio.sleep(0.02)
