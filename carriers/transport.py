"""An httpx transport over aiohttp's connection pool, and a lean client, for polling at volume.

The adapters speak httpx (`client.send(request)`); this swaps only what is under it,
the way httpx intends (`handle_async_request(Request) -> Response`). Why: httpcore's
pool re-checks every pooled connection with a socket poll each time it hands one out,
so with dozens of connections a request costs about 0.75 ms of CPU or more, against
about 0.15 ms over aiohttp (bench/poll.py measures both). Timeouts and connection
failures are raised as the httpx exceptions the adapters already map to outages.
Responses are handed over undecoded, so httpx decompresses them as usual.

`PollingClient` is an `httpx.AsyncClient` whose `send` goes straight to its transport:
carrier APIs need no cookies, client auth, hooks or redirects, and httpx's cookie
extraction alone (urllib and email objects per response) costs as much as aiohttp.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

_DROP = frozenset({"content-length", "transfer-encoding", "connection"})
log = logging.getLogger("httpx")  # the same logger httpx.AsyncClient.send logs to


class AiohttpTransport(httpx.AsyncBaseTransport):
    """`httpx.AsyncClient(transport=AiohttpTransport(limit=100))`; one per event loop."""

    def __init__(self, *, limit: int = 100, limit_per_host: int = 0) -> None:
        self.limit = limit
        self.limit_per_host = limit_per_host
        self._session: Any = None
        self._timeouts: dict[tuple[float | None, ...], Any] = {}

    def _session_now(self) -> Any:
        import aiohttp  # optional: only polling at volume needs it

        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self.limit, limit_per_host=self.limit_per_host, ttl_dns_cache=300
            )
            self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False)
        return self._session

    def _timeout(self, request: httpx.Request) -> Any:
        # Built once per distinct httpx timeout, not per request.
        timeouts = request.extensions.get("timeout") or {}
        key = (timeouts.get("pool"), timeouts.get("connect"), timeouts.get("read"))
        timeout = self._timeouts.get(key)
        if timeout is None:
            import aiohttp

            pool, connect, read = key
            timeout = aiohttp.ClientTimeout(
                total=None, connect=pool, sock_connect=connect, sock_read=read
            )
            self._timeouts[key] = timeout
        return timeout

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        import aiohttp

        session = self._session or self._session_now()
        headers = [(k, v) for k, v in request.headers.multi_items() if k not in _DROP]
        try:
            body = request.content  # built in memory by the adapters: no await needed
        except httpx.RequestNotRead:
            body = await request.aread()
        try:
            async with session.request(
                request.method, str(request.url), headers=headers, data=body or None,
                timeout=self._timeout(request), allow_redirects=False,
            ) as answer:  # fmt: skip
                content = await answer.read()
                raw_headers = answer.raw_headers
                status = answer.status
        except aiohttp.ConnectionTimeoutError as exc:
            raise httpx.ConnectTimeout(str(exc) or "connect timed out", request=request) from exc
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise httpx.ReadTimeout(str(exc) or "read timed out", request=request) from exc
        except aiohttp.ClientConnectorError as exc:
            raise httpx.ConnectError(str(exc), request=request) from exc
        except aiohttp.ClientError as exc:
            raise httpx.ReadError(f"{type(exc).__name__}: {exc}", request=request) from exc
        # httpx.Headers takes bytes as they came; the body is whole, so no transfer-encoding.
        headers_out = [(k, v) for k, v in raw_headers if k.lower() != b"transfer-encoding"]
        return httpx.Response(status, headers=headers_out, content=content, request=request)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class PollingClient(httpx.AsyncClient):
    """An `httpx.AsyncClient` for carrier APIs: `send` hands the request to the transport.

    No cookies are kept, no client auth, event hooks or redirects are applied (a 3xx is
    returned as it is, as `AsyncClient` does without `follow_redirects`), and environment
    proxies are not used. The client's timeout applies unless the request carries one.
    Streaming sends and explicit `auth=`/`follow_redirects=` fall back to httpx."""

    def __init__(self, *, transport: httpx.AsyncBaseTransport, timeout: float | None) -> None:
        super().__init__(transport=transport, timeout=timeout, trust_env=False)
        self._direct = transport
        self._timeout_ext = httpx.Timeout(timeout).as_dict()

    async def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        if kwargs:
            return await super().send(request, **kwargs)
        if self.is_closed:
            raise RuntimeError("Cannot send a request, as the client has been closed.")
        if "timeout" not in request.extensions:
            request.extensions = {**request.extensions, "timeout": self._timeout_ext}
        response = await self._direct.handle_async_request(request)
        response.request = request
        await response.aread()
        if log.isEnabledFor(logging.INFO):
            log.info(
                'HTTP Request: %s %s "%s %d %s"', request.method, request.url,
                response.http_version, response.status_code, response.reason_phrase,
            )  # fmt: skip
        return response
