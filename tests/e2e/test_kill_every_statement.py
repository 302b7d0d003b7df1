"""Nothing lost, nothing doubled: a demo cycle is killed (SIGKILL) right after each of its
store statements in turn, then run again; every trial must end with exactly the messages
an uninterrupted cycle queues, in the same states, each sent message in the outbox once
and no other there. The demo sends through the outbox, which settles its own doubt: the
batch a kill leaves claimed (outcome not recorded) is `unknown` only until the rerun asks
the outbox, so no message is left `unknown` for a person.

On both backends: DuckDB (the trial's file copied) and PostgreSQL (the trial's database
copied from a template), where the rerun must also take over the killed run's leases."""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from aftersale.intake.files import import_file
from aftersale.settings import PROJECT_ROOT
from aftersale.store import open_store
from carriers.registry import DIRECTORY
from flows.demo import CYCLE_HOURS, DEMO_START, load_parcels, sandbox_env
from sandbox.app import SandboxClock, SandboxState
from sandbox.server import SandboxServer
from tests.support.postgres import TEMPLATE, PostgresCluster

EXAMPLES = PROJECT_ROOT / "examples"
DRIVER = Path(__file__).with_name("kill_driver.py")
#: demo cycles that decide and send (1-based, as `make demo` numbers them); PostgreSQL
#: (same code above the store, its own SQL below) is killed through the second one only,
#: to keep the suite's time
TARGETS = {"duckdb": (4, 7), "postgres": (7,)}
#: trials run side by side, each in its own folder (and database): one per core
PARALLEL = max(1, min(2, os.cpu_count() or 1))


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

    def run(
        self, workdir: Path, db: str, now: datetime, kill_after: int | None = None
    ) -> dict[str, Any]:
        assert self.proc.stdin and self.proc.stdout
        request = {
            "workdir": str(workdir),
            "db": db,
            "now": now.isoformat(),
            "kill_after": kill_after,
        }
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        assert self.proc.stdin
        self.proc.stdin.close()
        self.proc.wait(30)
        assert self.proc.stdout
        self.proc.stdout.close()


class Trials:
    """Where each trial's store lives and how one is copied: DuckDB's file sits in the
    trial's folder; on PostgreSQL each folder has a database of its own."""

    def __init__(self, cluster: PostgresCluster | None) -> None:
        self.cluster = cluster

    def db(self, workdir: Path) -> str:
        if self.cluster is None:
            return str(workdir / "aftersale.duckdb")
        return self.cluster.url(self._name(workdir))

    def create(self, workdir: Path) -> None:
        (workdir / "inbox").mkdir(parents=True)
        if self.cluster is not None:
            self._sql(f"CREATE DATABASE {self._name(workdir)} TEMPLATE {TEMPLATE}")

    def copy(self, source: Path, target: Path) -> None:
        shutil.copytree(source, target)
        if self.cluster is not None:
            self._sql(f"CREATE DATABASE {self._name(target)} TEMPLATE {self._name(source)}")

    def remove(self, workdir: Path) -> None:
        shutil.rmtree(workdir)
        if self.cluster is not None:
            self._sql(f"DROP DATABASE {self._name(workdir)} WITH (FORCE)")

    @staticmethod
    def _name(workdir: Path) -> str:
        return "kill_" + workdir.name.replace("-", "_")

    def _sql(self, statement: str) -> None:
        assert self.cluster is not None
        with self.cluster.admin() as conn:
            conn.execute(statement)


def messages(db: str) -> dict[str, tuple[str, str, str]]:
    """idempotency key -> (message id, channel, state)"""
    with open_store(db) as store:
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
            for k, v in os.environ.items()
            if not k.startswith(("AFTERSALE_", "SENDGRID_", "TWILIO_"))
        }
        env.update(sandbox_env(sandbox.url))
        drivers = [Driver(env) for _ in range(PARALLEL)]
        try:
            yield tmp_path_factory.mktemp("kill"), state.clock, drivers
        finally:
            for driver in drivers:
                driver.close()


@pytest.fixture(params=["duckdb", "postgres"])
def trials(request: pytest.FixtureRequest) -> Trials:
    if request.param == "duckdb":
        return Trials(None)
    return Trials(request.getfixturevalue("postgres_cluster"))


def test_a_cycle_killed_after_any_statement_loses_and_doubles_nothing(
    demo_env, trials: Trials
) -> None:
    root, clock, drivers = demo_env
    driver = drivers[0]
    backend = "postgres" if trials.cluster else "duckdb"
    targets = TARGETS[backend]
    root = root / backend
    reference = root / "reference"
    trials.create(reference)
    with open_store(trials.db(reference)) as store:
        import_file(store, EXAMPLES / "orders.ndjson", now=DEMO_START, detect=DIRECTORY)

    idle: queue.Queue[Driver] = queue.Queue()
    for d in drivers:
        idle.put(d)
    for number, hours in enumerate(CYCLE_HOURS[: max(targets)], start=1):
        now = DEMO_START + timedelta(hours=hours)
        clock.set(now)
        if number not in targets:
            assert driver.run(reference, trials.db(reference), now)["exit"] == 0
            continue
        before = root / f"before-{number}"
        trials.copy(reference, before)
        done = driver.run(reference, trials.db(reference), now)
        assert done["exit"] == 0, done
        expected = messages(trials.db(reference))
        new_sends = sends(reference) - sends(before)
        assert new_sends, f"cycle {number} sends nothing: pick another target"

        def trial(
            kill_after: int,
            number: int = number,
            now: datetime = now,
            before: Path = before,
            expected: dict[str, tuple[str, str, str]] = expected,
        ) -> None:
            workdir = root / f"cycle-{number}-kill-{kill_after}"
            trials.copy(before, workdir)
            mine = idle.get()
            try:
                killed = mine.run(workdir, trials.db(workdir), now, kill_after)
                assert killed["killed"], (kill_after, killed)
                rerun = mine.run(workdir, trials.db(workdir), now)
            finally:
                idle.put(mine)
            assert rerun["exit"] == 0, (kill_after, rerun)
            check_trial(workdir, trials.db(workdir), expected, f"cycle {number} killed after "
                        f"statement {kill_after}")  # fmt: skip

        with ThreadPoolExecutor(PARALLEL) as pool:
            # list(): the first failing trial's assertion is raised here
            list(pool.map(trial, range(1, done["statements"] + 1)))


def check_trial(
    workdir: Path, db: str, expected: dict[str, tuple[str, str, str]], where: str
) -> None:
    got = messages(db)
    assert set(got) == set(expected), f"{where}: messages lost or added"
    in_doubt = sorted(k for k, (_, _, state) in got.items() if state == "unknown")
    assert not in_doubt, f"{where}: outbox messages left unknown: {in_doubt}"
    for key, (_, _, state) in got.items():
        want = expected[key][2]
        assert state == want, f"{where}: {key} is {state}, reference {want}"
    counts = sends(workdir)
    assert max(counts.values(), default=0) <= 1, f"{where}: sent twice: {counts}"
    sent = {message_id for message_id, _, state in got.values() if state == "sent"}
    assert set(counts) == sent, f"{where}: sent but not in the outbox, or the other way"
