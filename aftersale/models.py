"""Value types shared by every stage: orders, tracking, domain events, messages.

All datetimes are timezone-aware UTC. Values are frozen; stages pass them along
and the store persists them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType
from typing import Any


class Status(StrEnum):
    """Canonical tracking status (DESIGN.md, "Canonical tracking statuses")."""

    PENDING = "pending"
    LABEL_CREATED = "label_created"
    IN_TRANSIT = "in_transit"
    OUT_FOR_DELIVERY = "out_for_delivery"
    AVAILABLE_FOR_PICKUP = "available_for_pickup"
    DELIVERY_ATTEMPTED = "delivery_attempted"
    DELIVERED = "delivered"
    EXCEPTION = "exception"
    RETURNED_TO_SENDER = "returned_to_sender"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    UNKNOWN = "unknown"


TERMINAL_STATUSES = frozenset(
    {Status.DELIVERED, Status.RETURNED_TO_SENDER, Status.CANCELLED, Status.EXPIRED}
)


class ChannelKind(StrEnum):
    EMAIL = "email"
    SMS = "sms"


class DelayReason(StrEnum):
    """Why a parcel counts as late: detection emits it, rules select on it, templates word it."""

    EXCEPTION = "exception"  # the carrier reported a problem (raw code kept in facts)
    NO_FIRST_SCAN = "no_first_scan"  # label created, never handed over
    STALE = "stale"  # no new scan for N business hours while not terminal
    ETA_SLIPPED = "eta_slipped"  # estimate later than the first one or the promise
    ETA_MISSED = "eta_missed"  # promised (else estimated) date passed, not delivered
    PICKUP_WAITING = "pickup_waiting"  # waiting at a locker / pickup point too long
    #: the carrier cannot deliver it as addressed (refused, unknown recipient) or nobody
    #: collected it in time: it goes back to the shop unless the customer acts
    UNDELIVERABLE = "undeliverable"


class SuppressionReason(StrEnum):
    """Why an address is suppressed on a channel (the store's vocabulary). `stop`, `bounce`,
    `spamreport`, `dropped` and `manual` block everything on the channel, `unsubscribe`
    blocks marketing; lifting one (`unsuppress`) only ever lifts `stop` or `unsubscribe`."""

    MANUAL = "manual"
    UNSUBSCRIBE = "unsubscribe"
    STOP = "stop"
    BOUNCE = "bounce"
    SPAM_REPORT = "spamreport"
    DROPPED = "dropped"


EMPTY: Mapping[str, Any] = MappingProxyType({})


# --- orders -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Customer:
    customer_id: str
    name: str
    email: str | None
    phone: str | None  # E.164, validated at intake
    locale: str  # BCP 47, e.g. "en", "pl-PL"
    time_zone: str  # IANA, e.g. "Europe/Warsaw"
    consent_email: bool  # marketing consent; transactional email needs none
    consent_sms: bool
    country: str | None = None  # ISO 3166-1 alpha-2
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Item:
    sku: str
    name: str
    category: str
    quantity: int
    price: Decimal  # unit price
    currency: str  # ISO 4217
    warranty_months: int | None = None


@dataclass(frozen=True, slots=True)
class ShipmentRef:
    """A parcel as the shop knows it: carrier slug (None = detect later) and number, and
    the SKUs it carries when the order ships in several parcels (empty: not said)."""

    tracking_number: str
    carrier: str | None
    items: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Order:
    order_id: str
    placed_at: datetime
    customer: Customer
    items: tuple[Item, ...]
    shipments: tuple[ShipmentRef, ...]
    promised_delivery: date | None = None
    shipping_country: str | None = None

    @property
    def currency(self) -> str | None:
        return self.items[0].currency if self.items else None

    @property
    def total(self) -> Decimal:
        return sum((i.price * i.quantity for i in self.items), Decimal("0"))


# --- tracking ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TrackingEvent:
    """One carrier scan. `status` None means informational: keep the previous status."""

    occurred_at: datetime
    status: Status | None
    code: str  # the carrier's own code, kept verbatim
    description: str
    location: str | None = None


@dataclass(frozen=True, slots=True)
class Tracking:
    """A carrier response normalised. Problems are data, not exceptions."""

    carrier: str
    tracking_number: str
    status: Status
    code: str | None = None  # raw carrier code behind `status`
    description: str | None = None
    events: tuple[TrackingEvent, ...] = ()  # oldest first, de-duplicated
    estimated_delivery: date | None = None
    estimated_window: tuple[datetime, datetime] | None = None
    delivered_at: datetime | None = None
    pickup_point: str | None = None  # locker / parcel shop name and address
    found: bool = True  # False: the carrier does not know this number (yet)
    problems: tuple[str, ...] = ()  # what could not be understood
    #: Why this answer cannot be believed (malformed, an unmapped current status, about
    #: another parcel): the poll counts as failed and is retried like an outage.
    unusable: str | None = None
    delivery_type: DeliveryType | None = None  # None: the carrier's data does not say
    pickup_deadline: datetime | None = None  # collect by, as the carrier gives it
    pickup_hours: str | None = None  # the pickup point's opening hours, as given


@dataclass(frozen=True, slots=True)
class ShipmentState:
    """What the store knows about a parcel between polls."""

    shipment_id: str
    order_id: str
    carrier: str | None
    tracking_number: str
    status: Status
    code: str | None = None
    description: str | None = None
    estimated_delivery: date | None = None
    first_estimate: date | None = None
    estimated_window: tuple[datetime, datetime] | None = None
    delivered_at: datetime | None = None
    pickup_point: str | None = None
    last_event_at: datetime | None = None
    status_since: datetime | None = None
    last_polled_at: datetime | None = None
    next_check_at: datetime | None = None
    created_at: datetime | None = None
    problem: str | None = None
    delivery_type: DeliveryType | None = None
    pickup_deadline: datetime | None = None
    pickup_hours: str | None = None
    #: the platform's return id when this is a parcel the customer sends back (None: to them)
    return_id: str | None = None


@dataclass(frozen=True, slots=True)
class PollResult:
    """The outcome of polling one shipment: a tracking, or the error that stopped it."""

    shipment_id: str
    carrier: str
    tracking: Tracking | None
    error: str | None = None


# --- detection and decisions ------------------------------------------------


class EventKind(StrEnum):
    ORDER_PLACED = "order_placed"
    SHIPPED = "shipped"
    STATUS_CHANGED = "status_changed"
    DELAYED = "delayed"
    ARRIVING_TOMORROW = "arriving_tomorrow"
    DELIVERED_AGO = "delivered_ago"
    WARRANTY_ENDING = "warranty_ending"
    # from the shop platform (returns, refunds) and the shop's promises (docs/shops.md)
    RETURN_REQUESTED = "return_requested"  # reason: the platform's return id
    RETURN_IN_TRANSIT = "return_in_transit"  # the return parcel was handed to the carrier
    RETURN_RECEIVED = "return_received"  # the return parcel reached the shop
    REFUND_ISSUED = "refund_issued"  # reason: the platform's refund id; amount, currency in facts
    RETURN_WINDOW_ENDING = "return_window_ending"  # days before the shop's return period ends
    FULFILMENT_DELAYED = "fulfilment_delayed"  # no tracking number past the dispatch promise
    RETURN_DECLINED = "return_declined"  # reason: the platform's return id; the shop said no


@dataclass(frozen=True, slots=True)
class DomainEvent:
    """Something that happened to an order, shipment or item; rules react to these."""

    kind: EventKind
    order_id: str
    occurred_at: datetime
    shipment_id: str | None = None
    item_sku: str | None = None
    status: Status | None = None
    reason: str | None = None  # delay reason code
    facts: Mapping[str, Any] = field(default_factory=lambda: EMPTY)

    @property
    def event_id(self) -> str:
        subject = self.shipment_id or self.item_sku or self.order_id
        tail = self.status or self.reason or ""
        return f"{self.kind}:{self.order_id}:{subject}:{tail}:{self.occurred_at.isoformat()}"


@dataclass(frozen=True, slots=True)
class Decision:
    """A rule fired: this template goes over this channel, at `due_at` or later."""

    rule_id: str
    template: str
    channel: ChannelKind
    order_id: str
    idempotency_key: str  # unique in the store: the once-only guarantee
    due_at: datetime
    event: DomainEvent
    marketing: bool = False
    shipment_id: str | None = None
    item_sku: str | None = None
    #: why it waits past the moment it was decided (a delay, a send window), if it does
    held: str | None = None


# --- messages ---------------------------------------------------------------


class MessageState(StrEnum):
    """Where a stored message is in its life. A claim moves `pending -> sending` in one
    conditional statement, so two runs never both send; a crash between claim and result
    leaves `sending`, which becomes `unknown` and is never resent without a human."""

    PENDING = "pending"  # decided, waiting for its due time
    SENDING = "sending"  # claimed by a run, handed to the channel
    SENT = "sent"
    FAILED = "failed"  # permanent: the channel refused it, or it could not be rendered
    UNKNOWN = "unknown"  # left in `sending` by a crashed run: check the provider, release
    CANCELLED = "cancelled"  # superseded by a newer event before it went out
    SUPPRESSED = "suppressed"  # the recipient opted out or bounced


@dataclass(frozen=True, slots=True)
class RenderedMessage:
    channel: ChannelKind
    to: str
    subject: str | None  # email only
    text: str
    html: str | None = None  # email only
    sms_segments: int | None = None  # sms only
    #: marketing email: where a mail program unsubscribes the recipient (https, mailto),
    #: for the List-Unsubscribe header (RFC 2369) and its one-click POST (RFC 8058)
    list_unsubscribe: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """A rendered message on its way to a channel."""

    message_id: str
    idempotency_key: str
    rule_id: str
    template: str
    order_id: str
    marketing: bool
    content: RenderedMessage
    test: bool = False
    #: Which send of the message this is (1 the first; a retry or a release adds one): a
    #: channel that keeps what it sent (the outbox) records it, to settle a send in doubt.
    attempt: int = 1


@dataclass(frozen=True, slots=True)
class SendResult:
    """What a channel says about one send. `transient` errors may be retried later;
    `in_doubt` ones (a timeout after the request left) may have reached the provider and
    are never simply sent again: the message becomes `unknown`."""

    ok: bool
    provider_id: str | None = None
    error_code: str | None = None
    error_text: str | None = None
    transient: bool = False
    opted_out: bool = False  # the recipient opted out of the channel: suppress the address
    in_doubt: bool = False


class DeliveryType(StrEnum):
    """Where a parcel is handed over, from the carrier's data: each tells its own story
    (a courier at the door; a code at a locker; opening hours at a shop)."""

    HOME = "home"  # a courier to the customer's address
    LOCKER = "locker"  # a parcel locker (InPost Paczkomat, DHL Packstation)
    PICKUP_POINT = "pickup_point"  # a shop or post office (DPD Pickup, DHL Postfiliale)
    ACCESS_POINT = "access_point"  # a UPS Access Point


#: The delivery types the customer collects from.
COLLECTED = frozenset({DeliveryType.LOCKER, DeliveryType.PICKUP_POINT, DeliveryType.ACCESS_POINT})
