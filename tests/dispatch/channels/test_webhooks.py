"""Webhook receiver: valid signatures accepted; forged, tampered and replayed ones rejected
with nothing reaching the sink; events become the right suppressions and delivery states."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from twilio.request_validator import RequestValidator

from aftersale.dispatch.channels.sendgrid_events import load_public_key
from aftersale.dispatch.channels.twilio_inbound import Keyword, keyword_of
from aftersale.dispatch.inbound import build_webhook_app
from aftersale.errors import ConfigError
from aftersale.models import ChannelKind

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
TOKEN = "twilio-webhook-token"
PUBLIC = "https://hooks.northwind.example"
SHOP_NUMBER = "+48221002030"
CUSTOMER = "+48601234567"


class AppClient:
    """A sync client over httpx's ASGI transport (starlette's TestClient warns on httpx)."""

    def __init__(self, app) -> None:
        self.app = app

    def request(self, method: str, path: str, **kw) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                return await c.request(method, path, **kw)

        return asyncio.run(go())

    def post(self, path: str, **kw) -> httpx.Response:
        return self.request("POST", path, **kw)

    def get(self, path: str, **kw) -> httpx.Response:
        return self.request("GET", path, **kw)


class RecordingSink:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def suppress(self, address, channel, reason, at):
        self.calls.append(("suppress", address, channel, str(reason), at))

    def unsuppress(self, address, channel, at):
        self.calls.append(("unsuppress", address, channel, at))

    def record_delivery(self, message_id, state, detail, at):
        self.calls.append(("delivery", message_id, state, detail, at))


def key_pair() -> tuple[ec.EllipticCurvePrivateKey, str]:
    private = ec.generate_private_key(ec.SECP256R1())
    der = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, base64.b64encode(der).decode()


SG_PRIVATE, SG_PUBLIC = key_pair()


def sg_headers(payload: bytes, at: datetime = NOW, key=SG_PRIVATE) -> dict[str, str]:
    ts = str(int(at.timestamp()))
    sig = key.sign(ts.encode() + payload, ec.ECDSA(hashes.SHA256()))
    return {
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(sig).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": ts,
        "Content-Type": "application/json",
    }


def tw_headers(path: str, form: dict[str, str], token: str = TOKEN) -> dict[str, str]:
    signature = RequestValidator(token).compute_signature(PUBLIC + path, form)
    return {
        "X-Twilio-Signature": signature,
        "Content-Type": "application/x-www-form-urlencoded",
    }


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


@pytest.fixture
def client(sink) -> AppClient:
    app = build_webhook_app(
        sink,
        twilio_auth_token=TOKEN,
        sendgrid_public_key=SG_PUBLIC,
        public_url=PUBLIC + "/",
        now=lambda: NOW,
        help_text="Northwind: help at https://northwind.example/help. Reply STOP to opt out.",
    )
    return AppClient(app)


def ts(minutes_ago: int) -> int:
    return int((NOW - timedelta(minutes=minutes_ago)).timestamp())


EVENTS = [
    {
        "email": "a@example.com",
        "event": "delivered",
        "timestamp": ts(9),
        "sg_event_id": "e1",
        "message_id": "m1",
        "idempotency_key": "k1",
        "response": "250 OK",
    },
    {
        "email": "b@example.com",
        "event": "bounce",
        "type": "bounce",
        "timestamp": ts(8),
        "sg_event_id": "e2",
        "message_id": "m2",
        "reason": "550 5.1.1 b@example.com: user unknown",
    },
    {
        "email": "c@example.com",
        "event": "bounce",
        "type": "blocked",
        "timestamp": ts(7),
        "sg_event_id": "e3",
        "message_id": "m3",
        "reason": "421 try later",
    },
    {
        "email": "d@example.com",
        "event": "spamreport",
        "timestamp": ts(6),
        "sg_event_id": "e4",
        "message_id": "m4",
    },
    {
        "email": "e@example.com",
        "event": "group_unsubscribe",
        "asm_group_id": 42,
        "timestamp": ts(5),
        "sg_event_id": "e5",
    },
    {
        "email": "e@example.com",
        "event": "group_resubscribe",
        "asm_group_id": 42,
        "timestamp": ts(4),
        "sg_event_id": "e6",
    },
    {
        "email": "f@example.com",
        "event": "dropped",
        "reason": "Bounced Address",
        "timestamp": ts(3),
        "sg_event_id": "e7",
        "message_id": "m7",
    },
    {
        "email": "g@example.com",
        "event": "open",
        "timestamp": ts(2),
        "sg_event_id": "e8",
        "message_id": "m8",
    },
    {"email": "h@example.com", "event": "unsubscribe", "timestamp": ts(1), "sg_event_id": "e9"},
]


def at(minutes_ago: int) -> datetime:
    return datetime.fromtimestamp(ts(minutes_ago), UTC)


def test_sendgrid_signed_batch_is_applied_in_time_order(client, sink):
    payload = json.dumps(list(reversed(EVENTS))).encode()
    r = client.post("/sendgrid/events", content=payload, headers=sg_headers(payload))
    assert r.status_code == 200, r.text
    assert r.json() == {"applied": 9, "skipped": 0, "repeated": 0}
    email = ChannelKind.EMAIL
    assert sink.calls == [
        ("delivery", "m1", "delivered", "250 OK", at(9)),
        ("suppress", "b@example.com", email, "bounce", at(8)),
        ("delivery", "m2", "bounced", "550 5.1.1 ***@example.com: user unknown", at(8)),
        ("delivery", "m3", "blocked", "421 try later", at(7)),  # soft: no suppression
        ("suppress", "d@example.com", email, "spamreport", at(6)),
        ("delivery", "m4", "spam_report", None, at(6)),
        ("suppress", "e@example.com", email, "unsubscribe", at(5)),
        ("unsuppress", "e@example.com", email, at(4)),
        ("suppress", "f@example.com", email, "bounce", at(3)),
        ("delivery", "m7", "dropped", "Bounced Address", at(3)),
        ("delivery", "m8", "opened", None, at(2)),  # engagement, for the period report
        ("suppress", "h@example.com", email, "unsubscribe", at(1)),
    ]


def test_sendgrid_forged_signature_is_rejected(client, sink):
    other_private, _ = key_pair()
    payload = json.dumps(EVENTS[:2]).encode()
    r = client.post(
        "/sendgrid/events", content=payload, headers=sg_headers(payload, key=other_private)
    )
    assert r.status_code == 403 and "signature does not match" in r.text
    assert sink.calls == []


def test_sendgrid_tampered_payload_is_rejected(client, sink):
    payload = json.dumps(EVENTS[:1]).encode()
    headers = sg_headers(payload)
    tampered = payload.replace(b"delivered", b"spamreport")
    r = client.post("/sendgrid/events", content=tampered, headers=headers)
    assert r.status_code == 403
    assert sink.calls == []


@pytest.mark.parametrize("skew", [timedelta(minutes=-6), timedelta(minutes=6), timedelta(days=-30)])
def test_sendgrid_old_or_future_timestamp_is_rejected_as_replay(client, sink, skew):
    payload = json.dumps(EVENTS[:1]).encode()
    r = client.post("/sendgrid/events", content=payload, headers=sg_headers(payload, NOW + skew))
    assert r.status_code == 403 and "replay" in r.text
    assert sink.calls == []


def test_sendgrid_missing_headers_are_rejected(client, sink):
    payload = json.dumps(EVENTS[:1]).encode()
    r = client.post("/sendgrid/events", content=payload)
    assert r.status_code == 403 and sink.calls == []


def test_sendgrid_replay_within_the_window_does_nothing_twice(client, sink):
    payload = json.dumps(EVENTS[1:2]).encode()
    headers = sg_headers(payload, NOW - timedelta(minutes=1))
    assert client.post("/sendgrid/events", content=payload, headers=headers).status_code == 200
    calls = list(sink.calls)
    r = client.post("/sendgrid/events", content=payload, headers=headers)
    assert r.status_code == 200 and r.json()["applied"] == 0
    assert sink.calls == calls


def test_sendgrid_bad_entries_are_skipped_and_the_rest_applied(client, sink):
    payload = json.dumps([{"event": "bounce"}, "junk", EVENTS[0]]).encode()
    r = client.post("/sendgrid/events", content=payload, headers=sg_headers(payload))
    assert r.json() == {"applied": 1, "skipped": 2, "repeated": 0}
    assert sink.calls == [("delivery", "m1", "delivered", "250 OK", at(9))]


def inbound(body: str, sid: str = "SM" + "1" * 32, **extra: str) -> dict[str, str]:
    return {
        "From": CUSTOMER,
        "To": SHOP_NUMBER,
        "Body": body,
        "MessageSid": sid,
        "AccountSid": "AC" + "0" * 32,
        **extra,
    }


def post_twilio(client, path: str, form: dict[str, str], token: str = TOKEN, sent_form=None):
    body = urlencode(sent_form if sent_form is not None else form)
    return client.post(path, content=body, headers=tw_headers(path, form, token))


def test_twilio_stop_suppresses_and_answers_empty_twiml(client, sink):
    r = post_twilio(client, "/twilio/inbound", inbound("Stop"))
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/xml")
    assert "<Message>" not in r.text and "<Response" in r.text
    assert sink.calls == [("suppress", CUSTOMER, ChannelKind.SMS, "stop", NOW)]


def test_twilio_start_unsuppresses(client, sink):
    r = post_twilio(client, "/twilio/inbound", inbound("START", sid="SM" + "2" * 32))
    assert r.status_code == 200
    assert sink.calls == [("unsuppress", CUSTOMER, ChannelKind.SMS, NOW)]


def test_twilio_help_answers_with_the_shops_text(client, sink):
    r = post_twilio(client, "/twilio/inbound", inbound("help"))
    assert "<Message>Northwind: help at https://northwind.example/help." in r.text
    assert sink.calls == []


def test_twilio_opt_out_type_wins_over_the_body(client, sink):
    form = inbound("arret", OptOutType="STOP")
    assert post_twilio(client, "/twilio/inbound", form).status_code == 200
    assert [c[0] for c in sink.calls] == ["suppress"]


def test_twilio_forged_signature_is_rejected(client, sink):
    r = post_twilio(client, "/twilio/inbound", inbound("START"), token="someone-elses-token")
    assert r.status_code == 403 and sink.calls == []


def test_twilio_tampered_body_is_rejected(client, sink):
    signed = inbound("HELP")
    r = post_twilio(client, "/twilio/inbound", signed, sent_form={**signed, "Body": "START"})
    assert r.status_code == 403 and sink.calls == []


def test_twilio_signature_for_another_url_is_rejected(client, sink):
    form = inbound("STOP")
    headers = tw_headers("/elsewhere", form)
    r = client.post("/twilio/inbound", content=urlencode(form), headers=headers)
    assert r.status_code == 403 and sink.calls == []


def test_twilio_missing_signature_is_rejected(client, sink):
    r = client.post(
        "/twilio/inbound",
        content=urlencode(inbound("STOP")),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 403 and sink.calls == []


def test_twilio_replayed_start_does_nothing_twice(client, sink):
    form = inbound("START", sid="SM" + "3" * 32)
    assert post_twilio(client, "/twilio/inbound", form).status_code == 200
    assert post_twilio(client, "/twilio/inbound", form).status_code == 200
    assert sink.calls == [("unsuppress", CUSTOMER, ChannelKind.SMS, NOW)]


def test_twilio_status_callback_records_delivery_and_opt_out(client, sink):
    path = "/twilio/status?msg=m-42"
    form = {
        "MessageSid": "SM" + "4" * 32,
        "MessageStatus": "undelivered",
        "ErrorCode": "21610",
        "To": CUSTOMER,
        "From": SHOP_NUMBER,
    }
    r = post_twilio(client, path, form)
    assert r.status_code == 204, r.text
    assert sink.calls == [
        ("suppress", CUSTOMER, ChannelKind.SMS, "stop", NOW),
        ("delivery", "m-42", "undelivered", "Twilio error 21610", NOW),
    ]


def test_twilio_status_queued_is_not_a_delivery_state(client, sink):
    form = {"MessageSid": "SM" + "5" * 32, "MessageStatus": "queued", "To": CUSTOMER}
    assert post_twilio(client, "/twilio/status?msg=m-43", form).status_code == 204
    assert sink.calls == []


def test_unconfigured_provider_routes_answer_404(sink):
    app = build_webhook_app(
        sink,
        twilio_auth_token=None,
        sendgrid_public_key=None,
        public_url=PUBLIC,
        now=lambda: NOW,
    )
    c = AppClient(app)
    assert c.post("/twilio/inbound", content=urlencode(inbound("STOP"))).status_code == 404
    assert c.post("/sendgrid/events", content=b"[]").status_code == 404
    assert c.get("/healthz").json() == {"twilio": False, "sendgrid": False}
    assert sink.calls == []


@pytest.mark.parametrize(
    ("body", "keyword"),
    [
        ("STOP", Keyword.STOP),
        (" stop ", Keyword.STOP),
        ("Unsubscribe", Keyword.STOP),
        ("stop all", Keyword.STOP),
        ("START", Keyword.START),
        ("yes", Keyword.START),
        ("Help", Keyword.HELP),
        ("info", Keyword.HELP),
        ("please stop texting me", Keyword.OTHER),
        ("", Keyword.OTHER),
        ("Stopped?", Keyword.OTHER),
    ],
)
def test_keywords(body, keyword):
    assert keyword_of(body) is keyword


def test_public_key_as_pem_is_accepted_and_garbage_is_a_config_error():
    pem = (
        SG_PRIVATE.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    assert load_public_key(pem).curve.name == "secp256r1"
    with pytest.raises(ConfigError, match="not a public key"):
        load_public_key("bm90IGEga2V5")
