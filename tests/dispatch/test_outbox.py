"""The outbox channel: an RFC 5322 file per email send attempt, never replaced; a JSON
line per SMS, appended whole. (What the files say: test_mime.py.)"""

from __future__ import annotations

import email
import json
import resource
import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from email import policy
from pathlib import Path

from aftersale.dispatch.channels.base import InDoubt
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


def doubt(attempt: int, message_id: str = "m-1") -> InDoubt:
    return InDoubt(message_id, "x", "y", datetime(2026, 11, 23, 9, 0, tzinfo=UTC), attempt)


def test_the_outbox_tells_which_email_attempts_it_wrote(tmp_path: Path) -> None:
    """Attempt 1 failed (nothing written), attempt 2 took the first free name, attempt 3
    is in doubt: the header, not the name, says which attempt a file is."""
    channel = OutboxChannel(tmp_path, ChannelKind.EMAIL)
    assert channel.reconcile([doubt(1)]) == {"m-1": None}  # no folder yet
    assert channel.send(replace(outgoing(ChannelKind.EMAIL), attempt=2)).ok
    assert channel.reconcile([doubt(2)]) == {"m-1": "outbox:m-1.eml:m-1"}
    assert channel.reconcile([doubt(3)]) == {"m-1": None}  # not written
    assert channel.send(replace(outgoing(ChannelKind.EMAIL), attempt=3)).ok
    assert channel.reconcile([doubt(3), doubt(1, "m-2")]) == {
        "m-1": "outbox:m-1.2.eml:m-1",
        "m-2": None,
    }


def test_an_email_file_without_its_attempt_is_left_to_a_person(tmp_path: Path) -> None:
    channel = OutboxChannel(tmp_path, ChannelKind.EMAIL)
    assert channel.send(outgoing(ChannelKind.EMAIL)).ok
    eml = tmp_path / "email" / "m-1.eml"
    eml.write_bytes(eml.read_bytes().replace(b"X-Aftersale-Attempt: 1\n", b""))
    assert channel.reconcile([doubt(1)]) == {}  # written before attempts
    assert channel.send(replace(outgoing(ChannelKind.EMAIL), attempt=2)).ok
    assert channel.reconcile([doubt(2)]) == {"m-1": "outbox:m-1.2.eml:m-1"}


def test_the_outbox_tells_which_sms_attempts_it_wrote(tmp_path: Path) -> None:
    channel = OutboxChannel(tmp_path, ChannelKind.SMS)
    asked = [doubt(2), doubt(1, "m-2")]
    assert channel.reconcile(asked) == {"m-1": None, "m-2": None}  # no file yet
    assert channel.send(outgoing(ChannelKind.SMS)).ok  # attempt 1 of m-1
    assert channel.reconcile(asked) == {"m-1": None, "m-2": None}
    assert channel.send(replace(outgoing(ChannelKind.SMS), attempt=2)).ok
    found = "outbox:sms.jsonl:m-1"
    assert channel.reconcile(asked) == {"m-1": found, "m-2": None}
    with (tmp_path / "sms.jsonl").open("a") as lines:
        lines.write('{"message_id": "m-2", "to": "+486')  # a torn line is no send
        lines.write('\n{"message_id": "m-3", "to": "+48601234567"}\n')  # no attempt mark
    three = doubt(1, "m-3")
    assert channel.reconcile([*asked, three]) == {"m-1": found, "m-2": None}


def test_a_write_the_disk_cuts_short_leaves_nothing(tmp_path: Path) -> None:
    """A full disk (here: the process's file size limit) fails the send as transient, and
    neither a file nor a torn line stays: the outbox holds whole sends only."""
    email_channel = OutboxChannel(tmp_path, ChannelKind.EMAIL)
    sms_channel = OutboxChannel(tmp_path, ChannelKind.SMS)
    assert email_channel.send(outgoing(ChannelKind.EMAIL)).ok
    assert sms_channel.send(outgoing(ChannelKind.SMS)).ok
    lines = (tmp_path / "sms.jsonl").read_bytes()
    with file_size_limit(len(lines) + 20):
        failed_sms = sms_channel.send(replace(outgoing(ChannelKind.SMS), attempt=2))
        failed_email = email_channel.send(replace(outgoing(ChannelKind.EMAIL), attempt=2))
    assert not failed_sms.ok and failed_sms.transient and failed_sms.error_code == "outbox_io"
    assert not failed_email.ok and failed_email.transient
    assert (tmp_path / "sms.jsonl").read_bytes() == lines
    assert sorted(p.name for p in (tmp_path / "email").iterdir()) == ["m-1.eml"]


@contextmanager
def file_size_limit(size: int) -> Iterator[None]:
    """Writes past `size` bytes fail (EFBIG) for this process, as on a full disk."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an error, not a kill
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


def test_settling_a_doubt_removes_what_the_crash_left_half_written(tmp_path: Path) -> None:
    """A run killed inside `write_new` leaves its hidden temporary file; the next run,
    settling that message's doubt, removes it, and leaves other messages' alone."""
    channel = OutboxChannel(tmp_path, ChannelKind.EMAIL)
    assert channel.send(outgoing(ChannelKind.EMAIL)).ok  # makes the folder
    folder = tmp_path / "email"
    killed = folder / ".m-2.4242.139872.tmp"  # m-2's attempt 1, never linked
    linked = folder / ".m-1.4243.139872.tmp"  # m-1's attempt 1, linked, not yet removed
    writing = folder / ".m-3.4244.139872.tmp"  # m-3: not in doubt, someone may be writing
    for leftover in (killed, linked, writing):
        leftover.write_bytes(b"Subject: half\\n")
    assert channel.reconcile([doubt(1, "m-2"), doubt(1)]) == {
        "m-2": None,
        "m-1": "outbox:m-1.eml:m-1",
    }
    assert not killed.exists() and not linked.exists()
    assert writing.exists()
    assert sorted(p.name for p in folder.glob("*.eml")) == ["m-1.eml"]
