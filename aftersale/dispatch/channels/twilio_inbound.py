"""Twilio's inbound half: signed webhooks for inbound SMS (STOP/START/HELP) and message
status callbacks, verified, parsed and applied to a `WebhookSink`. Beside twilio.py, the
sending half.

Docs: https://www.twilio.com/docs/usage/webhooks/webhooks-security (signature: HMAC-SHA1
of the full URL and the sorted form fields, with the auth token as key) and
https://www.twilio.com/docs/messaging/guides/track-outbound-message-status. Twilio's own
opt-out handling answers STOP/START itself; ours records them so nothing more is sent.
Verification and parsing are pure; dispatch/inbound.py serves them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from urllib.parse import parse_qsl

from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from aftersale.dispatch.channels.base import WebhookSink
from aftersale.dispatch.channels.twilio import OPTED_OUT_CODE
from aftersale.errors import WebhookRejected
from aftersale.models import ChannelKind, SuppressionReason
from aftersale.settings import Shop

SIGNATURE_HEADER = "X-Twilio-Signature"

#: Twilio's default opt-out, opt-in and help keywords (a whole message, any case).
STOP_WORDS = frozenset(
    {"STOP", "STOPALL", "STOP ALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE"}
)
START_WORDS = frozenset({"START", "YES", "UNSTOP", "OPTIN"})
HELP_WORDS = frozenset({"HELP", "INFO"})


class Keyword(StrEnum):
    STOP = "STOP"
    START = "START"
    HELP = "HELP"
    OTHER = "OTHER"


@dataclass(frozen=True, slots=True)
class InboundSms:
    from_number: str
    keyword: Keyword
    body: str
    message_sid: str | None = None


@dataclass(frozen=True, slots=True)
class SmsStatus:
    message_id: str | None  # ours, from the status callback URL
    message_sid: str | None
    status: str
    error_code: str | None = None
    to_number: str | None = None


class Form(dict[str, list[str]]):
    """Form fields with repeats kept; `getall` is what RequestValidator looks for."""

    def getall(self, name: str) -> list[str]:
        return self[name]

    def first(self, name: str) -> str | None:
        values = self.get(name)
        return values[0] if values else None


def parse_form(body: bytes) -> Form:
    form = Form()
    # Undecodable bytes become U+FFFD, and then the signature check fails: no crash.
    for name, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
        form.setdefault(name, []).append(value)
    return form


def verify_signature(
    auth_token: str, url: str, form: Mapping[str, list[str]], signature: str
) -> None:
    """Raise WebhookRejected unless `signature` is Twilio's for this URL and form."""
    if not signature:
        raise WebhookRejected("twilio", f"missing {SIGNATURE_HEADER} header")
    params = form if isinstance(form, Form) else Form(form)
    if not RequestValidator(auth_token).validate(url, params, signature):
        raise WebhookRejected("twilio", f"signature does not match {url}")


def keyword_of(body: str, opt_out_type: str | None = None) -> Keyword:
    """Twilio's OptOutType (Advanced Opt-Out) wins; otherwise the whole message is the word."""
    if opt_out_type and opt_out_type.upper() in Keyword.__members__:
        return Keyword(opt_out_type.upper())
    word = " ".join(body.split()).upper().strip(".!")
    if word in STOP_WORDS:
        return Keyword.STOP
    if word in START_WORDS:
        return Keyword.START
    if word in HELP_WORDS:
        return Keyword.HELP
    return Keyword.OTHER


def parse_inbound_sms(form: Form) -> InboundSms:
    sender = form.first("From")
    if not sender:
        raise WebhookRejected("twilio", "inbound message without a From field", 400)
    body = form.first("Body") or ""
    return InboundSms(
        from_number=sender,
        keyword=keyword_of(body, form.first("OptOutType")),
        body=body,
        message_sid=form.first("MessageSid") or form.first("SmsSid"),
    )


def parse_sms_status(form: Form, query: Mapping[str, str]) -> SmsStatus:
    status = form.first("MessageStatus") or form.first("SmsStatus")
    if not status:
        raise WebhookRejected("twilio", "status callback without MessageStatus", 400)
    return SmsStatus(
        message_id=query.get("msg") or None,
        message_sid=form.first("MessageSid") or form.first("SmsSid"),
        status=status,
        error_code=form.first("ErrorCode") or None,
        to_number=form.first("To"),
    )


def apply_inbound_sms(sink: WebhookSink, sms: InboundSms, at: datetime) -> None:
    if sms.keyword is Keyword.STOP:
        sink.suppress(sms.from_number, ChannelKind.SMS, SuppressionReason.STOP, at)
    elif sms.keyword is Keyword.START:
        sink.unsuppress(sms.from_number, ChannelKind.SMS, at)


def apply_sms_status(sink: WebhookSink, status: SmsStatus, at: datetime) -> None:
    if status.error_code == str(OPTED_OUT_CODE) and status.to_number:
        # The recipient opted out through a channel we did not see (e.g. another app).
        sink.suppress(status.to_number, ChannelKind.SMS, SuppressionReason.STOP, at)
    if status.message_id and status.status in ("sent", "delivered", "undelivered", "failed"):
        detail = f"Twilio error {status.error_code}" if status.error_code else None
        sink.record_delivery(status.message_id, status.status, detail, at)


def twiml_reply(sms: InboundSms, help_text: str | None) -> str:
    """TwiML answer. STOP/START confirmations are Twilio's own (its opt-out handling
    sends them and would block ours); HELP gets `help_text` when the shop set one."""
    response = MessagingResponse()
    if sms.keyword is Keyword.HELP and help_text:
        response.message(help_text)
    return str(response)


def help_text_for(shop: Shop) -> str:
    """A HELP answer from the shop's contact details (for when Twilio's is turned off)."""
    return (
        f"{shop.name}: order and delivery updates. Help: {shop.help_url} or {shop.phone}. "
        "Reply STOP to opt out."
    )
