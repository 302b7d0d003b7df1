"""A local HTTP server that answers like SendGrid or Twilio, scripted per test.

Prism only serves a spec's success examples (Twilio's spec defines only 201), so the
provider's faults (429 with Retry-After, 5xx, slow answers, 4xx error bodies) come from here.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any = b""  # bytes/str sent as is, anything else as JSON
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # wait before answering (timeouts)


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, list[str]]:
        return parse_qs(self.body.decode())


def twilio_message(to: str = "+14155552345", sid: str = "SM" + "b" * 32) -> dict[str, Any]:
    """A Messages create answer as Twilio sends it (abridged)."""
    return {
        "sid": sid,
        "account_sid": "AC" + "a" * 32,
        "to": to,
        "from": "+14155550000",
        "body": "x",
        "status": "queued",
        "num_segments": "1",
        "direction": "outbound-api",
        "api_version": "2010-04-01",
        "error_code": None,
        "error_message": None,
    }


def twilio_error(code: int, message: str, status: int = 400) -> Reply:
    return Reply(
        status,
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
    )


def sendgrid_error(status: int, message: str, field_name: str | None = None) -> Reply:
    return Reply(status, {"errors": [{"message": message, "field": field_name, "help": None}]})


SENDGRID_ACCEPTED = Reply(202, b"", {"X-Message-Id": "sg-msg-0001"})


class FakeProvider:
    """Replies are consumed in order; when none is left, `default` answers."""

    def __init__(self, server: ThreadingHTTPServer, default: Reply) -> None:
        self._server = server
        self.default = default
        self.replies: deque[Reply] = deque()
        self.seen: list[Seen] = []
        self.stopping = threading.Event()
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def script(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    def next_reply(self) -> Reply:
        with self.lock:
            return self.replies.popleft() if self.replies else self.default


class _Handler(BaseHTTPRequestHandler):
    server: Any

    def do_POST(self) -> None:  # noqa: N802 (stdlib name)
        fake: FakeProvider = self.server.fake
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        with fake.lock:
            fake.seen.append(Seen("POST", self.path, dict(self.headers.items()), body))
        reply = fake.next_reply()
        if reply.delay_s and fake.stopping.wait(reply.delay_s):
            return
        payload = reply.body
        if not isinstance(payload, bytes | str):
            payload = json.dumps(payload)
        data = payload.encode() if isinstance(payload, str) else payload
        try:
            self.send_response(reply.status)
            kind = "application/json" if data else "text/plain"
            self.send_header("Content-Type", kind)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout tests): nothing to answer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@contextmanager
def fake_provider(default: Reply) -> Iterator[FakeProvider]:
    """Serve on a free 127.0.0.1 port for the duration of the block."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    fake = FakeProvider(server, default)
    server.fake = fake  # type: ignore[attr-defined]
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.05},
        name="fake-provider",
        daemon=True,
    )
    thread.start()
    try:
        yield fake
    finally:
        fake.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
