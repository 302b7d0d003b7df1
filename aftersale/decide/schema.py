"""The shape of a rules file as pydantic models (extra keys forbidden), and compiled values.

`ruleset.py` validates YAML against the `*Model` classes and compiles them into the
frozen `Rule`, `Cap` and `Case` values the decide hot path reads without validation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from aftersale.decide.conditions import Condition, Duration, Window
from aftersale.models import ChannelKind, DelayReason, DeliveryType, EventKind, Status


class MessageKind(StrEnum):
    TRANSACTIONAL = "transactional"
    MARKETING = "marketing"


class OnceScope(StrEnum):
    ORDER = "order"
    SHIPMENT = "shipment"
    ITEM = "item"
    REASON = "reason"  # once per shipment and delay reason; once per refund, per return
    #: once per incident of a shipment: a delay while the parcel stays in one status (its
    #: reasons, found over several cycles, are one incident), or a new date the carrier gave
    INCIDENT = "incident"
    #: once per order and delivery day (the customer's calendar): after-delivery messages
    #: about parcels delivered together go out as one
    DELIVERY_DAY = "delivery_day"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ConditionModel(_Model):
    field: str
    eq: Any = None
    ne: Any = None
    in_: Any = Field(None, alias="in")
    not_in: Any = None
    gt: Any = None
    gte: Any = None
    lt: Any = None
    lte: Any = None


class RuleModel(_Model):
    id: str
    description: str | None = None
    on: EventKind
    status: Status | None = None
    reason: DelayReason | None = None
    days: int | None = Field(None, ge=1)
    template: str
    channels: list[ChannelKind] = Field(min_length=1)
    fallback: dict[ChannelKind, ChannelKind] = {}
    kind: MessageKind = MessageKind.TRANSACTIONAL
    once: OnceScope | None = None
    after: Any = None
    before: Any = None
    send_window: dict[ChannelKind, Any] = {}
    quiet_hours: dict[ChannelKind, Any] = {}
    priority: int = 0
    supersedes: list[str] = []
    collapse: bool = True
    when: list[Any] = []  # each checked against ConditionModel on its own


class DefaultsModel(_Model):
    quiet_hours: dict[ChannelKind, Any] = {}
    send_window: dict[ChannelKind, Any] = {}


class CapModel(_Model):
    channel: ChannelKind
    max: int = Field(ge=1)
    per: Any
    except_: list[str] = Field([], alias="except")
    marketing_only: bool = False


class CaseCustomerModel(_Model):
    name: str = "Anna Nowak"
    email: str | None = "anna@example.com"
    phone: str | None = "+48500100200"
    locale: str = "en"
    time_zone: str = "Europe/Warsaw"
    country: str | None = "PL"
    consent_email: bool = True
    consent_sms: bool = True
    tags: list[str] = []


class CaseItemModel(_Model):
    sku: str = "NW-ANC-700"
    name: str = "Northwind ANC 700"
    category: str = "headphones"
    quantity: int = 1
    price: float = 399.0
    currency: str = "PLN"
    warranty_months: int | None = 24


class CaseOrderModel(_Model):
    placed_at: datetime | None = None
    promised_delivery: date | None = None
    items: list[CaseItemModel] = [CaseItemModel()]


class ScanModel(_Model):
    at: datetime
    status: Status | None = None  # None: an informational scan
    code: str | None = None
    description: str | None = None
    reported_at: datetime | None = None  # when the carrier shows it (late events)
    estimated_delivery: date | None = None
    window: list[datetime] | None = None
    location: str | None = None


class CaseShopModel(_Model):
    """The shop's promises a case runs with (shop.yaml's fields of the same names)."""

    time_zone: str = "Europe/Warsaw"
    dispatch_days: int | None = Field(default=None, ge=0)
    return_days: int | None = Field(default=None, ge=0)


class CaseRefundModel(_Model):
    at: datetime
    amount: float
    currency: str | None = None  # None: the order's


class CaseReturnModel(_Model):
    """A return the customer asked for `at`, and the scans of the parcel sent back; or
    the shop declined it at `declined_at`."""

    at: datetime
    carrier: str | None = None
    scans: list[ScanModel] = []
    declined_at: datetime | None = None


class CaseModel(_Model):
    name: str
    customer: CaseCustomerModel = CaseCustomerModel()
    order: CaseOrderModel = CaseOrderModel()
    shop: CaseShopModel = CaseShopModel()
    carrier: str | None = None  # a slug from the carrier directory; None: any carrier
    delivery: DeliveryType | None = None  # locker, pickup_point, access_point, home
    scans: list[ScanModel] = []  # none: the order has no tracking number (not shipped)
    refunds: list[CaseRefundModel] = []
    returns: list[CaseReturnModel] = []
    now: datetime
    should_send: list[str] = []
    should_not_send: list[str] = []


class FileModel(_Model):
    defaults: Any = None
    caps: Any = None
    rules: Any = None
    cases: Any = None


# --- compiled values ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    on: EventKind
    status: Status | None
    reason: str | None
    days: int | None
    template: str
    channels: tuple[ChannelKind, ...]
    fallback: Mapping[ChannelKind, ChannelKind]
    marketing: bool
    once: OnceScope
    after: Duration | None
    before: Duration | None
    windows: Mapping[ChannelKind, Window]
    priority: int
    supersedes: tuple[str, ...]
    collapse: bool
    conditions: tuple[Condition, ...]
    source: str  # rules/FILE.yaml:LINE

    def listens(self, status: Status | None, reason: str | None, days: Any) -> bool:
        return (
            (self.status is None or self.status == status)
            and (self.reason is None or self.reason == reason)
            and (self.days is None or self.days == days)
        )


@dataclass(frozen=True, slots=True)
class Cap:
    channel: ChannelKind
    max: int
    per: Duration
    exempt: frozenset[str]
    marketing_only: bool
    source: str


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    source: str
    model: CaseModel = field(compare=False)
