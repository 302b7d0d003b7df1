"""Timeout after acceptance (issue 15): a provider that takes the message and answers only
after the client gave up must never get it twice. Real SDKs against local fake providers
on 127.0.0.1: SendGrid and Twilio accept, then answer after the client's timeout.

Before: the message went back to `pending` and the next cycle sent it again (5 of 9
delivered twice in the issue's trial). Now: `unknown`; the next cycle asks Twilio's message
list and records the SMS as sent; the email (SendGrid cannot be asked) waits for a person.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from aftersale.dispatch.channels.base import InDoubt
from aftersale.dispatch.channels.twilio import match_sent
from aftersale.dispatch.send import DispatchReport, dispatch_due
from aftersale.models import ChannelKind, MessageState, OutgoingMessage, SendResult
from aftersale.store import Store
from aftersale.store.records import Claim
from tests.dispatch.channels.fake_providers import Reply, fake_provider
from tests.dispatch.channels.test_faults import sendgrid, twilio
from tests.dispatch.test_dispatch import NOW, FakeRenderer, decision, fake_context, queue
from tests.dispatch.test_dispatch import store as _dispatch_store

store = _dispatch_store  # the same fixture: one order of a customer with email and phone

TIMEOUT_S = 0.3
LATE_S = 0.8  # the fake answers this long after taking the message


@dataclass
class FakeTwilio:
    """Twilio's Messages resource: create stores the message, then answers late; list
    answers newest first, filtered by To (and From)."""

    url: str = ""
    late_s: float = LATE_S
    created: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)

    def create(self, form: dict[str, list[str]]) -> dict[str, Any]:
        with self.lock:
            message = {
                "sid": f"SM{len(self.created):032d}",
                "account_sid": "AC" + "a" * 32,
                "to": form["To"][0],
                "from": form.get("From", [""])[0],
                "body": form["Body"][0],
                "status": "queued",
                "date_created": format_datetime(datetime.now(UTC), usegmt=True),
                "num_segments": "1",
                "direction": "outbound-api",
                "api_version": "2010-04-01",
            }
            self.created.append(message)
            return message

    def listing(self, query: dict[str, list[str]]) -> dict[str, Any]:
        to, sender = query.get("To", [None])[0], query.get("From", [None])[0]
        with self.lock:
            found = [
                m
                for m in reversed(self.created)
                if m["to"] == to and (sender is None or m["from"] == sender)
            ]
        return {
            "messages": found,
            "page": 0,
            "page_size": 50,
            "start": 0,
            "end": max(len(found) - 1, 0),
            "uri": "/list",
            "first_page_uri": "/list",
            "next_page_uri": None,
            "previous_page_uri": None,
        }


class _Handler(BaseHTTPRequestHandler):
    server: Any

    def _answer(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up long ago

    def do_POST(self) -> None:  # noqa: N802
        fake: FakeTwilio = self.server.fake
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        message = fake.create(parse_qs(body.decode()))
        if fake.stopping.wait(fake.late_s):
            return
        self._answer(201, message)

    def do_GET(self) -> None:  # noqa: N802
        self._answer(200, self.server.fake.listing(parse_qs(urlsplit(self.path).query)))

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@contextmanager
def fake_twilio() -> Iterator[FakeTwilio]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    fake = FakeTwilio(url=f"http://127.0.0.1:{server.server_address[1]}")
    server.fake = fake  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield fake
    finally:
        fake.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_a_send_accepted_after_the_client_timeout_is_never_sent_twice(store: Store) -> None:
    rules = ["shipped", "delay", "delivered"]
    queue(store, *(decision(r, ChannelKind.SMS) for r in rules))
    queue(store, *(decision(r, ChannelKind.EMAIL) for r in rules))
    with (
        fake_twilio() as tw,
        fake_provider(Reply(202, b"", {"X-Message-Id": "sg-1"}, LATE_S)) as sg,
    ):
        channels = {
            ChannelKind.SMS: twilio(tw.url, timeout_s=TIMEOUT_S),
            ChannelKind.EMAIL: sendgrid(sg.url, timeout_s=TIMEOUT_S),
        }

        def cycle(now: datetime) -> list[str]:
            report = dispatch_due(
                store,
                FakeRenderer(),
                fake_context,
                channels,
                now=now,
                run_id=f"r{now:%H%M}",
                into=DispatchReport(),
            )
            return sorted(o.outcome for o in report.outcomes)

        first = cycle(NOW)
        assert first == ["unknown"] * 6  # in doubt: never back to pending
        time.sleep(LATE_S)  # the fakes have answered (too late) by now
        second = cycle(NOW + timedelta(minutes=15))
        assert second == ["reconciled_sent"] * 3  # Twilio has them; SendGrid cannot be asked
        assert cycle(NOW + timedelta(minutes=30)) == []
        creates = len(tw.created) + sum(1 for s in sg.seen if s.method == "POST")

    states = {(m.channel, m.state) for m in store.list_messages()}
    assert states == {("sms", MessageState.SENT), ("email", MessageState.UNKNOWN)}
    sms = [m for m in store.list_messages() if m.channel == "sms"]
    assert sorted(m.provider_id for m in sms) == sorted(m["sid"] for m in tw.created)
    assert creates == 6  # one per message: 0 duplicates


def test_a_send_twilio_never_got_is_sent_again_once(store: Store) -> None:
    (message_id,) = queue(store, decision("shipped", ChannelKind.SMS))
    with fake_twilio() as tw:
        tw.late_s = 0.0
        channel = twilio(tw.url, timeout_s=2.0)
        # a run claimed the message and died before the request left
        claimed = store.due_messages(NOW, limit=10)
        store.claim_messages(
            [Claim(message_id, "+48601234567", None, "text shipped", 1, "twilio", 1)],
            run_id="dead",
            now=NOW,
        )
        assert [m.message_id for m in claimed] == [message_id]
        outcomes = []
        # marked unknown a minute after the claim, asked about two minutes after it
        for minutes in (1, 15):
            report = dispatch_due(
                store,
                FakeRenderer(),
                fake_context,
                {ChannelKind.SMS: channel},
                now=NOW + timedelta(minutes=minutes),
                run_id=f"r{minutes}",
                into=DispatchReport(),
            )
            outcomes.append(sorted(o.outcome for o in report.outcomes))
        assert outcomes == [["unknown"], ["reconciled_resend", "sent"]]
        assert len(tw.created) == 1
    assert store.load_message(message_id).state is MessageState.SENT


@dataclass
class AskedChannel:
    """A channel that can be asked about sends in doubt and knows nothing: it records
    what it was asked."""

    asked: list[InDoubt] = field(default_factory=list)
    kind = ChannelKind.SMS
    name = "twilio"
    reconcile_after = timedelta(minutes=2)
    batch_size = 60

    def send(self, message: OutgoingMessage) -> SendResult:
        raise AssertionError(f"{message.message_id} sent while in doubt")

    def reconcile(self, messages: Sequence[InDoubt]) -> dict[str, str | None]:
        self.asked.extend(messages)
        return {}


def test_a_crash_left_send_is_asked_about_since_its_claim(store: Store) -> None:
    """A run that died leaves its claim `sending`; the next cycle marks it `unknown` and
    asks about what the provider got since the claim (not since it was marked), and about
    the attempt the claim counted."""
    (message_id,) = queue(store, decision("shipped", ChannelKind.SMS))
    store.claim_messages(
        [Claim(message_id, "+48601234567", None, "text shipped", 1, "twilio", 1)],
        run_id="dead",
        now=NOW,
    )
    channel = AskedChannel()
    report = dispatch_due(
        store,
        FakeRenderer(),
        fake_context,
        {ChannelKind.SMS: channel},
        now=NOW + timedelta(minutes=15),
        run_id="next",
        into=DispatchReport(),
    )
    assert [o.outcome for o in report.outcomes] == ["unknown"]
    assert channel.asked == [InDoubt(message_id, "+48601234567", "text shipped", NOW, 1)]
    assert store.load_message(message_id).state is MessageState.UNKNOWN  # nobody could tell


def test_matching_is_by_body_since_the_claim_and_undecided_otherwise() -> None:
    claimed = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    doubt = InDoubt("m-1", "+48601234567", "Your parcel is out", claimed, 1)

    @dataclass
    class Listed:
        sid: str
        body: str
        date_created: datetime

    same = Listed("SM1", "Your parcel is out", claimed + timedelta(seconds=2))
    other = Listed("SM2", "Something else", claimed + timedelta(seconds=5))
    old = Listed("SM0", "Your parcel is out", claimed - timedelta(days=2))
    assert match_sent(doubt, [other, same]) == "SM1"
    assert match_sent(doubt, [old]) is None  # nothing since the claim: never got it
    assert match_sent(doubt, [other, old]) not in ("SM0", "SM2", None)  # a person decides
