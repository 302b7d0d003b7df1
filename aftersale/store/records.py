"""The values the store takes and gives back beyond the shared models: stored messages,
rejected rows, suppressions, runs. Frozen; every backend returns these same types."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, NamedTuple

from aftersale.models import ChannelKind, Customer, MessageState

#: What a customer's name becomes when retention erases their personal data.
ERASED = "(erased)"


@dataclass(frozen=True, slots=True)
class Rejection:
    """An input row that was not loaded, and why (`line` 0: the whole file)."""

    source: str
    line: int
    reason: str


@dataclass(frozen=True, slots=True)
class MessageDecision:
    """What a rule decided: which message, by which rule and channel, about which order,
    parcel or item, to whom, for which event. A new message and a stored one both are."""

    message_id: str
    idempotency_key: str
    rule_id: str
    template: str
    channel: ChannelKind
    marketing: bool
    order_id: str
    shipment_id: str | None
    item_sku: str | None
    customer_id: str
    event_id: str


@dataclass(frozen=True, slots=True)
class NewMessage(MessageDecision):
    """A decision to queue as a pending message; its idempotency key makes it once-only."""

    due_at: datetime
    run_id: str


@dataclass(frozen=True, slots=True)
class MessageRow(MessageDecision):
    """A message as stored: the decision, what went out, and its delivery state."""

    state: MessageState
    due_at: datetime
    attempts: int
    recipient: str | None = None
    provider_id: str | None = None
    error_code: str | None = None
    error_text: str | None = None
    subject: str | None = None
    body_text: str | None = None
    provider: str | None = None
    sent_at: datetime | None = None
    delivery_state: str | None = None  # what the provider reported later (webhooks)
    updated_at: datetime | None = None
    created_at: datetime | None = None  # when it was decided (queued)
    run_id: str | None = None  # the run that queued it, or last claimed it
    opened_at: datetime | None = None  # first open the provider reported (SendGrid)
    clicked_at: datetime | None = None  # first click the provider reported (SendGrid)


@dataclass(frozen=True, slots=True)
class DueMessage(MessageDecision):
    """A pending message as dispatch reads it: the decision, when it is due, and how
    many sends it had (nothing of earlier attempts: a retry is rendered afresh)."""

    due_at: datetime
    attempts: int


class DueCursor(NamedTuple):
    """The order due messages come in, and where a page of them ended (its last message).

    Due time first (the oldest go first; PostgreSQL's index serves the range), then the
    order: a page holds an order's messages due together side by side, so dispatch reads
    that order's facts once, not once per page it is scattered over (message ids are
    hashes). `order_id` is never NULL (the schema refuses it): a row comparison with a
    NULL would be NULL, and the page after it would skip or repeat messages."""

    due_at: datetime
    order_id: str
    message_id: str

    @classmethod
    def of(cls, message: DueMessage) -> DueCursor:
        return cls(message.due_at, message.order_id, message.message_id)


@dataclass(frozen=True, slots=True)
class Claim:
    """What is about to go out for one message, recorded with its claim."""

    message_id: str
    recipient: str
    subject: str | None
    body_text: str
    sms_segments: int | None
    provider: str
    attempt: int  # the send attempt this claim starts: the message's attempts so far + 1


@dataclass(frozen=True, slots=True)
class MessageResult:
    """A claimed message's outcome: `sent`, `failed`, or `pending` again (due at `retry_at`)."""

    message_id: str
    state: MessageState
    provider_id: str | None = None
    error_code: str | None = None
    error_text: str | None = None
    retry_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Closure:
    """A pending message closed without sending (`failed` or `suppressed`), and why."""

    message_id: str
    state: MessageState
    reason: str


@dataclass(frozen=True, slots=True)
class PastMessage:
    """An earlier message to a customer, as `decide` weighs it (keys, caps, supersedes)."""

    idempotency_key: str
    customer_id: str
    channel: ChannelKind
    rule_id: str
    marketing: bool
    state: MessageState
    at: datetime  # sent at, else due at
    shipment_id: str | None
    due_at: datetime


@dataclass(frozen=True, slots=True)
class MessageCount:
    template: str
    channel: ChannelKind
    state: MessageState
    count: int


@dataclass(frozen=True, slots=True)
class Suppression:
    """An address (normalised) that gets no messages, or no marketing, on a channel."""

    address: str
    channel: ChannelKind
    reason: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class RunRecord:
    run_id: str
    kind: str
    started_at: datetime
    clock: datetime
    finished_at: datetime | None = None
    summary: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Notice:
    """Something an import did that a person should know, though nothing was rejected."""

    source: str
    line: int
    text: str


@dataclass(frozen=True, slots=True)
class StoredCustomer:
    """A customer as stored, and the time of the order their data came from (`as_of`;
    None for data stored before that was kept)."""

    customer: Customer
    as_of: datetime | None


@dataclass(frozen=True, slots=True)
class CustomerChange:
    """An order whose customer data differed from what was stored: `changes` maps each field
    to (stored value, this order's value); `applied` says whether the order's data won
    (it is newer). Kept as the customer's history; erased with the customer."""

    customer_id: str
    order_id: str
    source: str
    as_of: datetime
    applied: bool
    changes: Mapping[str, tuple[Any, Any]]


@dataclass(frozen=True, slots=True)
class HealthRecord:
    """What the store remembers about a carrier or a channel from run to run, so an
    outage stays known in runs that did not call it (nothing was due)."""

    component: str  # "carrier" or "channel"
    name: str  # its slug: "dhl", "email"
    state: str  # "ok" or "failing"
    since: datetime  # when the current state began
    checked_at: datetime  # the last run that called it
    last_ok_at: datetime | None = None  # the last run in which it mostly answered
    calls: int = 0  # calls in the last run that called it
    failures: int = 0  # failed calls since `since` (while failing), in that run (while ok)
    errors: Mapping[str, int] = field(default_factory=dict)  # error kind -> failed calls
    last_error: str | None = None
    breaker_opened_at: datetime | None = None  # a run stopped calling it (circuit open)
    alerted_at: datetime | None = None  # when an alert about the current outage went out


@dataclass(frozen=True, slots=True)
class CarrierBacklog:
    """A carrier's shipments still moving: how many, how many wait after failed polls,
    and when the next of them is checked."""

    carrier: str
    active: int
    waiting: int  # with failed polls, waiting for their next check
    next_check_at: datetime | None


@dataclass(frozen=True, slots=True)
class MessageStat:
    """Messages of one day (sent, else last changed), rule, channel and state, with what
    the provider reported about them later."""

    day: date
    rule_id: str
    channel: ChannelKind
    state: MessageState
    delivery_state: str | None
    opened: int
    clicked: int
    count: int


@dataclass(frozen=True, slots=True)
class DeliveredShipment:
    """A delivered parcel with what was promised and where it went, for on-time rates and
    transit times."""

    shipment_id: str
    carrier: str
    destination: str | None  # the order's shipping country, else the customer's
    time_zone: str  # the customer's: a delivery is on time by their calendar
    promised: date | None  # the shop's promise, else the carrier's first estimate
    handed_over_at: datetime | None  # first scan past label/pending
    delivered_at: datetime
    first_location: str | None  # the first scan that names a place


@dataclass(frozen=True, slots=True)
class DelayNotice:
    """A delay message that went out, and what became of its parcel."""

    message_id: str
    shipment_id: str
    carrier: str
    sent_at: datetime
    time_zone: str
    promised: date | None
    status: str
    delivered_at: datetime | None


@dataclass(frozen=True, slots=True)
class PlatformOrderRecord:
    """What a shop platform last said about an order (aftersale/intake/shops/)."""

    order_id: str
    platform: str
    platform_order_id: str
    updated_at: datetime  # the platform's clock: an older copy never overwrites this
    cancelled_at: datetime | None = None
    cancel_reason: str | None = None
    refunded: Decimal = Decimal(0)  # the total refunded so far
    refund_currency: str | None = None


@dataclass(frozen=True, slots=True)
class RefundRecord:
    """One refund a shop platform made on an order (its own id, a positive amount)."""

    order_id: str
    refund_id: str
    amount: Decimal
    currency: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ReturnRecord:
    """One return of an order as the shop platform last described it. `status`: requested,
    open (approved), closed, declined or cancelled; `updated_at` decides between copies."""

    order_id: str
    return_id: str
    status: str
    requested_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ReturnParcel:
    """A parcel the customer sends back for a return: polled like any shipment."""

    order_id: str
    return_id: str
    tracking_number: str
    carrier: str | None
    candidates: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Grant:
    """Requests a worker may make now from a carrier budget all workers share: `granted`
    of those asked; else wait `wait_s` before asking again, or none today (`day_spent`)."""

    granted: int
    wait_s: float = 0.0
    day_spent: bool = False


@dataclass(frozen=True, slots=True)
class Erasure:
    """That a customer's personal data was erased (GDPR art. 17): the hash of their id,
    when, and what was touched. `already`: erased by an earlier request."""

    subject_hash: str
    erased_at: datetime
    counts: Mapping[str, int]
    already: bool = False
    erased_id: str | None = None  # what their customer id became
    message_ids: tuple[str, ...] = ()  # their messages (for the outbox files)
    addresses: tuple[str, ...] = ()  # their email and phone as stored (for kept files)


@dataclass(frozen=True)
class DelayWatch:
    """Which parcels still moving may have a delay or arrival event due now: every bound
    at or before what any carrier's thresholds need (tracking/detect.py, `delay_watch`),
    so the store selects a superset in SQL and `detect_due` decides exactly.

    A parcel is selected when its status is in one list and its time has come: label or
    nothing scanned since `first_scan_by` (its label's time, else its creation), no scan
    since `stale_by`, waiting for pick-up since `pickup_by`, or the date given to the
    customer (the carrier's estimate, the shop's promise) on or before `eta_by`, or the
    estimate on or before `arriving_by`."""

    not_shipped: tuple[str, ...]
    first_scan_by: datetime
    stale: tuple[str, ...]
    stale_by: datetime
    pickup: tuple[str, ...]
    pickup_by: datetime
    eta: tuple[str, ...]
    eta_by: date
    arriving: tuple[str, ...]
    arriving_by: date
