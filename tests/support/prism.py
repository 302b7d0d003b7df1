"""Prism (`@stoplight/prism-cli`, installed by `make test` from package.json) serving a spec.

Prism validates each request against the spec and answers with the spec's example;
an invalid request gets 4xx with the violations, which tests assert against.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.servers import free_port, wait_for_port

REPO = Path(__file__).resolve().parents[2]
PRISM = REPO / "node_modules" / ".bin" / "prism"
#: The providers' published OpenAPI specs, copied byte for byte (see specs/SOURCES.md).
SPECS = REPO / "specs"


def spec(name: str) -> Path:
    path = SPECS / name
    if not path.exists():
        raise FileNotFoundError(f"provider spec {path} is missing from the repository")
    return path


@contextmanager
def prism_server(spec_path: Path, log_path: Path | None = None) -> Iterator[str]:
    """Serve `spec_path` on a free port; yields the base URL. Logs go to `log_path`."""
    if not PRISM.exists():
        raise RuntimeError(f"{PRISM} missing: run `make test` (it runs `npm ci`)")
    port = free_port()
    log = open(log_path, "wb") if log_path else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(
        [str(PRISM), "mock", "-h", "127.0.0.1", "-p", str(port), str(spec_path)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, timeout_s=60, is_alive=lambda: proc.poll() is None)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if log_path:
            log.close()
