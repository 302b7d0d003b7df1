"""Provider webhooks: verify signatures, parse into typed events, apply them to a sink.

Twilio signs with HMAC over the public URL and the form fields (auth token as key);
SendGrid's signed event webhook signs timestamp + raw body with ECDSA P-256.
Verification and parsing are pure; `build_webhook_app` is the small ASGI edge:

    POST /twilio/inbound   inbound SMS: STOP/START/HELP keywords -> (un)suppress; TwiML answer
    POST /twilio/status    status callbacks (?msg=<our message id>) -> record_delivery
    POST /sendgrid/events  event batches -> suppress (bounce, spam report, unsubscribe) and
                           record_delivery (delivered, deferred, bounced, blocked, dropped)
    GET  /healthz

Delivery states passed to the sink: email "delivered", "deferred", "bounced", "blocked",
"dropped", "spam_report"; SMS Twilio's own "sent", "delivered", "undelivered", "failed".
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol
from urllib.parse import parse_qsl

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_public_key
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from aftersale.errors import AftersaleError, ConfigError
from aftersale.masking import mask_recipient, mask_text
from aftersale.models import ChannelKind, SuppressionReason
from aftersale.settings import Shop

log = logging.getLogger(__name__)

TWILIO_SIGNATURE_HEADER = "X-Twilio-Signature"
SENDGRID_SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
DEFAULT_TOLERANCE_S = 300

#: Twilio's default opt-out, opt-in and help keywords (a whole message, any case).
STOP_WORDS = frozenset(
    {"STOP", "STOPALL", "STOP ALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE"}
)
START_WORDS = frozenset({"START", "YES", "UNSTOP", "OPTIN"})
HELP_WORDS = frozenset({"HELP", "INFO"})


class WebhookRejected(AftersaleError):
    """A webhook request failed verification; `reason` is safe to log (no secrets)."""

    def __init__(self, provider: str, reason: str, status: int = 403) -> None:
        super().__init__(f"{provider} webhook rejected: {reason}")
        self.provider = provider
        self.reason = reason
        self.status = status  # the HTTP answer: 403 bad signature, 400 malformed, 404 off


class Keyword(StrEnum):
    STOP = "STOP"
    START = "START"
    HELP = "HELP"
    OTHER = "OTHER"


class EmailEventKind(StrEnum):
    PROCESSED = "processed"
    DELIVERED = "delivered"
    DEFERRED = "deferred"
    BOUNCE = "bounce"
    DROPPED = "dropped"
    SPAMREPORT = "spamreport"
    UNSUBSCRIBE = "unsubscribe"
    GROUP_UNSUBSCRIBE = "group_unsubscribe"
    GROUP_RESUBSCRIBE = "group_resubscribe"
    OPEN = "open"
    CLICK = "click"
    OTHER = "other"


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


@dataclass(frozen=True, slots=True)
class EmailEvent:
    kind: EmailEventKind
    email: str
    message_id: str | None  # ours, from custom_args
    reason: str | None
    timestamp: datetime
    event_id: str | None = None  # sg_event_id: unique per event, for de-duplication
    bounce_type: str | None = None  # "bounce" (hard) or "blocked" (soft)
    raw_kind: str = ""


class WebhookSink(Protocol):
    """Where webhook facts go; the store implements it. Calls may repeat: be idempotent."""

    def suppress(self, address: str, channel: ChannelKind, reason: str, at: datetime) -> None: ...

    def unsuppress(self, address: str, channel: ChannelKind, at: datetime) -> None: ...

    def record_delivery(
        self, message_id: str, state: str, detail: str | None, at: datetime
    ) -> None: ...


# --- Twilio -------------------------------------------------------------------


class _Form(dict[str, list[str]]):
    """Form fields with repeats kept; `getall` is what RequestValidator looks for."""

    def getall(self, name: str) -> list[str]:
        return self[name]

    def first(self, name: str) -> str | None:
        values = self.get(name)
        return values[0] if values else None


def parse_form(body: bytes) -> _Form:
    form = _Form()
    # Undecodable bytes become U+FFFD, and then the signature check fails: no crash.
    for name, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
        form.setdefault(name, []).append(value)
    return form


def verify_twilio(auth_token: str, url: str, form: Mapping[str, list[str]], signature: str) -> None:
    """Raise WebhookRejected unless `signature` is Twilio's for this URL and form."""
    if not signature:
        raise WebhookRejected("twilio", f"missing {TWILIO_SIGNATURE_HEADER} header")
    params = form if isinstance(form, _Form) else _Form(form)
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


def parse_inbound_sms(form: _Form) -> InboundSms:
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


def parse_sms_status(form: _Form, query: Mapping[str, str]) -> SmsStatus:
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
    if status.error_code == "21610" and status.to_number:
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


# --- SendGrid -----------------------------------------------------------------


def load_sendgrid_public_key(key: str) -> ec.EllipticCurvePublicKey:
    """The verification key as SendGrid shows it (base64 DER), or as PEM."""
    text = key.strip()
    try:
        if "BEGIN PUBLIC KEY" in text:
            loaded = load_pem_public_key(text.encode())
        else:
            loaded = load_der_public_key(base64.b64decode(text, validate=True))
    except (ValueError, binascii.Error) as exc:
        raise ConfigError(f"SendGrid verification key is not a public key: {exc}") from None
    if not isinstance(loaded, ec.EllipticCurvePublicKey):
        raise ConfigError("SendGrid verification key is not an elliptic-curve (ECDSA) key")
    return loaded


def verify_sendgrid(
    public_key: ec.EllipticCurvePublicKey,
    payload: bytes,
    signature: str,
    timestamp: str,
    now: datetime,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
) -> None:
    """Raise WebhookRejected unless SendGrid signed timestamp + payload, recently."""
    if not signature or not timestamp:
        raise WebhookRejected("sendgrid", "missing signature or timestamp header")
    try:
        signed_at = datetime.fromtimestamp(int(timestamp), UTC)
    except (ValueError, OverflowError, OSError):
        raise WebhookRejected(
            "sendgrid", f"timestamp {timestamp[:20]!r} is not Unix time"
        ) from None
    age = (now - signed_at).total_seconds()
    if abs(age) > tolerance_s:
        raise WebhookRejected(
            "sendgrid",
            f"timestamp is {age:.0f} s from now (tolerance {tolerance_s:.0f} s): replay?",
        )
    try:
        der = base64.b64decode(signature, validate=True)
        public_key.verify(der, timestamp.encode() + payload, ec.ECDSA(hashes.SHA256()))
    except (binascii.Error, ValueError, InvalidSignature):
        raise WebhookRejected("sendgrid", "signature does not match the payload") from None


def parse_email_events(payload: bytes) -> tuple[list[EmailEvent], list[str]]:
    """Events in time order, and a problem line for each entry that could not be read."""
    try:
        data = json.loads(payload)
    except ValueError as exc:
        return [], [f"body is not JSON: {exc}"]
    if not isinstance(data, list):
        return [], ["body is not a JSON array of events"]
    events, problems = [], []
    for i, raw in enumerate(data):
        try:
            events.append(_email_event(raw))
        except (KeyError, TypeError, ValueError) as exc:
            problems.append(f"event {i}: {mask_text(str(exc))}")
    events.sort(key=lambda e: e.timestamp)
    return events, problems


def _email_event(raw: Any) -> EmailEvent:
    if not isinstance(raw, dict):
        raise TypeError("not an object")
    email = raw.get("email")
    if not isinstance(email, str) or "@" not in email:
        raise ValueError("no email address")
    kind_raw = str(raw.get("event") or "")
    try:
        kind = EmailEventKind(kind_raw)
    except ValueError:
        kind = EmailEventKind.OTHER
    reason = raw.get("reason") or raw.get("response") or raw.get("status")
    return EmailEvent(
        kind=kind,
        email=email,
        message_id=str(raw["message_id"]) if raw.get("message_id") else None,
        reason=str(reason) if reason else None,
        timestamp=datetime.fromtimestamp(int(raw["timestamp"]), UTC),
        event_id=str(raw["sg_event_id"]) if raw.get("sg_event_id") else None,
        bounce_type=raw.get("type") if kind is EmailEventKind.BOUNCE else None,
        raw_kind=kind_raw,
    )


#: Email events that say the address must not be mailed again (for SendGrid "dropped",
#: only when the reason says the address is on one of SendGrid's own suppression lists).
_DROP_SUPPRESS = {
    "bounced address": SuppressionReason.BOUNCE,
    "spam reporting address": SuppressionReason.SPAM_REPORT,
    "unsubscribed address": SuppressionReason.UNSUBSCRIBE,
    "invalid": SuppressionReason.DROPPED,
}


def apply_email_event(sink: WebhookSink, event: EmailEvent) -> None:
    at, email = event.timestamp, event.email
    suppress_reason: SuppressionReason | None = None
    state: str | None = None
    if event.kind is EmailEventKind.BOUNCE:
        soft = event.bounce_type == "blocked"
        state = "blocked" if soft else "bounced"
        suppress_reason = None if soft else SuppressionReason.BOUNCE
    elif event.kind is EmailEventKind.DROPPED:
        state = "dropped"
        suppress_reason = _DROP_SUPPRESS.get((event.reason or "").strip().lower())
    elif event.kind is EmailEventKind.SPAMREPORT:
        state, suppress_reason = "spam_report", SuppressionReason.SPAM_REPORT
    elif event.kind in (EmailEventKind.UNSUBSCRIBE, EmailEventKind.GROUP_UNSUBSCRIBE):
        suppress_reason = SuppressionReason.UNSUBSCRIBE
    elif event.kind is EmailEventKind.GROUP_RESUBSCRIBE:
        sink.unsuppress(email, ChannelKind.EMAIL, at)
    elif event.kind in (EmailEventKind.DELIVERED, EmailEventKind.DEFERRED):
        state = event.kind.value
    if suppress_reason is not None:
        sink.suppress(email, ChannelKind.EMAIL, suppress_reason, at)
    if state is not None and event.message_id:
        detail = mask_text(event.reason) if event.reason else None
        sink.record_delivery(event.message_id, state, detail, at)


# --- the ASGI app ---------------------------------------------------------------


class _Seen:
    """A bounded memory of processed event ids: a replayed request does nothing twice."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._ids

    def add(self, keys: Iterable[str | None]) -> None:
        with self._lock:
            for key in keys:
                if key:
                    self._ids[key] = None
            while len(self._ids) > self._capacity:
                self._ids.popitem(last=False)


def build_webhook_app(
    sink: WebhookSink,
    *,
    twilio_auth_token: str | None,
    sendgrid_public_key: str | None,
    public_url: str,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    help_text: str | None = None,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
) -> Starlette:
    """The webhook receiver. A provider whose secret is None gets 404 on its routes:
    nothing unsigned is ever accepted. `public_url` is the address the providers call
    (scheme, host, optional path prefix) and is what Twilio's signature covers."""
    sg_key = load_sendgrid_public_key(sendgrid_public_key) if sendgrid_public_key else None
    base = public_url.rstrip("/")
    seen = _Seen()
    sink_lock = threading.Lock()  # one sink call at a time (DuckDB: one writer)

    def call_sink(fn: Callable[[], None]) -> Any:
        def locked() -> None:
            with sink_lock:
                fn()

        return run_in_threadpool(locked)

    async def twilio_form(request: Request) -> _Form:
        if twilio_auth_token is None:
            raise WebhookRejected("twilio", "Twilio is not configured on this receiver", 404)
        form = parse_form(await request.body())
        url = base + request.url.path + (f"?{request.url.query}" if request.url.query else "")
        verify_twilio(
            twilio_auth_token, url, form, request.headers.get(TWILIO_SIGNATURE_HEADER, "")
        )
        return form

    async def twilio_inbound(request: Request) -> Response:
        form = await twilio_form(request)
        sms = parse_inbound_sms(form)
        key = f"twilio-in:{sms.message_sid}" if sms.message_sid else None
        if key not in seen:
            at = now()
            await call_sink(lambda: apply_inbound_sms(sink, sms, at))
            seen.add([key])
            log.info("webhook: twilio %s from %s", sms.keyword, mask_recipient(sms.from_number))
        return Response(twiml_reply(sms, help_text), media_type="application/xml")

    async def twilio_status(request: Request) -> Response:
        form = await twilio_form(request)
        status = parse_sms_status(form, request.query_params)
        key = f"twilio-st:{status.message_sid}:{status.status}" if status.message_sid else None
        if key not in seen:
            at = now()
            await call_sink(lambda: apply_sms_status(sink, status, at))
            seen.add([key])
        return PlainTextResponse("", status_code=204)

    async def sendgrid_events(request: Request) -> Response:
        if sg_key is None:
            raise WebhookRejected("sendgrid", "SendGrid is not configured on this receiver", 404)
        payload = await request.body()
        verify_sendgrid(
            sg_key,
            payload,
            request.headers.get(SENDGRID_SIGNATURE_HEADER, ""),
            request.headers.get(SENDGRID_TIMESTAMP_HEADER, ""),
            now(),
            tolerance_s,
        )
        events, problems = parse_email_events(payload)
        for problem in problems:
            log.warning("webhook: sendgrid %s (skipped)", problem)
        fresh = [e for e in events if not e.event_id or f"sg:{e.event_id}" not in seen]

        def apply_all() -> None:
            for event in fresh:
                apply_email_event(sink, event)

        await call_sink(apply_all)
        seen.add(f"sg:{e.event_id}" if e.event_id else None for e in fresh)
        return JSONResponse({"applied": len(fresh), "skipped": len(problems)})

    async def healthz(request: Request) -> Response:
        return JSONResponse(
            {"twilio": twilio_auth_token is not None, "sendgrid": sg_key is not None}
        )

    async def rejected(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, WebhookRejected)
        log.warning("webhook: %s", exc)
        return PlainTextResponse(str(exc), status_code=exc.status)

    return Starlette(
        routes=[
            Route("/twilio/inbound", twilio_inbound, methods=["POST"]),
            Route("/twilio/status", twilio_status, methods=["POST"]),
            Route("/sendgrid/events", sendgrid_events, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ],
        exception_handlers={WebhookRejected: rejected},
    )
