"""InPost ShipX wire format for the sandbox: `GET /v1/tracking/{tracking_number}`."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aftersale.models import Status
from carriers.inpost import META
from sandbox.timelines import SandboxParcel

if TYPE_CHECKING:
    from sandbox.app import Answer, SandboxState

WARSAW = ZoneInfo("Europe/Warsaw")

CODES: dict[Status, str] = {
    Status.LABEL_CREATED: "confirmed",
    Status.IN_TRANSIT: "adopted_at_sorting_center",
    Status.OUT_FOR_DELIVERY: "out_for_delivery",
    Status.AVAILABLE_FOR_PICKUP: "ready_to_pickup",
    Status.DELIVERED: "delivered",
    Status.DELIVERY_ATTEMPTED: "avizo",
    Status.EXCEPTION: "undelivered_wrong_address",
    Status.RETURNED_TO_SENDER: "returned_to_sender",
    Status.CANCELLED: "canceled",
}
FIRST_TRANSIT = "taken_by_courier"
AT_SERVICE_POINT = "ready_to_pickup_from_pok"
#: What the `unknown_status` fault sends: a status name not in InPost's dictionary.
UNKNOWN = "teleported_by_sandbox"


def routes(state: SandboxState, answer: Answer) -> list[Route]:
    async def tracking(request: Request) -> Response:
        return await answer(META.slug, request.path_params["number"], request, render)

    return [Route("/v1/tracking/{number}", tracking)]


def render(
    parcel: SandboxParcel | None, number: str, now: datetime, *, unknown_status: bool = False
) -> tuple[int, dict[str, Any]]:
    steps = parcel.visible_steps(now) if parcel else []
    if not steps:
        return 404, {
            "status": 404,
            "error": "resource_not_found",
            "message": "Resource not found",
            "details": {"tracking_number": number},
        }
    details = []
    seen_transit = False
    for when, step in steps:
        code = step.codes.get("inpost") or CODES[step.status]
        if step.status is Status.IN_TRANSIT and not seen_transit and "inpost" not in step.codes:
            code, seen_transit = FIRST_TRANSIT, True
        if step.status is Status.AVAILABLE_FOR_PICKUP and parcel and parcel.scenario == "pickup":
            code = AT_SERVICE_POINT  # a customer service point, not a locker
        details.append(
            {
                "status": code,
                "origin_status": code.upper()[:8],
                "agency": None
                if step.place == "Shipper"
                else step.place.upper().replace(" ", "")[:8],
                "datetime": when.astimezone(WARSAW).isoformat(timespec="milliseconds"),
            }
        )
    if unknown_status:
        later = (steps[-1][0] + timedelta(minutes=1)).astimezone(WARSAW)
        details.append(
            {**details[-1], "status": UNKNOWN, "origin_status": "SANDBOX",
             "datetime": later.isoformat(timespec="milliseconds")}
        )  # fmt: skip
    details.reverse()  # InPost lists newest first
    locker = parcel.scenario.startswith("locker") if parcel else False
    collected = locker or (parcel is not None and parcel.scenario == "pickup")
    name, street, postal, city, hours = parcel.pickup_place if parcel else ("", "", "", "", None)
    return 200, {
        "tracking_number": number,
        "service": "inpost_locker_standard" if locker else "inpost_courier_standard",
        "type": "inpost_locker_standard" if locker else "inpost_courier_standard",
        "status": details[0]["status"],
        "custom_attributes": {
            "size": "B",
            "target_machine_id": name.split()[-1] if collected else None,
            "target_machine_detail": {
                "name": name if not locker else name.split()[-1],
                "opening_hours": hours or "pn.-sob. 8:00-20:00",
                "location_description": "Przy wejściu do sklepu" if locker else None,
                "address": {"line1": street, "line2": f"{postal} {city}"},
                "type": ["parcel_locker"] if locker else ["pop"],
            }
            if collected
            else None,
        },
        "tracking_details": details,
        "expected_flow": [],
        "created_at": steps[0][0].astimezone(WARSAW).isoformat(timespec="milliseconds"),
        "updated_at": steps[-1][0].astimezone(WARSAW).isoformat(timespec="milliseconds"),
    }
