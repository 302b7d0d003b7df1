"""SMS through Twilio's Programmable Messaging (Messages create), with the official `twilio` SDK.

API docs: https://www.twilio.com/docs/messaging/api/message-resource#create-a-message-resource
          (spec: specs/twilio_api_v2010.yaml,
          POST /2010-04-01/Accounts/{AccountSid}/Messages.json, form-encoded)
Auth:     HTTP Basic with the Account SID and Auth Token (or an API key SID and secret).
Limits:   queueing is per sender: about 1 message/s for a US/CA long code, more for
          toll-free, short codes and Messaging Services with several senders; Twilio
          queues the excess (up to 4 h) rather than refusing, and answers 429 (code 20429)
          for too many concurrent requests. We pace each sender in-process
          (`max_per_second`) so the queue never builds up.
Quirks:   errors are JSON `{"code": 21211, "message": ..., "more_info": ..., "status": 400}`;
          the code is what to act on (OPTED_OUT_CODE: the recipient replied STOP, so
          suppress).
          There is no idempotency key on the REST API: exactly-once is the store's job.
          A create that times out after the request left may have been accepted: the
          send is "in doubt" (`unknown`), and the next cycle asks Twilio's message list
          (GET .../Messages.json?To=&From=, newest first) whether it has it (`reconcile`),
          two minutes after the claim at the earliest (`RECONCILE_AFTER`). Because it can
          be asked, a crash's doubt needs no person, and dispatch claims a minute of its
          pace per batch (`batch_size`): sent well before a PostgreSQL lease runs out.
          The SDK only knows *.twilio.com hosts (edge/region included), so `base_url`
          works through an `http_client` that rewrites the scheme and host.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import phonenumbers
import requests
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client
from urllib3.exceptions import NewConnectionError

from aftersale.dispatch.channels.base import InDoubt
from aftersale.errors import ChannelError
from aftersale.masking import mask_recipient, mask_text
from aftersale.models import ChannelKind, OutgoingMessage, SendResult

log = logging.getLogger(__name__)

#: "Attempt to send to unsubscribed recipient": they replied STOP. A send or a status
#: callback with this code suppresses the number (SendResult.opted_out, twilio_inbound).
OPTED_OUT_CODE = 21610
#: Twilio error codes that mean "this message can never be sent as is", with our gloss.
#: https://www.twilio.com/docs/api/errors
PERMANENT_CODES: dict[int, str] = {
    21211: "invalid 'To' phone number",
    21408: "sending to this region is not enabled on the account",
    21606: "the 'From' number cannot send SMS",
    21608: "trial account: the number is not verified",
    OPTED_OUT_CODE: "the recipient replied STOP (unsubscribed)",
    21612: "Twilio cannot route to this number",
    21614: "the 'To' number is not a mobile number",
    21617: "message body too long",
}
#: 20003 authentication failed, 20429 too many requests: the account's or Twilio's state,
#: not the message's fault, so the message waits for the next cycle.
TRANSIENT_CODES = frozenset({20003, 20429})
#: A send in doubt is asked about only this long after its claim: a request Twilio is
#: still working on must not read as "never arrived".
RECONCILE_AFTER = timedelta(minutes=2)
#: Seconds of sending at the sender's pace that one dispatch batch claims.
BATCH_SECONDS = 60


class LocalTwilioHttpClient(TwilioHttpClient):
    """The SDK's HTTP client, optionally aimed at `base_url` instead of https://*.twilio.com
    (path and query kept), remembering each thread's last response headers (Retry-After)."""

    def __init__(self, base_url: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._base = urlsplit(base_url) if base_url else None
        self._local = threading.local()

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        if self._base is not None:
            u = urlsplit(url)
            url = urlunsplit((self._base.scheme, self._base.netloc, u.path, u.query, u.fragment))
        self._local.headers = None
        response = super().request(method, url, *args, **kwargs)
        self._local.headers = response.headers
        return response

    def last_headers(self) -> Any:
        """Headers of this thread's last answer (None if it had none)."""
        return getattr(self._local, "headers", None)


class RateLimiter:
    """At most `max_per_second` acquisitions per second, spaced evenly; thread-safe."""

    def __init__(
        self,
        max_per_second: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_per_second <= 0:
            raise ValueError(f"max_per_second must be > 0, got {max_per_second}")
        self.interval = 1.0 / max_per_second
        self._clock = clock
        self._sleep = sleep
        self._next = float("-inf")
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Wait for the next slot; returns the seconds waited."""
        with self._lock:
            now = self._clock()
            wait = max(0.0, self._next - now)
            self._next = max(now, self._next) + self.interval
        if wait:
            self._sleep(wait)
        return wait


_limiters: dict[tuple[str, str], RateLimiter] = {}
_limiters_lock = threading.Lock()


def shared_rate_limiter(account_sid: str, sender: str, max_per_second: float) -> RateLimiter:
    """The one limiter of this process for a sender, so two channel instances share the pace."""
    with _limiters_lock:
        limiter = _limiters.get((account_sid, sender))
        if limiter is None or abs(limiter.interval - 1.0 / max_per_second) > 1e-9:
            limiter = _limiters[(account_sid, sender)] = RateLimiter(max_per_second)
        return limiter


@dataclass(frozen=True, slots=True)
class _Fault:
    code: str
    text: str
    transient: bool
    in_doubt: bool = False  # the request may have reached Twilio: never simply resend


class TwilioChannel:
    """The SMS channel over Twilio. `send` paces itself per sender and never raises for faults."""

    kind = ChannelKind.SMS
    name = "twilio"
    reconcile_after = RECONCILE_AFTER

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        from_number: str | None = None,
        messaging_service_sid: str | None = None,
        status_callback: str | None = None,
        base_url: str | None = None,
        max_per_second: float = 1.0,
        timeout_s: float = 10.0,
        rate_limiter: RateLimiter | None = None,
    ) -> None:
        if not from_number and not messaging_service_sid:
            raise ChannelError("TwilioChannel needs from_number or messaging_service_sid")
        if not max_per_second > 0:
            raise ChannelError(f"max_per_second must be > 0, got {max_per_second}")
        self._http = LocalTwilioHttpClient(base_url, timeout=timeout_s)
        self._client = Client(account_sid, auth_token, http_client=self._http)
        self.account_sid = account_sid
        self.from_number = from_number
        self.messaging_service_sid = messaging_service_sid
        self.status_callback = status_callback
        self.base_url = base_url
        sender = messaging_service_sid or from_number or ""
        self._limiter = rate_limiter or shared_rate_limiter(account_sid, sender, max_per_second)
        self.batch_size = max(1, int(max_per_second * BATCH_SECONDS))

    def __repr__(self) -> str:  # never show the token
        sender = self.messaging_service_sid or mask_recipient(self.from_number or "")
        return f"TwilioChannel(sender={sender!r}, base_url={self.base_url!r})"

    def send(self, message: OutgoingMessage) -> SendResult:
        to, code, problem = check_message(message)
        if problem:
            log.warning("twilio: not sending %s: %s", message.message_id, problem)
            return SendResult(ok=False, error_code=code, error_text=problem)
        params = build_params(
            message,
            to,
            from_number=self.from_number,
            messaging_service_sid=self.messaging_service_sid,
            status_callback=self.status_callback,
        )
        self._limiter.acquire()
        try:
            created = self._client.api.v2010.account.messages.create(**params)
        except (TwilioRestException, TwilioServiceException) as exc:
            headers = self._http.last_headers()
            retry_after = headers.get("Retry-After") if headers else None
            return self._failed(message, to, classify_twilio_error(exc, retry_after))
        except requests.RequestException as exc:
            return self._failed(message, to, classify_network_error(exc))
        log.info(
            "twilio: accepted %s for %s (sid %s, status %s)",
            message.message_id,
            mask_recipient(to),
            created.sid,
            created.status,
        )
        return SendResult(ok=True, provider_id=created.sid)

    def _failed(self, message: OutgoingMessage, to: str, fault: _Fault) -> SendResult:
        log.warning(
            "twilio: %s for %s failed (%s, %s): %s",
            message.message_id,
            mask_recipient(to),
            "transient" if fault.transient else "permanent",
            fault.code,
            fault.text,
        )
        return SendResult(
            ok=False,
            error_code=fault.code,
            error_text=fault.text,
            transient=fault.transient,
            opted_out=fault.code == str(OPTED_OUT_CODE),
            in_doubt=fault.in_doubt,
        )

    def reconcile(self, messages: Sequence[InDoubt]) -> dict[str, str | None]:
        """Ask Twilio's message list about sends that ended in doubt (Reconciler). Per
        recipient, the newest messages from our sender: one created since the claim
        with the same body is ours (its sid); none at all since the claim means Twilio
        never took it; others since then, none with our body, leave it in doubt."""
        answers: dict[str, str | None] = {}
        for message in messages:
            try:
                sender = {} if self.messaging_service_sid else {"from_": self.from_number}
                listed = self._client.api.v2010.account.messages.list(
                    to=message.to, limit=RECONCILE_LOOKBACK, **sender
                )
            except (TwilioRestException, TwilioServiceException, requests.RequestException) as exc:
                log.warning(
                    "twilio: cannot list messages to %s to settle %s (%s); asking next cycle",
                    mask_recipient(message.to), message.message_id, type(exc).__name__,
                )  # fmt: skip
                continue
            answer = match_sent(message, listed)
            if answer is not _UNDECIDED:
                answers[message.message_id] = answer  # type: ignore[assignment]
        return answers


#: Messages to one recipient read per reconciliation (Twilio lists newest first).
RECONCILE_LOOKBACK = 50
#: How much earlier than our claim Twilio's clock may date a message it created.
CLOCK_SKEW = timedelta(minutes=5)
_UNDECIDED = object()


def match_sent(message: InDoubt, listed: Sequence[Any]) -> str | None | object:
    """Our message's sid among Twilio's `listed` messages to its recipient (pure): the sid,
    None (nothing since the claim: Twilio never took it) or `_UNDECIDED`."""
    since = message.claimed_at - CLOCK_SKEW
    recent = [m for m in listed if m.date_created is None or m.date_created >= since]
    for m in recent:
        if (m.body or "") == message.body:
            return str(m.sid)
    return None if not recent else _UNDECIDED


def check_message(message: OutgoingMessage) -> tuple[str, str | None, str | None]:
    """The recipient in E.164, and why the message cannot be sent (error code and text),
    or None twice when it can. Nothing here calls Twilio."""
    content = message.content
    to = content.to.strip()
    if content.channel is not ChannelKind.SMS:
        return to, "wrong_channel", f"a {content.channel} message cannot go through Twilio"
    try:
        number = phonenumbers.parse(to, None)
    except phonenumbers.NumberParseException as exc:
        return to, "invalid_number", f"{mask_recipient(to)!r} is not an E.164 number ({exc})"
    if not phonenumbers.is_valid_number(number):
        return to, "invalid_number", f"{mask_recipient(to)!r} is not a valid phone number"
    to = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if not content.text.strip():
        return to, "invalid_message", "SMS body is empty"
    return to, None, None


def build_params(
    message: OutgoingMessage,
    to: str,
    *,
    from_number: str | None,
    messaging_service_sid: str | None,
    status_callback: str | None,
) -> dict[str, Any]:
    """Keyword arguments for `messages.create` (pure)."""
    params: dict[str, Any] = {"to": to, "body": message.content.text}
    if messaging_service_sid:
        params["messaging_service_sid"] = messaging_service_sid
    else:
        params["from_"] = from_number
    if status_callback:
        params["status_callback"] = status_callback_url(status_callback, message.message_id)
    return params


def status_callback_url(base: str, message_id: str) -> str:
    """The status callback URL carrying our message id (Twilio signs the full URL)."""
    u = urlsplit(base)
    query = [*parse_qsl(u.query, keep_blank_values=True), ("msg", message_id)]
    return urlunsplit((u.scheme, u.netloc, u.path, urlencode(query), u.fragment))


def classify_twilio_error(
    exc: TwilioRestException | TwilioServiceException, retry_after: str | None = None
) -> _Fault:
    """Map Twilio's error answer to a fault (pure): 429/5xx/auth transient, other 4xx permanent."""
    status = int(exc.status or 0)
    code = int(exc.code) if isinstance(exc.code, int | str) and str(exc.code).isdigit() else None
    if isinstance(exc, TwilioServiceException):
        raw = exc.detail or exc.title or ""
    else:
        # The SDK prefixes Twilio's message; a non-JSON answer leaves only the prefix.
        raw = str(exc.msg or "").removeprefix("Unable to create record")
        raw = raw.removeprefix(":").strip()
    text = mask_text(raw.strip()) or f"HTTP {status}"
    code_str = str(code) if code and code != status else f"http_{status}"
    if status == 429 or code in TRANSIENT_CODES or status >= 500 or status == 401:
        hint = f" (Retry-After: {retry_after} s)" if retry_after else ""
        return _Fault(code_str, f"{text}{hint}", transient=True)
    if code in PERMANENT_CODES and PERMANENT_CODES[code] not in text:
        text = f"{PERMANENT_CODES[code]}: {text}"
    return _Fault(code_str, text, transient=False)


def classify_network_error(exc: requests.RequestException) -> _Fault:
    """'connection_error': the request never reached Twilio (refused, no route, connect
    timeout), so sending again is safe. 'timeout' and a connection dropped while waiting
    for the answer are in doubt: Twilio may have taken the message."""
    if isinstance(exc, requests.ConnectTimeout) or _never_connected(exc):
        return _Fault("connection_error", f"cannot reach Twilio: {type(exc).__name__}", True)
    if isinstance(exc, requests.Timeout):
        return _Fault(
            "timeout", "no answer from Twilio in time; it may have the message", True, True
        )
    return _Fault(
        "connection_lost",
        f"connection to Twilio lost before its answer ({type(exc).__name__}); "
        "it may have the message",
        True,
        True,
    )


def _never_connected(exc: requests.RequestException) -> bool:
    """urllib3 wraps a failed connect (refused, DNS) as NewConnectionError."""
    reason = exc.args[0] if exc.args else None
    reason = getattr(reason, "reason", reason)
    return isinstance(reason, NewConnectionError)
