"""How carriers speak HTTP: plain request and answer values, and the two clients sending them.

A carrier builds `HttpRequest` values and reads `HttpAnswer` values, both pure; the one
async call between them is `HttpClient.send`:

- `AiohttpClient`, for polling at volume: the request goes straight onto aiohttp's
  connection pool. Why not httpx: httpcore's pool re-checks every pooled connection with
  a socket poll each time it hands one out (about 0.75 ms of CPU a request with dozens
  of connections, against 0.15 ms over aiohttp: bench/poll.py), and even over aiohttp,
  building httpx's `Request` and `Response` for each call (URL parsing, header
  normalisation, the body run through its decoders) cost as much CPU as aiohttp's own
  request: 10,000 InPost polls took 1.9 s of CPU that way, 1.05 s without them (bare
  aiohttp GETs with json.loads: 0.9 s).
- `HttpxClient`, over any `httpx.AsyncClient`: the tests' `httpx.MockTransport` and
  `ASGITransport`, and `run_poll_report(http_backend="httpx")`.

Both raise transport faults as httpx's exceptions (`httpx.TimeoutException`,
`httpx.TransportError`), which the carriers map to outages (`Carrier.send`). Carrier APIs
need no redirects or client auth: a 3xx comes back as it is.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol

import httpx

log = logging.getLogger("httpx")  # where httpx.AsyncClient logs each request, at INFO


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    url: str  # complete and percent-encoded, query string included
    headers: Mapping[str, str]
    content: bytes = b""


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    status_code: int
    headers: Mapping[str, str]  # names are case-insensitive
    content: bytes  # decompressed


class HttpClient(Protocol):
    async def send(self, request: HttpRequest) -> HttpAnswer: ...


class HttpxClient:
    """`HttpxClient(httpx.AsyncClient(...))`: the httpx client's timeout and transport apply;
    closing it stays with whoever opened it."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def send(self, request: HttpRequest) -> HttpAnswer:
        response = await self.client.send(
            httpx.Request(
                request.method, request.url, headers=request.headers,
                content=request.content or None,
            )
        )  # fmt: skip
        return HttpAnswer(response.status_code, response.headers, response.content)


class AiohttpClient:
    """`async with AiohttpClient(limit=100, timeout_s=10.0) as client`; one per event loop.

    `timeout_s` bounds the wait for a pooled connection, the connect and each read (as
    `httpx.Timeout(timeout_s)` does), not the whole call."""

    def __init__(self, *, limit: int = 100, timeout_s: float | None = None) -> None:
        self.limit = limit
        self.timeout_s = timeout_s
        self._session: Any = None
        self._timeout: Any = None

    def _open(self) -> Any:
        import aiohttp  # optional: only polling at volume needs it

        connector = aiohttp.TCPConnector(limit=self.limit, ttl_dns_cache=300)
        self._session = aiohttp.ClientSession(connector=connector)
        t = self.timeout_s
        self._timeout = aiohttp.ClientTimeout(total=None, connect=t, sock_connect=t, sock_read=t)
        return self._session

    async def send(self, request: HttpRequest) -> HttpAnswer:
        import aiohttp

        session = self._session or self._open()
        try:
            async with session.request(
                request.method, request.url, headers=request.headers,
                data=request.content or None, timeout=self._timeout, allow_redirects=False,
            ) as answer:  # fmt: skip
                content = await answer.read()
        except aiohttp.ConnectionTimeoutError as exc:
            raise httpx.ConnectTimeout(str(exc) or "connect timed out") from exc
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise httpx.ReadTimeout(str(exc) or "read timed out") from exc
        except aiohttp.ClientConnectorError as exc:
            raise httpx.ConnectError(str(exc)) from exc
        except aiohttp.ClientError as exc:
            raise httpx.ReadError(f"{type(exc).__name__}: {exc}") from exc
        if log.isEnabledFor(logging.INFO):
            log.info(
                'HTTP Request: %s %s "HTTP/%d.%d %d %s"', request.method, request.url,
                *answer.version, answer.status, answer.reason,
            )  # fmt: skip
        return HttpAnswer(answer.status, answer.headers, content)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> AiohttpClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
