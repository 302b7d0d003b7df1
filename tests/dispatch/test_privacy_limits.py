"""Privacy and limits at the edges (issue 15): a STOP from `0048 …` is suppressed, no
warning prints a whole number in any form, aftersale's files are private (0600), every
webhook endpoint refuses an oversized body unread, and a signed SendGrid batch keeps its
good events whatever odd timestamps or nesting its neighbours hold."""

from __future__ import annotations

import json
import logging
import stat
from pathlib import Path

import pytest

from aftersale.dispatch.channels.outbox import OutboxChannel
from aftersale.dispatch.inbound import MAX_SENDGRID_BODY, MAX_TWILIO_BODY, build_webhook_app
from aftersale.dispatch.spool import SpoolSink, ingest_webhook_spool
from aftersale.masking import mask_recipient, mask_text
from aftersale.models import ChannelKind, OutgoingMessage, RenderedMessage
from aftersale.store import open_store
from tests.dispatch.channels.test_webhooks import (
    NOW,
    PUBLIC,
    SG_PUBLIC,
    TOKEN,
    AppClient,
    RecordingSink,
    sg_headers,
    tw_headers,
)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("sender", ["0048 600 700 800", "0048600700800", "+48 600-700-800"])
def test_a_stop_in_any_number_form_is_suppressed(
    tmp_path: Path, sender: str, caplog: pytest.LogCaptureFixture
) -> None:
    spool = tmp_path / "webhooks"
    SpoolSink(spool).suppress(sender, ChannelKind.SMS, "stop", NOW)
    with open_store(tmp_path / "s.duckdb") as store, caplog.at_level(logging.INFO):
        assert ingest_webhook_spool(store, spool, NOW) == 1
        entry = store.get_suppression("+48600700800", ChannelKind.SMS)
    assert entry is not None and entry.reason == "stop"
    assert "600700800" not in caplog.text.replace(" ", "").replace("-", "")


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("STOP from 0048 600 700 800 skipped", "STOP from +48******800 skipped"),
        ("call 600 700 800 or 600-700-801", "call ******800 or ******801"),
        ("(0) 600 700 800", "(0) ******800"),
        ("on 2026-11-22 07:00:00, order 100234567", "on 2026-11-22 07:00:00, order 100234567"),
    ],
)
def test_mask_text_knows_every_phone_form(text: str, masked: str) -> None:
    assert mask_text(text) == masked


def test_mask_recipient_masks_a_dialled_number_like_its_e164_form() -> None:
    assert mask_recipient("0048 600 700 800") == mask_recipient("+48600700800") == "+48******800"


def test_the_store_the_spool_and_the_outbox_are_private(tmp_path: Path) -> None:
    (tmp_path / "s.duckdb").touch(mode=0o644)  # an older file made world-readable
    (tmp_path / "s.duckdb").unlink()
    with open_store(tmp_path / "s.duckdb") as store:
        store.count("orders")
    assert mode(tmp_path / "s.duckdb") == 0o600
    sink = SpoolSink(tmp_path / "webhooks")
    sink.suppress("+48600700800", ChannelKind.SMS, "stop", NOW)
    assert mode(tmp_path / "webhooks") == 0o700
    assert {mode(p) for p in (tmp_path / "webhooks").glob("*.jsonl")} == {0o600}
    for kind, to, subject in (
        (ChannelKind.EMAIL, "anna@example.pl", "Hello"),
        (ChannelKind.SMS, "+48600700800", None),
    ):
        message = OutgoingMessage(
            "m-1", "k", "r", "t", "o", False, RenderedMessage(kind, to, subject, "text", None, 1)
        )
        assert OutboxChannel(tmp_path / "outbox", kind).send(message).ok
    files = [p for p in (tmp_path / "outbox").rglob("*") if p.is_file()]
    assert len(files) == 2 and {mode(p) for p in files} == {0o600}


@pytest.fixture
def client_and_sink() -> tuple[AppClient, RecordingSink]:
    sink = RecordingSink()
    app = build_webhook_app(
        sink,
        twilio_auth_token=TOKEN,
        sendgrid_public_key=SG_PUBLIC,
        public_url=PUBLIC,
        now=lambda: NOW,
    )
    return AppClient(app), sink


def test_every_endpoint_refuses_an_oversized_body_unread(client_and_sink) -> None:
    client, sink = client_and_sink
    big = b"[" + b" " * MAX_SENDGRID_BODY + b"]"
    answer = client.post("/sendgrid/events", content=big, headers=sg_headers(big))
    assert answer.status_code == 413
    form = {"From": "+48600700800", "Body": "STOP" + "x" * MAX_TWILIO_BODY}
    for path in ("/twilio/inbound", "/twilio/status"):
        answer = client.post(path, data=form, headers=tw_headers(path, form))
        assert answer.status_code == 413, path

    async def chunks():  # no Content-Length: refused while reading
        for _ in range(MAX_TWILIO_BODY // 1024 + 2):
            yield b"x" * 1024

    answer = client.post(
        "/twilio/inbound", content=chunks(), headers=tw_headers("/twilio/inbound", {})
    )
    assert answer.status_code == 413
    assert sink.calls == []


@pytest.mark.parametrize(
    "odd",
    [
        '{"email": "x@example.pl", "event": "bounce", "timestamp": 1e20}',
        '{"email": "x@example.pl", "event": "bounce", "timestamp": Infinity}',
        '{"email": "x@example.pl", "event": "bounce", "timestamp": -1}',
        '{"email": "x@example.pl", "event": "bounce", "timestamp": 1795000000, "x": '
        + "[" * 50_000
        + "]" * 50_000
        + "}",
        "[" * 100_000 + "]" * 100_000,
        '{"email": "x@example.pl", "timestamp": ' + "9" * 5000 + "}",
    ],
)
def test_a_signed_batch_keeps_its_good_events_whatever_the_others_hold(
    client_and_sink, odd: str
) -> None:
    client, sink = client_and_sink
    good = {
        "email": "anna@example.pl",
        "event": "bounce",
        "type": "bounce",
        "timestamp": int(NOW.timestamp()),
        "sg_event_id": f"good-{len(odd)}",
    }
    payload = (
        "["
        + json.dumps(good)
        + ","
        + odd
        + ","
        + json.dumps({**good, "sg_event_id": "g2", "email": "b@example.pl"})
        + "]"
    ).encode()
    answer = client.post("/sendgrid/events", content=payload, headers=sg_headers(payload))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"applied": 2, "skipped": 1, "repeated": 0}
    assert [c[1] for c in sink.calls if c[0] == "suppress"] == ["anna@example.pl", "b@example.pl"]
