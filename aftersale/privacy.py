"""Erase one customer's personal data everywhere aftersale keeps it (GDPR art. 17).

`forget_customer` first applies the webhook spool (an opt-out waiting there must not be
lost), then erases the customer in the store (`Store.erase_customer`: one transaction,
counts kept, an `erasures` record), then the files: the outbox's copies of their
messages (each .eml becomes a stub naming only the message id, so the outbox still counts
what was sent; their SMS lines lose recipient and text), imported order files kept in
`inbox/done/` (their rows become blank lines, so line numbers stay) and webhook spool
files set aside as unreadable. Every rewrite goes through a temporary file and a rename.

Kept on purpose: the suppression list (an opt-out or bounce must keep working if the
shop imports the person again; `aftersale suppress remove` lifts it).
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from aftersale.dispatch.spool import ingest_webhook_spool
from aftersale.store.protocols import Store
from aftersale.store.records import ERASED, Erasure


@dataclass
class ForgetReport:
    erasure: Erasure | None  # None: no such customer
    spool_applied: int = 0
    files: dict[str, int] = field(default_factory=dict)  # what was rewritten, per kind


def forget_customer(
    store: Store,
    customer_id: str,
    now: datetime,
    *,
    outbox_dir: Path,
    inbox_dir: Path,
    spool_dir: Path | None,
) -> ForgetReport:
    """Erase `customer_id`'s personal data in the store and in aftersale's files.
    `spool_dir` None: no webhook spool (PostgreSQL: the receiver writes to the store)."""
    applied = ingest_webhook_spool(store, spool_dir, now) if spool_dir else 0
    erasure = store.erase_customer(customer_id, now)
    report = ForgetReport(erasure, applied)
    if erasure is None or erasure.already:
        return report
    ids = set(erasure.message_ids)
    secrets = [customer_id, *erasure.addresses]
    report.files = {
        "outbox_emails": _stub_emails(outbox_dir / "email", ids),
        "outbox_sms_lines": _rewrite_lines(outbox_dir / "sms.jsonl", _sms_line(ids)),
        "order_file_rows": sum(
            _rewrite_lines(path, _order_line(secrets)) for path in _files(inbox_dir / "done")
        ),
        "spool_lines": sum(
            _rewrite_lines(path, _mentions(secrets))
            for path in (_files(spool_dir / "rejected") if spool_dir else [])
        ),
    }
    return report


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []


def _stub_emails(folder: Path, message_ids: set[str]) -> int:
    """Each .eml of these messages (`<id>.eml`, `<id>.2.eml`, …) becomes a stub."""
    count = 0
    for path in _files(folder):
        message_id = path.name.split(".", 1)[0]
        if message_id in message_ids and path.suffix == ".eml":
            stub = (
                f"X-Aftersale-Message-Id: {message_id}\r\nSubject: {ERASED}\r\n\r\n"
                "The recipient's personal data was erased on request.\r\n"
            )
            _replace(path, stub.encode())
            count += 1
    return count


def _sms_line(message_ids: set[str]) -> Callable[[str], str | None]:
    def erase(line: str) -> str | None:
        try:
            entry = json.loads(line)
        except ValueError:
            return None
        if not isinstance(entry, dict) or entry.get("message_id") not in message_ids:
            return None
        erased = {k: (ERASED if k in ("to", "text", "body") else v) for k, v in entry.items()}
        return json.dumps(erased, ensure_ascii=False)

    return erase


def _order_line(secrets: Iterable[str]) -> Callable[[str], str | None]:
    """An order file's row of the customer (their id, email or phone in a customer field
    or CSV cell) becomes blank: NDJSON and CSV skip blank lines, and line numbers stay."""
    wanted = {s.strip().lower() for s in secrets if s and s.strip()}

    def erase(line: str) -> str | None:
        try:
            row = json.loads(line)
        except ValueError:
            row = None
        values: list[Any]
        if isinstance(row, dict):
            customer = row.get("customer")
            values = list(customer.values()) if isinstance(customer, dict) else []
        else:
            values = list(next(csv.reader([line]), []))
        hit = any(isinstance(v, str) and v.strip().lower() in wanted for v in values)
        return "" if hit else None

    return erase


def _mentions(secrets: Iterable[str]) -> Callable[[str], str | None]:
    """A line quoting the customer's id, email or phone gets them replaced."""
    values = [s for s in secrets if s and len(s) >= 4]

    def erase(line: str) -> str | None:
        if not any(v in line for v in values):
            return None
        for v in values:
            line = line.replace(v, ERASED)
        return line

    return erase


def _rewrite_lines(path: Path, change: Callable[[str], str | None]) -> int:
    """Apply `change` to each line (None: keep it); returns how many lines changed."""
    if not path.is_file():
        return 0
    lines = path.read_text(encoding="utf-8", errors="surrogateescape").split("\n")
    changed = 0
    for i, line in enumerate(lines):
        new = change(line) if line.strip() else None
        if new is not None and new != line:
            lines[i] = new
            changed += 1
    if changed:
        _replace(path, "\n".join(lines).encode("utf-8", errors="surrogateescape"))
    return changed


def _replace(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.erasing")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
