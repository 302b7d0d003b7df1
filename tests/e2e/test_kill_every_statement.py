"""Nothing lost, nothing doubled: a demo cycle is killed (SIGKILL) right after each of its
store statements in turn, then run again; every trial must end with exactly the messages
an uninterrupted cycle queues, none sent twice, and at most one dispatch batch in doubt
(`unknown`: claimed, outcome not recorded; reported, never resent blindly)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from aftersale.dispatch.send import DEFAULT_BATCH_SIZE
from aftersale.intake.files import import_file
from aftersale.settings import PROJECT_ROOT
from aftersale.store import open_store
from carriers.registry import DIRECTORY
from flows.demo import CYCLE_HOURS, DEMO_START, load_parcels, sandbox_env
from sandbox.app import SandboxClock, SandboxState
from sandbox.server import SandboxServer

EXAMPLES = PROJECT_ROOT / "examples"
DRIVER = Path(__file__).with_name("kill_driver.py")
#: demo cycles that decide and send (1-based, as `make demo` numbers them)
TARGETS = (4, 7)


class Driver:
    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(DRIVER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=PROJECT_ROOT,
        )

    def run(self, workdir: Path, now: datetime, kill_after: int | None = None) -> dict[str, Any]:
        assert self.proc.stdin and self.proc.stdout
        request = {"workdir": str(workdir), "now": now.isoformat(), "kill_after": kill_after}
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        assert self.proc.stdin
        self.proc.stdin.close()
        self.proc.wait(30)
        assert self.proc.stdout
        self.proc.stdout.close()


def messages(workdir: Path) -> dict[str, tuple[str, str, str]]:
    """idempotency key -> (message id, channel, state)"""
    with open_store(workdir / "aftersale.duckdb") as store:
        rows = store.list_messages()
    return {m.idempotency_key: (m.message_id, m.channel, m.state) for m in rows}


def sends(workdir: Path) -> Counter[str]:
    """How many times each message id reached the outbox (each attempt is its own record)."""
    counts: Counter[str] = Counter()
    for eml in (workdir / "outbox" / "email").glob("*.eml"):
        counts[eml.name.split(".")[0]] += 1
    sms = workdir / "outbox" / "sms.jsonl"
    if sms.exists():
        for line in sms.read_text(encoding="utf-8").splitlines():
            counts[json.loads(line)["message_id"]] += 1
    return counts


@pytest.fixture(scope="module")
def demo_env(tmp_path_factory: pytest.TempPathFactory):
    state = SandboxState(SandboxClock(DEMO_START))
    state.add(load_parcels(EXAMPLES / "sandbox_parcels.json"))
    with SandboxServer(state) as sandbox:
        env = {
            k: v
            for k, v in __import__("os").environ.items()
            if not k.startswith(("AFTERSALE_", "SENDGRID_", "TWILIO_"))
        }
        env.update(sandbox_env(sandbox.url))
        driver = Driver(env)
        try:
            yield tmp_path_factory.mktemp("kill"), state.clock, driver
        finally:
            driver.close()


def test_a_cycle_killed_after_any_statement_loses_and_doubles_nothing(demo_env) -> None:
    root, clock, driver = demo_env
    reference = root / "reference"
    (reference / "inbox").mkdir(parents=True)
    with open_store(reference / "aftersale.duckdb") as store:
        import_file(store, EXAMPLES / "orders.ndjson", now=DEMO_START, detect=DIRECTORY)

    checked = 0
    for number, hours in enumerate(CYCLE_HOURS[: max(TARGETS)], start=1):
        now = DEMO_START + timedelta(hours=hours)
        clock.set(now)
        if number not in TARGETS:
            assert driver.run(reference, now)["exit"] == 0
            continue
        before = root / f"before-{number}"
        shutil.copytree(reference, before)
        done = driver.run(reference, now)
        assert done["exit"] == 0, done
        expected = messages(reference)
        new_sends = sends(reference) - sends(before)
        assert new_sends, f"cycle {number} sends nothing: pick another target"

        for kill_after in range(1, done["statements"] + 1):
            trial = root / f"cycle-{number}-kill-{kill_after}"
            shutil.copytree(before, trial)
            killed = driver.run(trial, now, kill_after)
            assert killed["killed"], (kill_after, killed)
            rerun = driver.run(trial, now)
            assert rerun["exit"] == 0, (kill_after, rerun)
            got = messages(trial)
            where = f"cycle {number} killed after statement {kill_after}"
            assert set(got) == set(expected), f"{where}: messages lost or added"
            in_doubt = {k for k, (_, _, st) in got.items() if st == "unknown"}
            assert len(in_doubt) <= DEFAULT_BATCH_SIZE, where
            for key, (_, _, state) in got.items():
                want = expected[key][2]
                if key in in_doubt:
                    assert want == "sent", f"{where}: {key} unknown, reference {want}"
                else:
                    assert state == want, f"{where}: {key} is {state}, reference {want}"
            counts = sends(trial)
            assert max(counts.values(), default=0) <= 1, f"{where}: sent twice: {counts}"
            for key, (message_id, _, state) in got.items():
                if state == "sent":
                    assert counts[message_id] == 1, f"{where}: {key} sent but not in the outbox"
            shutil.rmtree(trial)
            checked += 1
    assert checked >= 20 * len(TARGETS)  # every cycle, a real number of statements each
