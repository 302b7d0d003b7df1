"""The local outbox: the safe default channel when no provider is configured.

Email becomes one RFC 5322 `.eml` file per message (`outbox/email/<message id>.eml`,
text and HTML alternatives); SMS becomes one JSON line in `outbox/sms.jsonl`. The
file name is the message id, so writing a message again replaces, never doubles, it.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

from aftersale.models import ChannelKind, OutgoingMessage, SendResult

_SMS_LOCK = threading.Lock()


class OutboxChannel:
    name = "outbox"

    def __init__(
        self, outbox_dir: Path, kind: ChannelKind, *, sender: str = "Shop <orders@shop.invalid>"
    ) -> None:
        self.outbox_dir = Path(outbox_dir)
        self.kind = kind
        self.sender = sender

    def send(self, message: OutgoingMessage) -> SendResult:
        if message.content.channel is not self.kind:
            return SendResult(
                ok=False,
                error_code="wrong_channel",
                error_text=f"{self.kind} outbox got a {message.content.channel} message",
            )
        try:
            if self.kind is ChannelKind.EMAIL:
                path = self._write_email(message)
            else:
                path = self._append_sms(message)
        except OSError as exc:
            return SendResult(ok=False, error_code="outbox_io", error_text=str(exc), transient=True)
        return SendResult(ok=True, provider_id=f"outbox:{path.name}:{message.message_id}")

    def _write_email(self, message: OutgoingMessage) -> Path:
        content = message.content
        email = EmailMessage()
        email["Subject"] = content.subject or ""
        email["From"] = self.sender
        email["To"] = content.to
        email["Date"] = format_datetime(datetime.now(UTC))
        email["Message-ID"] = make_msgid(idstring=message.message_id, domain="aftersale.local")
        email["X-Aftersale-Message-Id"] = message.message_id
        email["X-Aftersale-Rule"] = message.rule_id
        email["X-Aftersale-Template"] = message.template
        if message.test:
            email["X-Aftersale-Test"] = "yes"
        email.set_content(content.text)
        if content.html:
            email.add_alternative(content.html, subtype="html")
        folder = self.outbox_dir / "email"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{message.message_id}.eml"
        tmp = path.with_suffix(".eml.tmp")
        tmp.write_bytes(bytes(email))
        tmp.replace(path)  # atomic: a reader never sees half a message
        return path

    def _append_sms(self, message: OutgoingMessage) -> Path:
        self.outbox_dir.mkdir(parents=True, exist_ok=True)
        path = self.outbox_dir / "sms.jsonl"
        line = json.dumps(
            {
                "message_id": message.message_id,
                "to": message.content.to,
                "text": message.content.text,
                "segments": message.content.sms_segments,
                "rule": message.rule_id,
                "template": message.template,
                "test": message.test,
                "written_at": datetime.now(UTC).isoformat(),
            },
            ensure_ascii=False,
        )
        with _SMS_LOCK, path.open("a", encoding="utf-8") as fh:
            fh.write(line + "\n")
        return path
