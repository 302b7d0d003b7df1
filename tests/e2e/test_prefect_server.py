"""The operators' path on a real Prefect server, as docs/operations.md tells it:
`prefect server start`, the process work pool, `prefect deploy --all` from prefect.yaml,
the automations, a worker; then a cycle and housekeeping started together against the
carrier sandbox, a forced failure that notifies, and the UI's run page in Chromium.

Everything it starts listens on 127.0.0.1 on free ports and is stopped at the end
(worker before server, SIGINT first). Slow (about a minute), and still run in CI.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from aftersale.models import MessageState
from aftersale.settings import PROJECT_ROOT
from aftersale.store import open_store
from sandbox.server import SandboxServer
from tests.flows.scenario import EMAIL, START, aftersale_env, prepare, sandbox_state
from tests.support.servers import free_port

pytestmark = pytest.mark.slow

LATER = START + timedelta(hours=8)
BIN = Path(sys.executable).parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = PROJECT_ROOT / "test-artifacts"
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


class Hooks(ThreadingHTTPServer):
    """Receives the automations' webhook notifications."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        hooks = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                hooks.received.append(json.loads(body or b"{}"))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"


def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            cmd,
            cwd=PROJECT_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopping it stops its children
        )


def stop(proc: subprocess.Popen[bytes], timeout_s: float = 15) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


def cli(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(
        [str(BIN / "prefect"), *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, (
        f"prefect {' '.join(args)}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    return done.stdout


def wait_healthy(
    api: str, server: subprocess.Popen[bytes], log: Path, timeout_s: float = 90
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert server.poll() is None, log.read_text(errors="replace")[-3000:]
        try:
            if httpx.get(f"{api}/health", timeout=2).json() is True:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"prefect server not healthy in {timeout_s} s:\n{log.read_text()[-3000:]}")


def run_deployment(api: str, name: str, parameters: dict[str, Any]) -> str:
    dep = httpx.get(f"{api}/deployments/name/{name}", timeout=10)
    dep.raise_for_status()
    run = httpx.post(
        f"{api}/deployments/{dep.json()['id']}/create_flow_run",
        json={"parameters": parameters},
        timeout=10,
    )
    run.raise_for_status()
    return str(run.json()["id"])


def wait_runs(
    api: str, run_ids: list[str], worker_log: Path, timeout_s: float = 90
) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    while True:
        runs = {rid: httpx.get(f"{api}/flow_runs/{rid}", timeout=10).json() for rid in run_ids}
        if all(r["state"]["type"] in TERMINAL for r in runs.values()):
            return runs
        if time.monotonic() > deadline:
            states = {r["name"]: r["state"]["type"] for r in runs.values()}
            raise TimeoutError(f"runs not finished: {states}\n{worker_log.read_text()[-4000:]}")
        time.sleep(0.5)


def artifacts_of(api: str, run_id: str) -> dict[str, dict[str, Any]]:
    found = httpx.post(
        f"{api}/artifacts/filter",
        json={"artifacts": {"flow_run_id": {"any_": [run_id]}}},
        timeout=10,
    ).json()
    return {a["key"]: a for a in found if a.get("key")}


def chromium(args: list[str], home: Path) -> subprocess.CompletedProcess[str]:
    profile = tempfile.mkdtemp(dir=home)
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1400,1000",
        "--virtual-time-budget=20000",
    ]  # fmt: skip
    # HOME too: Chromium writes crash reports and dconf under it despite --user-data-dir
    env = {**os.environ, "HOME": str(home)}
    return subprocess.run(
        [CHROMIUM, *flags, *args], env=env, capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def hooks() -> Iterator[Hooks]:
    server = Hooks()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_deploy_run_and_inspect_on_a_real_prefect_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hooks: Hooks
) -> None:
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "AFTERSALE_"))}
    env = {
        **base_env,
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_API_URL": api,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "INFO",
        "PREFECT_CLI_WRAP_LINES": "false",
        "PWD": str(PROJECT_ROOT),  # prefect.yaml's pull step: `{{ $PWD }}` at deploy time
    }
    logs = tmp_path / "logs"
    logs.mkdir()
    server = start(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env,
        logs / "server.log",
    )
    worker: subprocess.Popen[bytes] | None = None
    state = sandbox_state()
    sandbox = SandboxServer(state).start()
    try:
        db = prepare(tmp_path, sandbox.url, monkeypatch)  # while the server starts
        state.clock.set(LATER)
        broken_rules = tmp_path / "broken-rules"
        broken_rules.mkdir()
        (broken_rules / "bad.yaml").write_text("rules:\n  - id: oops\n    on: nonsense\n")
        wait_healthy(api, server, logs / "server.log")

        cli(["work-pool", "create", "aftersale", "--type", "process"], env)
        deployed = cli(["--no-prompt", "deploy", "--all"], env)
        assert "every-15-minutes" in deployed and "on-demand" in deployed
        applied = subprocess.run(
            [sys.executable, "-m", "flows.automations", "--webhook-url", hooks.url,
             "--allow-private-urls"],
            cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert applied.returncode == 0, applied.stderr[-3000:]
        assert applied.stdout.count("automation '") == 3

        worker_env = {**env, **aftersale_env(tmp_path, sandbox.url)}
        worker = start(
            [str(BIN / "prefect"), "worker", "start", "--pool", "aftersale", "--limit", "4"],
            worker_env,
            logs / "worker.log",
        )
        # a cycle and housekeeping at once (they take turns on the DuckDB file), plus a
        # replay with a bad range: a forced failure that must notify
        cycle_id = run_deployment(
            api, "aftersale-cycle/every-15-minutes", {"now": LATER.isoformat()}
        )
        house_id = run_deployment(api, "aftersale-housekeeping/daily", {"now": LATER.isoformat()})
        bad_id = run_deployment(
            api,
            "aftersale-replay/on-demand",
            {"start": LATER.isoformat(), "end": START.isoformat()},
        )
        runs = wait_runs(api, [cycle_id, house_id, bad_id], logs / "worker.log")
        worker_log = (logs / "worker.log").read_text(errors="replace")
        assert runs[cycle_id]["state"]["type"] == "COMPLETED", worker_log[-4000:]
        assert runs[house_id]["state"]["type"] == "COMPLETED", worker_log[-4000:]
        assert runs[bad_id]["state"]["type"] == "FAILED"

        with open_store(db) as store:
            sent = store.count_messages(MessageState.SENT)
        assert sent >= 2
        cycle = runs[cycle_id]
        token = cycle_id.replace("-", "")[-6:]
        assert cycle["name"] == f"cycle 2026-11-23 15:00 · {token} · 1 polled · {sent} sent"
        found = artifacts_of(api, cycle_id)
        assert {"cycle-summary", "cycle-messages"} <= set(found)
        assert "| inpost | 1 | 0 | 0 | 0 | closed |" in found["cycle-summary"]["data"]
        table = found["cycle-messages"]["data"]
        rows = json.loads(table) if isinstance(table, str) else table
        assert sum(1 for r in rows if r["outcome"] == "sent") == sent
        assert EMAIL not in json.dumps(found)
        assert "housekeeping-summary" in artifacts_of(api, house_id)
        house_token = house_id.replace("-", "")[-6:]
        assert runs[house_id]["name"].startswith(
            f"housekeeping 2026-11-23 15:00 · {house_token} · 0 expired"
        )

        ARTIFACTS.mkdir(exist_ok=True)
        page = f"http://127.0.0.1:{port}/runs/flow-run/{cycle_id}"
        home = tmp_path / "chromium-home"
        home.mkdir()
        shot = ARTIFACTS / "prefect-cycle-run.png"
        shot.unlink(missing_ok=True)
        dom = chromium(["--dump-dom", page], home)
        chromium([f"--screenshot={shot}", page], home)
        assert cycle["name"] in dom.stdout, dom.stdout[-2000:]
        assert shot.stat().st_size > 10_000

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(
            "Failed" in h.get("subject", "") for h in hooks.received
        ):
            time.sleep(0.3)
        subjects = [h.get("subject", "") for h in hooks.received]
        assert any(
            s.startswith("aftersale: run ") and s.endswith(" is Failed") for s in subjects
        ), subjects
    finally:
        if worker is not None:
            stop(worker)
        stop(server)
        sandbox.stop()
