"""UPS Tracking API ("Track API", spec `specs/ups_tracking.yaml`), one number per request.

Docs: developer.ups.com (Tracking, OAuth Client Credentials); notes in CARRIERS.md section 2.
Auth: OAuth2 client credentials at POST {base}/security/v1/oauth/token (Basic auth, form
`grant_type=client_credentials`); the bearer token is cached until shortly before
`issued_at + expires_in` and fetched again once when a tracking call answers 401.
Request: GET {base}/api/track/v1/details/{n}?locale=en_US with `transId` (unique per
request, at most 32 characters) and `transactionSrc`. Rate limit: none published; 429
means back off. Quirks: three overlapping code families per activity; we map the
3-digit `statusCode` and fall back to the activity type letter; informational codes
(photo taken, date updated, customer requests) keep the previous status. Activities
come newest first; `gmtDate`/`gmtTime` give UTC directly (`gmtTime` may lose its
leading zero: '74700'). Not found shows up as `TW0001` (200 warning or 404 error).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from datetime import time as clock_time
from typing import Any
from urllib.parse import quote, urlencode

from aftersale.carriers_meta import CarrierMeta, NumberPattern
from aftersale.errors import CarrierAuthError, CarrierUnavailable
from aftersale.models import DeliveryType, Status, Tracking, TrackingEvent
from carriers.base import (
    NOT_JSON,
    Carrier,
    as_dict,
    as_list,
    as_text,
    current_status,
    decode_json,
    failed,
    not_found,
    not_json,
    other_parcel,
    raise_for_outage,
    same_parcel,
    sorted_unique,
    warn_unmapped,
)
from carriers.transport import HttpClient, HttpRequest

logger = logging.getLogger(__name__)


def check_digit_ok(n: str) -> bool:
    """1Z + 15 characters + check digit: letters count (ord - ord('A') + 2) % 10, every
    second character doubled, check = (10 - sum % 10) % 10."""
    total = 0
    for i, c in enumerate(n[2:17]):
        value = int(c) if c.isdigit() else (ord(c) - ord("A") + 2) % 10
        total += value * 2 if i % 2 else value
    return n[17].isdigit() and (10 - total % 10) % 10 == int(n[17])


META = CarrierMeta(
    slug="ups",
    name="UPS",
    api_url="https://onlinetools.ups.com",
    # UPS localises by loc=<language>_<country>: en_US, en_GB, de_AT, pl_PL ...
    tracking_pages={"*": "https://www.ups.com/track?loc={lang}_{region}&tracknum={number}"},
    # formats: CARRIERS.md section 6 (jkeen/tracking_number_data)
    number_patterns=(NumberPattern(r"^1Z[0-9A-Z]{16}$", check_digit_ok),),
    sandbox_env={"UPS_CLIENT_ID": "sandbox-client", "UPS_CLIENT_SECRET": "sandbox-secret"},
    # going back to the sender: refused, or UPS gave up delivering it
    delay_thresholds={"undeliverable_codes": frozenset({"064", "069"})},
)

_S = Status

#: 3-digit `activity.status.statusCode` -> canonical status; None = informational, keep the
#: previous status. UPS table "Tracking-status-description-codes" (karrio vendors copy).
STATUS_CODES: dict[str, Status | None] = {
    # --- label_created: UPS knows the parcel but has not received it
    "003": _S.LABEL_CREATED,  # order processed: ready for UPS
    "157": _S.LABEL_CREATED,  # shipment ready for UPS
    "166": _S.LABEL_CREATED,  # shipment ready for Roadie
    "079": _S.LABEL_CREATED,  # order processed
    "080": _S.LABEL_CREATED,  # order processed (in transit to UPS soon)
    "070": _S.LABEL_CREATED,  # package not yet at the UPS Access Point for drop-off
    # --- in_transit
    "005": _S.IN_TRANSIT,  # on the way
    "010": _S.IN_TRANSIT,  # on the way
    "025": _S.IN_TRANSIT,  # on the way
    "039": _S.IN_TRANSIT,  # on the way
    "047": _S.IN_TRANSIT,  # on the way
    "087": _S.IN_TRANSIT,  # on the way
    "158": _S.IN_TRANSIT,  # on the way
    "159": _S.IN_TRANSIT,  # on the way
    "164": _S.IN_TRANSIT,  # on the way
    "165": _S.IN_TRANSIT,  # on the way
    "038": _S.IN_TRANSIT,  # picked up by UPS
    "160": _S.IN_TRANSIT,  # we have your package
    "167": _S.IN_TRANSIT,  # dropped off by customer
    "168": _S.IN_TRANSIT,  # dropped off by customer
    "169": _S.IN_TRANSIT,  # dropped off by customer
    "044": _S.IN_TRANSIT,  # on the way to UPS
    "045": _S.IN_TRANSIT,  # on the way to UPS
    "012": _S.IN_TRANSIT,  # clearance in progress
    "014": _S.IN_TRANSIT,  # clearance completed
    "084": _S.IN_TRANSIT,  # clearance in progress
    "092": _S.IN_TRANSIT,  # cleared by customs
    "134": _S.IN_TRANSIT,  # clearance completed
    "016": _S.IN_TRANSIT,  # in warehouse
    "057": _S.IN_TRANSIT,  # on the way to the UPS Access Point
    "071": _S.IN_TRANSIT,  # preparing for delivery
    "073": _S.IN_TRANSIT,  # with UPS delivery partner
    "074": _S.IN_TRANSIT,  # with UPS delivery partner
    "137": _S.IN_TRANSIT,  # with UPS delivery partner
    "075": _S.IN_TRANSIT,  # scheduled for delivery
    "138": _S.IN_TRANSIT,  # awaiting departure
    "055": _S.IN_TRANSIT,  # rescheduled (a delay signal, not an exception)
    "136": _S.IN_TRANSIT,  # rescheduled
    "063": _S.IN_TRANSIT,  # delivery change completed
    # --- out_for_delivery
    "006": _S.OUT_FOR_DELIVERY,  # out for delivery
    "021": _S.OUT_FOR_DELIVERY,  # out for delivery
    "037": _S.OUT_FOR_DELIVERY,  # out for delivery
    "089": _S.OUT_FOR_DELIVERY,  # out for delivery
    "091": _S.OUT_FOR_DELIVERY,  # out for delivery
    "146": _S.OUT_FOR_DELIVERY,  # out for delivery
    "162": _S.OUT_FOR_DELIVERY,  # out for delivery
    "072": _S.OUT_FOR_DELIVERY,  # loaded on delivery vehicle
    "078": _S.OUT_FOR_DELIVERY,  # driver arriving soon
    # --- available_for_pickup
    "017": _S.AVAILABLE_FOR_PICKUP,  # held for customer pickup
    "040": _S.AVAILABLE_FOR_PICKUP,  # ready for customer pickup
    "161": _S.AVAILABLE_FOR_PICKUP,  # delivered to UPS Access Point: waiting for the customer
    "144": _S.AVAILABLE_FOR_PICKUP,  # delivered to post office for pickup
    # --- delivered
    "011": _S.DELIVERED,  # delivered
    "026": _S.DELIVERED,  # delivered by local post office
    "143": _S.DELIVERED,  # delivered to agent
    # --- delivery_attempted
    "022": _S.DELIVERY_ATTEMPTED,  # first delivery attempt
    "023": _S.DELIVERY_ATTEMPTED,  # second delivery attempt
    "024": _S.DELIVERY_ATTEMPTED,  # final delivery attempt
    "060": _S.DELIVERY_ATTEMPTED,  # delivery attempted
    "145": _S.DELIVERY_ATTEMPTED,  # delivery attempted
    "061": _S.DELIVERY_ATTEMPTED,  # adult signature required
    "062": _S.DELIVERY_ATTEMPTED,  # funds required (COD)
    "066": _S.DELIVERY_ATTEMPTED,  # post office delivery attempt
    # --- exception
    "013": _S.EXCEPTION,  # exception
    "029": _S.EXCEPTION,  # action required
    "030": _S.EXCEPTION,  # local post office exception
    "046": _S.EXCEPTION,  # delay
    "048": _S.EXCEPTION,  # delay
    "086": _S.EXCEPTION,  # delay
    "090": _S.EXCEPTION,  # delay
    "049": _S.EXCEPTION,  # delay: action required
    "032": _S.EXCEPTION,  # weather / emergency delay
    "051": _S.EXCEPTION,  # weather / emergency delay
    "052": _S.EXCEPTION,  # weather / emergency delay
    "053": _S.EXCEPTION,  # weather / emergency delay
    "050": _S.EXCEPTION,  # address information required
    "058": _S.EXCEPTION,  # clearance information needed
    "124": _S.EXCEPTION,  # clearance information needed
    "125": _S.EXCEPTION,  # incomplete clearance documents
    "141": _S.EXCEPTION,  # clearance information needed
    "123": _S.EXCEPTION,  # pending broker release
    "126": _S.EXCEPTION,  # pending agency release
    "059": _S.EXCEPTION,  # damage reported
    "064": _S.EXCEPTION,  # delivery refused
    "068": _S.EXCEPTION,  # sent to lost and found
    "069": _S.EXCEPTION,  # unable to deliver
    "076": _S.EXCEPTION,  # delivery partner exception
    "083": _S.EXCEPTION,  # held
    "085": _S.EXCEPTION,  # held for COD payment
    "019": _S.EXCEPTION,  # held for future delivery
    "132": _S.EXCEPTION,  # airport security delay
    "139": _S.EXCEPTION,  # security access required
    "147": _S.EXCEPTION,  # seized
    "149": _S.EXCEPTION,  # destroyed
    "065": _S.EXCEPTION,  # pickup attempted
    "131": _S.EXCEPTION,  # pickup attempted
    "135": _S.EXCEPTION,  # pickup attempted
    # --- returned_to_sender
    "034": _S.RETURNED_TO_SENDER,  # returned to sender
    "035": _S.RETURNED_TO_SENDER,  # returning to sender
    "036": _S.RETURNED_TO_SENDER,  # returning to sender
    "067": _S.RETURNED_TO_SENDER,  # returned by post office
    "081": _S.RETURNED_TO_SENDER,  # returned, damage reported
    # --- cancelled
    "007": _S.CANCELLED,  # shipment information voided
    # --- informational: keep the previous status
    "153": None,  # updated delivery time
    "154": None,  # updated delivery date
    "155": None,  # delivery photo taken
    "082": None,  # delivery instructions received
    "018": None,  # customer request
    "020": None,  # customer request
    "027": None,  # customer request
    "028": None,  # customer request
    "033": None,  # customer request
    "041": None,  # customer request
    "042": None,  # customer request
    "054": None,  # customer request
    "056": None,  # customer request
    **{f"{n:03d}": None for n in range(95, 123)},  # 095-122: customer requests (hold, reroute,
    # upgrade, return requested...) and their confirmations, including 114 request cancelled
    "127": None,  # investigation / claim
    "128": None,  # investigation / claim
    "129": None,  # investigation / claim
    "130": None,  # investigation / claim
    "140": None,  # investigation / claim
    "142": None,  # investigation / claim
    "133": None,  # return label left
    "156": None,  # commercial inside release
    "093": None,  # UPS Premier recovery
    "094": None,  # UPS Premier recovery
    # --- unknown: UPS itself has no information
    "000": _S.UNKNOWN,  # status not available
    "148": _S.UNKNOWN,  # package information unavailable
    "163": _S.UNKNOWN,  # package information unavailable
    "088": _S.UNKNOWN,  # test
}
#: Status codes that mean the parcel waits at a UPS Access Point (not a UPS counter).
ACCESS_POINT_CODES = frozenset({"161"})

#: Activity type letter -> canonical status, used only when `statusCode` is missing.
ACTIVITY_TYPES: dict[str, Status | None] = {
    "M": _S.LABEL_CREATED,  # billing information received
    "MV": _S.CANCELLED,  # billing information voided
    "I": _S.IN_TRANSIT,  # in transit (refined by OUT_FOR_DELIVERY_CODES)
    "P": _S.IN_TRANSIT,  # pickup (older XML API)
    "D": _S.DELIVERED,  # delivered
    "X": _S.EXCEPTION,  # exception
    "DO": _S.IN_TRANSIT,  # delivered origin CFS (freight)
    "W": _S.IN_TRANSIT,  # warehousing (freight)
    "DD": _S.DELIVERED,  # delivered destination CFS (freight)
    "NA": _S.UNKNOWN,  # not available
    "U": None,  # updates (Track Alert only)
}

#: Activity codes that mean "on the vehicle today" under activity type I/P.
OUT_FOR_DELIVERY_CODES = frozenset({"OD", "OF", "OT", "YI", "YF"})

#: Error/warning codes that mean UPS does not know the number.
NOT_FOUND_CODES = frozenset({"TW0001", "TV1002", "151018", "151044"})

#: Delivery windows (`deliveryTime.type`) that give a start and end time.
_WINDOW_TYPES = frozenset({"EDW", "CDW", "IDW"})

#: Cache a token until this long before UPS says it expires (karrio keeps 30 min on
#: 4-hour tokens; we keep at most 5 min, and at most half the lifetime of short tokens).
TOKEN_MARGIN_S = 300.0

_MISSING: Any = object()


@dataclass(frozen=True, slots=True)
class AccessToken:
    value: str
    expires_at: float  # epoch seconds, margin already taken off


class Ups(Carrier):
    """UPS Track API with an OAuth2 client-credentials token cached per instance."""

    meta = META
    own_unknown_codes = frozenset(
        c for table in (STATUS_CODES, ACTIVITY_TYPES) for c, s in table.items() if s is _S.UNKNOWN
    )

    def __init__(
        self,
        base_url: str,
        client_id: str | None = None,
        client_secret: str | None = None,
        transaction_src: str = "aftersale",
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(base_url)
        self.client_id = client_id
        self.client_secret = client_secret
        self.transaction_src = transaction_src
        self._clock = clock
        self._token: AccessToken | None = None
        self._lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def from_env(cls, base_url: str, env: Mapping[str, str]) -> Ups:
        return cls(base_url, env.get("UPS_CLIENT_ID"), env.get("UPS_CLIENT_SECRET"))

    @property
    def has_credentials(self) -> bool:
        return bool(self.client_id) and self.client_secret is not None

    # --- pure halves -------------------------------------------------------

    def build_token_request(self) -> HttpRequest:
        pair = f"{self.client_id or ''}:{self.client_secret or ''}".encode()
        return HttpRequest(
            "POST",
            f"{self.base_url}/security/v1/oauth/token",
            {
                "Authorization": "Basic " + base64.b64encode(pair).decode("ascii"),
                "Accept": "application/json",
                "Content-Type": "application/x-www-form-urlencoded",
            },
            urlencode({"grant_type": "client_credentials"}).encode("ascii"),
        )

    def parse_token_response(self, status_code: int, body: bytes, now: float) -> AccessToken:
        """The token UPS issued, or the error that says why there is none."""
        if status_code in (400, 401, 403):
            raise CarrierAuthError(
                self.slug, None, f"token request refused (HTTP {status_code}): {_errors_text(body)}"
            )
        if status_code != 200:  # 429, 5xx, or anything else unexpected: try again later
            raise CarrierUnavailable(self.slug, None, f"token request failed: HTTP {status_code}")
        try:
            doc = decode_json(body)
            value = doc["access_token"]
        except (ValueError, TypeError, KeyError, RecursionError) as exc:
            raise CarrierUnavailable(self.slug, None, f"token response unreadable: {exc}") from exc
        if not isinstance(value, str) or not value:
            raise CarrierUnavailable(self.slug, None, "token response has no access_token")
        # Both are strings in the spec; an unreadable expiry means "use it once, not cached".
        lifetime = _seconds(doc.get("expires_in"))
        issued_ms = _seconds(doc.get("issued_at"))
        issued = now
        if 0 < issued_ms / 1000 <= now:  # trust UPS's clock unless it is ahead of ours
            issued = issued_ms / 1000
        margin = min(TOKEN_MARGIN_S, lifetime / 2)
        return AccessToken(value, issued + lifetime - margin)

    def build_request(self, tracking_number: str, access_token: str | None = None) -> HttpRequest:
        headers = {
            "transId": uuid.uuid4().hex,
            "transactionSrc": self.transaction_src,
            "Accept": "application/json",
        }
        if access_token:
            headers["Authorization"] = f"Bearer {access_token}"
        return HttpRequest(
            "GET",
            f"{self.base_url}/api/track/v1/details/{quote(tracking_number, safe='')}?locale=en_US",
            headers,
        )

    def parse(self, tracking_number: str, status_code: int, body: bytes) -> Tracking:
        return parse_track_response(tracking_number, status_code, body)

    # --- I/O ---------------------------------------------------------------

    async def fetch(self, client: HttpClient, tracking_number: str) -> Tracking:
        token = await self.access_token(client, tracking_number)
        response = await self.send(
            client, self.build_request(tracking_number, token), tracking_number
        )
        if response.status_code == 401 and self.has_credentials:
            self._forget(token)  # revoked or expired early: one fresh token, one retry
            token = await self.access_token(client, tracking_number)
            response = await self.send(
                client, self.build_request(tracking_number, token), tracking_number
            )
        if response.status_code == 401 and not self.has_credentials:
            raise CarrierAuthError(
                self.slug, tracking_number, "HTTP 401: no UPS client id/secret configured"
            )
        raise_for_outage(self.slug, tracking_number, response)
        tracking = self.parse_response(tracking_number, response.status_code, response.content)
        return self.believed(tracking, response.status_code)

    async def access_token(self, client: HttpClient, tracking_number: str) -> str | None:
        """A valid bearer token (fetched at most once at a time), or None without credentials."""
        if not self.has_credentials:
            return None
        token = self._token
        if token is not None and self._clock() < token.expires_at:
            return token.value
        async with self._get_lock():
            token = self._token
            if token is None or self._clock() >= token.expires_at:
                response = await self.send(client, self.build_token_request(), tracking_number)
                token = self.parse_token_response(
                    response.status_code, response.content, self._clock()
                )
                self._token = token
            return token.value

    def _forget(self, token: str | None) -> None:
        if self._token is not None and self._token.value == token:
            self._token = None

    def _get_lock(self) -> asyncio.Lock:
        # One lock per event loop: Prefect may drive the same adapter from several loops.
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock_loop is not loop:
            self._lock, self._lock_loop = asyncio.Lock(), loop
        return self._lock


# --- parsing (pure) ----------------------------------------------------------


def parse_track_response(tracking_number: str, status_code: int, body: bytes) -> Tracking:
    """Normalise one Track API answer (any status code, any body) into a `Tracking`."""
    try:
        doc = decode_json(body)
    except NOT_JSON:
        return failed("ups", tracking_number, not_json("ups", status_code, body))
    if not isinstance(doc, dict):
        return failed("ups", tracking_number, f"UPS: unexpected response (HTTP {status_code})")
    errors = _codes(as_dict(doc.get("response")).get("errors"))
    shipments = as_list(as_dict(doc.get("trackResponse")).get("shipment"))
    shipment = as_dict(shipments[0]) if shipments else {}
    warnings = _codes(shipment.get("warnings"))
    for code, message in errors + warnings:
        if code in NOT_FOUND_CODES:
            return not_found("ups", tracking_number, f"UPS {code}: {message}")
    if status_code == 404:
        return not_found("ups", tracking_number, f"UPS: HTTP 404 {_join_errors(errors)}".strip())
    if status_code != 200:
        text = _join_errors(errors) or "no error details"
        return failed("ups", tracking_number, f"UPS: HTTP {status_code}: {text}")
    packages = [p for p in as_list(shipment.get("package")) if isinstance(p, dict)]
    if not packages:
        return not_found("ups", tracking_number, "UPS: answer holds no package")
    package = _pick_package(tracking_number, packages)
    if package is None:
        return other_parcel("ups", tracking_number, packages[0].get("trackingNumber")) or failed(
            "ups", tracking_number, "UPS: the answer is about another parcel"
        )
    return _parse_package(tracking_number, package, warnings)


def _pick_package(tracking_number: str, packages: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The package with the number asked; one without a number if none names it; None when
    every package names another number."""
    named = [p for p in packages if isinstance(p.get("trackingNumber"), str)]
    for package in named:
        if same_parcel(tracking_number, package["trackingNumber"]):
            return package
    unnamed = [p for p in packages if p not in named]
    return unnamed[0] if unnamed else None


def _parse_package(
    tracking_number: str, pkg: dict[str, Any], warnings: list[tuple[str, str]]
) -> Tracking:
    problems: list[str] = [f"UPS warning {c}: {m}" for c, m in warnings]
    raw_events: list[TrackingEvent] = []
    last_offset: timezone | None = None  # of the newest activity: the parcel's local zone
    for activity in as_list(pkg.get("activity")):
        if not isinstance(activity, dict):
            continue
        st = as_dict(activity.get("status"))
        occurred_at, offset, problem = _activity_time(activity)
        if problem:
            problems.append(problem)
        if occurred_at is None:
            continue
        if last_offset is None and offset is not None:
            last_offset = offset
        status, code, unmapped = _map_status(st)
        if unmapped:
            _warn_unmapped(tracking_number, code, problems)
        description = as_text(st.get("description")) or as_text(st.get("type")) or ""
        place = _location(as_dict(activity.get("location")).get("address"))
        raw_events.append(TrackingEvent(occurred_at, status, code, description, place))
    events = sorted_unique(raw_events)
    newest = current_status(events)
    status, code, description = (
        (newest.status, newest.code, newest.description) if newest else (None, None, None)
    )
    current = pkg.get("currentStatus")
    if isinstance(current, dict) and current:
        cur_status, cur_code, unmapped = _map_status(current)
        if unmapped and not any(e.code == cur_code for e in events):
            _warn_unmapped(tracking_number, cur_code, problems)
        if cur_status is not None:
            status, code = cur_status, cur_code
            description = as_text(current.get("description")) or description
    if status is None:
        status = Status.UNKNOWN
        if not events:
            problems.append("UPS: no activity and no current status")
    estimated, window = _estimate(pkg, last_offset, problems)
    delivered_at = None
    if status is Status.DELIVERED:
        delivered_at = _delivered_at(pkg, events, last_offset, problems)
        estimated, window = None, None
    pickup_point = deadline = None
    if status is Status.AVAILABLE_FOR_PICKUP:
        pickup_point = _pickup_point(pkg, events)
        deadline = _collect_by(pkg, last_offset)
    return Tracking(
        carrier="ups",
        tracking_number=tracking_number,
        status=status,
        code=code,
        description=description,
        events=events,
        estimated_delivery=estimated,
        estimated_window=window,
        delivered_at=delivered_at,
        pickup_point=pickup_point,
        problems=tuple(problems),
        delivery_type=_delivery_type(pkg, events),
        pickup_deadline=deadline,
    )


def _delivery_type(pkg: dict[str, Any], events: tuple[TrackingEvent, ...]) -> DeliveryType | None:
    """An access point when the package carries accessPointInformation ("the access point
    where the package is destined for", from the start) or a scan put it in one (161);
    a post office or UPS counter for the other pickup codes; else the carrier says nothing."""
    if isinstance(pkg.get("accessPointInformation"), dict) or any(
        e.code in ACCESS_POINT_CODES for e in events
    ):
        return DeliveryType.ACCESS_POINT
    if any(e.status is Status.AVAILABLE_FOR_PICKUP for e in events):
        return DeliveryType.PICKUP_POINT
    return None


def _collect_by(pkg: dict[str, Any], offset: timezone | None) -> datetime | None:
    """The end of `pickupByDate` in the parcel's local time: the last moment to collect."""
    day = _date(as_dict(pkg.get("accessPointInformation")).get("pickupByDate"))
    if day is None:
        return None
    end = datetime.combine(day, clock_time(23, 59))
    return _to_utc(end, offset) if offset is not None else end.replace(tzinfo=UTC)


def _map_status(st: dict[str, Any]) -> tuple[Status | None, str, bool]:
    """(canonical status or None, raw code, True if the code is not in our tables)."""
    status_code = st.get("statusCode")
    if isinstance(status_code, int) and not isinstance(status_code, bool):
        status_code = f"{status_code:03d}"
    kind = st.get("type") if isinstance(st.get("type"), str) else ""
    scan = st.get("code") if isinstance(st.get("code"), str) else ""
    if isinstance(status_code, str) and status_code.strip():
        status_code = status_code.strip()
        mapped = STATUS_CODES.get(status_code, _MISSING)
        if mapped is _MISSING:
            return Status.UNKNOWN, status_code, True
        return mapped, status_code, False
    code = f"{kind}/{scan}" if scan else kind
    mapped = ACTIVITY_TYPES.get(kind, _MISSING)
    if mapped is _MISSING:
        return Status.UNKNOWN, code or "?", True
    if mapped is Status.IN_TRANSIT and scan in OUT_FOR_DELIVERY_CODES:
        return Status.OUT_FOR_DELIVERY, code, False
    return mapped, code, False


def _warn_unmapped(tracking_number: str, code: str, problems: list[str]) -> None:
    problem = f"UPS: unknown status code {code!r}"
    warn_unmapped(logger, "ups", tracking_number, code, problems, problem)


def _activity_time(
    activity: dict[str, Any],
) -> tuple[datetime | None, timezone | None, str | None]:
    """(UTC time, the local offset if known, problem). Prefers the gmt fields."""
    offset = _offset(activity.get("gmtOffset"))
    gmt = _datetime(activity.get("gmtDate"), activity.get("gmtTime"), "Z")
    if gmt is not None:
        return gmt, offset, None
    local = _datetime(activity.get("date"), activity.get("time"))
    if local is None:
        return None, offset, f"UPS: activity without a readable date: {activity.get('date')!r}"
    if offset is not None:
        return _to_utc(local, offset), offset, None
    return (
        local.replace(tzinfo=UTC),
        None,
        f"UPS: activity at local time {local:%Y-%m-%d %H:%M} without GMT fields; read as UTC",
    )


def _datetime(day: Any, clock: Any, zone: str = "") -> datetime | None:
    """'YYYYMMDD' + 'HHMMSS' (leading zero may be lost, colons tolerated) -> datetime,
    naive, or aware when `zone` is an ISO suffix such as 'Z'."""
    if type(day) is not str or len(day) != 8 or not day.isdigit():
        return None
    if type(clock) is str and len(clock) == 6 and clock.isdigit():
        t = clock  # the usual shape: no copying
    else:
        t = clock.replace(":", "") if isinstance(clock, str) else ""
        t = t.zfill(6) if t.isdigit() and len(t) <= 6 else "000000"
    try:
        return datetime.fromisoformat(f"{day}T{t}{zone}")  # basic ISO 8601, parsed in C
    except ValueError:
        return None


_OFFSETS: dict[str, timezone | None] = {}


def _offset(value: Any) -> timezone | None:
    """'-05:00' / '+0100' / '-5:00' -> timezone (memoised: a handful of values recur)."""
    if type(value) is not str:
        return None
    known = _OFFSETS.get(value, _MISSING)
    if known is not _MISSING:
        return known
    zone = _parse_offset(value)
    if len(_OFFSETS) < 512:
        _OFFSETS[value] = zone
    return zone


def _parse_offset(value: str) -> timezone | None:
    if len(value) < 2 or value[0] not in "+-":
        return None
    hours, _, minutes = value[1:].partition(":")
    if not minutes and len(hours) == 4:
        hours, minutes = hours[:2], hours[2:]
    if not hours.isdigit() or not (minutes or "0").isdigit():
        return None
    delta = timedelta(hours=int(hours), minutes=int(minutes or 0))
    if delta >= timedelta(hours=24):
        return None
    return timezone(-delta if value[0] == "-" else delta)


def _date(value: Any) -> date | None:
    if not isinstance(value, str) or len(value) != 8 or not value.isdigit():
        return None
    try:
        return date(int(value[:4]), int(value[4:6]), int(value[6:]))
    except ValueError:
        return None


def _estimate(
    pkg: dict[str, Any], offset: timezone | None, problems: list[str]
) -> tuple[date | None, tuple[datetime, datetime] | None]:
    """ETA from the rescheduled (RDD) or else scheduled (SDD) date, plus its time window."""
    by_type = {
        d["type"]: _date(d.get("date"))
        for d in as_list(pkg.get("deliveryDate"))
        if isinstance(d, dict) and isinstance(d.get("type"), str)
    }
    eta = by_type.get("RDD") or by_type.get("SDD")
    if eta is None:
        return None, None
    when = as_dict(pkg.get("deliveryTime"))
    if not isinstance(when.get("type"), str) or when["type"] not in _WINDOW_TYPES:
        return eta, None
    start = _datetime(eta.strftime("%Y%m%d"), when.get("startTime"))
    end = _datetime(eta.strftime("%Y%m%d"), when.get("endTime"))
    if start is None or end is None or not when.get("startTime") or not when.get("endTime"):
        return eta, None
    if offset is None:
        problems.append("UPS: delivery window without a known time zone; window left out")
        return eta, None
    return eta, (_to_utc(start, offset), _to_utc(end, offset))


def _delivered_at(
    pkg: dict[str, Any],
    events: tuple[TrackingEvent, ...],
    offset: timezone | None,
    problems: list[str],
) -> datetime | None:
    for event in reversed(events):
        if event.status is Status.DELIVERED:
            return event.occurred_at
    day = next(
        (
            d.get("date")
            for d in as_list(pkg.get("deliveryDate"))
            if as_dict(d).get("type") == "DEL"
        ),
        None,
    )
    when = as_dict(pkg.get("deliveryTime"))
    local = _datetime(day, when.get("endTime") if when.get("type") == "DEL" else None)
    if local is None:
        return None
    if offset is None:
        problems.append("UPS: delivery time without a known time zone; read as UTC")
        return local.replace(tzinfo=UTC)
    return _to_utc(local, offset)


def _to_utc(local: datetime, offset: timezone) -> datetime:
    # datetime.min/max plus an offset overflows; such dates are nonsense anyway
    if local.year in (1, 9999):
        return local.replace(tzinfo=UTC)
    return local.replace(tzinfo=offset).astimezone(UTC)


def _pickup_point(pkg: dict[str, Any], events: tuple[TrackingEvent, ...]) -> str | None:
    """Where the parcel waits: the access point's address from the activity that put it there."""
    for activity in as_list(pkg.get("activity")):
        st = as_dict(as_dict(activity).get("status"))
        if _map_status(st)[0] is Status.AVAILABLE_FOR_PICKUP:
            place = _full_address(as_dict(as_dict(activity).get("location")).get("address"))
            if place:
                return place
    return events[-1].location if events else None


def _location(address: Any) -> str | None:
    if type(address) is not dict:
        return None
    parts = []
    for key in ("city", "stateProvince", "countryCode"):
        part = address.get(key)
        if key == "countryCode" and not part:
            part = address.get("country")
        if type(part) is str and (part := part.strip()):
            parts.append(part)
    return ", ".join(parts) or None


def _full_address(address: Any) -> str | None:
    if not isinstance(address, dict):
        return None
    city = " ".join(
        p.strip()
        for p in (address.get("postalCode"), address.get("city"))
        if isinstance(p, str) and p.strip()
    )
    parts = [address.get("addressLine1"), city, address.get("countryCode")]
    text = ", ".join(p.strip() for p in parts if isinstance(p, str) and p.strip())
    return text or None


def _codes(items: Any) -> list[tuple[str, str]]:
    return [
        (str(i.get("code") or ""), str(i.get("message") or ""))
        for i in as_list(items)
        if isinstance(i, dict)
    ]


def _join_errors(errors: list[tuple[str, str]]) -> str:
    return "; ".join(f"{c} {m}".strip() for c, m in errors)


def _errors_text(body: bytes) -> str:
    try:
        doc = decode_json(body)
    except NOT_JSON:
        return body[:200].decode("utf-8", "replace")
    return _join_errors(_codes(as_dict(as_dict(doc).get("response")).get("errors"))) or "no details"


def _seconds(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.0
    return number if 0 <= number < 1e15 else 0.0
