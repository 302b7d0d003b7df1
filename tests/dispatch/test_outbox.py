"""The outbox channel: RFC 5322 files for email, JSON lines for SMS, never doubled."""

from __future__ import annotations

import email
import json
from email import policy
from pathlib import Path

from aftersale.dispatch.channels.outbox import OutboxChannel
from aftersale.models import ChannelKind, OutgoingMessage, RenderedMessage


def outgoing(kind: ChannelKind, **content: object) -> OutgoingMessage:
    defaults = {
        ChannelKind.EMAIL: {
            "to": "anna@example.pl",
            "subject": "Twoja paczka jest w drodze 📦",
            "text": "Dzień dobry Anno,\nPaczka wyruszyła.",
            "html": "<p>Paczka wyruszyła.</p>",
        },
        ChannelKind.SMS: {
            "to": "+48601234567",
            "subject": None,
            "text": "Paczka NW-1 w drodze",
            "sms_segments": 1,
        },
    }[kind]
    return OutgoingMessage(
        message_id="m-1",
        idempotency_key="shipped:NW-1:email",
        rule_id="shipped",
        template="shipped",
        order_id="NW-1",
        marketing=False,
        content=RenderedMessage(channel=kind, **{**defaults, **content}),  # type: ignore[arg-type]
    )


def test_email_is_an_rfc5322_file_with_text_and_html(tmp_path: Path) -> None:
    channel = OutboxChannel(
        tmp_path, ChannelKind.EMAIL, sender="Northwind <orders@northwind.example>"
    )
    result = channel.send(outgoing(ChannelKind.EMAIL))
    assert result.ok and result.provider_id == "outbox:m-1.eml:m-1"
    parsed = email.message_from_bytes(
        (tmp_path / "email" / "m-1.eml").read_bytes(), policy=policy.default
    )
    assert parsed["Subject"] == "Twoja paczka jest w drodze 📦"
    assert (
        parsed["To"] == "anna@example.pl"
        and parsed["From"] == "Northwind <orders@northwind.example>"
    )
    assert parsed["X-Aftersale-Rule"] == "shipped"
    assert parsed.get_body(("plain",)).get_content().startswith("Dzień dobry Anno")
    assert parsed.get_body(("html",)).get_content().strip() == "<p>Paczka wyruszyła.</p>"


def test_sending_the_same_email_again_replaces_the_file(tmp_path: Path) -> None:
    channel = OutboxChannel(tmp_path, ChannelKind.EMAIL)
    channel.send(outgoing(ChannelKind.EMAIL))
    channel.send(outgoing(ChannelKind.EMAIL))
    assert [p.name for p in (tmp_path / "email").iterdir()] == ["m-1.eml"]


def test_sms_is_one_json_line(tmp_path: Path) -> None:
    channel = OutboxChannel(tmp_path, ChannelKind.SMS)
    assert channel.send(outgoing(ChannelKind.SMS)).ok
    (line,) = (tmp_path / "sms.jsonl").read_text(encoding="utf-8").splitlines()
    record = json.loads(line)
    assert (record["to"], record["text"], record["segments"], record["test"]) == (
        "+48601234567",
        "Paczka NW-1 w drodze",
        1,
        False,
    )


def test_a_message_for_the_other_channel_is_refused(tmp_path: Path) -> None:
    result = OutboxChannel(tmp_path, ChannelKind.SMS).send(outgoing(ChannelKind.EMAIL))
    assert not result.ok and result.error_code == "wrong_channel"
    assert not (tmp_path / "sms.jsonl").exists()


def test_an_unwritable_outbox_is_a_transient_failure(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = OutboxChannel(blocker, ChannelKind.EMAIL).send(outgoing(ChannelKind.EMAIL))
    assert not result.ok and result.transient and result.error_code == "outbox_io"
