"""Start and stop real local servers for tests: free ports, bounded waits, clean shutdown."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout_s: float, is_alive=lambda: True) -> None:
    """Block until 127.0.0.1:port accepts connections, or raise after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not is_alive():
            raise RuntimeError(f"server for port {port} exited before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listened on 127.0.0.1:{port} within {timeout_s} s")


@contextmanager
def webhook_receiver(workdir: Path, env: dict[str, str]) -> Iterator[str]:
    """`aftersale webhooks serve` in its own process on a free port, with the environment
    cleared of the caller's AFTERSALE_*/TWILIO_* settings and `env` added (the receiver's
    public URL is set to where it listens); yields its base URL, its output in
    workdir/receiver.log."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AFTERSALE_", "TWILIO_"))}
    clean.update({"AFTERSALE_WEBHOOK_PUBLIC_URL": url, **env})
    serve = "from aftersale.cli.delivery import webhooks_app; webhooks_app()"
    with (workdir / "receiver.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", serve, "serve", "--port", str(port)],
            env=clean,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_port(port, timeout_s=30, is_alive=lambda: proc.poll() is None)
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=10)
