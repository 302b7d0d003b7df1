"""DPD parcel lifecycle ("plc") wire format for the sandbox: `GET /rest/plc/{locale}/{n}`.

`parcellifecycleResponse.parcelLifeCycleData`: `statusInfo[]` milestones (one marked
`isCurrentStatus`) and `scanInfo.scan[]` oldest first, each with a numbered scan code,
its `SC_..` name and a description, times local (Europe/Berlin) without an offset. A
label without scans shows only the ACCEPTED milestone. An unknown number answers 200
with `parcelLifeCycleData: null`, as the real endpoint does.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aftersale.models import Status
from carriers.dpd import META
from sandbox.timelines import SandboxParcel, Step, place

if TYPE_CHECKING:
    from sandbox.app import Answer, SandboxState

BERLIN = ZoneInfo("Europe/Berlin")

#: canonical status -> (scan code, scan name, description). None: no scan (data only).
SCANS: dict[Status, tuple[str, str, str] | None] = {
    Status.LABEL_CREATED: None,
    Status.IN_TRANSIT: ("10", "SC_10_HUB", "In transit."),
    Status.OUT_FOR_DELIVERY: ("03", "SC_03_OUT_FOR_DELIVERY", "Out for delivery."),
    Status.AVAILABLE_FOR_PICKUP: (
        "13",
        "SC_13_DELIVERED",
        "Delivered to DPD Pickup parcelshop. Ready for collection.",
    ),
    Status.DELIVERED: ("13", "SC_13_DELIVERED", "Delivered."),
    Status.DELIVERY_ATTEMPTED: (
        "14",
        "SC_14_NOT_DELIVERED",
        "Unfortunately we have not been able to deliver your parcel.",
    ),
    Status.EXCEPTION: (
        "09",
        "SC_09_INBOUND_EXCEPTION",
        "Address problem: the parcel is held at the depot.",
    ),
    Status.RETURNED_TO_SENDER: ("13", "SC_13_DELIVERED", "Returned to sender."),
}
FIRST_TRANSIT = ("15", "SC_15_PICKUP", "Picked up by DPD driver.")
COLLECTED = ("13", "SC_13_DELIVERED", "Collected by consignee from DPD Pickup parcelshop.")
SYSTEM_RETURN = ("06", "SC_06_SYSTEM_RETURN", "Parcel will be returned to sender.")
#: What the `unknown_status` fault sends: a scan code beyond DPD's published table.
UNKNOWN = ("77", "SC_77_SANDBOX", "Sandbox: scan nobody has mapped.")

#: canonical status -> plc milestone shown as current.
MILESTONES: dict[Status, str] = {
    Status.LABEL_CREATED: "ACCEPTED",
    Status.IN_TRANSIT: "ON_THE_ROAD",
    Status.OUT_FOR_DELIVERY: "OUT_FOR_DELIVERY",
    Status.DELIVERED: "DELIVERED",
}
_ORDER = ("ACCEPTED", "ON_THE_ROAD", "AT_DELIVERY_DEPOT", "OUT_FOR_DELIVERY", "DELIVERED")

NOT_FOUND: dict[str, Any] = {"parcellifecycleResponse": {"parcelLifeCycleData": None}}


def routes(state: SandboxState, answer: Answer) -> list[Route]:
    async def tracking(request: Request) -> Response:
        return await answer(META.slug, request.path_params["number"], request, render)

    return [Route("/rest/plc/{locale}/{number}", tracking)]


def aliases(number: str) -> tuple[str, ...]:
    """DPD is asked for the 14-digit parcel number inside a label's barcode."""
    return (parcel_number(number),)


def parcel_number(number: str) -> str:
    """The 14-digit parcel number inside a 15-character printed number or a 28-character label."""
    if len(number) == 28 and number[:27].isdigit():
        return number[7:21]
    if len(number) == 15 and number[:14].isdigit():
        return number[:14]
    return number


def render(
    parcel: SandboxParcel | None, number: str, now: datetime, *, unknown_status: bool = False
) -> tuple[int, dict[str, Any]]:
    steps = parcel.visible_steps(now) if parcel else []
    if parcel is None or not steps:
        return 200, NOT_FOUND
    scans = []
    seen_transit = at_shop = returning = False
    for when, step in steps:
        scan = _scan(step)
        if step.status is Status.IN_TRANSIT and not seen_transit and "dpd" not in step.codes:
            scan, seen_transit = FIRST_TRANSIT, True
        if step.status is Status.DELIVERED and at_shop:
            scan = COLLECTED
        if step.status is Status.RETURNED_TO_SENDER and not returning:
            # DPD announces the return (scan 06) before the return leg's scans
            scans.append(_scan_json(when - timedelta(minutes=30), step.place, SYSTEM_RETURN))
            returning = True
        if step.status is Status.AVAILABLE_FOR_PICKUP:
            name, street, postal, city, _ = parcel.pickup_place
            code, scan_name, _text = SCANS[Status.AVAILABLE_FOR_PICKUP] or ("13", "", "")
            shop = f"{name}, {street}, {postal} {city}"
            scan = (code, scan_name, f"Ready for collection at DPD Pickup parcelshop: {shop}")
        at_shop = step.status is Status.AVAILABLE_FOR_PICKUP
        returning = returning or (scan is not None and scan[0] == "06")
        if scan is not None:
            scans.append(_scan_json(when, step.place, scan))
    if unknown_status:
        scans.append(_scan_json(steps[-1][0] + timedelta(minutes=1), steps[-1][1].place, UNKNOWN))
    current = MILESTONES.get(steps[-1][1].status, "AT_DELIVERY_DEPOT")
    return 200, {
        "parcellifecycleResponse": {
            "parcelLifeCycleData": {
                "shipmentInfo": {
                    "parcelLabelNumber": parcel_number(number),
                    "productName": "DPD Pickup" if parcel.scenario == "pickup" else "DPD CLASSIC",
                    "receiverCountryIsoCode": parcel.country,
                    "serviceElements": [],
                    "additionalProperties": [{"key": "PARCEL_ID", "value": parcel_number(number)}],
                },
                "statusInfo": [_milestone(m, current) for m in _ORDER],
                "contactInfo": [],
                "scanInfo": {"scan": scans},  # oldest first, as DPD sends them
            }
        }
    }


def _scan(step: Step) -> tuple[str, str, str] | None:
    override = step.codes.get("dpd")  # a scan code, e.g. "06" for a system return
    if override:
        return override, f"SC_{override}", f"DPD scan {override}."
    return SCANS[step.status]


def _scan_json(when: datetime, where: str, scan: tuple[str, str, str]) -> dict[str, Any]:
    code, name, text = scan
    local = when.astimezone(BERLIN).replace(tzinfo=None).isoformat(timespec="seconds")
    city, _, country, _ = place(where)
    return {
        "date": local,
        "scanData": {
            "scanType": {"name": name, "code": code},
            "date": local,
            "location": f"{city} ({country})",
            "country": country,
            "serviceElements": [],
            "additionalCodes": {"additionalCode": []},
        },
        "scanDescription": {"label": "Parcel status", "content": [text]},
        "links": [],
        "isCurrentScan": False,
    }


def _milestone(name: str, current: str) -> dict[str, Any]:
    reached = _ORDER.index(name) <= _ORDER.index(current)
    label = name.replace("_", " ").capitalize() + "."
    return {
        "status": name,
        "label": label,
        "description": {"content": [label]},
        "statusHasBeenReached": reached,
        "isCurrentStatus": name == current,
        "showContactInfo": False,
        "location": "",
        "date": "",
        "normalItems": [],
        "importantItems": [],
        "errorItems": [],
    }
