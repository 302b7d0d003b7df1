"""Run the sandbox app with uvicorn in a background thread (tests, demo) or in front."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType

import uvicorn

from sandbox.app import SandboxState, build_app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SandboxServer:
    """`with SandboxServer(state) as server: server.url` — listening on 127.0.0.1."""

    def __init__(self, state: SandboxState, port: int | None = None) -> None:
        self.state = state
        self.port = port or free_port()
        config = uvicorn.Config(
            build_app(state), host="127.0.0.1", port=self.port, log_level="warning",
            lifespan="off", access_log=False,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="sandbox", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 10.0) -> SandboxServer:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"sandbox did not start on port {self.port}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def serve_forever(state: SandboxState, port: int) -> None:
    uvicorn.run(build_app(state), host="127.0.0.1", port=port, log_level="info")
