"""The operators' path on a real Prefect server, as docs/operations.md tells it:
`prefect server start` (with PREFECT_API_URL and PREFECT_UI_URL set), the process work
pool, `prefect deploy --all` from prefect.yaml, the automations with a webhook catcher on
127.0.0.1 (`--allow-private-urls`), `aftersale alerts test`, a worker; then a cycle and
housekeeping started together against the carrier sandbox, a forced failure that
notifies, a carrier outage that alerts within its first cycle, repeats an hour later,
keeps the runs Degraded (red) even when nothing of it is due, and ends with a
"recovered" alert; the run list and the run page in Chromium (test-artifacts/*.png).

One server for the module. Everything listens on 127.0.0.1 on free ports and is stopped
at the end (worker before server, SIGINT first). Slow (a few minutes), still run in CI.
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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from aftersale.intake.files import import_file
from aftersale.models import MessageState
from aftersale.settings import PROJECT_ROOT
from aftersale.store import open_store
from carriers.registry import DIRECTORY
from sandbox.faults import Fault
from sandbox.server import SandboxServer
from sandbox.timelines import SandboxParcel
from tests.flows.scenario import (
    EMAIL,
    START,
    aftersale_env,
    order_line,
    prepare,
    sandbox_state,
)
from tests.support.servers import free_port

pytestmark = pytest.mark.slow

LATER = START + timedelta(hours=8)
BIN = Path(sys.executable).parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = PROJECT_ROOT / "test-artifacts"
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


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


def api_call(method: str, url: str, **kwargs: Any) -> httpx.Response:
    """One call of the server's REST API, retried on 502/503 as Prefect's own client does:
    the server answers 503 to errors a client may retry (its SQLite database locked by the
    worker's writes when the machine is busy), not to a failed request."""
    for attempt in range(6):
        answer = httpx.request(method, url, timeout=10, **kwargs)
        if answer.status_code not in (502, 503):
            break
        time.sleep(0.5 * 2**attempt)
    answer.raise_for_status()
    return answer


def run_deployment(api: str, name: str, parameters: dict[str, Any]) -> str:
    dep = api_call("GET", f"{api}/deployments/name/{name}")
    run = api_call(
        "POST",
        f"{api}/deployments/{dep.json()['id']}/create_flow_run",
        json={"parameters": parameters},
    )
    return str(run.json()["id"])


def wait_runs(
    api: str, run_ids: list[str], worker_log: Path, timeout_s: float = 180
) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    while True:
        runs = {rid: api_call("GET", f"{api}/flow_runs/{rid}").json() for rid in run_ids}
        if all(r["state"]["type"] in TERMINAL for r in runs.values()):
            return runs
        if time.monotonic() > deadline:
            states = {r["name"]: r["state"]["type"] for r in runs.values()}
            raise TimeoutError(f"runs not finished: {states}\n{worker_log.read_text()[-4000:]}")
        time.sleep(0.5)


def artifacts_of(api: str, run_id: str) -> dict[str, dict[str, Any]]:
    found = api_call(
        "POST", f"{api}/artifacts/filter", json={"artifacts": {"flow_run_id": {"any_": [run_id]}}}
    ).json()
    return {a["key"]: a for a in found if a.get("key")}


def chromium(args: list[str], home: Path) -> subprocess.CompletedProcess[str]:
    profile = tempfile.mkdtemp(dir=home)
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1400,1300",
        # draw only once the page has settled: the run list fades in after its queries
        "--run-all-compositor-stages-before-draw", "--virtual-time-budget=40000",
    ]  # fmt: skip
    # HOME too: Chromium writes crash reports and dconf under it despite --user-data-dir
    env = {**os.environ, "HOME": str(home)}
    return subprocess.run(
        [CHROMIUM, *flags, *args], env=env, capture_output=True, text=True, timeout=60
    )


DHL_NUMBER = "3318810099"


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

    def wait_for(
        self, found: Callable[[dict[str, Any]], bool], timeout_s: float = 60
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for hook in list(self.received):
                if found(hook):
                    return hook
            time.sleep(0.3)
        subjects = [h.get("subject", "") for h in self.received]
        raise AssertionError(f"no such notification in {timeout_s} s; got {subjects}")


@dataclass
class Stack:
    """A Prefect server with the deployments, automations and a worker, the sandbox, a
    webhook catcher and the store the worker's runs use."""

    port: int
    env: dict[str, str]
    worker_env: dict[str, str]
    logs: Path
    home: Path
    hooks: Hooks
    state: Any  # the sandbox's SandboxState
    db: Path

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def run(self, deployment: str, parameters: dict[str, Any]) -> dict[str, Any]:
        [run] = self.run_together([(deployment, parameters)])
        return run

    def run_together(self, runs: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
        ids = [run_deployment(self.api, name, params) for name, params in runs]
        done = wait_runs(self.api, ids, self.logs / "worker.log")
        return [done[i] for i in ids]

    def worker_log(self) -> str:
        return (self.logs / "worker.log").read_text(errors="replace")[-4000:]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("prefect-server")
    port = free_port()
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "AFTERSALE_"))}
    env = {
        **base_env,
        "PREFECT_HOME": str(tmp / "prefect-home"),
        # set before the server starts: the UI's API address and the links in notifications
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_UI_URL": f"http://127.0.0.1:{port}",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "INFO",
        "PREFECT_CLI_WRAP_LINES": "false",
        "PWD": str(PROJECT_ROOT),  # prefect.yaml's pull step: `{{ $PWD }}` at deploy time
    }
    logs, home = tmp / "logs", tmp / "chromium-home"
    logs.mkdir()
    home.mkdir()
    server = start(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env,
        logs / "server.log",
    )
    hooks = Hooks()
    threading.Thread(target=hooks.serve_forever, daemon=True).start()
    state = sandbox_state()
    state.add([SandboxParcel("dhl", DHL_NUMBER, "normal", START)])
    sandbox = SandboxServer(state).start()
    worker: subprocess.Popen[bytes] | None = None
    try:
        with pytest.MonkeyPatch.context() as mp:
            db = prepare(tmp, sandbox.url, mp)  # while the server starts
        worker_env = {
            **env,
            **aftersale_env(tmp, sandbox.url),
            "AFTERSALE_DHL_URL": sandbox.url,
            **DIRECTORY.get("dhl").sandbox_env,
        }
        wait_healthy(env["PREFECT_API_URL"], server, logs / "server.log")
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
        worker = start(
            [str(BIN / "aftersale"), "worker", "aftersale", "--limit", "4"],
            worker_env,
            logs / "worker.log",
        )
        yield Stack(port, env, worker_env, logs, home, hooks, state, db)
    finally:
        if worker is not None:
            started = time.monotonic()
            stop(worker)
            print(f"worker stopped {time.monotonic() - started:.1f} s after SIGINT")
        stop(server)
        sandbox.stop()
        hooks.shutdown()
        hooks.server_close()


def screenshot(stack: Stack, path: str, name: str) -> str:
    """The page at `path` as Chromium renders it: saved to test-artifacts/NAME; its DOM."""
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / name
    shot.unlink(missing_ok=True)
    page = f"http://127.0.0.1:{stack.port}{path}"
    chromium([f"--screenshot={shot}", page], stack.home)
    assert shot.stat().st_size > 10_000
    return chromium(["--dump-dom", page], stack.home).stdout


def test_alerts_test_reports_the_notification_delivered(stack: Stack) -> None:
    done = subprocess.run(
        [str(BIN / "aftersale"), "alerts", "test", "--timeout", "60"],
        cwd=PROJECT_ROOT, env=stack.env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "delivered: 'aftersale · needs a human' sent the notification" in done.stdout
    hook = stack.hooks.wait_for(lambda h: "test alert" in h.get("subject", ""), 10)
    assert "if you read this, aftersale's alerts reach you" in hook["body"]


def test_deploy_run_and_inspect_on_a_real_prefect_server(stack: Stack) -> None:
    # a cycle and housekeeping at once (they take turns on the DuckDB file), plus a
    # replay with a bad range: a forced failure that must notify
    stack.state.clock.set(LATER)
    cycle, house, bad = stack.run_together(
        [
            ("aftersale-cycle/every-15-minutes", {"now": LATER.isoformat()}),
            ("aftersale-housekeeping/daily", {"now": LATER.isoformat()}),
            (
                "aftersale-replay/on-demand",
                {"start": LATER.isoformat(), "end": START.isoformat()},
            ),
        ]
    )
    assert cycle["state"]["type"] == "COMPLETED", stack.worker_log()
    assert house["state"]["type"] == "COMPLETED", stack.worker_log()
    assert bad["state"]["type"] == "FAILED"

    with open_store(stack.db) as store:
        sent = store.count_messages(MessageState.SENT)
    assert sent >= 2
    token = cycle["id"].replace("-", "")[-6:]
    assert cycle["name"] == f"cycle 2026-11-23 15:00 · {token} · 1 polled · {sent} sent"
    found = artifacts_of(stack.api, cycle["id"])
    assert {"cycle-summary", "cycle-messages", "carrier-health"} <= set(found)
    assert "| inpost | 1 | 0 | 0 | 0 | closed |" in found["cycle-summary"]["data"]
    table = found["cycle-messages"]["data"]
    rows = json.loads(table) if isinstance(table, str) else table
    assert sum(1 for r in rows if r["outcome"] == "sent") == sent
    assert EMAIL not in json.dumps(found)
    assert {"housekeeping-summary", "report"} <= set(artifacts_of(stack.api, house["id"]))
    house_token = house["id"].replace("-", "")[-6:]
    assert house["name"].startswith(f"housekeeping 2026-11-23 15:00 · {house_token} · 0 expired")

    dom = screenshot(stack, f"/runs/flow-run/{cycle['id']}", "prefect-cycle-run.png")
    assert cycle["name"] in dom, dom[-2000:]
    failed = stack.hooks.wait_for(lambda h: h.get("subject", "").endswith(" is Failed"), 30)
    assert failed["subject"].startswith("aftersale: run ")
    assert f"Open it: http://127.0.0.1:{stack.port}/runs/flow-run/{bad['id']}" in failed["body"]


def test_a_carrier_outage_alerts_within_a_cycle_repeats_and_ends(stack: Stack) -> None:
    """DHL answers 500 from 16:00: the first cycle alerts and ends Degraded; at 16:10
    nothing of DHL's is due and the run is still Degraded, silently; at 17:00 the alert
    repeats; at 17:30 DHL answers again: "recovered", and the run is green."""
    with open_store(stack.db) as store:  # a DHL parcel of a second order, due now
        orders = stack.db.parent / "dhl-order.ndjson"
        orders.write_text(order_line("NW-78", DHL_NUMBER).replace('"inpost"', '"dhl"'))
        assert import_file(store, orders, now=START, detect=DIRECTORY).loaded == 1
    down_at = LATER + timedelta(hours=1)
    stack.state.clock.set(down_at)
    stack.state.set_fault("dhl", Fault(kind="server_error", status=503))

    def cycle(at: timedelta) -> dict[str, Any]:
        return stack.run("aftersale-cycle/every-15-minutes", {"now": (down_at + at).isoformat()})

    def down(h: dict[str, Any]) -> bool:
        return "carrier dhl down since 2026-11-23 16:00 UTC" in h.get("subject", "")

    first = cycle(timedelta(0))
    assert (first["state"]["type"], first["state"]["name"]) == ("FAILED", "Degraded")
    assert first["state"]["message"].startswith(
        "degraded: carrier dhl down since 2026-11-23 16:00 UTC (0 min): 1 failed poll so far, "
        "HTTP 503 ×1; last called in this run; 1 shipment waits"
    )
    alert = stack.hooks.wait_for(down, 30)  # delivered within the outage's first cycle
    assert f"Run: http://127.0.0.1:{stack.port}/runs/flow-run/{first['id']}" in alert["body"]
    assert "Event: aftersale.carrier.down on aftersale.carrier.dhl" in alert["body"]

    idle = cycle(timedelta(minutes=10))  # DHL's parcel waits until 16:15: nothing polled
    assert idle["name"].endswith(" · 0 polled · 0 sent")
    assert (idle["state"]["name"], idle["state"]["type"]) == ("Degraded", "FAILED")
    assert "last called in the run at 2026-11-23 16:00 UTC" in idle["state"]["message"]
    health = artifacts_of(stack.api, idle["id"])["carrier-health"]["data"]
    assert "| carrier | dhl | **failing** | 2026-11-23 16:00 UTC | 10 min |" in health

    repeat = cycle(timedelta(hours=1))
    assert repeat["state"]["name"] == "Degraded"
    still = stack.hooks.wait_for(
        lambda h: "carrier dhl still down since 2026-11-23 16:00 UTC (1 h)" in h.get("subject", ""),
        30,
    )
    assert f"/runs/flow-run/{repeat['id']}" in still["body"]

    stack.state.clear_faults("dhl")
    back = cycle(timedelta(hours=1, minutes=30))
    assert back["state"]["type"] == "COMPLETED", back["state"]
    over = stack.hooks.wait_for(lambda h: "carrier dhl is back" in h.get("subject", ""), 30)
    assert "after 1 h 30 min down (since 2026-11-23 16:00 UTC" in over["subject"]
    subjects = [h.get("subject", "") for h in stack.hooks.received]
    assert sum(1 for s in subjects if "dhl" in s and "down since" in s) == 2  # not every run
    assert not any(s.endswith(" is Degraded") for s in subjects)  # not "run failed" too

    dom = screenshot(stack, "/runs", "prefect-runs-degraded.png")
    assert "Degraded" in dom and first["name"] in dom
    feed = screenshot(stack, "/events?events=aftersale.*", "prefect-event-feed.png")
    assert "carrier dhl is back at 2026-11-23 17:30 UTC" in feed


def test_an_idle_worker_stops_at_the_first_interrupt(stack: Stack) -> None:
    """The trial saw a worker ignore Ctrl-C. A worker started in the background of a script
    inherits SIGINT ignored, and Prefect's first-interrupt handler then re-sends itself an
    ignored signal (measured: still running 30 s later). `aftersale worker` restores the
    defaults before it becomes `prefect worker start`: started that way with SIGINT ignored,
    idle on an empty pool and interrupted as a terminal does (SIGINT to its process group),
    it must exit on its own, cleanly."""
    cli(["work-pool", "create", "aftersale-idle", "--type", "process"], stack.env)
    log = stack.logs / "idle-worker.log"
    with log.open("wb") as out:
        idle = subprocess.Popen(
            [str(BIN / "aftersale"), "worker", "aftersale-idle", "--limit", "2"],
            cwd=PROJECT_ROOT, env=stack.worker_env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),  # as `cmd &` does
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while "started!" not in log.read_text(errors="replace"):
            assert idle.poll() is None, log.read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, "the idle worker did not start in 60 s"
            time.sleep(0.2)
        time.sleep(3)  # past its first polls and heartbeat: idle, not starting
        interrupted = time.monotonic()
        os.killpg(idle.pid, signal.SIGINT)
        idle.wait(timeout=20)
        took = time.monotonic() - interrupted
        print(f"idle worker exited {took:.1f} s after one SIGINT")
        assert idle.returncode == 0
        assert "stopped!" in log.read_text(errors="replace")
    finally:
        stop(idle)
