"""Render and send the messages that are due, exactly once each.

Order per message: render (pure; a template error fails this message only) ->
suppression and address checks -> claim in the store -> channel.send -> record.
A dispatch never retries a claimed send inside the run: transient failures go back
to `pending` with a later due time, so the next cycle tries again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from aftersale import messages as msgs
from aftersale.channels.base import Channel
from aftersale.errors import TemplateError
from aftersale.masking import mask_recipient
from aftersale.models import (
    ChannelKind,
    DomainEvent,
    Order,
    OutgoingMessage,
    RenderedMessage,
    SendResult,
    ShipmentState,
    TrackingEvent,
)
from aftersale.store import MessageRow, Store
from aftersale.suppressions import add_suppression

log = logging.getLogger(__name__)

#: Twilio: "Attempt to send to unsubscribed recipient" (they replied STOP).
TWILIO_OPTED_OUT = "21610"
#: Suppression reasons that stop every message on the channel (not only marketing).
HARD_SUPPRESSIONS = frozenset({"bounce", "stop", "spamreport", "dropped", "manual"})


class Renderer(Protocol):
    """What dispatch needs from the template library (aftersale.render.TemplateLibrary)."""

    def render(
        self, template: str, channel: ChannelKind, context: Mapping[str, Any], to: str
    ) -> RenderedMessage: ...


class ContextBuilder(Protocol):
    def __call__(
        self,
        order: Order,
        *,
        shipment: ShipmentState | None,
        events: list[TrackingEvent],
        event: DomainEvent | None,
        item_sku: str | None,
        now: datetime,
    ) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class Outcome:
    """One message's fate in this run, for logs and the run's artifacts (recipient masked)."""

    message_id: str
    rule_id: str
    template: str
    channel: str
    order_id: str
    outcome: str  # sent | failed | deferred | suppressed | would_send | unknown
    recipient: str
    provider: str | None = None
    provider_id: str | None = None
    reason: str | None = None


@dataclass
class DispatchReport:
    outcomes: list[Outcome] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def count(self, outcome: str) -> int:
        return sum(1 for o in self.outcomes if o.outcome == outcome)


def recipient_of(order: Order, channel: ChannelKind) -> str | None:
    return order.customer.email if channel is ChannelKind.EMAIL else order.customer.phone


def dispatch_due(
    store: Store,
    renderer: Renderer,
    build_context: ContextBuilder,
    channels: Mapping[ChannelKind, Channel],
    *,
    now: datetime,
    run_id: str,
    dry_run: bool = False,
    retry_in: timedelta = timedelta(minutes=15),
) -> DispatchReport:
    report = DispatchReport()
    for stuck in msgs.mark_stuck_unknown(store, now):
        report.outcomes.append(
            _outcome(
                stuck,
                "unknown",
                mask_recipient(stuck.recipient or ""),
                reason="left in sending by a crashed run",
            )
        )
    due = msgs.due_messages(store, now)
    orders = store.load_orders({m.order_id for m in due})
    shipments = store.shipments_of(orders)
    for message in due:
        report.outcomes.append(
            _dispatch_one(
                store,
                message,
                orders,
                shipments,
                renderer,
                build_context,
                channels,
                now=now,
                run_id=run_id,
                dry_run=dry_run,
                retry_in=retry_in,
            )
        )
    return report


def _dispatch_one(
    store: Store,
    message: MessageRow,
    orders: Mapping[str, Order],
    shipments: Mapping[str, ShipmentState],
    renderer: Renderer,
    build_context: ContextBuilder,
    channels: Mapping[ChannelKind, Channel],
    *,
    now: datetime,
    run_id: str,
    dry_run: bool,
    retry_in: timedelta,
) -> Outcome:
    kind = ChannelKind(message.channel)
    order = orders.get(message.order_id)
    if order is None:
        return _fail(
            store, message, "", f"order {message.order_id} is not in the store", now, dry_run
        )
    to = recipient_of(order, kind)
    if not to:
        return _fail(
            store,
            message,
            "",
            f"customer has no {'email address' if kind is ChannelKind.EMAIL else 'phone number'}",
            now,
            dry_run,
        )
    masked = mask_recipient(to)
    suppression = msgs.is_suppressed(store, to, kind.value)
    if suppression and (message.marketing or suppression in HARD_SUPPRESSIONS):
        if not dry_run:
            msgs.mark_without_sending(
                store,
                message.message_id,
                msgs.SUPPRESSED,
                f"recipient suppressed: {suppression}",
                now,
            )
        return _outcome(
            message, "suppressed", masked, reason=f"recipient suppressed ({suppression})"
        )
    shipment = shipments.get(message.shipment_id) if message.shipment_id else None
    try:
        context = build_context(
            order,
            shipment=shipment,
            events=store.tracking_events(shipment.shipment_id) if shipment else [],
            event=store.load_domain_event(message.event_id),
            item_sku=message.item_sku,
            now=now,
        )
        rendered = renderer.render(message.template, kind, context, to)
    except TemplateError as exc:
        log.error("message %s (rule %s): %s", message.message_id, message.rule_id, exc)
        return _fail(store, message, masked, str(exc), now, dry_run)
    channel = channels.get(kind)
    if channel is None:
        return _fail(store, message, masked, f"no {kind} channel configured", now, dry_run)
    if dry_run:
        return _outcome(message, "would_send", masked, provider=channel.name)
    if not msgs.claim(
        store,
        message.message_id,
        recipient=to,
        subject=rendered.subject,
        body_text=rendered.text,
        sms_segments=rendered.sms_segments,
        provider=channel.name,
        run_id=run_id,
        now=now,
    ):
        return _outcome(message, "skipped", masked, reason="claimed by another run")
    outgoing = OutgoingMessage(
        message_id=message.message_id,
        idempotency_key=message.idempotency_key,
        rule_id=message.rule_id,
        template=message.template,
        order_id=message.order_id,
        marketing=message.marketing,
        content=rendered,
    )
    result = _send(channel, outgoing)
    state = msgs.mark_result(store, message.message_id, result, now, retry_in=retry_in)
    if kind is ChannelKind.SMS and result.error_code == TWILIO_OPTED_OUT:
        add_suppression(store, to, kind, "stop", now)  # they replied STOP to the sender
    if state == msgs.SENT:
        log.info(
            "sent %s rule=%s via %s to %s",
            message.message_id,
            message.rule_id,
            channel.name,
            masked,
        )
        return _outcome(
            message, "sent", masked, provider=channel.name, provider_id=result.provider_id
        )
    reason = (
        f"{result.error_code}: {result.error_text}"
        if result.error_code
        else (result.error_text or "")
    )
    log.warning(
        "%s %s rule=%s via %s: %s",
        "deferred" if result.transient else "failed",
        message.message_id,
        message.rule_id,
        channel.name,
        reason,
    )
    return _outcome(
        message,
        "deferred" if result.transient else "failed",
        masked,
        provider=channel.name,
        reason=reason,
    )


def _send(channel: Channel, outgoing: OutgoingMessage) -> SendResult:
    """A channel reports errors as results; an exception escaping one is a bug we still record."""
    try:
        return channel.send(outgoing)
    except Exception as exc:  # noqa: BLE001 - recorded on the message, never lost
        log.exception("channel %s raised while sending %s", channel.name, outgoing.message_id)
        return SendResult(
            ok=False, error_code="channel_crash", error_text=f"{type(exc).__name__}: {exc}"
        )


def _fail(
    store: Store, message: MessageRow, masked: str, reason: str, now: datetime, dry_run: bool
) -> Outcome:
    if not dry_run:
        msgs.mark_without_sending(store, message.message_id, msgs.FAILED, reason, now)
    return _outcome(message, "failed", masked, reason=reason)


def _outcome(message: MessageRow, outcome: str, masked: str, **extra: Any) -> Outcome:
    return Outcome(
        message_id=message.message_id,
        rule_id=message.rule_id,
        template=message.template,
        channel=message.channel,
        order_id=message.order_id,
        outcome=outcome,
        recipient=masked,
        **extra,
    )
