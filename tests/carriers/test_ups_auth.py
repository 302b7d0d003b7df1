"""UPS OAuth: one token, cached until shortly before expiry, refreshed once on 401.

The HTTP side is an `httpx.MockTransport` standing in for UPS; the clock is injected.
"""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

import httpx
import pytest

from aftersale.errors import CarrierAuthError, CarrierUnavailable
from aftersale.models import Status
from carriers.transport import HttpxClient
from carriers.ups import TOKEN_MARGIN_S, Ups

NUMBER = "1Z5R89390357567127"
BODY = (Path(__file__).parent / "payloads" / "ups" / "in_transit.json").read_bytes()
T0 = 1_767_600_000.0  # 2026-01-05, seconds


class FakeUps:
    """Token endpoint + tracking endpoint; records every request it answers."""

    def __init__(self, lifetime_s: int = 14399, tracking_401s: int = 0) -> None:
        self.lifetime_s = lifetime_s
        self.tracking_401s = tracking_401s
        self.requests: list[httpx.Request] = []
        self.issued: list[str] = []
        self.now = T0

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path == "/security/v1/oauth/token":
            token = f"token-{len(self.issued) + 1}"
            self.issued.append(token)
            return httpx.Response(
                200,
                json={
                    "token_type": "Bearer",
                    "issued_at": str(int(self.now * 1000)),
                    "client_id": "client",
                    "access_token": token,
                    "expires_in": str(self.lifetime_s),
                    "status": "approved",
                },
            )
        if request.url.path == f"/api/track/v1/details/{NUMBER}":
            if self.tracking_401s:
                self.tracking_401s -= 1
                return httpx.Response(401, json={"response": {"errors": [{"code": "250002"}]}})
            return httpx.Response(200, content=BODY)
        return httpx.Response(404)

    def of_path(self, path: str) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path == path]


def _run(fake: FakeUps, ups: Ups, times: int = 1) -> list:
    async def go() -> list:
        async with httpx.AsyncClient(transport=httpx.MockTransport(fake.handler)) as client:
            return [await ups.fetch(HttpxClient(client), NUMBER) for _ in range(times)]

    return asyncio.run(go())


def _ups(fake: FakeUps, **kw) -> Ups:
    return Ups("https://ups.test", "client", "s3cret", clock=lambda: fake.now, **kw)


def test_token_then_tracking_with_required_headers() -> None:
    fake = FakeUps()
    [tracking] = _run(fake, _ups(fake, transaction_src="shop-x"))

    assert tracking.status is Status.IN_TRANSIT
    token_req, track_req = fake.requests
    assert token_req.method == "POST"
    assert (
        token_req.headers["Authorization"] == "Basic " + base64.b64encode(b"client:s3cret").decode()
    )
    assert token_req.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert token_req.content == b"grant_type=client_credentials"
    assert track_req.headers["Authorization"] == "Bearer token-1"
    assert track_req.headers["transactionSrc"] == "shop-x"
    assert len(track_req.headers["transId"]) == 32
    assert track_req.url.params["locale"] == "en_US"


def test_token_is_reused_until_shortly_before_expiry() -> None:
    fake = FakeUps(lifetime_s=3600)
    ups = _ups(fake)
    _run(fake, ups, times=3)
    assert fake.issued == ["token-1"]

    fake.now = T0 + 3600 - TOKEN_MARGIN_S - 1  # just inside the margin: still cached
    _run(fake, ups)
    assert fake.issued == ["token-1"]

    fake.now = T0 + 3600 - TOKEN_MARGIN_S  # margin reached: fetch a new one
    _run(fake, ups)
    assert fake.issued == ["token-1", "token-2"]
    trans_ids = [r.headers["transId"] for r in fake.of_path(f"/api/track/v1/details/{NUMBER}")]
    assert len(set(trans_ids)) == len(trans_ids) == 5


def test_short_lived_tokens_keep_half_their_life_as_margin() -> None:
    fake = FakeUps(lifetime_s=60)
    ups = _ups(fake)
    _run(fake, ups)
    fake.now = T0 + 29
    _run(fake, ups)
    assert fake.issued == ["token-1"]
    fake.now = T0 + 30
    _run(fake, ups)
    assert fake.issued == ["token-1", "token-2"]


def test_a_401_fetches_one_new_token_and_retries_once() -> None:
    fake = FakeUps(tracking_401s=1)
    [tracking] = _run(fake, _ups(fake))
    assert tracking.status is Status.IN_TRANSIT
    assert fake.issued == ["token-1", "token-2"]
    tracked = fake.of_path(f"/api/track/v1/details/{NUMBER}")
    assert [r.headers["Authorization"] for r in tracked] == ["Bearer token-1", "Bearer token-2"]


def test_a_second_401_is_an_auth_error_not_a_loop() -> None:
    fake = FakeUps(tracking_401s=5)
    with pytest.raises(CarrierAuthError, match="ups 1Z5R89390357567127: HTTP 401"):
        _run(fake, _ups(fake))
    assert fake.issued == ["token-1", "token-2"]
    assert len(fake.of_path(f"/api/track/v1/details/{NUMBER}")) == 2


def test_concurrent_fetches_share_one_token_request() -> None:
    fake = FakeUps()
    ups = _ups(fake)

    async def go() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(fake.handler)) as client:
            await asyncio.gather(*(ups.fetch(HttpxClient(client), NUMBER) for _ in range(10)))

    asyncio.run(go())
    assert fake.issued == ["token-1"]


@pytest.mark.parametrize(
    ("status", "error", "text"),
    [
        (401, CarrierAuthError, "token request refused \\(HTTP 401\\): 250003 Invalid credentials"),
        (403, CarrierAuthError, "token request refused \\(HTTP 403\\)"),
        (429, CarrierUnavailable, "token request failed: HTTP 429"),
        (503, CarrierUnavailable, "token request failed: HTTP 503"),
    ],
)
def test_token_endpoint_failures_map_to_errors(status: int, error: type, text: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = {"response": {"errors": [{"code": "250003", "message": "Invalid credentials"}]}}
        return httpx.Response(status, json=body)

    ups = Ups("https://ups.test", "client", "bad")

    async def go() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            await ups.fetch(HttpxClient(client), NUMBER)

    with pytest.raises(error, match=text):
        asyncio.run(go())


def test_unreadable_token_response_is_transient() -> None:
    ups = Ups("https://ups.test", "client", "secret")
    with pytest.raises(CarrierUnavailable, match="token response"):
        ups.parse_token_response(200, b"<html>gateway</html>", T0)
    with pytest.raises(CarrierUnavailable, match="no access_token"):
        ups.parse_token_response(200, json.dumps({"access_token": ""}).encode(), T0)


def test_issued_at_ahead_of_our_clock_counts_from_receipt() -> None:
    ups = Ups("https://ups.test", "client", "secret")
    body = json.dumps({"access_token": "t", "expires_in": "14399", "issued_at": "9999999999999"})
    token = ups.parse_token_response(200, body.encode(), T0)
    assert token.expires_at == T0 + 14399 - TOKEN_MARGIN_S


def test_without_credentials_no_token_is_requested_and_401_names_the_cause() -> None:
    fake = FakeUps(tracking_401s=1)
    ups = Ups("https://ups.test")
    with pytest.raises(CarrierAuthError, match="no UPS client id/secret configured"):
        _run(fake, ups)
    assert fake.issued == []
    assert "Authorization" not in fake.requests[0].headers


def test_timeouts_are_transient() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    async def go() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            await Ups("https://ups.test", "c", "s").fetch(HttpxClient(client), NUMBER)

    with pytest.raises(CarrierUnavailable, match="timed out"):
        asyncio.run(go())
