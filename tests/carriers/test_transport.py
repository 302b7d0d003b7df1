"""Both HTTP clients against one real local server: the same request on the wire, the same
answer back (decompressed, headers looked up in any case), faults as httpx's exceptions."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import Callable, Iterator

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from carriers.transport import AiohttpClient, HttpAnswer, HttpClient, HttpRequest, HttpxClient
from carriers.ups import Ups
from sandbox.server import ThreadedServer, free_port


async def echo(request: Request) -> Response:
    """What arrived, as JSON, gzipped; a 429 with Retry-After when asked for one."""
    seen = {
        "method": request.method,
        "path": request.url.path,
        "query": request.url.query,
        "headers": {k: v for k, v in request.headers.items() if k != "accept-encoding"},
        "body": (await request.body()).decode(),
    }
    return Response(
        gzip.compress(json.dumps(seen).encode()),
        status_code=429 if "busy" in request.url.path else 200,
        headers={"Content-Encoding": "gzip", "Retry-After": "7"},
        media_type="application/json",
    )


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    app = Starlette(routes=[Route("/{path:path}", echo, methods=["GET", "POST"])])
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = ThreadedServer(config, "echo")
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def aiohttp_client(**kw: float) -> AiohttpClient:
    return AiohttpClient(limit=2, timeout_s=kw.get("timeout_s", 5.0))


def httpx_client(**kw: float) -> HttpxClient:
    return HttpxClient(httpx.AsyncClient(timeout=kw.get("timeout_s", 5.0)))


async def _close(client: HttpClient) -> None:
    if isinstance(client, AiohttpClient):
        await client.aclose()
    elif isinstance(client, HttpxClient):
        await client.client.aclose()


def send(make: Callable[..., HttpClient], request: HttpRequest, **kw: float) -> HttpAnswer:
    async def go() -> HttpAnswer:
        client = make(**kw)
        try:
            return await client.send(request)
        finally:
            await _close(client)

    return asyncio.run(go())


CLIENTS = pytest.mark.parametrize("make", [aiohttp_client, httpx_client], ids=["aiohttp", "httpx"])


@CLIENTS
def test_a_tracking_request_arrives_as_built_and_its_answer_is_decompressed(
    url: str, make: Callable[..., HttpClient]
) -> None:
    answer = send(make, HttpRequest("GET", f"{url}/v1/tracking/a%2Fb?x=1+2", {"X-Key": "k"}))
    seen = json.loads(answer.content)
    assert answer.status_code == 200
    assert (seen["method"], seen["path"], seen["query"]) == ("GET", "/v1/tracking/a/b", "x=1+2")
    assert seen["headers"]["x-key"] == "k" and seen["body"] == ""
    assert answer.headers.get("retry-after") == answer.headers.get("Retry-After") == "7"


@CLIENTS
def test_the_ups_token_request_is_a_form_post(url: str, make: Callable[..., HttpClient]) -> None:
    answer = send(make, Ups(url, "client", "s3cret").build_token_request())
    seen = json.loads(answer.content)
    assert (seen["method"], seen["path"]) == ("POST", "/security/v1/oauth/token")
    assert seen["body"] == "grant_type=client_credentials"
    assert seen["headers"]["content-type"] == "application/x-www-form-urlencoded"
    assert seen["headers"]["content-length"] == str(len("grant_type=client_credentials"))
    assert seen["headers"]["authorization"].startswith("Basic ")


@CLIENTS
def test_an_outage_status_is_an_answer_not_an_exception(
    url: str, make: Callable[..., HttpClient]
) -> None:
    answer = send(make, HttpRequest("GET", f"{url}/busy", {}))
    assert answer.status_code == 429 and answer.headers["Retry-After"] == "7"


@CLIENTS
def test_nobody_listening_is_an_httpx_connect_error(make: Callable[..., HttpClient]) -> None:
    with pytest.raises(httpx.ConnectError):
        send(make, HttpRequest("GET", f"http://127.0.0.1:{free_port()}/", {}))


def test_a_slow_answer_is_an_httpx_timeout() -> None:
    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.read()  # never answers; ends when the client gives up
        finally:
            writer.close()

    async def go(make: Callable[..., HttpClient]) -> None:
        server = await asyncio.start_server(hang, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = make(timeout_s=0.2)
        try:
            with pytest.raises(httpx.TimeoutException):
                await client.send(HttpRequest("GET", f"http://127.0.0.1:{port}/", {}))
        finally:
            await _close(client)
            server.close()
            await server.wait_closed()

    for make in (aiohttp_client, httpx_client):
        asyncio.run(go(make))
