"""DPD through the parcel lifecycle JSON ("plc") behind DPD's own tracking pages.

Choice (CARRIERS.md section 5, option A): GET {base}/rest/plc/{locale}/{parcelNumber} on
tracking.dpd.de; no credentials, one parcel per request, same JSON for DPD Group parcels
of many countries. RISK: it is not a documented or contracted API. There is no SLA, no
published rate limit (we stay polite: 1 request/s) and DPD may change or block it
without notice; the contracted replacement is option B, the DPD Web Services SOAP
`ParcelLifeCycleService` (delisId + authToken), which exposes the same lifecycle concepts
(milestones plus numbered scan codes), so SCAN_CODES and MILESTONES below carry over.
Quirks: scans come oldest first; scan times are local ISO without an offset, read as
Europe/Berlin (the service's home zone; DPD Group countries we ship to are on CET/CEST
apart from a few) and converted to UTC; milestone dates are display strings. A
delivery to a Pickup parcel shop is also scan 13: we read it as `available_for_pickup`
when the scan's text names a parcel shop, and the later 13 (collection) as delivered.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from typing import Any
from urllib.parse import quote
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

_ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def iso7064_mod37_36(s: str) -> str:
    """ISO 7064 hybrid MOD 37,36 check character over digits and letters (DPD labels)."""
    product = 36
    for c in s:
        total = (product + _ALNUM.index(c)) % 36 or 36
        product = (total * 2) % 37
    return _ALNUM[(37 - product) % 36]


def label_check_ok(n: str) -> bool:
    """A 28-character label barcode ends with the MOD 37,36 check of the other 27."""
    return iso7064_mod37_36(n[:27]) == n[27]


META = CarrierMeta(
    slug="dpd",
    name="DPD",
    api_url="https://tracking.dpd.de",
    tracking_pages={
        "pl": "https://tracking.dpd.de/status/pl_PL/parcel/{number}",
        "de": "https://tracking.dpd.de/status/de_DE/parcel/{number}",
        "*": "https://tracking.dpd.de/status/en_GB/parcel/{number}",
    },
    # formats: CARRIERS.md section 6 and DPD's label documentation
    number_patterns=(
        # zip (7) + parcel (14) + service (3) + country (3) + check character
        NumberPattern(r"^\d{27}[0-9A-Z]$", label_check_ok),
        NumberPattern(r"^\d{14}[0-9A-Z]?$"),  # parcel number, optional printed check character
        NumberPattern(r"^\d{13}[A-Z]$"),  # DPD Poland waybill (unverified pattern)
    ),
    # a system return (scan 06, e.g. an invalid address): the parcel goes back
    delay_thresholds={"undeliverable_codes": frozenset({"06"})},
)

_S = Status
LOCAL_ZONE = ZoneInfo("Europe/Berlin")

#: DPD Group scan codes (DPD NL "Statusdata via SFTP", same numbers in BE SCANINFO),
#: leading zeros stripped.
SCAN_CODES: dict[str, Status | None] = {
    "1": _S.IN_TRANSIT,  # consolidation: sorted between depots
    "2": _S.IN_TRANSIT,  # inbound at destination depot
    "3": _S.OUT_FOR_DELIVERY,  # out for delivery
    "4": _S.DELIVERY_ATTEMPTED,  # driver's return: not delivered, back at depot
    "5": _S.IN_TRANSIT,  # pick-up: first scan at sending depot
    "6": _S.EXCEPTION,  # system return (e.g. invalid address); see RETURN_TEXT
    "8": _S.IN_TRANSIT,  # warehouse: stored, delivery next day (a delay signal)
    "9": _S.EXCEPTION,  # inbound after an exception
    "10": _S.IN_TRANSIT,  # hub scan
    "12": _S.IN_TRANSIT,  # customs clearance process
    "13": _S.DELIVERED,  # delivered, or at / collected from a Pickup parcel shop (below)
    "14": _S.DELIVERY_ATTEMPTED,  # delivery attempt not successful
    "15": _S.IN_TRANSIT,  # driver's pick-up: collected from the shipper
}

#: plc milestones (`statusInfo[].status`); used only while there are no scans yet.
MILESTONES: dict[str, Status | None] = {
    "ACCEPTED": _S.LABEL_CREATED,  # order data transmitted, no scan yet
    "ON_THE_ROAD": _S.IN_TRANSIT,  # between depots
    "AT_DELIVERY_DEPOT": _S.IN_TRANSIT,  # at the delivery depot
    "HANDOVER_CONSIGNOR_TO_PARCELSHOP": _S.IN_TRANSIT,  # sender dropped it at a shop
    "OUT_FOR_DELIVERY": _S.OUT_FOR_DELIVERY,  # on the van
    "DELIVERED": _S.DELIVERED,  # delivered
}

#: A scan 13 whose text names a parcel shop is a delivery *to* the shop...
SHOP_TEXT = re.compile(r"parcel\s*shop|pickup\s*(?:point|station|shop)|paketshop", re.I)
#: ...unless it says the recipient collected it there.
COLLECTED_TEXT = re.compile(r"collected|picked up by|abgeholt|consignee", re.I)
#: After a scan 06 (system return), scans with this text are the return leg.
RETURN_TEXT = re.compile(r"return|retour|rücksend|zurück", re.I)

_MISSING: Any = object()


class Dpd(Carrier):
    """DPD parcel lifecycle JSON; no credentials."""

    meta = META
    default_rate_per_s = 1.0  # our courtesy, not a published limit
    own_unknown_codes = frozenset(
        c for table in (SCAN_CODES, MILESTONES) for c, s in table.items() if s is Status.UNKNOWN
    )

    def __init__(self, base_url: str, locale: str = "en_DE") -> None:
        super().__init__(base_url)
        self.locale = locale

    def build_request(self, tracking_number: str) -> HttpRequest:
        return HttpRequest(
            "GET",
            f"{self.base_url}/rest/plc/{quote(self.locale, safe='')}/"
            f"{quote(parcel_number(tracking_number), safe='')}",
            {"Accept": "application/json"},
        )

    def parse(self, tracking_number: str, status_code: int, body: bytes) -> Tracking:
        return parse_lifecycle(tracking_number, status_code, body)


def parcel_number(tracking_number: str) -> str:
    """The 14-digit parcel number from what a label or a shop may show.

    28-character label barcode: zip (7) + parcel number (14) + service (3) + country (3)
    + check character; a printed 14-digit number may carry a 15th check character."""
    n = tracking_number.replace(" ", "").replace("-", "").upper()
    if len(n) == 28 and n[:27].isdigit():
        return n[7:21]
    if len(n) == 15 and n[:14].isdigit():
        return n[:14]
    return n


# --- parsing (pure) ----------------------------------------------------------


def parse_lifecycle(tracking_number: str, status_code: int, body: bytes) -> Tracking:
    """Normalise one plc answer (any status code, any body)."""
    if status_code == 404:
        return not_found("dpd", tracking_number, "DPD: HTTP 404 (parcel unknown)")
    try:
        doc = decode_json(body)
    except NOT_JSON:
        return failed("dpd", tracking_number, not_json("dpd", status_code, body))
    if status_code != 200:
        return failed("dpd", tracking_number, f"DPD: HTTP {status_code}")
    data = as_dict(as_dict(as_dict(doc).get("parcellifecycleResponse")).get("parcelLifeCycleData"))
    if not data:
        return not_found("dpd", tracking_number, "DPD: no lifecycle data for this parcel")
    answered = as_dict(data.get("shipmentInfo")).get("parcelLabelNumber")
    if isinstance(answered, str) and not same_parcel(parcel_number(tracking_number), answered):
        return other_parcel("dpd", tracking_number, answered) or failed(
            "dpd", tracking_number, "DPD: the answer is about another parcel"
        )
    problems: list[str] = []
    events = sorted_unique(_scan_events(tracking_number, data, problems))
    milestone = _current_milestone(data)
    newest = current_status(events)
    status: Status | None = None
    code = description = None
    if newest is not None:
        status, code, description = newest.status, newest.code, newest.description
    elif milestone:
        name = milestone.get("status") if isinstance(milestone.get("status"), str) else ""
        mapped = MILESTONES.get(name, _MISSING)
        if mapped is _MISSING:
            _warn_unmapped(tracking_number, name or "?", "milestone", problems)
            mapped = Status.UNKNOWN
        status, code = mapped, name
        description = as_text(milestone.get("label"))
    if status is None:
        status = Status.UNKNOWN
        problems.append("DPD: no scans and no current milestone")
    delivered_at = None
    if status is Status.DELIVERED:
        delivered_at = next(
            (e.occurred_at for e in reversed(events) if e.status is Status.DELIVERED), None
        ) or _milestone_date(milestone)  # strptime is slow: only without a delivery scan
    pickup_point = None
    waiting = waiting_since(events) if status is Status.AVAILABLE_FOR_PICKUP else None
    if waiting is not None:
        # "Delivered to DPD Pickup parcel shop: Kiosk am Markt, Marktstr. 3, 10178 Berlin"
        _, colon, shop = waiting.description.partition(":")
        pickup_point = shop.strip() if colon and shop.strip() else waiting.location
    product = as_text(as_dict(data.get("shipmentInfo")).get("productName"))
    delivery = delivery_type_in(product) or (
        DeliveryType.PICKUP_POINT
        if any(e.status is Status.AVAILABLE_FOR_PICKUP for e in events)
        else None
    )
    return Tracking(
        carrier="dpd",
        tracking_number=tracking_number,
        status=status,
        code=code,
        description=description,
        events=events,
        delivered_at=delivered_at,
        pickup_point=pickup_point,
        problems=tuple(problems),
        delivery_type=delivery,
    )


def _scan_events(
    tracking_number: str, data: dict[str, Any], problems: list[str]
) -> list[TrackingEvent]:
    events: list[TrackingEvent] = []
    at_shop = False  # a 13 put the parcel in a shop: the next 13 is the collection
    system_return = False  # a 06 was seen: return-leg scans become returned_to_sender
    unreadable = 0
    timed: list[tuple[datetime, dict[str, Any], dict[str, Any]]] = []
    ordered = True
    for scan in as_list(as_dict(data.get("scanInfo")).get("scan")):
        if type(scan) is not dict:
            continue
        scan_data = as_dict(scan.get("scanData"))
        occurred_at = _local_time(scan.get("date")) or _local_time(scan_data.get("date"))
        if occurred_at is None:
            unreadable += 1
            continue
        if timed and occurred_at < timed[-1][0]:
            ordered = False
        timed.append((occurred_at, scan_data, scan))
    if not ordered:  # the shop/return logic below reads scans oldest first
        timed.sort(key=itemgetter(0))
    for occurred_at, scan_data, scan in timed:
        scan_type = as_dict(scan_data.get("scanType"))
        raw = scan_type.get("code")
        if type(raw) is not str:
            raw = str(raw) if type(raw) is int else ""
        raw = raw.strip()
        key = raw.lstrip("0") or ("0" if raw else "")
        text = _joined(as_dict(scan.get("scanDescription")).get("content"))
        name = scan_type.get("name")
        name = name if type(name) is str else ""
        status = SCAN_CODES.get(key, _MISSING)
        if not key:
            status = Status.UNKNOWN
            if "DPD: scan without a scan code" not in problems:
                problems.append("DPD: scan without a scan code")
        elif status is _MISSING:
            _warn_unmapped(tracking_number, raw, "scan", problems)
            status = Status.UNKNOWN
        elif key == "13":
            if at_shop:
                at_shop = False
            elif SHOP_TEXT.search(f"{name} {text}") and not COLLECTED_TEXT.search(text):
                status, at_shop = Status.AVAILABLE_FOR_PICKUP, True
        if key == "6":
            system_return = True
        elif system_return and status is not Status.EXCEPTION and RETURN_TEXT.search(text):
            status = Status.RETURNED_TO_SENDER
        code = raw or "?"
        extra = as_dict(scan_data.get("additionalCodes")).get("additionalCode")
        if extra and type(extra) is list:
            code = "/".join(
                [
                    code,
                    *(a["code"] for a in extra if type(a) is dict and type(a.get("code")) is str),
                ]
            )
        place = as_text(scan_data.get("location")) or as_text(scan_data.get("country"))
        events.append(TrackingEvent(occurred_at, status, code, text or name, place))
    if unreadable:
        problems.append(f"DPD: {unreadable} scan(s) without a readable date; left out")
    return events


def _current_milestone(data: dict[str, Any]) -> dict[str, Any]:
    for item in as_list(data.get("statusInfo")):
        if isinstance(item, dict) and item.get("isCurrentStatus") is True:
            return item
    return {}


#: Europe/Berlin's UTC offset per local hour (ordinal * 24 + hour): zoneinfo is slow on
#: the hot path and Berlin's transitions fall on whole hours.
_BERLIN_OFFSETS: dict[int, timedelta] = {}


def _local_time(value: Any) -> datetime | None:
    """ISO local time without offset (Europe/Berlin) -> UTC; an offset, if present, wins."""
    if type(value) is not str:
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
        if moment.tzinfo is not None:
            return moment.astimezone(UTC)
        hour = moment.toordinal() * 24 + moment.hour
        offset = _BERLIN_OFFSETS.get(hour)
        if offset is None:
            offset = LOCAL_ZONE.utcoffset(moment) or timedelta(0)
            if len(_BERLIN_OFFSETS) < 4096:
                _BERLIN_OFFSETS[hour] = offset
        return (moment - offset).replace(tzinfo=UTC)
    except (ValueError, OverflowError):  # not ISO 8601, or out of datetime's range
        return None


def _milestone_date(milestone: dict[str, Any]) -> datetime | None:
    """Milestone dates are display strings: '20.01.2026, 12:23' (Europe/Berlin)."""
    value = milestone.get("date")
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.strptime(value.strip(), "%d.%m.%Y, %H:%M")
        return moment.replace(tzinfo=LOCAL_ZONE).astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def _joined(content: Any) -> str:
    if type(content) is not list:
        return ""
    try:
        return " ".join(content).strip()
    except TypeError:  # not all strings
        return " ".join(c for c in content if type(c) is str).strip()


def _warn_unmapped(tracking_number: str, code: str, kind: str, problems: list[str]) -> None:
    problem = f"DPD: unknown {kind} code {code!r}"
    warn_unmapped(logger, "dpd", tracking_number, code, problems, problem)
