"""The webhook receiver: one small ASGI app serving each provider's inbound half.

Verification, parsing and what each fact means live beside the providers
(channels/twilio_inbound.py, channels/sendgrid_events.py); this file routes requests to
them, skips replays and hands the facts to the sink one at a time:

    POST /twilio/inbound   inbound SMS: STOP/START/HELP keywords -> (un)suppress; TwiML answer
    POST /twilio/status    status callbacks (?msg=<our message id>) -> record_delivery
    POST /sendgrid/events  event batches -> suppress (bounce, spam report, unsubscribe) and
                           record_delivery (delivered, deferred, bounced, blocked, dropped)
    GET  /unsubscribe?t=   a marketing message's unsubscribe link: a page asking to confirm
    POST /unsubscribe?t=   the confirmation, or a mail program's one-click unsubscribe
                           (RFC 8058) -> suppress(address, channel, "unsubscribe")
    GET  /healthz

Delivery states passed to the sink: email "delivered", "deferred", "bounced", "blocked",
"dropped", "spam_report", and "opened", "clicked" (kept beside the state, for the report);
SMS Twilio's own "sent", "delivered", "undelivered", "failed".
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from aftersale.dispatch.channels import sendgrid_events, twilio_inbound
from aftersale.dispatch.channels.base import WebhookSink
from aftersale.dispatch.unsubscribe import BadToken, UnsubscribeLinks, unsubscribe_page
from aftersale.errors import WebhookRejected
from aftersale.masking import mask_recipient
from aftersale.models import SuppressionReason
from aftersale.settings import Shop

log = logging.getLogger(__name__)


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


#: The largest body each provider sends: a Twilio form is a few kB; SendGrid batches
#: events (up to about a thousand, under 1 MB). Anything larger is refused unread (413).
MAX_TWILIO_BODY = 64 * 1024
MAX_SENDGRID_BODY = 4 * 1024 * 1024


async def read_body(request: Request, provider: str, limit: int) -> bytes:
    """The request body, refused (413) past `limit` bytes before more is read: a
    Content-Length that says so is not read at all."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise WebhookRejected(provider, f"body of {int(declared):,} bytes is over {limit:,}", 413)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise WebhookRejected(provider, f"body over {limit:,} bytes", 413)
        chunks.append(chunk)
    return b"".join(chunks)


def build_webhook_app(
    sink: WebhookSink,
    *,
    twilio_auth_token: str | None,
    sendgrid_public_key: str | None,
    public_url: str,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    help_text: str | None = None,
    tolerance_s: float = sendgrid_events.DEFAULT_TOLERANCE_S,
    extra_routes: Callable[[Callable[[Callable[[], None]], Any]], list[Route]] | None = None,
    unsubscribe: UnsubscribeLinks | None = None,
    shop: Shop | None = None,
) -> Starlette:
    """The webhook receiver. A provider whose secret is None gets 404 on its routes:
    nothing unsigned is ever accepted. `public_url` is the address the providers call
    (scheme, host, optional path prefix) and is what Twilio's signature covers.
    `unsubscribe` (the key that signed the links) turns the unsubscribe page on."""
    sg_key = sendgrid_events.load_public_key(sendgrid_public_key) if sendgrid_public_key else None
    base = public_url.rstrip("/")
    seen = _Seen()
    sink_lock = threading.Lock()  # one sink call at a time (DuckDB: one writer)

    def call_sink(fn: Callable[[], None]) -> Any:
        def locked() -> None:
            with sink_lock:
                fn()

        return run_in_threadpool(locked)

    async def twilio_form(request: Request) -> twilio_inbound.Form:
        if twilio_auth_token is None:
            raise WebhookRejected("twilio", "Twilio is not configured on this receiver", 404)
        form = twilio_inbound.parse_form(await read_body(request, "twilio", MAX_TWILIO_BODY))
        url = base + request.url.path + (f"?{request.url.query}" if request.url.query else "")
        twilio_inbound.verify_signature(
            twilio_auth_token, url, form, request.headers.get(twilio_inbound.SIGNATURE_HEADER, "")
        )
        return form

    async def inbound_sms(request: Request) -> Response:
        form = await twilio_form(request)
        sms = twilio_inbound.parse_inbound_sms(form)
        key = f"twilio-in:{sms.message_sid}" if sms.message_sid else None
        if key not in seen:
            at = now()
            await call_sink(lambda: twilio_inbound.apply_inbound_sms(sink, sms, at))
            seen.add([key])
            log.info("webhook: twilio %s from %s", sms.keyword, mask_recipient(sms.from_number))
        return Response(twilio_inbound.twiml_reply(sms, help_text), media_type="application/xml")

    async def twilio_status(request: Request) -> Response:
        form = await twilio_form(request)
        status = twilio_inbound.parse_sms_status(form, request.query_params)
        key = f"twilio-st:{status.message_sid}:{status.status}" if status.message_sid else None
        if key not in seen:
            at = now()
            await call_sink(lambda: twilio_inbound.apply_sms_status(sink, status, at))
            seen.add([key])
        return PlainTextResponse("", status_code=204)

    async def email_events(request: Request) -> Response:
        if sg_key is None:
            raise WebhookRejected("sendgrid", "SendGrid is not configured on this receiver", 404)
        payload = await read_body(request, "sendgrid", MAX_SENDGRID_BODY)
        sendgrid_events.verify_signature(
            sg_key,
            payload,
            request.headers.get(sendgrid_events.SIGNATURE_HEADER, ""),
            request.headers.get(sendgrid_events.TIMESTAMP_HEADER, ""),
            now(),
            tolerance_s,
        )
        events, problems = sendgrid_events.parse_email_events(payload)
        for problem in problems:
            log.warning("webhook: sendgrid %s (skipped)", problem)
        fresh = [e for e in events if not e.event_id or f"sg:{e.event_id}" not in seen]

        def apply_all() -> None:
            for event in fresh:
                sendgrid_events.apply_email_event(sink, event)

        await call_sink(apply_all)
        seen.add(f"sg:{e.event_id}" if e.event_id else None for e in fresh)
        return JSONResponse(
            {"applied": len(fresh), "skipped": len(problems), "repeated": len(events) - len(fresh)}
        )

    async def opt_out(request: Request) -> Response:
        if unsubscribe is None:
            raise WebhookRejected("unsubscribe", "unsubscribe links are not served here", 404)
        token = request.query_params.get("t", "")
        name, contact = (shop or Shop()).name, (shop or Shop()).email
        try:
            wanted = unsubscribe.read(token, now())
        except BadToken as exc:
            outcome = "expired" if exc.expired else "bad"
            log.warning("unsubscribe: refused a link: %s", exc)
            page = unsubscribe_page(outcome, locale="en", shop_name=name, contact=contact)
            return HTMLResponse(page, status_code=410 if exc.expired else 400)
        if request.method == "GET":  # a person (or a mail scanner) opened the link: ask
            page = unsubscribe_page(
                "ask", locale=wanted.locale, shop_name=name, contact=contact,
                opt_out=wanted, token=token,
            )  # fmt: skip
            return HTMLResponse(page)
        # the confirmation, or RFC 8058's one-click POST (body List-Unsubscribe=One-Click)
        at = now()
        await call_sink(
            lambda: sink.suppress(wanted.address, wanted.channel, SuppressionReason.UNSUBSCRIBE, at)
        )
        log.info("unsubscribe: %s on %s", mask_recipient(wanted.address), wanted.channel)
        page = unsubscribe_page(
            "done", locale=wanted.locale, shop_name=name, contact=contact, opt_out=wanted
        )
        return HTMLResponse(page)

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
            Route("/twilio/inbound", inbound_sms, methods=["POST"]),
            Route("/twilio/status", twilio_status, methods=["POST"]),
            Route("/sendgrid/events", email_events, methods=["POST"]),
            Route("/unsubscribe", opt_out, methods=["GET", "POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            # other receivers on the same server (shop platforms), sharing the sink lock
            *(extra_routes(call_sink) if extra_routes else []),
        ],
        exception_handlers={WebhookRejected: rejected},
    )
