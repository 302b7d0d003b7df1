"""DHL Shipment Tracking - Unified (developer.dhl.com), one number per request.

Docs: developer.dhl.com "Shipment Tracking - Unified"; notes in CARRIERS.md section 3.
Auth: API key in the `DHL-API-Key` header (the app's consumer key). Request:
GET {base}/track/shipments?trackingNumber=..&language=en. Limits: starter plan 250 calls
per day and 1 per second (429 beyond; quota resets 00:00 GMT). Errors are problem-details
JSON; 404 means DHL has no shipment with that number.
Quirks: the coarse `statusCode` has five values; the finer per-service code (express,
parcel-de, parcel-pl) is read from `statusDetailed` if present, else `status` when that
holds a code rather than text (which field carries it was not confirmed). Timestamps come
with or without an offset: without one we read the time as local to the event's country
when that country has a single time zone (COUNTRY_ZONES), else as UTC and say so in
`problems`. Several `shipments[]` can answer one number (one per DHL division).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from aftersale.carriers_meta import CarrierMeta, NumberPattern
from aftersale.models import DeliveryType, Status, Tracking, TrackingEvent
from carriers.base import (
    NOT_JSON,
    Carrier,
    as_dict,
    as_list,
    as_text,
    current_status,
    decode_json,
    delivery_type_in,
    failed,
    not_found,
    not_json,
    other_parcel,
    same_parcel,
    sorted_unique,
    waiting_since,
    warn_unmapped,
)
from carriers.transport import HttpRequest

logger = logging.getLogger(__name__)


def express_check_digit_ok(n: str) -> bool:
    """DHL Express waybill: the last digit is the number formed by the others, mod 7."""
    return int(n[:-1]) % 7 == int(n[-1])


_PAGE = (
    "https://www.dhl.com/{site}/home/tracking/tracking-parcel.html?submit=1&tracking-id={{number}}"
)
META = CarrierMeta(
    slug="dhl",
    name="DHL",
    api_url="https://api-eu.dhl.com",
    tracking_pages={
        "pl": _PAGE.format(site="pl-pl"),
        "de": _PAGE.format(site="de-de"),
        "de-AT": _PAGE.format(site="at-de"),
        "en-US": _PAGE.format(site="us-en"),
        "*": _PAGE.format(site="gb-en"),
    },
    # formats: CARRIERS.md section 6 (jkeen/tracking_number_data)
    number_patterns=(
        NumberPattern(r"^\d{10,11}$", express_check_digit_ok),  # Express waybill
        NumberPattern(r"^J[A-Z]{1,3}\d{9,21}$"),  # JD.../JJD... piece ids
        NumberPattern(r"^(?:\d{12}|\d{20})$"),  # Paket
        NumberPattern(r"^(?:GM|LX|RX|UV|CN|SG|TH|IN|HK|MY)\d{10,39}$"),  # eCommerce
    ),
    sandbox_env={"DHL_API_KEY": "sandbox-key"},
    # going back to the sender: refused, or the consignee moved away (codes are
    # "<coarse>/<detail>", as the parser keeps them)
    delay_thresholds={"undeliverable_codes": frozenset({"failure/RD", "failure/CM"})},
)

_S = Status

#: The coarse `statusCode` every DHL division uses.
STATUS_CODES: dict[str, Status | None] = {
    "pre-transit": _S.LABEL_CREATED,  # electronic data received, parcel not yet with DHL
    "transit": _S.IN_TRANSIT,  # moving; refined by the detail codes below
    "delivered": _S.DELIVERED,  # handed over
    "failure": _S.EXCEPTION,  # problem; refined by the detail codes below
    "unknown": _S.UNKNOWN,  # DHL itself does not know
}

#: What a detail code may refine each coarse `statusCode` into: a detail that contradicts
#: DHL's own coarse code (a "pick-up" scan on a `pre-transit` shipment) loses to it.
#: `unknown` (and a missing coarse code) may be refined into anything.
WITHIN_COARSE: dict[str, frozenset[Status]] = {
    "pre-transit": frozenset({_S.LABEL_CREATED}),
    "transit": frozenset(
        {
            _S.IN_TRANSIT,
            _S.OUT_FOR_DELIVERY,
            _S.AVAILABLE_FOR_PICKUP,
            _S.DELIVERY_ATTEMPTED,
            _S.EXCEPTION,
            _S.RETURNED_TO_SENDER,
        }
    ),
    "delivered": frozenset({_S.DELIVERED, _S.AVAILABLE_FOR_PICKUP}),
    "failure": frozenset({_S.EXCEPTION, _S.DELIVERY_ATTEMPTED, _S.RETURNED_TO_SENDER}),
}

#: Per-service detail codes (DHL's list, karrio `mydhl/vendors/status_1.csv`). A match wins
#: over the coarse code because it is more specific.
DETAIL_CODES: dict[str, dict[str, Status | None]] = {
    "express": {
        "101": _S.DELIVERED,  # shipment level: delivered
        "102": _S.IN_TRANSIT,  # shipment level: transit
        "103": _S.EXCEPTION,  # shipment level: failure
        "104": _S.LABEL_CREATED,  # shipment level: pre-transit
        "SA": _S.IN_TRANSIT,  # shipment acceptance
        "PU": _S.IN_TRANSIT,  # picked up
        "PL": _S.IN_TRANSIT,  # processed at location
        "DF": _S.IN_TRANSIT,  # departed facility
        "AF": _S.IN_TRANSIT,  # arrived at facility
        "AR": _S.IN_TRANSIT,  # arrived at delivery facility
        "TR": _S.IN_TRANSIT,  # transferred through facility
        "IC": _S.IN_TRANSIT,  # in clearance processing
        "CR": _S.IN_TRANSIT,  # clearance released
        "BR": _S.IN_TRANSIT,  # broker release
        "WC": _S.OUT_FOR_DELIVERY,  # with delivering courier
        "OK": _S.DELIVERED,  # delivered
        "PD": _S.DELIVERED,  # partial delivery
        "DD": _S.DELIVERED,  # delivered damaged
        "CC": _S.AVAILABLE_FOR_PICKUP,  # awaiting collection by consignee
        "NH": _S.DELIVERY_ATTEMPTED,  # not home
        "CA": _S.DELIVERY_ATTEMPTED,  # closed on arrival
        "MD": _S.DELIVERY_ATTEMPTED,  # missed delivery cycle
        "ND": _S.DELIVERY_ATTEMPTED,  # not delivered
        "BA": _S.EXCEPTION,  # bad address
        "CM": _S.EXCEPTION,  # consignee moved
        "OH": _S.EXCEPTION,  # on hold
        "HP": _S.EXCEPTION,  # held for payment
        "CD": _S.EXCEPTION,  # clearance delay
        "UD": _S.EXCEPTION,  # clearance delay
        "MS": _S.EXCEPTION,  # mis-sort
        "SS": _S.EXCEPTION,  # shipment stopped
        "RD": _S.EXCEPTION,  # refused delivery
        "DS": _S.EXCEPTION,  # destroyed
        "RT": _S.RETURNED_TO_SENDER,  # returned to consignor
    },
    "parcel-de": {
        "VA": _S.LABEL_CREATED,  # electronic pre-advice
        "ES": _S.IN_TRANSIT,  # first processed at parcel centre
        "NB": _S.IN_TRANSIT,  # normal transit
        "ZO": _S.IN_TRANSIT,  # customs
        "AE": _S.IN_TRANSIT,  # picked up at customer
        "PO": _S.OUT_FOR_DELIVERY,  # in delivery
        "ZF": _S.AVAILABLE_FOR_PICKUP,  # at agency / post office / Packstation
        "LA": _S.AVAILABLE_FOR_PICKUP,  # in storage, waiting for pickup
        "ZU": _S.DELIVERED,  # delivered
        "ZN": _S.DELIVERY_ATTEMPTED,  # delivery attempt not successful
        "BV": _S.EXCEPTION,  # exception
        "AN": _S.EXCEPTION,  # pickup not successful
        "DD": None,  # data service: keep previous
        "GT": None,  # money transfer: keep previous
    },
    "parcel-pl": {
        "EDWP": _S.LABEL_CREATED,  # electronic data only
        "DWP": _S.IN_TRANSIT,  # picked up from sender
        "LW": _S.IN_TRANSIT,  # line haul
        "LP": _S.IN_TRANSIT,  # line haul
        "LK": _S.OUT_FOR_DELIVERY,  # handed to courier for delivery
        "KWC": _S.IN_TRANSIT,  # ready for delivery next day
        "BCZ": _S.IN_TRANSIT,  # ready for delivery
        "LIK": _S.IN_TRANSIT,  # ready for delivery today
        "DOR_SP": _S.AVAILABLE_FOR_PICKUP,  # arrived at DHL POP: waiting for the customer
    },
}

#: parcel-pl families matched on the prefix (DOR_SP above wins: exact codes first).
PL_PREFIXES: tuple[tuple[str, Status], ...] = (
    ("DOR", _S.DELIVERED),  # DOR*: delivered
    ("AWI", _S.DELIVERY_ATTEMPTED),  # AWI*: delivery attempt
    ("BRG", _S.EXCEPTION),  # BRG*: fees unpaid
    ("AN", _S.EXCEPTION),  # AN*: address problems
    ("OP", _S.EXCEPTION),  # OP*: refused
)

#: Countries with one time zone: a timestamp without offset is read in this zone.
COUNTRY_ZONES: dict[str, str] = {
    "DE": "Europe/Berlin", "PL": "Europe/Warsaw", "NL": "Europe/Amsterdam",
    "BE": "Europe/Brussels", "LU": "Europe/Luxembourg", "FR": "Europe/Paris",
    "AT": "Europe/Vienna", "CH": "Europe/Zurich", "CZ": "Europe/Prague",
    "SK": "Europe/Bratislava", "HU": "Europe/Budapest", "IT": "Europe/Rome",
    "SI": "Europe/Ljubljana", "HR": "Europe/Zagreb", "DK": "Europe/Copenhagen",
    "SE": "Europe/Stockholm", "NO": "Europe/Oslo", "FI": "Europe/Helsinki",
    "EE": "Europe/Tallinn", "LV": "Europe/Riga", "LT": "Europe/Vilnius",
    "GB": "Europe/London", "IE": "Europe/Dublin", "RO": "Europe/Bucharest",
    "BG": "Europe/Sofia", "GR": "Europe/Athens", "UA": "Europe/Kyiv",
    "TR": "Europe/Istanbul", "IL": "Asia/Jerusalem", "AE": "Asia/Dubai",
    "IN": "Asia/Kolkata", "CN": "Asia/Shanghai", "HK": "Asia/Hong_Kong",
    "TW": "Asia/Taipei", "JP": "Asia/Tokyo", "KR": "Asia/Seoul",
    "SG": "Asia/Singapore", "TH": "Asia/Bangkok", "VN": "Asia/Ho_Chi_Minh",
    "PH": "Asia/Manila", "ZA": "Africa/Johannesburg",
}  # fmt: skip

#: Domestic divisions: an event without a location happened in this zone.
SERVICE_ZONES: dict[str, str] = {
    "parcel-de": "Europe/Berlin",
    "post-de": "Europe/Berlin",
    "parcel-pl": "Europe/Warsaw",
    "parcel-nl": "Europe/Amsterdam",
    "parcel-uk": "Europe/London",
}

_CODE_SHAPE = re.compile(r"^[A-Z0-9]{2,4}[0-9]{0,3}(?:_[A-Z0-9]+)?$")
_MISSING: Any = object()


class Dhl(Carrier):
    """DHL Unified tracking; the API key is optional so a local sandbox works without one."""

    meta = META
    own_unknown_codes = frozenset(c for c, s in STATUS_CODES.items() if s is Status.UNKNOWN)
    default_rate_per_s = 1.0
    #: Starter plan quota (calls per day); the poller may enforce it.
    default_rate_per_day: int | None = 250

    def __init__(self, base_url: str, api_key: str | None = None) -> None:
        super().__init__(base_url)
        self.api_key = api_key

    @classmethod
    def from_env(cls, base_url: str, env: Mapping[str, str]) -> Dhl:
        return cls(base_url, api_key=env.get("DHL_API_KEY"))

    def build_request(self, tracking_number: str) -> HttpRequest:
        headers = {"Accept": "application/json"}
        if self.api_key:
            headers["DHL-API-Key"] = self.api_key
        query = urlencode({"trackingNumber": tracking_number, "language": "en"})
        return HttpRequest("GET", f"{self.base_url}/track/shipments?{query}", headers)

    def parse(self, tracking_number: str, status_code: int, body: bytes) -> Tracking:
        return parse_shipments(tracking_number, status_code, body)


# --- parsing (pure) ----------------------------------------------------------


def parse_shipments(tracking_number: str, status_code: int, body: bytes) -> Tracking:
    """Normalise one Unified tracking answer (any status code, any body)."""
    try:
        doc = decode_json(body)
    except NOT_JSON:
        return failed("dhl", tracking_number, not_json("dhl", status_code, body))
    if not isinstance(doc, dict):
        return failed("dhl", tracking_number, f"DHL: unexpected response (HTTP {status_code})")
    if status_code == 404:
        detail = as_text(doc.get("detail")) or as_text(doc.get("title")) or "no shipment found"
        return not_found("dhl", tracking_number, f"DHL: {detail}")
    if status_code != 200:
        detail = as_text(doc.get("detail")) or as_text(doc.get("title")) or "no details"
        return failed("dhl", tracking_number, f"DHL: HTTP {status_code}: {detail}")
    shipments = [s for s in as_list(doc.get("shipments")) if isinstance(s, dict)]
    if not shipments:
        return not_found("dhl", tracking_number, "DHL: answer holds no shipment")
    problems: list[str] = []
    shipment = _pick_shipment(tracking_number, shipments, problems)
    if shipment is None:
        return other_parcel("dhl", tracking_number, shipments[0].get("id")) or failed(
            "dhl", tracking_number, "DHL: the answer is about another parcel"
        )
    return _parse_shipment(tracking_number, shipment, problems)


def _numbers(s: dict[str, Any]) -> list[str]:
    """The numbers a shipment answers to: its id and, for Express, its pieces' ids."""
    pieces = as_list(as_dict(s.get("details")).get("pieceIds"))
    return [n for n in (s.get("id"), *pieces) if isinstance(n, str) and n.strip()]


def _pick_shipment(
    tracking_number: str, shipments: list[dict[str, Any]], problems: list[str]
) -> dict[str, Any] | None:
    """The shipment about the number asked; None when every one names another number."""
    ours = [s for s in shipments if any(same_parcel(tracking_number, n) for n in _numbers(s))]
    unnamed = [s for s in shipments if not _numbers(s)]
    if not ours and not unnamed:
        return None
    if len(shipments) == 1:
        return shipments[0]
    chosen = (ours or unnamed)[0]
    services = ", ".join(str(s.get("service")) for s in shipments)
    problems.append(
        f"DHL: {len(shipments)} shipments answer this number ({services}); "
        f"used {chosen.get('service')}"
    )
    return chosen


def _parse_shipment(tracking_number: str, s: dict[str, Any], problems: list[str]) -> Tracking:
    service = s.get("service") if isinstance(s.get("service"), str) else ""
    unzoned = 0
    raw_events: list[TrackingEvent] = []
    for ev in as_list(s.get("events")):
        if not isinstance(ev, dict):
            continue
        occurred_at, zoned = _timestamp(ev.get("timestamp"), _country(ev), service)
        if occurred_at is None:
            problems.append(f"DHL: event without a readable timestamp: {ev.get('timestamp')!r}")
            continue
        unzoned += not zoned
        status, code = _map_event(tracking_number, service, ev, problems)
        raw_events.append(
            TrackingEvent(
                occurred_at=occurred_at,
                status=status,
                code=code,
                description=as_text(ev.get("description")) or as_text(ev.get("status")) or "",
                location=_location(ev),
            )
        )
    if unzoned:
        problems.append(
            f"DHL: {unzoned} timestamp(s) without offset in a country of unknown time zone; "
            "read as UTC"
        )
    events = sorted_unique(raw_events)
    newest = current_status(events)
    status, code, description = (
        (newest.status, newest.code, newest.description) if newest else (None, None, None)
    )
    head = s.get("status")
    head_status: Status | None = None
    if isinstance(head, dict) and head:
        head_status, head_code = _map_event(tracking_number, service, head, problems)
        if head_status is not None:
            status, code = head_status, head_code
            description = as_text(head.get("description")) or as_text(head.get("status"))
    if status is None:
        status = Status.UNKNOWN
        if not events:
            problems.append("DHL: no events and no current status")
    estimated, window = _estimate(s, problems)
    delivered_at = None
    pickup_point = None
    if status is Status.DELIVERED:
        estimated, window = None, None
        delivered_at = _delivered_at(s, events, head_status)
    elif status is Status.AVAILABLE_FOR_PICKUP:
        where = head if head_status is Status.AVAILABLE_FOR_PICKUP else None
        pickup_point = _full_address(where) or (newest.location if newest else None)
    return Tracking(
        carrier="dhl",
        tracking_number=tracking_number,
        status=status,
        code=code,
        description=description,
        events=events,
        estimated_delivery=estimated,
        estimated_window=window,
        delivered_at=delivered_at,
        pickup_point=pickup_point,
        problems=tuple(dict.fromkeys(problems)),
        delivery_type=_delivery_type(s, events, pickup_point),
    )


def _delivery_type(
    s: dict[str, Any], events: tuple[TrackingEvent, ...], pickup_point: str | None
) -> DeliveryType | None:
    """A Packstation (locker) or a post office / service point, from the destination
    address (a Packstation address names it from the start) or the scan that put the
    parcel there; a parcel awaiting collection elsewhere waits at a DHL point."""
    destination = _full_address({"location": as_dict(s.get("destination"))}) or ""
    waiting = waiting_since(events)
    found = delivery_type_in(destination) or (
        delivery_type_in(waiting.description, waiting.location, pickup_point)
        if waiting is not None
        else None
    )
    if found is None and any(e.status is Status.AVAILABLE_FOR_PICKUP for e in events):
        return DeliveryType.PICKUP_POINT
    return found


def _map_event(
    tracking_number: str,
    service: str,
    ev: dict[str, Any],
    problems: list[str],
) -> tuple[Status | None, str]:
    """(canonical status or None, raw code as 'coarse' or 'coarse/detail')."""
    coarse = ev.get("statusCode") if isinstance(ev.get("statusCode"), str) else ""
    detail = _detail(service, ev)
    if detail is not None:
        detail_code, detail_status = detail
        allowed = WITHIN_COARSE.get(coarse)
        if detail_status is None or allowed is None or detail_status in allowed:
            return detail_status, f"{coarse}/{detail_code}" if coarse else detail_code
        problems.append(
            f"DHL: detail code {detail_code!r} ({detail_status}) contradicts statusCode "
            f"{coarse!r}; the statusCode is used"
        )
    mapped = STATUS_CODES.get(coarse, _MISSING)
    if mapped is _MISSING:
        if coarse:
            problem = f"DHL: unknown status code {coarse!r}"
            warn_unmapped(logger, "dhl", tracking_number, coarse, problems, problem)
        elif "DHL: event without statusCode" not in problems:
            problems.append("DHL: event without statusCode")
        return Status.UNKNOWN, coarse or "?"
    return mapped, coarse


def _detail(service: str, ev: dict[str, Any]) -> tuple[str, Status | None] | None:
    table = DETAIL_CODES.get(service)
    if table is None:
        return None
    for field in ("statusDetailed", "status"):
        raw = ev.get(field)
        if not isinstance(raw, str):
            continue
        code = raw.strip().upper()
        if not _CODE_SHAPE.match(code):
            continue  # prose, not a code
        mapped = table.get(code, _MISSING)
        if mapped is not _MISSING:
            return code, mapped
        if service == "parcel-pl":
            for prefix, status in PL_PREFIXES:
                if code.startswith(prefix):
                    return code, status
    return None


def _timestamp(value: Any, country: str | None, service: str = "") -> tuple[datetime | None, bool]:
    """(UTC time, False if it had no offset and no known zone and was read as UTC).

    Without an offset the time is local: to the event's country when that country has
    one zone, else (no country given) to a domestic division's home zone."""
    if not isinstance(value, str):
        return None, True
    try:
        moment = datetime.fromisoformat(value.strip())
        if moment.tzinfo is not None:
            return moment.astimezone(UTC), True
        zone = COUNTRY_ZONES.get(country) if country else SERVICE_ZONES.get(service)
        if zone is None:
            return moment.replace(tzinfo=UTC), False
        return moment.replace(tzinfo=ZoneInfo(zone)).astimezone(UTC), True
    except (ValueError, OverflowError):  # not ISO 8601, or out of datetime's range
        return None, True


def _estimate(
    s: dict[str, Any], problems: list[str]
) -> tuple[date | None, tuple[datetime, datetime] | None]:
    """The date DHL gives (as printed, i.e. local), and the window in UTC when there is one."""
    eta = _date(s.get("estimatedTimeOfDelivery"))
    frame = as_dict(s.get("estimatedDeliveryTimeFrame"))
    dest = as_dict(as_dict(s.get("destination")).get("address")).get("countryCode")
    country = dest if isinstance(dest, str) else None
    service = s.get("service") if isinstance(s.get("service"), str) else ""
    start, zoned_start = _timestamp(frame.get("estimatedFrom"), country, service)
    end, zoned_end = _timestamp(frame.get("estimatedThrough"), country, service)
    window = None
    if start is not None and end is not None and start <= end:
        window = (start, end)
        if not (zoned_start and zoned_end):
            problems.append("DHL: delivery window without offset or destination zone; read as UTC")
    if eta is None:
        eta = _date(frame.get("estimatedFrom"))
    return eta, window


def _delivered_at(
    s: dict[str, Any], events: tuple[TrackingEvent, ...], head_status: Status | None
) -> datetime | None:
    for event in reversed(events):
        if event.status is Status.DELIVERED:
            return event.occurred_at
    head = as_dict(s.get("status"))
    pod = as_dict(as_dict(s.get("details")).get("proofOfDelivery"))
    for value in (head.get("timestamp") if head_status else None, pod.get("timestamp")):
        moment, _ = _timestamp(value, _country(head), str(s.get("service")))
        if moment is not None:
            return moment
    return None


def _date(value: Any) -> date | None:
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def _country(ev: dict[str, Any]) -> str | None:
    code = as_dict(as_dict(ev.get("location")).get("address")).get("countryCode")
    return code.upper() if isinstance(code, str) else None


def _location(ev: dict[str, Any]) -> str | None:
    address = as_dict(as_dict(ev.get("location")).get("address"))
    parts = [address.get("addressLocality"), address.get("countryCode")]
    text = ", ".join(p.strip() for p in parts if isinstance(p, str) and p.strip())
    return text or None


def _full_address(ev: dict[str, Any] | None) -> str | None:
    if ev is None:
        return None
    address = as_dict(as_dict(ev.get("location")).get("address"))
    city = " ".join(
        p.strip()
        for p in (address.get("postalCode"), address.get("addressLocality"))
        if isinstance(p, str) and p.strip()
    )
    parts = [address.get("streetAddress"), city, address.get("countryCode")]
    text = ", ".join(p.strip() for p in parts if isinstance(p, str) and p.strip())
    return text or None
