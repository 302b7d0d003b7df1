"""The carrier seam: pure `build_request` and `parse_response`, one short async `fetch`.

Adding a carrier = one module with its `META` and a `Carrier` subclass, one line in
`carriers.registry.CARRIERS`, one sandbox module, one payload folder, one test module
(docs/extending.md).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any, ClassVar

import httpx
import orjson

from aftersale.carriers_meta import CarrierMeta
from aftersale.errors import CarrierAnswerError, CarrierAuthError, CarrierUnavailable
from aftersale.models import DeliveryType, Status, Tracking, TrackingEvent
from carriers.transport import HttpAnswer, HttpClient, HttpRequest


class Carrier:
    """One carrier's tracking API. Subclasses set `meta` (the module's META) and implement
    the two pure halves; `from_env` reads their credentials."""

    meta: ClassVar[CarrierMeta]
    #: Requests per second the carrier tolerates (None: no documented limit).
    default_rate_per_s: float | None = None
    #: The carrier's own codes for "we do not know" (its tables map them to `unknown`):
    #: an answer with one of these is data; any other `unknown` status is unmapped.
    own_unknown_codes: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")

    @property
    def slug(self) -> str:
        return self.meta.slug

    @classmethod
    def from_env(cls, base_url: str, env: Mapping[str, str]) -> Carrier:
        """The adapter with the credentials `env` holds (none by default)."""
        return cls(base_url)

    def build_request(self, tracking_number: str) -> HttpRequest:
        raise NotImplementedError

    def parse(self, tracking_number: str, status_code: int, body: bytes) -> Tracking:
        """The carrier's own parsing (pure); `parse_response` adds the shared checks."""
        raise NotImplementedError

    def parse_response(self, tracking_number: str, status_code: int, body: bytes) -> Tracking:
        """Turn any answer into a `Tracking`; never raises on odd bodies (problems are data).
        An answer that cannot be believed comes back with `unusable` set."""
        return with_unmapped_status(
            self.parse(tracking_number, status_code, body), self.own_unknown_codes
        )

    async def fetch(self, client: HttpClient, tracking_number: str) -> Tracking:
        answer = await self.send(client, self.build_request(tracking_number), tracking_number)
        raise_for_outage(self.slug, tracking_number, answer)
        tracking = self.parse_response(tracking_number, answer.status_code, answer.content)
        return self.believed(tracking, answer.status_code)

    def believed(self, tracking: Tracking, status_code: int) -> Tracking:
        """`tracking`, or CarrierAnswerError when it is unusable: retried like an outage
        after a 2xx (a cut or garbled body may be a passing fault), not after a 4xx (the
        carrier's considered refusal)."""
        if tracking.unusable:
            raise CarrierAnswerError(
                self.slug, tracking.tracking_number, tracking.unusable, status_code < 400
            )
        return tracking

    async def send(
        self, client: HttpClient, request: HttpRequest, tracking_number: str | None
    ) -> HttpAnswer:
        """The one HTTP call: transport faults become `CarrierUnavailable` (retried)."""
        try:
            return await client.send(request)
        except httpx.TimeoutException as exc:
            raise CarrierUnavailable(self.slug, tracking_number, "timed out") from exc
        except httpx.TransportError as exc:
            raise CarrierUnavailable(
                self.slug, tracking_number, f"connection failed: {exc}"
            ) from exc


#: How every carrier decodes its answers: orjson is 2-3x faster than json.loads on them
#: (bench/parse.py). It refuses integers past 64 bits, which no carrier sends.
decode_json = orjson.loads
#: What decoding a body that is not JSON raises: bad syntax or bytes, nesting too deep.
NOT_JSON = (ValueError, UnicodeDecodeError, RecursionError)


def raise_for_outage(carrier: str, tracking_number: str, answer: HttpAnswer) -> None:
    """Map the HTTP answers that are outages (not data about the parcel) to exceptions."""
    code = answer.status_code
    if code == 429 or code >= 500:
        raise CarrierUnavailable(
            carrier,
            tracking_number,
            f"HTTP {code}",
            retry_after_s=parse_retry_after(answer.headers.get("Retry-After")),
        )
    if code in (401, 403):
        raise CarrierAuthError(carrier, tracking_number, f"HTTP {code}: credentials refused")


def parse_retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: rare from carriers, fall back to our own backoff


def failed(carrier: str, tracking_number: str, problem: str) -> Tracking:
    """An answer we could not understand: status unknown, the problem recorded, unusable."""
    return Tracking(
        carrier=carrier,
        tracking_number=tracking_number,
        status=Status.UNKNOWN,
        problems=(problem,),
        unusable=problem,
    )


#: What `same_parcel` ignores: everything but letters and digits (`str.isalnum`'s).
_NOT_ALNUM = re.compile(r"[\W_]+")


def same_parcel(asked: str, answered: str) -> bool:
    """Do two tracking numbers name one parcel (spaces, dashes and case aside)?"""
    return asked == answered or (  # nearly every answer echoes the number as asked
        _NOT_ALNUM.sub("", asked).upper() == _NOT_ALNUM.sub("", answered).upper()
    )


def other_parcel(carrier: str, asked: str, answered: Any) -> Tracking | None:
    """An unusable tracking when the answer names another parcel than the one asked (a
    proxy, cache or carrier mix-up); None when it names ours or none."""
    if not isinstance(answered, str) or not answered.strip() or same_parcel(asked, answered):
        return None
    return failed(carrier, asked, f"the answer is about {answered.strip()[:40]}, not {asked}")


def with_unmapped_status(tracking: Tracking, own_unknown: frozenset[str]) -> Tracking:
    """A found parcel whose current status is `unknown` without the carrier saying so (an
    unmapped code, or no status at all) is unusable: never a guess, never a silent
    `unknown` that waits hours for the next poll."""
    if not tracking.found or tracking.unusable or tracking.status is not Status.UNKNOWN:
        return tracking
    code = tracking.code or ""
    if code in own_unknown or code.split("/")[0] in own_unknown:
        return tracking
    why = (
        f"the current status {code!r} is not mapped"
        if code.strip("?")
        else "the answer gives no current status"
    )
    return replace(tracking, unusable=why)


def not_json(carrier: str, status_code: int, body: bytes) -> str:
    return f"{carrier.upper()}: response is not JSON (HTTP {status_code}, {len(body)} bytes)"


def warn_unmapped(
    logger: logging.Logger,
    carrier: str,
    tracking_number: str,
    code: str,
    problems: list[str],
    problem: str,
) -> None:
    """An unmapped code: logged once per parcel with carrier, code and number; never guessed."""
    if problem in problems:
        return
    problems.append(problem)
    logger.warning(
        "%s: unmapped code %r for %s",
        carrier,
        code,
        tracking_number,
        extra={"carrier": carrier, "code": code, "tracking_number": tracking_number},
    )


# Defensive access to parsed JSON: carriers send odd shapes, parsing must never raise.
_EMPTY: dict[str, Any] = {}  # shared: callers only read it


def as_dict(value: Any) -> dict[str, Any]:
    return value if type(value) is dict else _EMPTY


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def as_text(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def not_found(carrier: str, tracking_number: str, problem: str) -> Tracking:
    return Tracking(
        carrier=carrier,
        tracking_number=tracking_number,
        status=Status.UNKNOWN,
        found=False,
        problems=(problem,),
    )


def sorted_unique(events: Iterable[TrackingEvent]) -> tuple[TrackingEvent, ...]:
    """Oldest first, de-duplicated on (time, code, location): carriers repeat scans."""
    seen: set[tuple[datetime, str, str | None]] = set()
    unique = []
    for event in sorted(events, key=lambda e: e.occurred_at):
        key = (event.occurred_at, event.code, event.location)
        if key not in seen:
            seen.add(key)
            unique.append(event)
    return tuple(unique)


def current_status(events: tuple[TrackingEvent, ...]) -> TrackingEvent | None:
    """The newest event that carries a status (informational events keep the previous one)."""
    for event in reversed(events):
        if event.status is not None:
            return event
    return None


#: Words in carriers' texts and addresses that name where a parcel waits to be collected.
_LOCKER_WORDS = re.compile(
    r"packstation|paketstation|paczkomat|parcel\s*locker|paketkasten|box\s*machine", re.I
)
_POINT_WORDS = re.compile(
    r"post\s*office|postfiliale|filiale|paket\s*shop|parcel\s*shop|pickup\s*(?:point|shop)|"
    r"service\s*point|access\s*point|pick-?up\s*station|punkt\s*odbioru|dpd\s*pickup|"
    r"shop\s*delivery",
    re.I,
)


def delivery_type_in(*texts: str | None) -> DeliveryType | None:
    """LOCKER or PICKUP_POINT when one of a carrier's texts (an address, a scan's words, a
    product name) names one; None when none does."""
    joined = " ".join(t for t in texts if t)
    if _LOCKER_WORDS.search(joined):
        return DeliveryType.LOCKER
    if _POINT_WORDS.search(joined):
        return DeliveryType.PICKUP_POINT
    return None


def waiting_since(events: tuple[TrackingEvent, ...]) -> TrackingEvent | None:
    """The scan that put the parcel where it waits now: the first of the newest run of
    `available_for_pickup` scans (later reminders keep the status); None if not waiting."""
    first = None
    for event in reversed(events):
        if event.status is Status.AVAILABLE_FOR_PICKUP:
            first = event
        elif event.status is not None:
            break
    return first
