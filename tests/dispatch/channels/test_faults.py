"""Provider faults map to the right SendResult: transient (retry later) or permanent (fail
with the provider's code and text). One request per send: the SDKs must not retry behind
our back, or a lost answer could become a double send."""

from __future__ import annotations

import socket

import pytest

from aftersale.dispatch.channels.sendgrid import SendGridChannel
from aftersale.dispatch.channels.twilio import RateLimiter, TwilioChannel
from aftersale.models import ChannelKind, OutgoingMessage, RenderedMessage
from aftersale.settings import Shop
from tests.dispatch.channels.fake_providers import (
    SENDGRID_ACCEPTED,
    Reply,
    fake_provider,
    sendgrid_error,
    twilio_error,
    twilio_message,
)

SID = "AC" + "0123456789abcdef" * 2
TOKEN = "twilio-test-token"
API_KEY = "SG.test-key"


def email(to: str = "jan.kowalski@example.com", *, marketing: bool = False) -> OutgoingMessage:
    return OutgoingMessage(
        message_id="msg-1",
        idempotency_key="shipped:o-1:s-1:email",
        rule_id="shipped",
        template="shipped",
        order_id="o-1",
        marketing=marketing,
        content=RenderedMessage(
            channel=ChannelKind.EMAIL,
            to=to,
            subject="Your order has shipped",
            text="It is on its way.",
            html="<p>It is on its way.</p>",
        ),
    )


def sms(to: str = "+48601234567", message_id: str = "msg-2") -> OutgoingMessage:
    return OutgoingMessage(
        message_id=message_id,
        idempotency_key=f"shipped:o-1:s-1:sms:{message_id}",
        rule_id="shipped",
        template="shipped",
        order_id="o-1",
        marketing=False,
        content=RenderedMessage(
            channel=ChannelKind.SMS, to=to, subject=None, text="Order o-1 shipped", sms_segments=1
        ),
    )


def sendgrid(url: str, **kw) -> SendGridChannel:
    return SendGridChannel(API_KEY, Shop(), host=url, timeout_s=kw.pop("timeout_s", 2.0), **kw)


def twilio(url: str, **kw) -> TwilioChannel:
    kw.setdefault("from_number", "+48221002030")
    return TwilioChannel(
        SID,
        TOKEN,
        base_url=url,
        timeout_s=kw.pop("timeout_s", 2.0),
        rate_limiter=RateLimiter(1000.0),
        **kw,
    )


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


# --- SendGrid ------------------------------------------------------------------


def test_sendgrid_accepted_carries_message_id_and_request_shape():
    with fake_provider(SENDGRID_ACCEPTED) as fake:
        result = sendgrid(fake.url, unsubscribe_group_id=42).send(email())
    assert result.ok and result.provider_id == "sg-msg-0001" and not result.transient
    [req] = fake.seen
    assert req.path == "/v3/mail/send"
    assert req.headers["Authorization"] == f"Bearer {API_KEY}"
    body = req.json()
    assert body["from"] == {"email": "orders@northwind.example", "name": "Northwind Electronics"}
    assert body["reply_to"]["email"] == "help@northwind.example"
    assert body["personalizations"][0]["to"] == [{"email": "jan.kowalski@example.com"}]
    assert body["personalizations"][0]["custom_args"] == {
        "message_id": "msg-1",
        "idempotency_key": "shipped:o-1:s-1:email",
    }
    assert sorted(body["categories"]) == ["shipped", "transactional"]
    assert [c["type"] for c in body["content"]] == ["text/plain", "text/html"]
    assert "asm" not in body  # transactional: no unsubscribe group
    assert "mail_settings" not in body


def test_sendgrid_marketing_gets_unsubscribe_group_and_sandbox():
    with fake_provider(Reply(200)) as fake:
        result = sendgrid(fake.url, unsubscribe_group_id=42, sandbox_mode=True).send(
            email(marketing=True)
        )
    assert result.ok and result.provider_id is None  # sandbox: 200, no message id
    body = fake.seen[0].json()
    assert body["asm"] == {"group_id": 42}
    assert body["mail_settings"] == {"sandbox_mode": {"enable": True}}
    assert "marketing" in body["categories"]


@pytest.mark.parametrize(
    ("reply", "code", "text_part"),
    [
        (Reply(429, b"", {"Retry-After": "7"}), "http_429", "Retry-After: 7 s"),
        (sendgrid_error(500, "internal server error"), "http_500", "internal server error"),
        (Reply(503, b"upstream unavailable"), "http_503", "upstream unavailable"),
        (sendgrid_error(401, "The provided authorization grant is invalid"), "http_401", "API key"),
    ],
)
def test_sendgrid_transient_faults(reply, code, text_part):
    with fake_provider(reply) as fake:
        result = sendgrid(fake.url).send(email())
    assert (result.ok, result.transient, result.error_code) == (False, True, code)
    assert text_part in result.error_text
    assert len(fake.seen) == 1


@pytest.mark.parametrize(
    ("reply", "code", "text"),
    [
        (
            sendgrid_error(
                400, "Does not contain a valid address.", "personalizations.0.to.0.email"
            ),
            "http_400",
            "personalizations.0.to.0.email: Does not contain a valid address.",
        ),
        (
            sendgrid_error(
                403,
                "The from address does not match a verified Sender Identity. Mail cannot "
                "be sent until this error is resolved.",
                "from",
            ),
            "http_403",
            "from: The from address does not match a verified Sender Identity. Mail cannot "
            "be sent until this error is resolved.",
        ),
        (
            sendgrid_error(400, "jan.kowalski@example.com is on the bounce list"),
            "http_400",
            "j***@example.com is on the bounce list",
        ),
        (Reply(413, b"payload too large"), "http_413", "payload too large"),
    ],
)
def test_sendgrid_permanent_faults_keep_sendgrids_text(reply, code, text):
    with fake_provider(reply) as fake:
        result = sendgrid(fake.url).send(email())
    assert (result.ok, result.transient, result.error_code, result.error_text) == (
        False,
        False,
        code,
        text,
    )
    assert len(fake.seen) == 1


def test_sendgrid_timeout_is_transient():
    with fake_provider(Reply(202, delay_s=3.0)) as fake:
        result = sendgrid(fake.url, timeout_s=0.3).send(email())
    assert (result.ok, result.transient, result.error_code) == (False, True, "timeout")
    assert len(fake.seen) == 1


def test_sendgrid_connection_refused_is_transient():
    result = sendgrid(closed_port_url()).send(email())
    assert (result.ok, result.transient, result.error_code) == (False, True, "connection_error")


def test_sendgrid_invalid_address_fails_without_a_call():
    with fake_provider(SENDGRID_ACCEPTED) as fake:
        result = sendgrid(fake.url).send(email("not-an-address"))
    assert (result.ok, result.transient, result.error_code) == (False, False, "invalid_address")
    assert "not an email address" in result.error_text
    assert fake.seen == []


# --- Twilio --------------------------------------------------------------------


def test_twilio_accepted_sends_form_with_sender_and_callback():
    with fake_provider(Reply(201, twilio_message())) as fake:
        channel = twilio(fake.url, status_callback="https://hooks.example.com/twilio/status")
        result = channel.send(sms())
    assert result.ok and result.provider_id == "SM" + "b" * 32
    [req] = fake.seen
    assert req.path == f"/2010-04-01/Accounts/{SID}/Messages.json"
    assert req.headers["Authorization"].startswith("Basic ")
    form = req.form()
    assert form["To"] == ["+48601234567"]
    assert form["From"] == ["+48221002030"]
    assert form["Body"] == ["Order o-1 shipped"]
    assert form["StatusCallback"] == ["https://hooks.example.com/twilio/status?msg=msg-2"]


def test_twilio_messaging_service_replaces_from():
    with fake_provider(Reply(201, twilio_message())) as fake:
        mg = "MG" + "c" * 32
        twilio(fake.url, from_number=None, messaging_service_sid=mg).send(sms())
    form = fake.seen[0].form()
    assert form["MessagingServiceSid"] == [mg] and "From" not in form


@pytest.mark.parametrize(
    ("reply", "code", "text"),
    [
        (
            twilio_error(21211, "The 'To' number +48601234567 is not a valid phone number."),
            "21211",
            "invalid 'To' phone number: The 'To' number +48******567 is not a valid phone number.",
        ),
        (
            twilio_error(21614, "'To' number is not a valid mobile number"),
            "21614",
            "the 'To' number is not a mobile number: 'To' number is not a valid mobile number",
        ),
        (
            twilio_error(21610, "Attempt to send to unsubscribed recipient"),
            "21610",
            "the recipient replied STOP (unsubscribed): Attempt to send to unsubscribed recipient",
        ),
        (
            twilio_error(21408, "Permission to send an SMS has not been enabled for the region"),
            "21408",
            "sending to this region is not enabled on the account: Permission to send an SMS "
            "has not been enabled for the region",
        ),
        (Reply(404, b"<html>not found</html>"), "http_404", "HTTP 404"),
    ],
)
def test_twilio_permanent_errors_keep_code_and_text(reply, code, text):
    with fake_provider(reply) as fake:
        result = twilio(fake.url).send(sms())
    assert (result.ok, result.transient, result.error_code, result.error_text) == (
        False,
        False,
        code,
        text,
    )
    assert result.opted_out is (code == "21610")  # they replied STOP: dispatch suppresses
    assert len(fake.seen) == 1


@pytest.mark.parametrize(
    ("reply", "code", "text_part"),
    [
        (
            Reply(
                429,
                {"code": 20429, "message": "Too Many Requests", "status": 429},
                {"Retry-After": "2"},
            ),
            "20429",
            "Too Many Requests (Retry-After: 2 s)",
        ),
        (Reply(429, b""), "http_429", "HTTP 429"),
        (
            twilio_error(20500, "Internal Server Error", status=500),
            "20500",
            "Internal Server Error",
        ),
        (Reply(502, b"bad gateway"), "http_502", "HTTP 502"),
        (twilio_error(20003, "Authenticate", status=401), "20003", "Authenticate"),
    ],
)
def test_twilio_transient_errors(reply, code, text_part):
    with fake_provider(reply) as fake:
        result = twilio(fake.url).send(sms())
    assert (result.ok, result.transient, result.error_code) == (False, True, code)
    assert text_part in result.error_text
    assert len(fake.seen) == 1


def test_twilio_timeout_is_transient():
    with fake_provider(Reply(201, twilio_message(), delay_s=3.0)) as fake:
        result = twilio(fake.url, timeout_s=0.3).send(sms())
    assert (result.ok, result.transient, result.error_code) == (False, True, "timeout")
    assert len(fake.seen) == 1


def test_twilio_connection_refused_is_transient():
    result = twilio(closed_port_url()).send(sms())
    assert (result.ok, result.transient, result.error_code) == (False, True, "connection_error")


@pytest.mark.parametrize("to", ["+4860123456", "0601234567", "not a number", "+447700900123"])
def test_twilio_invalid_number_fails_without_a_call(to):
    with fake_provider(Reply(201, twilio_message())) as fake:
        result = twilio(fake.url).send(sms(to))
    assert (result.ok, result.transient, result.error_code) == (False, False, "invalid_number")
    assert to not in result.error_text  # masked
    assert fake.seen == []


def test_twilio_normalises_a_formatted_number_to_e164():
    with fake_provider(Reply(201, twilio_message())) as fake:
        assert twilio(fake.url).send(sms("+48 601 234 567")).ok
    assert fake.seen[0].form()["To"] == ["+48601234567"]


def test_twilio_one_bad_message_does_not_block_the_batch():
    with fake_provider(Reply(201, twilio_message())) as fake:
        fake.script(
            Reply(201, twilio_message()),
            twilio_error(21211, "The 'To' number is not a valid phone number."),
            Reply(500, b""),
        )
        channel = twilio(fake.url)
        results = [channel.send(sms(message_id=f"m{i}")) for i in range(4)]
    assert [(r.ok, r.transient, r.error_code) for r in results] == [
        (True, False, None),
        (False, False, "21211"),
        (False, True, "http_500"),
        (True, False, None),
    ]
    assert len(fake.seen) == 4


def test_twilio_paces_each_sender():
    now = [100.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(round(s, 6))
        now[0] += s

    limiter = RateLimiter(2.0, clock=lambda: now[0], sleep=sleep)
    with fake_provider(Reply(201, twilio_message())) as fake:
        channel = TwilioChannel(
            SID, TOKEN, from_number="+48221002030", base_url=fake.url, rate_limiter=limiter
        )
        for i in range(3):
            assert channel.send(sms(message_id=f"m{i}")).ok
    assert slept == [0.5, 0.5]  # 2 per second: the 2nd and 3rd wait half a second each
    assert len(fake.seen) == 3


def test_rate_limiter_does_not_wait_after_idle_time():
    now = [0.0]
    limiter = RateLimiter(1.0, clock=lambda: now[0], sleep=lambda s: None)
    assert limiter.acquire() == 0.0
    now[0] = 5.0
    assert limiter.acquire() == 0.0
    assert limiter.acquire() == 1.0


def test_sdk_debug_logging_never_shows_the_key_or_recipient(caplog):
    caplog.set_level("DEBUG")
    with fake_provider(SENDGRID_ACCEPTED) as fake:
        assert sendgrid(fake.url).send(email()).ok
    with fake_provider(Reply(201, twilio_message())) as fake:
        assert twilio(fake.url).send(sms()).ok
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "sendgrid: accepted msg-1 for j***@example.com" in logged
    assert "twilio: accepted msg-2 for +48******567" in logged
    for secret in (API_KEY, TOKEN, "jan.kowalski@example.com", "+48601234567"):
        assert secret not in logged


def test_unsendable_messages_fail_without_a_call():
    from dataclasses import replace

    no_subject = replace(email(), content=replace(email().content, subject=None))
    empty_sms = replace(sms(), content=replace(sms().content, text="  "))
    with fake_provider(SENDGRID_ACCEPTED) as fake:
        sg = sendgrid(fake.url)
        assert (sg.send(sms()).error_code, sg.send(no_subject).error_code) == (
            "wrong_channel",
            "invalid_message",
        )
        tw = twilio(fake.url)
        assert (tw.send(email()).error_code, tw.send(empty_sms).error_code) == (
            "wrong_channel",
            "invalid_message",
        )
    assert fake.seen == []
