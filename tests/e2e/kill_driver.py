"""A fork server for the kill test: imports the pipeline once, then runs each requested
cycle in a forked child whose store connection SIGKILLs the child right after its N-th
statement. Reads one JSON request per line on stdin, answers one JSON line on stdout:

    {"workdir": DIR, "db": PATH | URL, "now": ISO, "kill_after": N | null}
    -> {"killed": bool, "statements": how many the cycle issued (when it finished)}

The parent never opens the store, so each child starts with a clean library state. On
PostgreSQL the parent waits, after a kill, until the server has seen the child's sessions
close: until then the child's leases still count as held by a live worker.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from aftersale.cycle import run_cycle
from aftersale.store import is_url, open_store
from carriers.registry import load_settings
from flows.wiring import build_parts


class KillAfter:
    """Wraps the store's connection: the process dies right after statement `limit`."""

    STATEMENTS = ("execute", "executemany", "sql", "query")

    def __init__(self, con: Any, limit: int | None) -> None:
        self._con = con
        self._limit = limit
        self.count = 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._con, name)
        if name not in self.STATEMENTS:
            return attr

        def statement(*args: Any, **kwargs: Any) -> Any:
            result = attr(*args, **kwargs)
            self.count += 1
            if self.count == self._limit:
                os.kill(os.getpid(), signal.SIGKILL)
            return result

        return statement


def run_child(request: dict[str, Any], report: Path) -> None:
    workdir = Path(request["workdir"])
    env = {
        **os.environ,
        "AFTERSALE_DB": request["db"],
        "AFTERSALE_OUTBOX": str(workdir / "outbox"),
        "AFTERSALE_INBOX": str(workdir / "inbox"),
    }
    settings = load_settings(env)
    with open_store(settings.db) as store:
        parts, _ = build_parts(settings, store, env=env)
        proxy = KillAfter(store.con, request["kill_after"])
        store.con = proxy
        summary = run_cycle(parts, datetime.fromisoformat(request["now"]), f"kill-{os.getpid()}")
        store.con = proxy._con
    report.write_text(
        json.dumps({"statements": proxy.count, "sent": summary.dispatch.count("sent")})
    )


def wait_for_sessions_to_close(url: str, pid: int, timeout_s: float = 10.0) -> None:
    """Until PostgreSQL lists no session of the process `pid` (its lease owner name)."""
    import psycopg

    deadline = time.monotonic() + timeout_s
    with psycopg.connect(url, autocommit=True) as conn:
        while conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE %s",
            [f"aftersale %:{pid}:%"],
        ).fetchone() != (0,):
            if time.monotonic() > deadline:
                raise TimeoutError(f"sessions of killed process {pid} still open")
            time.sleep(0.01)


def main() -> None:
    for line in sys.stdin:
        request = json.loads(line)
        report = Path(request["workdir"]) / "driver-report.json"
        report.unlink(missing_ok=True)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                run_child(request, report)
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        if killed and is_url(request["db"]):
            wait_for_sessions_to_close(request["db"], pid)
        answer: dict[str, Any] = {"killed": killed, "exit": os.waitstatus_to_exitcode(status)}
        if report.exists():
            answer.update(json.loads(report.read_text()))
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
