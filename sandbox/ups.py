"""UPS wire format for the sandbox: OAuth token endpoint and Track API details.

`POST /security/v1/oauth/token` (Basic auth, form `grant_type=client_credentials`) issues
a bearer token shaped as `specs/ups_oauth_client_credentials.yaml` (every field a
string); `GET /api/track/v1/details/{n}` answers `trackResponse.shipment[0].package[0]`
as `specs/ups_tracking.yaml`: activities newest first with local date/time and
gmtDate/gmtTime/gmtOffset, the 3-digit statusCode beside the type letter and scan code,
deliveryDate SDD (first estimate) / RDD (slipped) / DEL, access point details.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from aftersale.models import Status
from carriers.ups import META
from sandbox.timelines import LOCAL_ZONE, SandboxParcel, Step, estimates, place

if TYPE_CHECKING:
    from sandbox.app import Answer, SandboxState

#: canonical status -> (activity type, scan code, 3-digit statusCode, description).
CODES: dict[Status, tuple[str, str, str, str]] = {
    Status.LABEL_CREATED: (
        "M",
        "MP",
        "003",
        "Shipper created a label, UPS has not received the package yet.",
    ),
    Status.IN_TRANSIT: ("I", "AR", "005", "Arrived at Facility"),
    Status.OUT_FOR_DELIVERY: ("I", "OT", "021", "Out For Delivery Today"),
    Status.AVAILABLE_FOR_PICKUP: (
        "I",
        "2Q",
        "161",
        "Delivered to UPS Access Point\u2122 and awaiting customer pickup.",
    ),
    Status.DELIVERED: ("D", "KB", "011", "DELIVERED"),
    Status.DELIVERY_ATTEMPTED: (
        "X",
        "48",
        "022",
        "The receiver was not available for delivery. We'll make a second attempt.",
    ),
    Status.EXCEPTION: ("X", "A5", "013", "The address has been corrected. Delivery rescheduled."),
    Status.RETURNED_TO_SENDER: ("I", "RS", "034", "Returned to shipper"),
    Status.CANCELLED: ("MV", "VP", "007", "Shipment information voided"),
}
FIRST_TRANSIT = ("I", "OR", "038", "Picked up by UPS")
#: Informational activity after a delivery: keeps the previous status.
PHOTO = ("I", "PX", "155", "Delivery photo taken")
#: What the `unknown_status` fault sends: a code in no published table.
UNKNOWN = ("I", "ZZ", "999", "Sandbox: status code nobody has mapped")

TOKEN_LIFETIME_S = 14399
NOT_FOUND = {
    "response": {"errors": [{"code": "TW0001", "message": "Tracking Information Not Found"}]}
}
BAD_AUTH = {
    "response": {"errors": [{"code": "250002", "message": "Invalid Authentication Information."}]}
}
BAD_CLIENT = {"response": {"errors": [{"code": "10401", "message": "ClientId is Invalid"}]}}
#: client id -> secret the sandbox accepts: the test credentials in UPS's META.
CLIENTS = {META.sandbox_env["UPS_CLIENT_ID"]: META.sandbox_env["UPS_CLIENT_SECRET"]}


def routes(state: SandboxState, answer: Answer) -> list[Route]:
    async def token(request: Request) -> Response:
        client_id = check_basic_auth(request.headers.get("authorization"), CLIENTS)
        if client_id is None:
            return JSONResponse(BAD_CLIENT, status_code=401)
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        if form.get("grant_type") != ["client_credentials"]:
            error = {"code": "10400", "message": "Invalid/Missing grant_type"}
            return JSONResponse({"response": {"errors": [error]}}, status_code=400)
        now = time.time()
        value, body = issue_token(client_id, now)
        state.tokens[value] = now + TOKEN_LIFETIME_S
        return JSONResponse(body)

    async def tracking(request: Request) -> Response:
        auth = request.headers.get("authorization", "")
        bearer = auth[7:] if auth.startswith("Bearer ") else ""
        valid = state.tokens.get(bearer, 0.0) > time.time()
        if not (valid and request.headers.get("transid") and request.headers.get("transactionsrc")):
            return JSONResponse(BAD_AUTH, status_code=401)
        return await answer(META.slug, request.path_params["number"], request, render)

    async def revoke(request: Request) -> Response:
        """Forget every token issued: the next tracking call gets 401."""
        state.revoke_tokens()
        return JSONResponse({"revoked": True})

    return [
        Route("/security/v1/oauth/token", token, methods=["POST"]),
        Route("/api/track/v1/details/{number}", tracking),
        Route("/_sandbox/ups/revoke", revoke, methods=["POST"]),
    ]


def check_basic_auth(header: str | None, clients: dict[str, str]) -> str | None:
    """The client id when `Authorization: Basic ...` names a known client with its secret."""
    if not header or not header.startswith("Basic "):
        return None
    try:
        client_id, _, secret = base64.b64decode(header[6:], validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    if client_id in clients and secrets.compare_digest(clients[client_id], secret):
        return client_id
    return None


def issue_token(client_id: str, issued_at_s: float) -> tuple[str, dict[str, str]]:
    """A fresh token and the body UPS answers with (all strings, as the spec types them)."""
    token = "sbx-" + secrets.token_urlsafe(24)
    return token, {
        "token_type": "Bearer",
        "issued_at": str(int(issued_at_s * 1000)),
        "client_id": client_id,
        "access_token": token,
        "scope": "",
        "expires_in": str(TOKEN_LIFETIME_S),
        "refresh_count": "0",
        "status": "approved",
    }


def render(
    parcel: SandboxParcel | None, number: str, now: datetime, *, unknown_status: bool = False
) -> tuple[int, dict[str, Any]]:
    steps = parcel.visible_steps(now) if parcel else []
    if parcel is None or not steps:
        return 404, NOT_FOUND
    activities = []
    seen_transit = False
    for when, step in steps:
        code = _code(step)
        if step.status is Status.IN_TRANSIT and not seen_transit and "ups" not in step.codes:
            code, seen_transit = FIRST_TRANSIT, True
        activities.append(_activity(when, step.place, code, parcel))
        if step.status is Status.DELIVERED:
            activities.append(_activity(when + timedelta(minutes=1), step.place, PHOTO, parcel))
    if unknown_status:
        activities.append(
            _activity(steps[-1][0] + timedelta(minutes=2), steps[-1][1].place, UNKNOWN, parcel)
        )
    activities.reverse()  # UPS lists newest first
    last_when, last = steps[-1]
    current = UNKNOWN if unknown_status else _code(last)
    package: dict[str, Any] = {
        "trackingNumber": number,
        "activity": activities,
        "currentStatus": _status(current),
        "packageAddress": [
            {"type": "ORIGIN", "name": "Northwind Fulfilment", "address": _address("Shipper")},
            {"type": "DESTINATION", "attentionName": "Customer", "address": _address("Recipient")},
        ],
        "service": {"code": "011", "description": "UPS Standard", "levelCode": "011"},
        "weight": {"unitOfMeasurement": "KGS", "weight": "1.20"},
        "packageCount": 1,
    }
    dates = []
    first, eta = estimates(parcel, steps)
    if first is not None:
        dates.append({"type": "SDD", "date": f"{first:%Y%m%d}"})
    if eta is not None and eta != first:
        dates.append({"type": "RDD", "date": f"{eta:%Y%m%d}"})
    if last.status is Status.OUT_FOR_DELIVERY:
        package["deliveryTime"] = {"type": "EDW", "startTime": "090000", "endTime": "180000"}
    if last.status is Status.DELIVERED:
        local = last_when.astimezone(LOCAL_ZONE)
        dates.append({"type": "DEL", "date": f"{local:%Y%m%d}"})
        package["deliveryTime"] = {"type": "DEL", "startTime": "", "endTime": f"{local:%H%M%S}"}
        package["deliveryInformation"] = {"location": "Front Door", "receivedBy": "CUSTOMER"}
    if parcel.scenario == "pickup":
        # bound for a UPS Access Point from the start; the collect-by date once it is there
        package["accessPointInformation"] = {}
    if last.status is Status.AVAILABLE_FOR_PICKUP:
        pickup_by = (last_when + timedelta(days=7)).astimezone(LOCAL_ZONE)
        package["accessPointInformation"] = {"pickupByDate": f"{pickup_by:%Y%m%d}"}
    if dates:
        package["deliveryDate"] = dates
    return 200, {
        "trackResponse": {
            "shipment": [
                {"inquiryNumber": number, "package": [package], "userRelation": [], "warnings": []}
            ]
        }
    }


def _code(step: Step) -> tuple[str, str, str, str]:
    kind, scan, status_code, description = CODES[step.status]
    override = step.codes.get("ups")  # a 3-digit statusCode, same activity type
    return (
        (kind, scan, override, f"UPS status {override}")
        if override
        else (kind, scan, status_code, description)
    )


def _activity(
    when: datetime, where: str, code: tuple[str, str, str, str], parcel: SandboxParcel
) -> dict[str, Any]:
    local = when.astimezone(LOCAL_ZONE)
    gmt = when.astimezone(UTC)
    offset = local.strftime("%z")
    address = _address(where)
    if where == "Pickup point":  # the customer's own access point, in their country
        name, street, postal, city, _ = parcel.pickup_place
        address = {"addressLine1": f"{name}, {street}", "city": city, "postalCode": postal,
                   "countryCode": parcel.country, "country": parcel.country}  # fmt: skip
    return {
        "location": {"address": address, "slic": "4140"},
        "status": _status(code),
        "date": f"{local:%Y%m%d}",
        "time": f"{local:%H%M%S}",
        "gmtDate": f"{gmt:%Y%m%d}",
        "gmtTime": f"{gmt:%H:%M:%S}",
        "gmtOffset": f"{offset[:3]}:{offset[3:]}",
    }


def _status(code: tuple[str, str, str, str]) -> dict[str, str]:
    kind, scan, status_code, description = code
    return {"type": kind, "code": scan, "statusCode": status_code, "description": description}


def _address(where: str) -> dict[str, str]:
    city, postal, country, street = place(where)
    address = {"city": city, "postalCode": postal, "countryCode": country, "country": country}
    if street:
        address["addressLine1"] = street
    return address
