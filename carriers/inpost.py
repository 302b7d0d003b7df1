"""InPost ShipX tracking (Poland): parcel lockers and courier.

API docs: InPost Confluence, space PL, "Tracking przesyłki" and "Statuses"
  (dokumentacja-inpost.atlassian.net). `GET {base}/v1/tracking/{tracking_number}`.
Hosts: production https://api-shipx-pl.easypack24.net,
  sandbox https://sandbox-api-shipx-pl.easypack24.net.
Auth: none for tracking (an organisation token is optional and harmless).
Rate limit: none documented; we stay at 5 requests/s per host to be polite.
Quirks: `tracking_details` come newest first; times are ISO 8601 with an offset;
  no estimated delivery at all; `canceled` and `cancelled` both appear; an unknown
  number answers 404 with `{"status": 404, "error": "resource_not_found", ...}`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from aftersale.carriers_meta import CarrierMeta, NumberPattern
from aftersale.models import DeliveryType, Status, Tracking, TrackingEvent
from carriers.base import (
    NOT_JSON,
    Carrier,
    current_status,
    decode_json,
    failed,
    not_found,
    other_parcel,
    sorted_unique,
    waiting_since,
    warn_unmapped,
)
from carriers.transport import HttpRequest

log = logging.getLogger(__name__)

META = CarrierMeta(
    slug="inpost",
    name="InPost",
    api_url="https://api-shipx-pl.easypack24.net",
    tracking_pages={"*": "https://inpost.pl/sledzenie-przesylek?number={number}"},
    number_patterns=(NumberPattern(r"^\d{24}$"),),
    delay_thresholds={
        # lockers hold a parcel about 48 h: warn the customer after 24 h, not the default 72
        "pickup_wait_hours": 24.0,
        # a moving parcel with this status is late, though its status does not change
        "delay_codes": frozenset({"delay_in_delivery"}),
        # it goes back to the sender: nobody to hand it to, refused, or not collected in
        # time (an address problem is not here: the courier asks and tries again)
        "undeliverable_codes": frozenset(
            {
                "undelivered",
                "undelivered_unknown_receiver",
                "undelivered_not_live_address",
                "undelivered_cod_cash_receiver",
                "rejected_by_receiver",
                "pickup_time_expired",
                "stack_parcel_pickup_time_expired",
                "stack_parcel_in_box_machine_pickup_time_expired",
            }
        ),
    },
)

_S = Status
#: InPost status name -> canonical status (None: informational, keep the previous one).
STATUS_MAP: dict[str, Status | None] = {
    # label_created: the shipment exists in ShipX, not yet handed over
    "created": _S.LABEL_CREATED,  # shipment created
    "offers_prepared": _S.LABEL_CREATED,  # price offers prepared
    "offer_selected": _S.LABEL_CREATED,  # sender chose an offer
    "confirmed": _S.LABEL_CREATED,  # label printed / prepared by sender
    # in_transit: InPost has the parcel and it moves
    "dispatched_by_sender": _S.IN_TRANSIT,  # posted in a locker by the sender
    "dispatched_by_sender_to_pok": _S.IN_TRANSIT,  # posted at a customer service point
    "collected_from_sender": _S.IN_TRANSIT,  # courier collected it from the sender
    "taken_by_courier": _S.IN_TRANSIT,  # taken by the courier
    "taken_by_courier_from_pok": _S.IN_TRANSIT,  # taken from a customer service point
    "taken_by_courier_from_customer_service_point": _S.IN_TRANSIT,  # ambiguous (CARRIERS.md)
    "adopted_at_source_branch": _S.IN_TRANSIT,  # arrived at the origin branch
    "sent_from_source_branch": _S.IN_TRANSIT,  # left the origin branch
    "adopted_at_sorting_center": _S.IN_TRANSIT,  # arrived at the sorting centre
    "sent_from_sorting_center": _S.IN_TRANSIT,  # left the sorting centre
    "adopted_at_target_branch": _S.IN_TRANSIT,  # arrived at the destination branch
    "readdressed": _S.IN_TRANSIT,  # redirected to another address
    "redirect_to_box": _S.IN_TRANSIT,  # redirected to a locker
    "canceled_redirect_to_box": _S.IN_TRANSIT,  # redirect cancelled
    "permanently_redirected_to_box_machine": _S.IN_TRANSIT,  # locker full: another locker
    "permanently_redirected_to_customer_service_point": _S.IN_TRANSIT,  # to a service point
    "unstack_from_box_machine": _S.IN_TRANSIT,  # taken out of a temporary locker
    "unstack_from_customer_service_point": _S.IN_TRANSIT,  # taken out of a service point
    "delay_in_delivery": _S.IN_TRANSIT,  # InPost's own delay notice; detect flags the delay
    # out_for_delivery
    "out_for_delivery": _S.OUT_FOR_DELIVERY,  # on its way to the locker / address
    "out_for_delivery_to_address": _S.OUT_FOR_DELIVERY,  # courier delivering to the door
    "pickup_reminder_sent_address": _S.OUT_FOR_DELIVERY,  # reminder for courier delivery
    # available_for_pickup: waiting in a locker or a service point
    "ready_to_pickup": _S.AVAILABLE_FOR_PICKUP,  # in the locker, code sent to the recipient
    "ready_to_pickup_from_pok": _S.AVAILABLE_FOR_PICKUP,  # at a customer service point
    "ready_to_pickup_from_pok_registered": _S.AVAILABLE_FOR_PICKUP,  # registered letter at POK
    "ready_to_pickup_from_branch": _S.AVAILABLE_FOR_PICKUP,  # at an InPost branch
    "pickup_reminder_sent": _S.AVAILABLE_FOR_PICKUP,  # still waiting, reminder sent
    "stack_in_box_machine": _S.AVAILABLE_FOR_PICKUP,  # in a temporary locker
    "stack_in_customer_service_point": _S.AVAILABLE_FOR_PICKUP,  # in a temporary service point
    "courier_avizo_in_customer_service_point": _S.AVAILABLE_FOR_PICKUP,  # after a failed attempt
    # delivered
    "delivered": _S.DELIVERED,  # handed over or collected from the locker
    # delivery_attempted
    "avizo": _S.DELIVERY_ATTEMPTED,  # courier could not deliver; notice left
    # exception
    "undelivered_wrong_address": _S.EXCEPTION,  # wrong address
    "undelivered_incomplete_address": _S.EXCEPTION,  # incomplete address
    "undelivered_unknown_receiver": _S.EXCEPTION,  # recipient unknown at the address
    "undelivered_cod_cash_receiver": _S.EXCEPTION,  # recipient did not pay cash on delivery
    "undelivered_no_mailbox": _S.EXCEPTION,  # no mailbox
    "undelivered_not_live_address": _S.EXCEPTION,  # recipient does not live there
    "undelivered_lack_of_access_letterbox": _S.EXCEPTION,  # no access to the letterbox
    "undelivered": _S.EXCEPTION,  # sent to the undeliverable-parcels store
    "rejected_by_receiver": _S.EXCEPTION,  # refused by the recipient
    "oversized": _S.EXCEPTION,  # does not fit the locker
    "pickup_time_expired": _S.EXCEPTION,  # not collected in time
    "stack_parcel_pickup_time_expired": _S.EXCEPTION,  # not collected from a temporary point
    "stack_parcel_in_box_machine_pickup_time_expired": _S.EXCEPTION,  # same, temporary locker
    "claimed": _S.EXCEPTION,  # complaint filed at the locker
    "missing": _S.EXCEPTION,  # parcel lost
    # returned_to_sender
    "returned_to_sender": _S.RETURNED_TO_SENDER,  # back with the sender
    "return_pickup_confirmation_to_sender": _S.RETURNED_TO_SENDER,  # return collected
    # cancelled (both spellings occur)
    "canceled": _S.CANCELLED,
    "cancelled": _S.CANCELLED,
    # unknown on purpose: InPost itself says it does not know
    "other": _S.UNKNOWN,
    "not_found": _S.UNKNOWN,
}


def map_status(name: str, tracking_number: str, problems: list[str]) -> Status | None:
    if name in STATUS_MAP:
        return STATUS_MAP[name]
    warn_unmapped(log, "inpost", tracking_number, name, problems, f"unmapped status {name!r}")
    return Status.UNKNOWN


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            return None  # InPost always sends an offset; a naive time is malformed
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):  # not ISO 8601, or beyond datetime's years
        return None


#: A locker keeps a parcel 48 hours from when it is placed (InPost's service list; the
#: customer can extend it in the InPost app): the collect-by time templates show.
LOCKER_HOLD = timedelta(hours=48)
#: Scans that put the parcel in a customer service point or branch, not a locker.
_AT_POINT = frozenset(
    {
        "ready_to_pickup_from_pok",
        "ready_to_pickup_from_pok_registered",
        "ready_to_pickup_from_branch",
        "stack_in_customer_service_point",
        "courier_avizo_in_customer_service_point",
        "permanently_redirected_to_customer_service_point",
    }
)


def _delivery_type(body: dict[str, Any], events: tuple[TrackingEvent, ...]) -> DeliveryType | None:
    """A service point when a scan put it there; else the service the parcel was sent
    with (`inpost_locker_standard`, `inpost_courier_standard`), or a target locker."""
    if any(e.code in _AT_POINT for e in events):
        return DeliveryType.PICKUP_POINT
    service = " ".join(str(body.get(k) or "") for k in ("service", "type"))
    if "locker" in service:
        return DeliveryType.LOCKER
    if "courier" in service:
        return DeliveryType.HOME
    attrs = body.get("custom_attributes")
    if isinstance(attrs, dict) and attrs.get("target_machine_id"):
        return DeliveryType.LOCKER
    return None


def _opening_hours(body: dict[str, Any]) -> str | None:
    attrs = body.get("custom_attributes")
    detail = attrs.get("target_machine_detail") if isinstance(attrs, dict) else None
    hours = detail.get("opening_hours") if isinstance(detail, dict) else None
    return hours.strip() if isinstance(hours, str) and hours.strip() else None


def _pickup_point(body: dict[str, Any]) -> str | None:
    attrs = body.get("custom_attributes")
    if not isinstance(attrs, dict):
        return None
    machine = attrs.get("target_machine_id")
    detail = attrs.get("target_machine_detail")
    if not isinstance(detail, dict):
        return machine if isinstance(machine, str) else None
    address = detail.get("address") if isinstance(detail.get("address"), dict) else {}
    parts = [
        detail.get("name") or machine,
        address.get("line1"),
        address.get("line2"),
        detail.get("location_description"),
    ]
    text = ", ".join(str(p) for p in parts if p)
    return text or None


class InPost(Carrier):
    meta = META
    default_rate_per_s = 5.0
    own_unknown_codes = frozenset(c for c, s in STATUS_MAP.items() if s is Status.UNKNOWN)

    def __init__(self, base_url: str, token: str | None = None) -> None:
        super().__init__(base_url)
        self.token = token

    @classmethod
    def from_env(cls, base_url: str, env: Mapping[str, str]) -> InPost:
        return cls(base_url, token=env.get("INPOST_TOKEN"))  # optional for tracking

    def build_request(self, tracking_number: str) -> HttpRequest:
        headers = {"Accept": "application/json", "X-User-Agent": "aftersale"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return HttpRequest(
            "GET", f"{self.base_url}/v1/tracking/{quote(tracking_number, safe='')}", headers
        )

    def parse(self, tracking_number: str, status_code: int, body: bytes) -> Tracking:
        try:
            data = decode_json(body) if body else None
        except NOT_JSON:  # not JSON, nested too deep, numbers past 64 bits
            data = None
        if status_code == 404:
            return not_found(self.slug, tracking_number, "InPost does not know this number (404)")
        if not isinstance(data, dict):
            return failed(
                "inpost", tracking_number, f"HTTP {status_code}: body is not a JSON object"
            )
        if status_code != 200:
            detail = data.get("description") or data.get("message") or data.get("error")
            return failed("inpost", tracking_number, f"HTTP {status_code}: {str(detail)[:200]}")
        other = other_parcel("inpost", tracking_number, data.get("tracking_number"))
        if other is not None:
            return other
        problems: list[str] = []
        raw_events = data.get("tracking_details")
        if not isinstance(raw_events, list):
            raw_events = []
            problems.append("tracking_details missing")
        events = []
        for raw in raw_events:
            if not isinstance(raw, dict) or not isinstance(raw.get("status"), str):
                problems.append(f"skipped malformed event {str(raw)[:80]}")
                continue
            when = parse_time(raw.get("datetime"))
            if when is None:
                problems.append(f"event {raw['status']!r}: bad datetime {raw.get('datetime')!r}")
                continue
            name = raw["status"]
            agency = raw.get("agency")
            events.append(
                TrackingEvent(
                    occurred_at=when,
                    status=map_status(name, tracking_number, problems),
                    code=name,
                    # origin_status is InPost's internal code, not text: humanise the name
                    description=name.replace("_", " "),
                    location=agency if isinstance(agency, str) and agency else None,
                )
            )
        ordered = sorted_unique(events)
        latest = current_status(ordered)
        top = data.get("status")
        if isinstance(top, str):
            status = map_status(top, tracking_number, problems) or (
                latest.status if latest else None
            )
            code = top
        else:
            status, code = (latest.status, latest.code) if latest else (None, None)
        delivered = next(
            (e.occurred_at for e in reversed(ordered) if e.status is Status.DELIVERED), None
        )
        delivery = _delivery_type(data, ordered)
        waiting = waiting_since(ordered) if status is Status.AVAILABLE_FOR_PICKUP else None
        deadline = (
            waiting.occurred_at + LOCKER_HOLD
            if waiting is not None and delivery is DeliveryType.LOCKER
            else None
        )
        return Tracking(
            carrier=self.slug,
            tracking_number=tracking_number,  # the number we asked for, whatever the body says
            status=status or Status.UNKNOWN,
            code=code,
            description=code.replace("_", " ") if code else None,
            events=ordered,
            delivered_at=delivered,
            pickup_point=_pickup_point(data),
            problems=tuple(dict.fromkeys(problems)),  # one line per distinct problem
            delivery_type=delivery,
            pickup_deadline=deadline,
            pickup_hours=_opening_hours(data),
        )
