"""Run the sandbox app with uvicorn in a background thread (tests, demo) or in front.

`python -m sandbox.server --port 8089 [--parcels examples/sandbox_parcels.json]` runs it
as its own process (the poll benchmark does, so client and server do not share a GIL);
configure it further over its `/_sandbox/` control endpoints.
"""

from __future__ import annotations

import argparse
import json
import socket
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

import uvicorn

from sandbox.app import SandboxClock, SandboxState, build_app
from sandbox.timelines import SandboxParcel


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _config(state: SandboxState, port: int, log_level: str = "warning") -> uvicorn.Config:
    return uvicorn.Config(
        build_app(state), host="127.0.0.1", port=port, log_level=log_level,
        lifespan="off", access_log=False, timeout_graceful_shutdown=2,
        backlog=4096,
    )  # fmt: skip


class ThreadedServer:
    """An ASGI app served by uvicorn in a daemon thread on 127.0.0.1:`port`, for as long as
    a run or a test needs it: `start` waits (bounded) until it listens, `stop` ends it."""

    def __init__(self, config: uvicorn.Config, name: str) -> None:
        self.name, self.port = name, config.port
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name=name, daemon=True)

    def start(self, timeout_s: float = 10.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start on port {self.port}")
            time.sleep(0.02)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


class SandboxServer:
    """`with SandboxServer(state) as server: server.url` — listening on 127.0.0.1."""

    def __init__(self, state: SandboxState, port: int | None = None) -> None:
        self.state = state
        self.port = port or free_port()
        self._server = ThreadedServer(_config(state, self.port), "sandbox")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 10.0) -> SandboxServer:
        self.state.closing.clear()
        self._server.start(timeout_s)
        return self

    def stop(self) -> None:
        self.state.closing.set()  # hung (timeout-fault) handlers return now
        self._server.stop()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serve_forever(state: SandboxState, port: int) -> None:
    uvicorn.Server(_config(state, port, log_level="info")).run()


def load_parcels(path: Path) -> list[SandboxParcel]:
    return [SandboxParcel.from_json(p) for p in json.loads(path.read_text(encoding="utf-8"))]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox.server", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--parcels", type=Path, help="JSON list of parcels to load")
    parser.add_argument("--now", help="start the clock here (ISO 8601 with offset; default: now)")
    parser.add_argument("--quiet", action="store_true", help="log warnings only")
    args = parser.parse_args(argv)
    now = datetime.fromisoformat(args.now) if args.now else datetime.now(UTC)
    state = SandboxState(SandboxClock(now))
    if args.parcels:
        state.add(load_parcels(args.parcels))
    uvicorn.Server(_config(state, args.port, "warning" if args.quiet else "info")).run()


if __name__ == "__main__":
    main()
