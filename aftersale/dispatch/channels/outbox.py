"""The local outbox: the safe default channel when no provider is configured.

Email becomes one RFC 5322 `.eml` file per send attempt, text and HTML alternatives
(composed by `mime`): `outbox/email/<message id>.eml`, and `<message id>.2.eml`, `.3.eml`…
when the same message is sent again (an operator's release, a test send). A file is
never replaced: people count the outbox to see what was sent. A text message (SMS) becomes
one JSON line in `outbox/<channel>.jsonl` (`sms.jsonl`), appended with a single write.
Which of the two a channel gets is its render format (channels/kinds.py).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import format_datetime, make_msgid
from pathlib import Path

from aftersale.dispatch.channels import mime
from aftersale.dispatch.channels.base import RenderFormat
from aftersale.dispatch.channels.kinds import spec_of
from aftersale.models import ChannelKind, OutgoingMessage, SendResult

#: Characters `str.splitlines` breaks on that JSON leaves unescaped: escaped here, so one
#: message stays one line for every reader.
_LINE_BREAKS = {ord("\x85"): "\\u0085", ord("\u2028"): "\\u2028", ord("\u2029"): "\\u2029"}


class OutboxChannel:
    name = "outbox"

    def __init__(
        self,
        outbox_dir: Path,
        kind: ChannelKind,
        *,
        sender: str = "Shop <orders@shop.invalid>",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.outbox_dir = Path(outbox_dir)
        self.kind = kind
        self._from = mime.parse_sender(sender)  # checked and encoded once, not per message
        self._clock = clock

    def send(self, message: OutgoingMessage) -> SendResult:
        if message.content.channel is not self.kind:
            return SendResult(
                ok=False,
                error_code="wrong_channel",
                error_text=f"{self.kind} outbox got a {message.content.channel} message",
            )
        write = {
            RenderFormat.EMAIL: self._write_email,
            RenderFormat.TEXT: self._append_text,
        }[spec_of(self.kind).render_format]
        try:
            path = write(message)
        except mime.AddressError as exc:
            return SendResult(ok=False, error_code="bad_address", error_text=str(exc))
        except OSError as exc:
            return SendResult(ok=False, error_code="outbox_io", error_text=str(exc), transient=True)
        return SendResult(ok=True, provider_id=f"outbox:{path.name}:{message.message_id}")

    def _write_email(self, message: OutgoingMessage) -> Path:
        content = message.content
        headers = [
            ("Subject", mime.header_text("Subject", content.subject or "")),
            ("From", self._from),
            ("To", mime.check_address(content.to)),
            ("Date", format_datetime(self._clock())),
            ("Message-ID", make_msgid(idstring=message.message_id, domain="aftersale.local")),
            (
                "X-Aftersale-Message-Id",
                mime.header_text("X-Aftersale-Message-Id", message.message_id),
            ),
            ("X-Aftersale-Rule", mime.header_text("X-Aftersale-Rule", message.rule_id)),
            ("X-Aftersale-Template", mime.header_text("X-Aftersale-Template", message.template)),
        ]
        if message.marketing:
            headers.extend(mime.list_unsubscribe_headers(content.list_unsubscribe))
        if message.test:
            headers.append(("X-Aftersale-Test", "yes"))
        data = mime.compose(headers, content.text, content.html)
        folder = self.outbox_dir / self.kind.value
        try:
            return write_new(folder, message.message_id, data)
        except FileNotFoundError:  # the first message (or someone moved the folder away)
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            return write_new(folder, message.message_id, data)

    def _append_text(self, message: OutgoingMessage) -> Path:
        self.outbox_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self.outbox_dir / f"{self.kind.value}.jsonl"
        record = {
            "message_id": message.message_id,
            "to": message.content.to,
            "text": message.content.text,
            "segments": message.content.sms_segments,
            "rule": message.rule_id,
            "template": message.template,
            "test": message.test,
            "written_at": self._clock().isoformat(),
        }
        line = json.dumps(record, ensure_ascii=False).translate(_LINE_BREAKS) + "\n"
        append_line(path, line.encode("utf-8"))
        return path


def write_new(folder: Path, stem: str, data: bytes) -> Path:
    """Write `data` as `stem.eml`, or `stem.2.eml`, `stem.3.eml`… whichever is free first.

    The bytes go to a hidden temporary file that is then hard-linked under the final
    name: linking fails if the name exists (so nothing is replaced, even by a run writing
    the same message at the same moment) and a reader never sees half a message."""
    base = os.path.join(folder, stem)
    tmp = os.path.join(folder, f".{stem}.{os.getpid()}.{threading.get_ident()}.tmp")
    # private: a message holds the customer's name and address
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
        out.write(data)
    attempt = 1
    try:
        while True:
            path = f"{base}.eml" if attempt == 1 else f"{base}.{attempt}.eml"
            try:
                os.link(tmp, path)
                return Path(path)
            except FileExistsError:
                attempt += 1
    finally:
        os.unlink(tmp)


def append_line(path: Path, line: bytes) -> None:
    """Append one line with one write to a file opened for appending: the kernel places
    each such write whole at the end, so lines from threads or overlapping runs never mix."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        written = os.write(fd, line)
    finally:
        os.close(fd)
    if written != len(line):  # a full disk; the message is retried, the torn line stays
        raise OSError(f"{path}: wrote {written} of {len(line)} bytes (disk full?)")
