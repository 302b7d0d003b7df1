"""Contract: the UPS adapter's real requests validate against UPS's published OpenAPI specs.

Two Prism servers serve `ups_oauth_client_credentials.yaml` and `ups_tracking.yaml`; Prism
rejects a request that breaks the spec (missing Basic auth or bearer, missing `transId` /
`transactionSrc`, wrong form body) with 401/422 and answers a valid one with the spec's
example. The spec's tracking server path ends in `/api` while Prism serves the bare paths,
so a small routing transport sends `/security/...` to one Prism and `/api/track/...`
(minus `/api`) to the other; the requests themselves are the adapter's, unchanged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from aftersale.errors import CarrierAnswerError
from aftersale.models import Status, Tracking
from tests.support.prism import SPECS, prism_server

NUMBER = "1Z5R89390357567127"

pytestmark = pytest.mark.slow


class RouteToPrism(httpx.AsyncBaseTransport):
    """Send each request to the Prism serving its spec; record what Prism answered."""

    def __init__(self, oauth_url: str, tracking_url: str) -> None:
        self.oauth = httpx.URL(oauth_url)
        self.tracking = httpx.URL(tracking_url)
        self.inner = httpx.AsyncHTTPTransport()
        self.seen: list[tuple[str, int, str]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        target = self.oauth if path.startswith("/security/") else self.tracking
        if path.startswith("/api/"):
            path = path.removeprefix("/api")
        request.url = request.url.copy_with(
            scheme=target.scheme, host=target.host, port=target.port, path=path
        )
        response = await self.inner.handle_async_request(request)
        await response.aread()
        self.seen.append((path, response.status_code, response.text))
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture(scope="module")
def prism_urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Path]]:
    logs = tmp_path_factory.mktemp("prism")
    with (
        prism_server(SPECS / "ups_oauth_client_credentials.yaml", logs / "oauth.log") as oauth,
        prism_server(SPECS / "ups_tracking.yaml", logs / "tracking.log") as tracking,
    ):
        yield oauth, tracking, logs


def test_token_and_tracking_requests_validate_against_the_ups_specs(
    prism_urls: tuple[str, str, Path],
) -> None:
    from carriers.transport import HttpxClient
    from carriers.ups import Ups

    oauth, tracking, logs = prism_urls
    route = RouteToPrism(oauth, tracking)
    ups = Ups("https://onlinetools.ups.com", "client-id", "client-secret", "aftersale-test")

    async def go() -> Tracking:
        async with httpx.AsyncClient(transport=route) as client:
            return await ups.fetch(HttpxClient(client), NUMBER)

    try:
        asyncio.run(go())
    except CarrierAnswerError as exc:
        # Prism answers with the spec's examples, whose package number is "string": an
        # answer about another parcel than the one asked is refused (a failed poll).
        assert str(exc) == f"ups {NUMBER}: the answer is about string, not {NUMBER}"
    except Exception as exc:
        details = "\n".join(f"{p} -> {c}: {t[:500]}" for p, c, t in route.seen)
        log = "\n".join(f.read_text()[-2000:] for f in sorted(logs.glob("*.log")))
        raise AssertionError(f"{exc}\n{details}\n--- prism logs ---\n{log}") from exc
    else:
        raise AssertionError("Prism's example answer names package 'string'; it was believed")

    assert [(p, c) for p, c, _ in route.seen] == [
        ("/security/v1/oauth/token", 200),
        (f"/track/v1/details/{NUMBER}", 200),
    ]
    # The example itself parses (loosely valid against its own schema): one activity,
    # statusCode 003, gmtDate 20210210 gmtTime '74700' (leading zero lost).
    result = ups.parse_response("string", 200, route.seen[-1][2].encode())
    assert result.carrier == "ups" and result.found and result.unusable is None
    assert result.status is Status.LABEL_CREATED
    assert [e.occurred_at for e in result.events] == [datetime(2021, 2, 10, 7, 47, tzinfo=UTC)]


def test_prism_rejects_a_tracking_request_without_the_required_headers(
    prism_urls: tuple[str, str, Path],
) -> None:
    """The contract test can fail: a request missing transId/transactionSrc is refused."""
    _, tracking, _ = prism_urls
    response = httpx.get(
        f"{tracking}/track/v1/details/{NUMBER}",
        params={"locale": "en_US"},
        headers={"Authorization": "Bearer x"},
    )
    assert response.status_code in (400, 422), response.text


def test_prism_rejects_a_token_request_without_basic_auth(
    prism_urls: tuple[str, str, Path],
) -> None:
    oauth, _, _ = prism_urls
    response = httpx.post(
        f"{oauth}/security/v1/oauth/token", data={"grant_type": "client_credentials"}
    )
    assert response.status_code == 401, response.text
