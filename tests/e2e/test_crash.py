"""Crash test: a real `aftersale run` sending through SendGridChannel is SIGKILLed between
claim and send, and between send and mark. The next cycle resends nothing and reports the
message as `unknown`; an operator lists it (masked) and releases it; it then goes once."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from aftersale.store import open_store

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
AFTERSALE = REPO / ".venv" / "bin" / "aftersale"
PLACED = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
API_KEY = "SG.crash-test-key-never-printed"
EMAIL = "anna.nowak@example.com"
ORDER = {
    "order_id": "CR-1",
    "placed_at": PLACED.isoformat(),
    "customer": {
        "id": "C-1",
        "name": "Anna Nowak",
        "email": EMAIL,
        "locale": "en",
        "time_zone": "Europe/Warsaw",
        "consent": {"email": True, "sms": False},
    },
    "items": [
        {
            "sku": "NW-CB-USB",
            "name": "USB-C cable",
            "category": "cables",
            "quantity": 1,
            "price": "39.00",
            "currency": "PLN",
        }
    ],
}


@dataclass
class StallingSendGrid:
    """A raw-socket server playing SendGrid, in one of three modes:
    `stall_before_read` accepts the connection and never reads it (the request never
    reaches the provider), `stall_after_read` records the request and never answers,
    `answer` records it and answers 202 with an X-Message-Id."""

    listener: socket.socket
    mode: str = "answer"
    requests: list[bytes] = field(default_factory=list)
    connected: threading.Event = field(default_factory=threading.Event)
    received: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)
    conns: list[socket.socket] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        host, port = self.listener.getsockname()[:2]
        return f"http://{host}:{port}"

    def serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self.lock:
                self.conns.append(conn)
            threading.Thread(target=self._handle, args=(conn, self.mode), daemon=True).start()

    def _handle(self, conn: socket.socket, mode: str) -> None:
        self.connected.set()
        if mode == "stall_before_read":
            return  # keep the socket open, unread, until the client dies
        conn.settimeout(10)
        try:
            request = _read_request(conn)
        except OSError:
            return
        with self.lock:
            self.requests.append(request)
        self.received.set()
        if mode == "stall_after_read":
            return
        n = len(self.requests)
        conn.sendall(
            b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n"
            + f"X-Message-Id: sg-crash-{n}\r\nConnection: close\r\n\r\n".encode()
        )
        conn.close()

    def bodies(self) -> list[dict[str, Any]]:
        with self.lock:
            return [json.loads(r.split(b"\r\n\r\n", 1)[1]) for r in self.requests]


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))  # type: ignore[union-attr]
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


@contextmanager
def stalling_sendgrid() -> Iterator[StallingSendGrid]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.05)
    server = StallingSendGrid(listener)
    thread = threading.Thread(target=server.serve, name="stalling-sendgrid", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stop.set()
        thread.join(timeout=5)
        listener.close()
        for conn in server.conns:
            conn.close()


def environment(workdir: Path, sendgrid_url: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SENDGRID_", "TWILIO_", "AFTERSALE_"))
    }
    env.update(
        {
            "AFTERSALE_DB": str(workdir / "aftersale.duckdb"),
            "AFTERSALE_OUTBOX": str(workdir / "outbox"),
            "AFTERSALE_INBOX": str(workdir / "inbox"),
            "AFTERSALE_STORE_LOCK_WAIT_S": "20",
            "SENDGRID_API_KEY": API_KEY,
            "AFTERSALE_SENDGRID_HOST": sendgrid_url,
            "COLUMNS": "250",  # rich tables: no truncated ids
        }
    )
    return env


def aftersale(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(AFTERSALE), *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert API_KEY not in done.stdout + done.stderr
    return done


def summary_of(stdout: str) -> dict[str, Any]:
    lines = stdout.splitlines()
    return json.loads("\n".join(lines[lines.index("{") :]))


def at(minutes: int) -> str:
    return (PLACED + timedelta(minutes=minutes)).isoformat()


@pytest.mark.parametrize("stall", ["stall_before_read", "stall_after_read"])
def test_a_killed_run_neither_resends_nor_loses_the_message(tmp_path: Path, stall: str) -> None:
    (tmp_path / "inbox").mkdir()
    (tmp_path / "inbox" / "orders.ndjson").write_text(json.dumps(ORDER) + "\n", encoding="utf-8")
    with stalling_sendgrid() as sendgrid:
        env = environment(tmp_path, sendgrid.url)
        sendgrid.mode = stall
        run = subprocess.Popen(
            [str(AFTERSALE), "run", "--no-prefect", "--now", at(15)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        reached = sendgrid.connected if stall == "stall_before_read" else sendgrid.received
        try:
            if not reached.wait(60):
                run.kill()
                pytest.fail(f"the run never reached SendGrid:\n{run.communicate()[0]}")
        finally:
            os.kill(run.pid, signal.SIGKILL)
            run.communicate()
        assert run.returncode == -signal.SIGKILL
        sent_before = 0 if stall == "stall_before_read" else 1
        assert len(sendgrid.requests) == sent_before

        # The next cycle: the provider would answer now, yet nothing is resent.
        sendgrid.mode = "answer"
        second = aftersale(env, "run", "--no-prefect", "--now", at(30))
        assert second.returncode == 0, second.stdout + second.stderr
        summary = summary_of(second.stdout)
        assert (summary["unknown"], summary["sent"], summary["queued"]) == (1, 0, 0)
        assert len(sendgrid.requests) == sent_before

        listed = aftersale(env, "messages", "list", "--state", "unknown")
        assert listed.returncode == 0, listed.stderr
        (message_id,) = set(re.findall(r"m-[0-9a-f]{20}", listed.stdout))
        assert "a***@example.com" in listed.stdout and EMAIL not in listed.stdout
        assert (
            "thank_you" in listed.stdout and "run ended between claim and result" in listed.stdout
        )
        if stall == "stall_after_read":  # the provider did get it: our id travelled along
            assert sendgrid.bodies()[0]["personalizations"][0]["custom_args"]["message_id"] == (
                message_id
            )

        released = aftersale(env, "messages", "release", message_id, "--resend")
        assert (released.returncode, released.stdout.strip()) == (0, "1 message(s) queued again")
        again = aftersale(env, "messages", "release", message_id, "--resend")
        assert again.stdout.strip() == "0 message(s) queued again"

        resend = aftersale(env, "run", "--no-prefect", "--now", at(45))
        assert resend.returncode == 0, resend.stdout + resend.stderr
        assert summary_of(resend.stdout)["sent"] == 1
        assert len(sendgrid.requests) == sent_before + 1
        body = sendgrid.bodies()[-1]
        assert body["personalizations"][0]["custom_args"]["message_id"] == message_id
        assert body["personalizations"][0]["to"] == [{"email": EMAIL}]

        last = aftersale(env, "run", "--no-prefect", "--now", at(50))
        assert summary_of(last.stdout)["sent"] == 0
        assert len(sendgrid.requests) == sent_before + 1

    with open_store(tmp_path / "aftersale.duckdb") as store:
        rows = [(m.message_id, m.state, m.attempts, m.provider_id) for m in store.list_messages()]
    assert rows == [(message_id, "sent", 2, f"sg-crash-{sent_before + 1}")]
