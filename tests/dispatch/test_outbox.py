"""The outbox channel: an RFC 5322 file per email send attempt, never replaced; a JSON
line per SMS, appended whole. (What the files say: test_mime.py.)"""

from __future__ import annotations

import email
import json
from concurrent.futures import ThreadPoolExecutor
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


def test_sending_the_same_email_again_keeps_both_attempts(tmp_path: Path) -> None:
    channel = OutboxChannel(tmp_path, ChannelKind.EMAIL)
    first = channel.send(outgoing(ChannelKind.EMAIL))
    second = channel.send(outgoing(ChannelKind.EMAIL, subject="Second try"))
    assert (first.provider_id, second.provider_id) == ("outbox:m-1.eml:m-1", "outbox:m-1.2.eml:m-1")
    files = sorted(p.name for p in (tmp_path / "email").iterdir())
    assert files == ["m-1.2.eml", "m-1.eml"]  # nothing hidden left behind either
    subjects = [
        email.message_from_bytes((tmp_path / "email" / f).read_bytes(), policy=policy.default)[
            "Subject"
        ]
        for f in ("m-1.eml", "m-1.2.eml")
    ]
    assert subjects == ["Twoja paczka jest w drodze 📦", "Second try"]


def test_sends_of_one_message_at_the_same_moment_each_get_a_file(tmp_path: Path) -> None:
    channel = OutboxChannel(tmp_path, ChannelKind.EMAIL)
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: channel.send(outgoing(ChannelKind.EMAIL)), range(40)))
    assert all(r.ok for r in results)
    names = {p.name for p in (tmp_path / "email").iterdir()}
    assert names == {"m-1.eml"} | {f"m-1.{n}.eml" for n in range(2, 41)}
    assert {r.provider_id for r in results} == {f"outbox:{n}:m-1" for n in names}


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


def test_sms_lines_from_many_writers_never_mix(tmp_path: Path) -> None:
    """Each line is one write on a file opened for appending; long texts (more than an
    8 KB buffer) from concurrent senders still come out as whole lines."""
    channel = OutboxChannel(tmp_path, ChannelKind.SMS)

    def send(i: int) -> bool:
        return channel.send(outgoing(ChannelKind.SMS, text=f"{i}:" + "ż" * 9000)).ok

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert all(pool.map(send, range(200)))
    lines = (tmp_path / "sms.jsonl").read_text(encoding="utf-8").splitlines()
    texts = sorted(json.loads(line)["text"] for line in lines)
    assert texts == sorted(f"{i}:" + "ż" * 9000 for i in range(200))


def test_an_sms_stays_one_line_whatever_its_text(tmp_path: Path) -> None:
    text = "line\nbreak\r\nand separators \u2028 \u2029 \x85 end"
    assert OutboxChannel(tmp_path, ChannelKind.SMS).send(outgoing(ChannelKind.SMS, text=text)).ok
    (line,) = (tmp_path / "sms.jsonl").read_text(encoding="utf-8").splitlines()
    assert json.loads(line)["text"] == text


def test_a_message_for_the_other_channel_is_refused(tmp_path: Path) -> None:
    result = OutboxChannel(tmp_path, ChannelKind.SMS).send(outgoing(ChannelKind.EMAIL))
    assert not result.ok and result.error_code == "wrong_channel"
    assert not (tmp_path / "sms.jsonl").exists()


def test_an_unwritable_outbox_is_a_transient_failure(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    for kind in ChannelKind:
        result = OutboxChannel(blocker, kind).send(outgoing(kind))
        assert not result.ok and result.transient and result.error_code == "outbox_io"
