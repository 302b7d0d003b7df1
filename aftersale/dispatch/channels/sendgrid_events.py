"""SendGrid's inbound half: the signed event webhook (delivered, deferred, bounce, dropped,
spam report, unsubscribe...), verified, parsed and applied to a `WebhookSink`. Beside
sendgrid.py, the sending half.

Docs: https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/event (the
events) and https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/
getting-started-event-webhook-security-features (ECDSA P-256 over the timestamp header +
raw body; the verification key is shown base64 DER in the mail settings). Each request is
a JSON array of events; `sg_event_id` de-duplicates redeliveries.
Verification and parsing are pure; dispatch/inbound.py serves them.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_public_key

from aftersale.dispatch.channels.base import WebhookSink
from aftersale.errors import ConfigError, WebhookRejected
from aftersale.masking import mask_text
from aftersale.models import ChannelKind, SuppressionReason

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
DEFAULT_TOLERANCE_S = 300


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
class EmailEvent:
    kind: EmailEventKind
    email: str
    message_id: str | None  # ours, from custom_args
    reason: str | None
    timestamp: datetime
    event_id: str | None = None  # sg_event_id: unique per event, for de-duplication
    bounce_type: str | None = None  # "bounce" (hard) or "blocked" (soft)
    raw_kind: str = ""


def load_public_key(key: str) -> ec.EllipticCurvePublicKey:
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


def verify_signature(
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
    """Events in time order, and a problem line for each entry that could not be read.
    Each entry of the array is read on its own: one that is not JSON, nests too deeply,
    holds a number too long or a timestamp out of range costs that entry, never the batch."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return [], ["body is not UTF-8"]
    try:
        items, problems = json_array_items(text)
    except ValueError as exc:
        return [], [str(exc)]
    events = []
    for i, raw in items:
        try:
            events.append(_email_event(raw))
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            problems.append(f"event {i}: {mask_text(str(exc))}")
    events.sort(key=lambda e: e.timestamp)
    return events, problems


#: Entries nesting deeper than this are refused (an event is one flat object).
MAX_DEPTH = 16
#: Unix times SendGrid can send: from 2000 to 2100.
_EARLIEST, _LATEST = 946_684_800, 4_102_444_800


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _skip_ws(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    return i


def _value_end(text: str, start: int) -> int:
    """Where the JSON value at `start` ends, found by scanning brackets and strings, not by
    parsing (no recursion: a value nested a million deep is skipped, not a crash)."""
    depth, i, n = 0, start, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
        elif c in "[{":
            depth += 1
        elif c in "]}":
            if depth == 0:
                return i
            depth -= 1
            if depth == 0:
                return i + 1
        elif c == "," and depth == 0:
            return i
        i += 1
    return n


def _depth(value: Any) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, level)
            stack.extend(
                (c, level + 1) for c in (node.values() if isinstance(node, dict) else node)
            )
    return deepest


def json_array_items(text: str) -> tuple[list[tuple[int, Any]], list[str]]:
    """(index, value) of each entry of a top-level JSON array, each parsed on its own, and a
    problem line per entry that could not be; ValueError when the body is no array."""
    i = _skip_ws(text, 0)
    if i >= len(text) or text[i] != "[":
        raise ValueError("body is not a JSON array of events")
    items: list[tuple[int, Any]] = []
    problems: list[str] = []
    i, index = _skip_ws(text, i + 1), 0
    if i < len(text) and text[i] == "]":
        return items, problems
    while i < len(text):
        end = _value_end(text, i)
        try:
            value = json.loads(text[i:end], parse_constant=_no_constant)
            if _depth(value) > MAX_DEPTH:
                raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
            items.append((index, value))
        except RecursionError:
            problems.append(f"event {index}: nested deeper than {MAX_DEPTH} levels")
        except ValueError as exc:
            problems.append(f"event {index}: not JSON ({mask_text(str(exc))[:120]})")
        index += 1
        i = _skip_ws(text, end)
        if i < len(text) and text[i] == ",":
            i = _skip_ws(text, i + 1)
            continue
        if i >= len(text) or text[i] != "]":
            problems.append(f"event {index}: the array is cut short here; nothing after it read")
        break
    return items, problems


def _unix_time(value: Any) -> datetime:
    """A SendGrid timestamp (whole seconds) as UTC; ValueError for anything else."""
    if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) <= 12:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise ValueError(f"timestamp {str(value)[:30]!r} is not a Unix time")
    if not _EARLIEST <= value <= _LATEST:
        raise ValueError(f"timestamp {str(value)[:30]!r} is out of range (2000 to 2100)")
    return datetime.fromtimestamp(int(value), UTC)


def _email_event(raw: Any) -> EmailEvent:
    if not isinstance(raw, dict):
        raise TypeError("not an object")
    email = raw.get("email")
    if not isinstance(email, str) or "@" not in email or len(email) > 320:
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
        timestamp=_unix_time(raw.get("timestamp")),
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
    elif event.kind in (EmailEventKind.OPEN, EmailEventKind.CLICK):
        state = "opened" if event.kind is EmailEventKind.OPEN else "clicked"  # engagement
    if suppress_reason is not None:
        sink.suppress(email, ChannelKind.EMAIL, suppress_reason, at)
    if state is not None and event.message_id:
        detail = mask_text(event.reason) if event.reason else None
        sink.record_delivery(event.message_id, state, detail, at)
