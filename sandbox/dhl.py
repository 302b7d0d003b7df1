"""DHL Shipment Tracking - Unified wire format for the sandbox: `GET /track/shipments`.

The key travels in the `DHL-API-Key` header (401 problem-details without a known one);
an unknown number answers 404 problem-details. `shipments[0]` is an Express shipment:
`status` (the newest event) plus `events[]` newest first, each with the coarse
`statusCode` and the Express detail code in `status`, timestamps ISO 8601 with the local
offset, and `estimatedTimeOfDelivery` while DHL still gives one.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from aftersale.models import Status
from carriers.dhl import META
from sandbox.timelines import LOCAL_ZONE, SandboxParcel, Step, estimates, place

if TYPE_CHECKING:
    from sandbox.app import Answer, SandboxState

#: The API keys the sandbox accepts: the test key in DHL's META.
KEYS = frozenset({META.sandbox_env["DHL_API_KEY"]})

#: canonical status -> (coarse statusCode, Express detail code, description).
CODES: dict[Status, tuple[str, str, str]] = {
    Status.LABEL_CREATED: (
        "pre-transit",
        "Shipment information received",
        "Shipment information received",
    ),
    Status.IN_TRANSIT: ("transit", "AF", "Arrived at DHL Sort Facility"),
    Status.OUT_FOR_DELIVERY: ("transit", "WC", "Shipment is out with courier for delivery"),
    Status.AVAILABLE_FOR_PICKUP: ("transit", "CC", "Awaiting collection by recipient as requested"),
    Status.DELIVERED: ("delivered", "OK", "Delivered"),
    Status.DELIVERY_ATTEMPTED: (
        "failure",
        "NH",
        "Recipient not home; delivery will be re-attempted",
    ),
    Status.EXCEPTION: (
        "failure",
        "BA",
        "Bad or insufficient address. Consignee address being verified.",
    ),
    Status.RETURNED_TO_SENDER: ("transit", "RT", "Returned to shipper"),
}
FIRST_TRANSIT = ("transit", "PU", "Shipment picked up")
#: What the `unknown_status` fault sends: a coarse and a detail code in no table.
UNKNOWN = ("teleported", "ZZ", "Sandbox: status nobody has mapped")

UNAUTHORIZED = {
    "title": "Unauthorized",
    "status": 401,
    "detail": "Unauthorized for given resource.",
}


def routes(state: SandboxState, answer: Answer) -> list[Route]:
    async def tracking(request: Request) -> Response:
        if request.headers.get("dhl-api-key") not in KEYS:
            return JSONResponse(UNAUTHORIZED, status_code=401)
        number = request.query_params.get("trackingNumber")
        if not number:
            return JSONResponse(bad_request("trackingNumber is required"), status_code=400)
        return await answer(META.slug, number, request, render)

    return [Route("/track/shipments", tracking)]


def not_found(number: str) -> dict[str, Any]:
    return {
        "title": "No result found",
        "status": 404,
        "detail": "No shipment with given tracking number found.",
        "instance": f"/shipment/{number}",
    }


def bad_request(detail: str) -> dict[str, Any]:
    return {"title": "Bad Request", "status": 400, "detail": detail, "instance": "/track/shipments"}


def render(
    parcel: SandboxParcel | None, number: str, now: datetime, *, unknown_status: bool = False
) -> tuple[int, dict[str, Any]]:
    steps = parcel.visible_steps(now) if parcel else []
    if parcel is None or not steps:
        return 404, not_found(number)
    events = []
    seen_transit = False
    locker = parcel.scenario.startswith("locker")
    for when, step in steps:
        code = _code(step)
        if step.status is Status.IN_TRANSIT and not seen_transit and "dhl" not in step.codes:
            code, seen_transit = FIRST_TRANSIT, True
        if step.status is Status.AVAILABLE_FOR_PICKUP:
            where = "the Packstation" if locker else "the Post Office"
            code = (
                code[0],
                code[1],
                f"The shipment has been delivered to {where} and is ready for pickup",
            )
        events.append(_event(when, step.place, code, parcel))
    if unknown_status:
        events.append(_event(steps[-1][0], steps[-1][1].place, UNKNOWN, parcel))
    events.reverse()  # DHL lists newest first
    last_when, last = steps[-1]
    shipment: dict[str, Any] = {
        "id": number,
        "service": "express",
        "origin": {"address": _address("Shipper")},
        # a Packstation parcel is addressed to the Packstation from the start
        "destination": {"address": _pickup_address(parcel) if locker else _address("Recipient")},
        "status": events[0],
        "details": {
            "product": {"productName": "DHL Express Domestic"},
            "totalNumberOfPieces": 1,
            "pieceIds": [f"JD0144{number}"],
        },
        "events": events,
    }
    _, eta = estimates(parcel, steps)
    if eta is not None:
        shipment["estimatedTimeOfDelivery"] = _local(datetime(eta.year, eta.month, eta.day, 18))
        shipment["estimatedTimeOfDeliveryRemark"] = "By End of Day"
        if last.status is Status.OUT_FOR_DELIVERY:
            shipment["estimatedDeliveryTimeFrame"] = {
                "estimatedFrom": _local(datetime(eta.year, eta.month, eta.day, 9)),
                "estimatedThrough": _local(datetime(eta.year, eta.month, eta.day, 18)),
            }
    if last.status is Status.DELIVERED:
        shipment["details"]["proofOfDelivery"] = {
            "timestamp": last_when.astimezone(LOCAL_ZONE).isoformat(),
            "signed": {"name": "CUSTOMER"},
        }
    return 200, {
        "url": f"/shipments?trackingNumber={number}&offset=0&limit=5",
        "shipments": [shipment],
        "possibleAdditionalShipmentsUrl": [],
    }


def _code(step: Step) -> tuple[str, str, str]:
    coarse, detail, description = CODES[step.status]
    override = step.codes.get("dhl")  # an Express detail code under the same coarse code
    return (coarse, override, f"DHL {override}") if override else (coarse, detail, description)


def _event(
    when: datetime, where: str, code: tuple[str, str, str], parcel: SandboxParcel
) -> dict[str, Any]:
    coarse, detail, description = code
    address = _pickup_address(parcel) if where in PICKUP_STEPS else _address(where)
    return {
        "timestamp": when.astimezone(LOCAL_ZONE).isoformat(),
        "location": {"address": address},
        "statusCode": coarse,
        "status": detail,
        "description": description,
    }


#: Steps that happen where the customer collects the parcel.
PICKUP_STEPS = frozenset({"Pickup point", "Parcel locker"})


def _pickup_address(parcel: SandboxParcel) -> dict[str, str]:
    name, street, postal, city, _ = parcel.pickup_place
    return {
        "countryCode": parcel.country,
        "postalCode": postal,
        "addressLocality": city,
        "streetAddress": f"{name}, {street}",
    }


def _local(naive: datetime) -> str:
    return naive.replace(tzinfo=LOCAL_ZONE).isoformat()


def _address(where: str) -> dict[str, str]:
    city, postal, country, street = place(where)
    address = {"countryCode": country, "postalCode": postal, "addressLocality": city}
    if street:
        address["streetAddress"] = street
    return address
