"""Email through SendGrid's v3 Mail Send API, with the official `sendgrid` SDK.

API docs: https://www.twilio.com/docs/sendgrid/api-reference/mail-send/mail-send
          (spec: specs/sendgrid_tsg_mail_v3.yaml, POST /v3/mail/send)
Auth:     `Authorization: Bearer <API key>`; the key needs the "Mail Send" permission.
Limits:   no published per-second limit for mail send (the account's plan caps daily
          volume); 429 with `Retry-After` when pushed too hard. 1,000 personalizations
          and 10 categories per request; we send one message per request.
Quirks:   202 Accepted with an empty body, the message id only in the `X-Message-Id`
          header (absent in sandbox mode, which answers 200 and delivers nothing).
          The spec types top-level `custom_args` as a string, so ours go in the
          personalization, where they are an object (and reach the event webhook as
          top-level keys of each event). Errors are `{"errors": [{"message", "field"}]}`.
          SendGrid has no idempotency key: exactly-once is the store's job.
"""

from __future__ import annotations

import http.client
import json
import logging
import re
import urllib.error
from dataclasses import dataclass
from typing import Any

from python_http_client.exceptions import HTTPError
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import (
    Asm,
    Category,
    CustomArg,
    From,
    GroupId,
    Header,
    Mail,
    MailSettings,
    ReplyTo,
    SandBoxMode,
    To,
)

from aftersale.dispatch.channels.mime import list_unsubscribe_headers
from aftersale.masking import mask_recipient, mask_text
from aftersale.models import ChannelKind, OutgoingMessage, SendResult
from aftersale.settings import Shop

log = logging.getLogger(__name__)

DEFAULT_HOST = "https://api.sendgrid.com"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _drop_debug(record: logging.LogRecord) -> bool:
    return record.levelno > logging.DEBUG


def _silence_sdk_debug_log() -> None:
    """python_http_client logs request headers (the API key) and payloads (recipients) at
    DEBUG; drop those records whatever level the operator runs at."""
    sdk_log = logging.getLogger("python_http_client.client")
    if _drop_debug not in sdk_log.filters:
        sdk_log.addFilter(_drop_debug)


@dataclass(frozen=True, slots=True)
class _Fault:
    status: int | None
    code: str
    text: str
    transient: bool
    in_doubt: bool = False  # the request may have reached SendGrid: never simply resend


class SendGridChannel:
    """The email channel over SendGrid. One instance per process; `send` is thread-safe."""

    kind = ChannelKind.EMAIL
    name = "sendgrid"

    def __init__(
        self,
        api_key: str,
        shop: Shop,
        *,
        host: str | None = None,
        sandbox_mode: bool = False,
        unsubscribe_group_id: int | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        _silence_sdk_debug_log()
        self._client = SendGridAPIClient(api_key=api_key, host=(host or DEFAULT_HOST).rstrip("/"))
        self.shop = shop
        self.host = (host or DEFAULT_HOST).rstrip("/")
        self.sandbox_mode = sandbox_mode
        self.unsubscribe_group_id = unsubscribe_group_id
        self.timeout_s = timeout_s

    def __repr__(self) -> str:  # never show the key
        return f"SendGridChannel(host={self.host!r}, sandbox_mode={self.sandbox_mode})"

    def send(self, message: OutgoingMessage) -> SendResult:
        """Send one email. Never raises for provider or network faults: they become results."""
        code, problem = check_message(message)
        if problem:
            log.warning(
                "sendgrid: not sending %s to %s: %s",
                message.message_id,
                mask_recipient(message.content.to),
                problem,
            )
            return SendResult(ok=False, error_code=code, error_text=problem)
        body = build_mail(
            message,
            self.shop,
            sandbox_mode=self.sandbox_mode,
            unsubscribe_group_id=self.unsubscribe_group_id,
        )
        try:
            # `send()` has no timeout argument; the SDK's request builder does.
            response = self._client.client.mail.send.post(request_body=body, timeout=self.timeout_s)
        except HTTPError as exc:
            return self._failed(message, parse_http_error(exc.status_code, exc.body, exc.headers))
        except (TimeoutError, urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            return self._failed(message, classify_network_error(exc))
        provider_id = response.headers.get("X-Message-Id") if response.headers else None
        log.info(
            "sendgrid: accepted %s for %s (HTTP %s, id %s)",
            message.message_id,
            mask_recipient(message.content.to),
            response.status_code,
            provider_id or "-",
        )
        return SendResult(ok=True, provider_id=provider_id)

    def _failed(self, message: OutgoingMessage, fault: _Fault) -> SendResult:
        log.warning(
            "sendgrid: %s for %s failed (%s): %s",
            message.message_id,
            mask_recipient(message.content.to),
            "transient" if fault.transient else "permanent",
            fault.text,
        )
        return SendResult(
            ok=False,
            error_code=fault.code,
            error_text=fault.text,
            transient=fault.transient,
            in_doubt=fault.in_doubt,
        )


def check_message(message: OutgoingMessage) -> tuple[str | None, str | None]:
    """Why this message cannot go out as email (error code and text), before any API
    call; None twice when it can."""
    content = message.content
    if content.channel is not ChannelKind.EMAIL:
        return "wrong_channel", f"a {content.channel} message cannot go through SendGrid"
    if not _EMAIL.match(content.to):
        return (
            "invalid_address",
            f"recipient {mask_recipient(content.to)!r} is not an email address",
        )
    if not content.subject:
        return "invalid_message", "email has no subject"
    if not content.text and not content.html:
        return "invalid_message", "email has neither text nor HTML body"
    return None, None


def build_mail(
    message: OutgoingMessage,
    shop: Shop,
    *,
    sandbox_mode: bool = False,
    unsubscribe_group_id: int | None = None,
) -> dict[str, Any]:
    """The v3 mail send body for one message (pure; what the SDK posts)."""
    content = message.content
    mail = Mail(
        from_email=From(shop.from_email, shop.from_name),
        to_emails=To(content.to),
        subject=content.subject,
        plain_text_content=content.text or None,
        html_content=content.html or None,
    )
    mail.reply_to = ReplyTo(shop.reply_to, shop.name)
    categories = [message.template, "marketing" if message.marketing else "transactional"]
    if message.test:
        categories.append("test")
    mail.category = [Category(c[:255]) for c in dict.fromkeys(categories)]
    mail.custom_arg = [
        CustomArg("message_id", message.message_id, p=0),
        CustomArg("idempotency_key", message.idempotency_key, p=0),
    ]
    if message.marketing and content.list_unsubscribe:
        # our signed link and mailbox, so one click reaches our own opt-out list
        # (Gmail and Yahoo require List-Unsubscribe and its one-click POST of bulk senders)
        mail.header = [
            Header(name, " ".join(value.split()))
            for name, value in list_unsubscribe_headers(content.list_unsubscribe)
        ]
    if message.marketing and unsubscribe_group_id is not None:
        mail.asm = Asm(GroupId(unsubscribe_group_id))
    if sandbox_mode:
        settings = MailSettings()
        settings.sandbox_mode = SandBoxMode(True)
        mail.mail_settings = settings
    return mail.get()


def parse_http_error(status: int, body: bytes | str | None, headers: Any = None) -> _Fault:
    """Map an HTTP error answer from SendGrid to a fault (pure).

    429 and 5xx are transient. 401 is transient too: a revoked or mistyped API key
    is the shop's configuration, not this message's fault, so the message waits
    for the fix instead of failing. Every other 4xx is permanent, with SendGrid's text.
    """
    text = _error_text(body) or f"HTTP {status}"
    retry_after = headers.get("Retry-After") if headers is not None else None
    if status == 429:
        hint = f" (Retry-After: {retry_after} s)" if retry_after else ""
        return _Fault(status, "http_429", f"rate limited: {text}{hint}", transient=True)
    if status >= 500:
        return _Fault(status, f"http_{status}", f"SendGrid server error: {text}", transient=True)
    if status == 401:
        return _Fault(status, "http_401", f"SendGrid refused the API key: {text}", transient=True)
    return _Fault(status, f"http_{status}", text, transient=False)


def classify_network_error(exc: BaseException) -> _Fault:
    """'connection_error': the request never left (urllib wraps failures to connect and
    send as URLError), so sending again is safe. A timeout or a connection dropped while
    waiting for the answer is in doubt: SendGrid may have taken the message, and SendGrid
    cannot be asked, so a person decides (`aftersale messages release`)."""
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(exc, urllib.error.URLError):
        kind = "connect timeout" if isinstance(reason, TimeoutError) else "cannot connect"
        return _Fault(None, "connection_error", f"{kind}: {reason}", transient=True)
    if isinstance(exc, TimeoutError):
        text = "no answer from SendGrid in time; it may have the message"
        return _Fault(None, "timeout", text, transient=True, in_doubt=True)
    text = f"connection lost before SendGrid's answer ({type(exc).__name__}); it may have it"
    return _Fault(None, "connection_lost", text, transient=True, in_doubt=True)


def _error_text(body: bytes | str | None) -> str:
    if not body:
        return ""
    raw = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        payload = json.loads(raw)
    except ValueError:
        return mask_text(raw.strip()[:500])
    errors = payload.get("errors") if isinstance(payload, dict) else None
    if not isinstance(errors, list) or not errors:
        return mask_text(raw.strip()[:500])
    parts = []
    for err in errors:
        if not isinstance(err, dict):
            continue
        msg = str(err.get("message") or "").strip()
        field = err.get("field")
        parts.append(f"{field}: {msg}" if field and field != "null" else msg)
    return mask_text("; ".join(p for p in parts if p))
