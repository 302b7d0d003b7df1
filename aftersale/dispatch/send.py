"""Render and send the messages that are due, exactly once each.

Due messages are read a page at a time (`page_size`), until none is left: no backlog
waits silently for a later cycle. A page goes in batches: check address and suppression
and render each message (a template error fails that message only), then, in one
transaction, close those that will not go out, record the previous batch's answers and
claim the batch (`pending -> sending`), then send each through its channel (the last
batch's answers are recorded at the end). A crash leaves one batch's messages in
`sending` (claimed and not sent yet, or sent and not recorded yet); the next cycle marks
them `unknown` and never resends one blindly.

How large a batch is depends on who can settle that doubt. A channel that can tell
whether it got a send (a `Reconciler`: the outbox finds the attempt's file or line,
Twilio lists its messages) claims up to its own `batch_size` per batch (the outbox 500,
Twilio a minute of its pace): after a crash the next cycle asks it, records what it has
as `sent` and sends the rest again, and no person checks anything. A channel that cannot
tell (SendGrid) claims at most `batch_size` (20) per batch: the most a person may have to
check after a crash. Every DuckDB statement costs 1-5 ms however few rows it touches,
which is why a batch is one commit, and why large batches pay.

A dispatch never retries a claimed send inside the run: transient failures that surely
never reached the provider go back to `pending` with a later due time, so the next cycle
tries again; a send whose outcome is unknown (a timeout after the request left) becomes
`unknown`, never `pending`. Before sending, each cycle asks the channels that can tell
about their `unknown` messages (`reconcile_unknown`, once the channel's `reconcile_after`
has passed since the claim): those it has become `sent`, those it surely has not go out
again; the rest wait for a person (`aftersale messages release`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from aftersale.dispatch import messages as msgs
from aftersale.dispatch.channels.base import Channel, InDoubt, Reconciler
from aftersale.dispatch.channels.kinds import spec_of
from aftersale.dispatch.recheck import stale_reason
from aftersale.dispatch.suppressions import add_suppression, suppressions_for
from aftersale.errors import TemplateError
from aftersale.masking import mask_recipient
from aftersale.models import (
    ChannelKind,
    DomainEvent,
    MessageState,
    Order,
    OutgoingMessage,
    RenderedMessage,
    SendResult,
    ShipmentState,
    SuppressionReason,
    TrackingEvent,
)
from aftersale.store.protocols import Store
from aftersale.store.records import (
    Claim,
    Closure,
    DueCursor,
    DueMessage,
    MessageDecision,
    MessageResult,
)

log = logging.getLogger(__name__)

#: Messages of a channel that cannot settle a send in doubt (SendGrid) claimed per batch:
#: the most a crash can leave `unknown` for a person to check. A channel that can settle
#: them (`Reconciler`) claims its own `batch_size`.
DEFAULT_BATCH_SIZE = 20
#: Due messages read (with everything rendering needs) per query: bounds memory, not work.
#: An order's messages come together (`DueCursor`), so a page holds the facts of fewer
#: orders than it has messages (~900 at 2.25 messages an order; a decide page holds
#: 2,000), and ~30 ms of a page's reads do not grow with its size: fewer pages, less CPU.
DEFAULT_PAGE_SIZE = 2_000
#: Suppression reasons that stop every message on the channel: all but `unsubscribe`,
#: which only stops marketing.
HARD_SUPPRESSIONS = frozenset(SuppressionReason) - {SuppressionReason.UNSUBSCRIBE}


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
        shipments: list[ShipmentState],
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
    outcome: str  # sent | failed | deferred | suppressed | cancelled | would_send | unknown
    recipient: str
    provider: str | None = None
    provider_id: str | None = None
    reason: str | None = None


class OutcomeSink(Protocol):
    """Where a dispatch puts its outcomes, batch by batch as each batch ends. A cycle's
    (aftersale/ops/tally.py) counts them and keeps the few an operator reads by name, so
    a dispatch of any size holds none of them itself."""

    def add(self, outcomes: Sequence[Outcome]) -> None: ...


Sink = TypeVar("Sink", bound=OutcomeSink)


@dataclass
class DispatchReport:
    """Every outcome of a dispatch, in order: for a handful of messages (tests, tools)."""

    outcomes: list[Outcome] = field(default_factory=list)

    def add(self, outcomes: Sequence[Outcome]) -> None:
        self.outcomes.extend(outcomes)

    def count(self, outcome: str) -> int:
        return sum(1 for o in self.outcomes if o.outcome == outcome)


def recipient_of(order: Order, channel: ChannelKind) -> str | None:
    return spec_of(channel).recipient(order.customer)


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
    batch_size: int = DEFAULT_BATCH_SIZE,
    page_size: int = DEFAULT_PAGE_SIZE,
    into: Sink,
) -> Sink:
    """Send what is due; each batch's outcomes go `into` the sink as the batch ends."""
    stuck = [
        _outcome(m, "unknown", mask_recipient(m.recipient or ""), reason=_STUCK)
        for m in store.mark_stuck_unknown(msgs.STUCK_REASON)
    ]
    settled = [] if dry_run else reconcile_unknown(store, channels, now)
    # a message a channel settled at once is reported settled, not `unknown` (no alert)
    settled_ids = {o.message_id for o in settled}
    into.add([o for o in stuck if o.message_id not in settled_ids] + settled)
    # Page by `DueCursor` (due_at, order_id, message_id): an order's messages due together
    # come in one page, so its facts are read once; a message left pending (dry run,
    # claimed elsewhere) is passed, not read again, so the loop ends.
    after: DueCursor | None = None
    # a batch's outcomes are recorded with the next batch's claim, in one transaction
    unrecorded: list[MessageResult] = []
    try:
        while due := store.due_messages(now, limit=page_size, after=after):
            after = DueCursor.of(due[-1])
            facts = _Facts.load(store, due)
            batch: _Batch | None = None
            for number, message in enumerate(due, start=1):
                batch = batch or _Batch(
                    store, facts, now=now, run_id=run_id, retry_in=retry_in, limit=batch_size
                )
                batch.prepare(message, renderer, build_context, channels)
                if batch.full() or number == len(due):
                    into.add(batch.finish(dry_run, unrecorded))
                    unrecorded, batch = batch.recorded, None
    finally:
        store.record_results(unrecorded, now)
    return into


def reconcile_unknown(
    store: Store, channels: Mapping[ChannelKind, Channel], now: datetime
) -> list[Outcome]:
    """Settle `unknown` messages with the channels that can tell (`Reconciler`), each once
    its `reconcile_after` has passed since the claim: `sent` (with the channel's id) when
    it has the attempt, `pending` (due now) when it surely has not."""
    outcomes: list[Outcome] = []
    waiting = store.messages_in_state(MessageState.UNKNOWN)
    for channel in channels.values():
        if not isinstance(channel, Reconciler):
            continue
        asked = {
            m.message_id: m
            for m in waiting
            if m.provider == channel.name
            and m.channel == channel.kind
            and m.recipient
            and m.body_text is not None
            and (m.updated_at is None or m.updated_at <= now - channel.reconcile_after)
        }
        if not asked:
            continue
        answers = channel.reconcile(
            [
                InDoubt(
                    m.message_id,
                    m.recipient or "",
                    m.body_text or "",
                    m.updated_at or now,
                    m.attempts,
                )
                for m in asked.values()
            ]
        )
        results = [
            MessageResult(mid, MessageState.SENT, provider_id=sid, error_text=_FOUND)
            if sid
            else MessageResult(mid, MessageState.PENDING, error_text=_NOT_FOUND, retry_at=now)
            for mid, sid in answers.items()
            if mid in asked
        ]
        settled = store.settle_unknown(results, now)
        for r in results:
            if r.message_id in settled:
                m = asked[r.message_id]
                kind = "reconciled_sent" if r.state is MessageState.SENT else "reconciled_resend"
                outcomes.append(
                    _outcome(
                        m,
                        kind,
                        mask_recipient(m.recipient or ""),
                        provider=channel.name,
                        provider_id=r.provider_id,
                        reason=r.error_text,
                    )
                )
        log.info(
            "%s: %d message(s) in doubt settled (%d found, %d sent again)",
            channel.name,
            len(settled),
            sum(1 for r in results if r.state is MessageState.SENT and r.message_id in settled),
            sum(1 for r in results if r.state is MessageState.PENDING and r.message_id in settled),
        )
    return outcomes


_STUCK = "left in sending by a crashed run"
_FOUND = "in doubt (a timeout or a crash); the channel has it: recorded as sent"
_NOT_FOUND = "in doubt (a timeout or a crash); the channel never got it: sending again"


@dataclass
class _Facts:
    """Everything rendering needs for the due messages, read in a few bulk queries."""

    orders: Mapping[str, Order]
    shipments: Mapping[str, ShipmentState]
    scans: Mapping[str, list[TrackingEvent]]
    events: Mapping[str, DomainEvent]
    suppressions: Mapping[tuple[str, str], str]
    parcels: Mapping[str, list[ShipmentState]] = field(default_factory=dict)  # by order id

    @classmethod
    def load(cls, store: Store, due: list[DueMessage]) -> _Facts:
        orders = store.load_orders({m.order_id for m in due})
        shipments = store.shipments_of(orders)
        addresses = [
            (to, m.channel)
            for m in due
            if m.order_id in orders
            and (to := recipient_of(orders[m.order_id], ChannelKind(m.channel)))
        ]
        parcels: dict[str, list[ShipmentState]] = {}
        for state in shipments.values():
            parcels.setdefault(state.order_id, []).append(state)
        return cls(
            orders=orders,
            shipments=shipments,
            parcels=parcels,
            scans=store.tracking_events_of(m.shipment_id for m in due if m.shipment_id),
            events=store.load_domain_events(m.event_id for m in due),
            suppressions=suppressions_for(store, addresses),
        )


@dataclass
class _Ready:
    message: DueMessage
    to: str
    masked: str
    channel: Channel
    rendered: RenderedMessage


#: What a message closed before its send counts as in the run's outcomes.
_CLOSED_AS = {MessageState.SUPPRESSED: "suppressed", MessageState.CANCELLED: "cancelled"}


class _Batch:
    """One batch of due messages on its way: prepared, then claimed, sent and recorded.
    It is full once one channel holds as many of its messages as that channel may have
    in doubt at once: its own `batch_size` if it settles doubt itself, else `limit`."""

    def __init__(
        self,
        store: Store,
        facts: _Facts,
        *,
        now: datetime,
        run_id: str,
        retry_in: timedelta,
        limit: int,
    ) -> None:
        self.store, self.facts = store, facts
        self.now, self.run_id, self.retry_in = now, run_id, retry_in
        self.limit = limit
        #: in due order (dicts keep insertion order); a ready message's outcome is None
        #: until finish knows it, so it is made once, not as `would_send` and again
        self.outcomes: dict[str, Outcome | None] = {}
        self.closures: list[Closure] = []
        self.ready: list[_Ready] = []
        self.room: dict[ChannelKind, int] = {}  # claims each channel may still take
        self.recorded: list[MessageResult] = []  # this batch's outcomes, once sent

    def full(self) -> bool:
        return 0 in self.room.values()

    def prepare(
        self,
        message: DueMessage,
        renderer: Renderer,
        build_context: ContextBuilder,
        channels: Mapping[ChannelKind, Channel],
    ) -> None:
        """Check and render one message; it ends ready to send, or closed with a reason."""
        kind = ChannelKind(message.channel)
        order = self.facts.orders.get(message.order_id)
        if order is None:
            return self._close(
                message, "", MessageState.FAILED, f"order {message.order_id} is not in the store"
            )
        to = recipient_of(order, kind)
        if not to:
            what = spec_of(kind).recipient_noun
            return self._close(message, "", MessageState.FAILED, f"customer has no {what}")
        masked = mask_recipient(to)
        suppression = self.facts.suppressions.get((to.lower(), kind.value))
        if suppression and (message.marketing or suppression in HARD_SUPPRESSIONS):
            return self._close(
                message, masked, MessageState.SUPPRESSED, f"recipient suppressed ({suppression})"
            )
        shipment = self.facts.shipments.get(message.shipment_id) if message.shipment_id else None
        event = self.facts.events.get(message.event_id)
        # true when sent, not only when decided: the newest tracking may contradict it
        stale = stale_reason(event, shipment, order, self.now)
        if stale is not None:
            return self._close(message, masked, MessageState.CANCELLED, f"no longer true: {stale}")
        try:
            context = build_context(
                order,
                shipment=shipment,
                shipments=self.facts.parcels.get(order.order_id, []),
                events=self.facts.scans.get(shipment.shipment_id, []) if shipment else [],
                event=event,
                item_sku=message.item_sku,
                now=self.now,
            )
            rendered = renderer.render(message.template, kind, context, to)
        except TemplateError as exc:
            log.error("message %s (rule %s): %s", message.message_id, message.rule_id, exc)
            return self._close(message, masked, MessageState.FAILED, str(exc))
        channel = channels.get(kind)
        if channel is None:
            return self._close(
                message, masked, MessageState.FAILED, f"no {kind} channel configured"
            )
        self.outcomes[message.message_id] = None
        self.ready.append(_Ready(message, to, masked, channel, rendered))
        room = self.room.get(kind)
        if room is None:
            room = channel.batch_size if isinstance(channel, Reconciler) else self.limit
        self.room[kind] = room - 1

    def _close(self, message: DueMessage, masked: str, state: MessageState, reason: str) -> None:
        outcome = _CLOSED_AS.get(state, "failed")
        self.outcomes[message.message_id] = _outcome(message, outcome, masked, reason=reason)
        self.closures.append(Closure(message.message_id, state, reason))

    def finish(self, dry_run: bool, previous: list[MessageResult]) -> list[Outcome]:
        """Close the messages that will not go out, record the previous batch's outcomes
        and claim the ready messages, in one transaction, then send them; their outcomes
        wait in `recorded` for the next batch's claim. Still at most one batch is in doubt
        after a crash: the previous batch until this commit, this one after it. Nothing
        is written on a dry run."""
        if dry_run:
            for r in self.ready:
                self.outcomes[r.message.message_id] = _outcome(
                    r.message, "would_send", r.masked, provider=r.channel.name
                )
            return self._known()
        store, now = self.store, self.now
        claimed = store.record_and_claim(
            previous,
            [
                Claim(
                    r.message.message_id,
                    r.to,
                    r.rendered.subject,
                    r.rendered.text,
                    r.rendered.sms_segments,
                    r.channel.name,
                    r.message.attempts + 1,
                )
                for r in self.ready
            ],
            closures=self.closures,
            run_id=self.run_id,
            now=now,
        )
        results: list[tuple[str, SendResult]] = []
        for r in self.ready:
            if r.message.message_id not in claimed:
                self.outcomes[r.message.message_id] = _outcome(
                    r.message, "skipped", r.masked, reason="claimed by another run"
                )
                continue
            result = _send(r.channel, _outgoing(r.message, r.rendered))
            results.append((r.message.message_id, result))
            if result.opted_out:  # e.g. they replied STOP: the provider will refuse them anyway
                add_suppression(store, r.to, r.channel.kind, SuppressionReason.STOP, now)
        self.recorded = recorded = [
            msgs.message_result(message_id, result, now, retry_in=self.retry_in)
            for message_id, result in results
        ]
        by_id = {r.message.message_id: r for r in self.ready}
        for (message_id, result), done in zip(results, recorded, strict=True):
            self.outcomes[message_id] = _result_outcome(by_id[message_id], result, done.state)
        return self._known()

    def _known(self) -> list[Outcome]:
        """The outcomes once finish has made every ready message's."""
        known = [o for o in self.outcomes.values() if o is not None]
        assert len(known) == len(self.outcomes), "a ready message without its outcome"
        return known


def _outgoing(message: DueMessage, rendered: RenderedMessage) -> OutgoingMessage:
    return OutgoingMessage(
        message_id=message.message_id,
        idempotency_key=message.idempotency_key,
        rule_id=message.rule_id,
        template=message.template,
        order_id=message.order_id,
        marketing=message.marketing,
        content=rendered,
        attempt=message.attempts + 1,  # the claim counts this send
    )


def _result_outcome(ready: _Ready, result: SendResult, state: MessageState) -> Outcome:
    message, name = ready.message, ready.channel.name
    if state is MessageState.SENT:
        log.info(
            "sent %s rule=%s via %s to %s", message.message_id, message.rule_id, name, ready.masked
        )
        return _outcome(
            message, "sent", ready.masked, provider=name, provider_id=result.provider_id
        )
    reason = (
        f"{result.error_code}: {result.error_text}"
        if result.error_code
        else (result.error_text or "")
    )
    if state is MessageState.UNKNOWN:
        outcome = "unknown"
    else:
        outcome = "deferred" if result.transient else "failed"
    log.warning(
        "%s %s rule=%s via %s: %s", outcome, message.message_id, message.rule_id, name, reason
    )
    return _outcome(message, outcome, ready.masked, provider=name, reason=reason)


def _send(channel: Channel, outgoing: OutgoingMessage) -> SendResult:
    """A channel reports errors as results; an exception escaping one is a bug we still record."""
    try:
        return channel.send(outgoing)
    except Exception as exc:  # noqa: BLE001 - recorded on the message, never lost
        log.exception("channel %s raised while sending %s", channel.name, outgoing.message_id)
        return SendResult(
            ok=False, error_code="channel_crash", error_text=f"{type(exc).__name__}: {exc}"
        )


def _outcome(message: MessageDecision, outcome: str, masked: str, **extra: Any) -> Outcome:
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
