"""The webhook spool: the receiver writes provider facts to files; each cycle applies them.

Why a spool and not the store: DuckDB lets one process hold a database file, and while
it does no other process can even read it. A receiver holding the file would stop every
cycle; one opening it per request would fail (or make the provider wait) whenever a
cycle runs, and Twilio does not retry an inbound STOP. So `aftersale webhooks serve`
never opens the database: each verified fact (suppress, unsuppress, delivery state)
becomes one small JSON-lines file, written to `tmp/`, fsynced and renamed into the spool
(atomic, so the ingest never sees half a file), and the provider gets its 200 only after
that. The cycle calls `ingest_webhook_spool` first thing: files in name order (time,
process, sequence), each applied in one transaction through `StoreWebhookSink`, then
deleted. Applying is idempotent, so a crash between apply and delete only re-applies.
Suppressions therefore take effect at the next cycle, which is the only time anything
is sent. A file that cannot be read is moved to `rejected/` and named in the log.

On PostgreSQL none of this is needed: several processes share the database, so the
receiver writes each fact straight to the store and there is no spool (unless
AFTERSALE_WEBHOOK_SPOOL names one: a shop that moved from DuckDB drains its old spool).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from aftersale.dispatch.suppressions import StoreWebhookSink
from aftersale.models import ChannelKind
from aftersale.settings import Settings
from aftersale.store import is_url
from aftersale.store.protocols import Store

log = logging.getLogger(__name__)

SPOOL_SUFFIX = ".jsonl"


def webhook_spool_dir(settings: Settings, env: Mapping[str, str] | None = None) -> Path | None:
    """`AFTERSALE_WEBHOOK_SPOOL`, else `webhooks/` beside a DuckDB file: the receiver and
    the cycle agree on it because they agree on `AFTERSALE_DB`. None for a database URL
    (PostgreSQL): the receiver writes to the store itself."""
    env = os.environ if env is None else env
    override = env.get("AFTERSALE_WEBHOOK_SPOOL", "").strip()
    if override:
        return Path(override)
    if is_url(settings.db):
        return None
    return Path(settings.db).parent / "webhooks"


class SpoolSink:
    """aftersale.webhooks.WebhookSink writing each fact durably to the spool. Thread-safe."""

    def __init__(self, spool_dir: Path) -> None:
        self.spool_dir = Path(spool_dir)
        self._tmp = self.spool_dir / "tmp"
        # private: facts name addresses (the files themselves are written 0600)
        self._tmp.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.spool_dir, 0o700)
        self._lock = threading.Lock()
        self._last_ns = 0
        self._seq = 0

    def suppress(self, address: str, channel: ChannelKind, reason: str, at: datetime) -> None:
        self._write(
            {
                "op": "suppress",
                "address": address,
                "channel": str(channel),
                "reason": str(reason),
                "at": at.isoformat(),
            }
        )

    def unsuppress(self, address: str, channel: ChannelKind, at: datetime) -> None:
        self._write(
            {"op": "unsuppress", "address": address, "channel": str(channel), "at": at.isoformat()}
        )

    def record_delivery(
        self, message_id: str, state: str, detail: str | None, at: datetime
    ) -> None:
        self._write(
            {
                "op": "delivery",
                "message_id": message_id,
                "state": state,
                "detail": detail,
                "at": at.isoformat(),
            }
        )

    def _write(self, fact: dict[str, Any]) -> Path:
        with self._lock:
            # Names sort in arrival order within this process even if the wall clock steps back.
            self._last_ns = max(time.time_ns(), self._last_ns + 1)
            self._seq += 1
            name = f"{self._last_ns:020d}-{os.getpid()}-{self._seq:08d}{SPOOL_SUFFIX}"
        return write_atomically(self.spool_dir, name, json.dumps(fact, ensure_ascii=False) + "\n")


def write_atomically(folder: Path, name: str, text: str) -> Path:
    """Write `folder/name` so a reader never sees half of it: into `folder/tmp/`, fsynced,
    then renamed into place (mode 0600: webhook bodies hold personal data)."""
    (folder / "tmp").mkdir(parents=True, exist_ok=True)
    tmp = folder / "tmp" / name
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        data = memoryview(text.encode())
        while data:
            data = data[os.write(fd, data) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    final = folder / name
    os.replace(tmp, final)
    _fsync_dir(folder)
    return final


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ingest_webhook_spool(store: Store, spool_dir: Path, now: datetime) -> int:
    """Apply every spooled webhook fact to the store, oldest first; returns how many were
    applied. Call at the start of a cycle, before dispatch. Missing spool: 0."""
    spool_dir = Path(spool_dir)
    if not spool_dir.is_dir():
        return 0
    sink = StoreWebhookSink(store)
    applied = 0
    for path in sorted(spool_dir.glob(f"*{SPOOL_SUFFIX}")):
        facts, problems = _read(path)
        with store.transaction():
            for fact in facts:
                _apply(sink, fact)
        applied += len(facts)
        if problems:
            rejected = spool_dir / "rejected"
            rejected.mkdir(exist_ok=True, mode=0o700)
            os.replace(path, rejected / path.name)
            for problem in problems:
                log.error("webhook spool %s (moved to %s)", problem, rejected)
        else:
            path.unlink()
    if applied:
        log.info("applied %d webhook fact(s) from %s at %s", applied, spool_dir, now.isoformat())
    return applied


def _read(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The facts in one spool file, and `file:line: problem` for each that is unusable."""
    facts: list[dict[str, Any]] = []
    problems: list[str] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        return [], [f"{path}: cannot read: {exc}"]
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            fact = json.loads(line)
            _check(fact)
        except (ValueError, TypeError) as exc:
            problems.append(f"{path}:{number}: {exc}")
            continue
        facts.append(fact)
    return facts, problems


_FIELDS = {
    "suppress": ("address", "channel", "reason", "at"),
    "unsuppress": ("address", "channel", "at"),
    "delivery": ("message_id", "state", "at"),
}


def _check(fact: Any) -> None:
    if not isinstance(fact, dict):
        raise TypeError("not a JSON object")
    op = fact.get("op")
    if op not in _FIELDS:
        raise ValueError(f"op {op!r} is not one of: {', '.join(_FIELDS)}")
    for name in _FIELDS[op]:
        if not isinstance(fact.get(name), str):
            raise ValueError(f"{op}: field {name!r} missing or not a string")
    at = datetime.fromisoformat(fact["at"])
    if at.tzinfo is None:
        raise ValueError(f"at {fact['at']!r} has no UTC offset")
    if "channel" in fact:
        ChannelKind(fact["channel"])


def _apply(sink: StoreWebhookSink, fact: dict[str, Any]) -> None:
    at = datetime.fromisoformat(fact["at"])
    op = fact["op"]
    if op == "suppress":
        sink.suppress(fact["address"], ChannelKind(fact["channel"]), fact["reason"], at)
    elif op == "unsuppress":
        sink.unsuppress(fact["address"], ChannelKind(fact["channel"]), at)
    else:
        sink.record_delivery(fact["message_id"], fact["state"], fact.get("detail"), at)
