"""Reading the outbox as customers read it: each email and SMS against the order, parcel
and event it belongs to, as the store has them. Every check returns its findings as
lines ("m-…  NW-1004 delayed email: …"), so a failing test lists every wrong message."""

from __future__ import annotations

import email
import json
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from email import policy
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel import Locale

from aftersale.models import COLLECTED, DomainEvent, Order, ShipmentState
from aftersale.settings import Shop
from aftersale.store.records import MessageRow
from aftersale.tracking.warranty import warranty_ends, warranty_from


@dataclass(frozen=True)
class Read:
    """One message as it reached the customer, with what the store knows about it."""

    row: MessageRow
    text: str  # the subject and the plain-text part (email), or the SMS text
    order: Order
    shipment: ShipmentState | None
    parcels: tuple[ShipmentState, ...]
    event: DomainEvent | None

    @property
    def language(self) -> str:
        return self.order.customer.locale.split("-")[0]

    def __str__(self) -> str:
        r = self.row
        return f"{r.message_id} {r.order_id} {r.template} {r.channel}"


def read_outbox(
    outbox: Path,
    messages: Sequence[MessageRow],
    orders: Mapping[str, Order],
    shipments: Sequence[ShipmentState],
    events: Mapping[str, DomainEvent],
) -> list[Read]:
    """Every email (.eml) and SMS (sms.jsonl) in `outbox`, matched to its stored message."""
    texts: dict[str, str] = {}
    for path in sorted((outbox / "email").glob("*.eml")):
        msg = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        body = msg.get_body(preferencelist=("plain",))
        assert body is not None, path
        texts[msg["X-Aftersale-Message-Id"]] = f"{msg['Subject']}\n{body.get_content()}"
    for line in (outbox / "sms.jsonl").read_text(encoding="utf-8").splitlines():
        sms = json.loads(line)
        texts[sms["message_id"]] = sms["text"]
    by_id = {s.shipment_id: s for s in shipments}
    parcels: dict[str, list[ShipmentState]] = defaultdict(list)
    for s in shipments:
        parcels[s.order_id].append(s)
    return [
        Read(
            m,
            texts[m.message_id],
            orders[m.order_id],
            by_id.get(m.shipment_id) if m.shipment_id else None,
            tuple(parcels[m.order_id]),
            events.get(m.event_id),
        )
        for m in messages
        if m.message_id in texts
    ]


# --- what must never show -------------------------------------------------------------

_URL = re.compile(r"(?:https?://|\b[\w.-]+\.example/)\S*")
_LEFTOVERS = re.compile(
    r"\bNone\b|\bnan\b|\{\{|\}\}|\{%|%\}|\bundefined\b"
    r"|\b(?:Ups|Dhl|Dpd|Inpost)\b"  # a carrier's name put through |capitalize
)
_ISO_DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
#: Words that give away a sentence in another language than the customer's.
_FOREIGN = {
    "en": re.compile(r"\b(?:zamówieni\w*|paczk\w*|przesyłk\w*|Bestellung|Paket\w*|Ihre?)\b", re.I),
    "pl": re.compile(r"\b(?:your|the|order|parcel|delivery|tracking|Bestellung|Ihre?)\b", re.I),
    "de": re.compile(
        r"\b(?:your|the|order|parcel|delivery|tracking|zamówieni\w*|paczk\w*)\b", re.I
    ),
}


def without_urls(text: str) -> str:
    return _URL.sub(" ", text)


def leftovers(read: Read) -> list[str]:
    """Template leftovers, raw ISO dates, and words of another language."""
    text = without_urls(read.text)
    for item in read.order.items:  # product names are the shop's, in whatever language
        text = text.replace(item.name, " ")
    found = _LEFTOVERS.findall(text) + _ISO_DATE.findall(text)
    foreign = _FOREIGN.get(read.language)
    found += foreign.findall(text) if foreign else []
    return [f"{read}: {word!r}" for word in found]


_UPS_LOCALE = re.compile(r"ups\.com/track\?loc=(\w+)&")


def wrong_links(read: Read) -> list[str]:
    """A carrier page in another locale than the customer's (UPS: loc=en_US, en_GB...)."""
    language, _, region = read.order.customer.locale.partition("-")
    want = f"{language}_{region or read.order.customer.country or ''}"
    return [f"{read}: UPS page in {loc}" for loc in _UPS_LOCALE.findall(read.text) if loc != want]


# --- money, contacts ------------------------------------------------------------------

_CURRENCY_MARKS = {
    "PLN": re.compile(r"zł|\bPLN\b"),
    "EUR": re.compile(r"€|\bEUR\b"),
    "GBP": re.compile(r"£|\bGBP\b"),
    "USD": re.compile(r"\$|\bUSD\b"),
}


def foreign_money(read: Read, shop: Shop) -> list[str]:
    """Amounts in a currency other than the order's (the market's legal line aside)."""
    market = shop.market_for(read.order.shipping_country, read.order.customer.country)
    text = without_urls(read.text)
    for legal in _texts(market.legal):
        text = text.replace(legal, " ")
    own = read.order.currency
    return [
        f"{read}: {code} in an order in {own}"
        for code, mark in _CURRENCY_MARKS.items()
        if code != own and mark.search(text)
    ]


def wrong_contacts(read: Read, shop: Shop) -> list[str]:
    """Another market's phone number, or (email) not the customer's market's."""
    market = shop.market_for(read.order.shipping_country, read.order.customer.country)
    others = {m.phone for m in shop.markets} - {market.phone}
    found = [f"{read}: phone {p} of another market" for p in others if p in read.text]
    if market.phone not in read.text:
        found.append(f"{read}: no {market.phone} ({market.code})")
    return found


def _texts(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [str(v) for v in value.values()]
    return []


# --- dates ----------------------------------------------------------------------------


def true_dates(read: Read) -> set[date]:
    """Every date the store knows for this message: the order, its parcels, the event's
    facts and each item's warranty end, on the customer's calendar."""
    tz = ZoneInfo(read.order.customer.time_zone)
    order = read.order
    days: set[date] = {order.placed_at.astimezone(tz).date()}
    if order.promised_delivery:
        days.add(order.promised_delivery)
    for p in read.parcels:
        for moment in (p.delivered_at, p.pickup_deadline, p.status_since):
            if moment is not None:
                days.add(moment.astimezone(tz).date())
        days.update(d for d in (p.estimated_delivery, p.first_estimate) if d is not None)
    if read.event is not None:
        for value in read.event.facts.values():
            parsed = _as_date(value, tz)
            if parsed is not None:
                days.add(parsed)
    days.update(warranty_end(read, i.sku) or order.placed_at.date() for i in order.items)
    return days


def warranty_end(read: Read, sku: str) -> date | None:
    item = next(i for i in read.order.items if i.sku == sku)
    start = warranty_from(read.order, sku, read.parcels)
    if start is None or not item.warranty_months:
        return None
    return warranty_ends(start, item.warranty_months, read.order.customer.time_zone)


def _as_date(value: Any, tz: ZoneInfo) -> date | None:
    if not isinstance(value, str) or not _ISO_DATE.match(value):
        return None
    if len(value) == 10:
        return date.fromisoformat(value)
    return datetime.fromisoformat(value).astimezone(tz).date()


def mentioned_dates(read: Read) -> list[tuple[int, int]]:
    """(day, month) of every date written in the message, as its locale writes them."""
    locale = Locale.parse(read.order.customer.locale, sep="-")
    months: dict[str, int] = {}
    for context in ("format", "stand-alone"):
        for width in ("wide", "abbreviated"):
            for number, name in locale.months[context][width].items():
                months[name.lower().rstrip(".")] = number
    names = "|".join(sorted((re.escape(n) for n in months), key=len, reverse=True))
    text = without_urls(read.text).lower()
    found = [
        (int(d), months[m.rstrip(".")])
        for d, m in re.findall(rf"\b(\d{{1,2}})\.?\s+({names})\.?(?!\w)", text)
    ]
    found += [
        (int(d), months[m.rstrip(".")])
        for m, d in re.findall(rf"\b({names})\.?\s+(\d{{1,2}})\b(?!:)", text)
    ]
    if read.language == "de":  # "28.11." (day_short)
        numeric = re.findall(r"(?<![\d.,])(\d{1,2})\.(\d{1,2})\.(?!\d)", text)
        found += [(int(d), int(m)) for d, m in numeric]
    return found


def wrong_dates(read: Read) -> list[str]:
    """Dates the store does not know for this message; a warranty reminder without its
    item's end date, a pickup message without its collect-by date."""
    known = {(d.day, d.month) for d in true_dates(read)}
    mentioned = mentioned_dates(read)
    found = [
        f"{read}: {d}.{m}. is no date of this order" for d, m in mentioned if (d, m) not in known
    ]
    must: list[date] = []
    if read.row.template == "warranty_expiry" and read.row.item_sku:
        end = warranty_end(read, read.row.item_sku)
        must += [end] if end else []
    if read.row.template in ("available_for_pickup", "pickup_reminder") and read.shipment:
        deadline = read.shipment.pickup_deadline
        tz = ZoneInfo(read.order.customer.time_zone)
        must += [deadline.astimezone(tz).date()] if deadline and read.row.channel == "email" else []
    found += [
        f"{read}: does not say {d.isoformat()}" for d in must if (d.day, d.month) not in mentioned
    ]
    return found


# --- delivery types, incidents ---------------------------------------------------------

_DOORSTEP_TEMPLATES = {"arriving_tomorrow", "out_for_delivery", "delivery_attempted"}
_DOORSTEP_WORDS = re.compile(
    r"at your door|keep your phone|an der (?:Haus)?tür|pod drzwi|courier will|kurier dostarczy",
    re.I,
)
_COLLECTED_WORDS = {"en": "collected", "de": "abgeholt", "pl": "odebran"}


def wrong_delivery_story(read: Read) -> list[str]:
    """A parcel the customer collects never hears the doorstep story, and hears
    "collected" (not "delivered to your door") when it is done."""
    s = read.shipment
    if s is None:
        return []
    collected = s.delivery_type in COLLECTED
    found = []
    if collected and read.row.template in _DOORSTEP_TEMPLATES:
        found.append(f"{read}: a doorstep message for a {s.delivery_type}")
    if collected and _DOORSTEP_WORDS.search(read.text):
        found.append(f"{read}: doorstep words for a {s.delivery_type}")
    word = _COLLECTED_WORDS.get(read.language)
    if read.row.template == "delivered" and word:
        if collected and word not in read.text.lower():
            found.append(f"{read}: 'delivered' without '{word}' for a {s.delivery_type}")
        if not collected and word in read.text.lower().split("?")[0]:
            found.append(f"{read}: '{word}' for a home delivery")
    return found


def repeated_incidents(reads: Sequence[Read]) -> list[str]:
    """More than one delay message per parcel, channel and incident."""
    seen: dict[tuple[str | None, str, str], list[Read]] = defaultdict(list)
    for r in reads:
        if r.row.template == "delayed" and r.event is not None:
            incident = str(r.event.facts.get("incident") or r.event.reason)
            seen[(r.row.shipment_id, str(r.row.channel), incident)].append(r)
    return [
        f"{key}: {len(group)} messages ({', '.join(str(r) for r in group)})"
        for key, group in seen.items()
        if len(group) > 1
    ]
