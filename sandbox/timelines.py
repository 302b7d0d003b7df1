"""Scripted parcel journeys, carrier-neutral: each carrier's wire module renders them.

A step becomes visible once the sandbox clock passes `parcel.start + step.after`.
`eta` (days after the start) is what carriers that give estimates report at that step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aftersale.models import Status

#: The scripted journeys run in Poland; carriers that print local times use this zone.
LOCAL_ZONE = ZoneInfo("Europe/Warsaw")


@dataclass(frozen=True, slots=True)
class Step:
    after: timedelta
    status: Status
    place: str
    eta_days: int | None = None  # estimated delivery, in days after the start
    codes: dict[str, str] = field(default_factory=dict)  # per-carrier raw code override


def _h(hours: float) -> timedelta:
    return timedelta(hours=hours)


S = Status
SCENARIOS: dict[str, tuple[Step, ...]] = {
    # label, pickup, hub, out for delivery, delivered: about two days door to door
    "normal": (
        Step(_h(0), S.LABEL_CREATED, "Shipper", eta_days=3),
        Step(_h(5), S.IN_TRANSIT, "Origin depot", eta_days=3),
        Step(_h(18), S.IN_TRANSIT, "Sorting hub", eta_days=2),
        Step(_h(44), S.OUT_FOR_DELIVERY, "Destination depot", eta_days=2),
        Step(_h(50), S.DELIVERED, "Recipient"),
    ),
    # parcel locker: waits in the locker, collected the next day
    "locker": (
        Step(_h(0), S.LABEL_CREATED, "Shipper"),
        Step(_h(4), S.IN_TRANSIT, "Origin branch"),
        Step(_h(16), S.IN_TRANSIT, "Sorting centre"),
        Step(_h(30), S.OUT_FOR_DELIVERY, "Destination branch"),
        Step(_h(34), S.AVAILABLE_FOR_PICKUP, "Parcel locker"),
        Step(_h(58), S.DELIVERED, "Parcel locker"),
    ),
    # the estimate slips twice, then it arrives late
    "delayed": (
        Step(_h(0), S.LABEL_CREATED, "Shipper", eta_days=2),
        Step(_h(6), S.IN_TRANSIT, "Origin depot", eta_days=2),
        Step(_h(30), S.IN_TRANSIT, "Sorting hub", eta_days=4),
        Step(_h(70), S.IN_TRANSIT, "Sorting hub", eta_days=5),
        Step(_h(110), S.OUT_FOR_DELIVERY, "Destination depot", eta_days=5),
        Step(_h(116), S.DELIVERED, "Recipient"),
    ),
    # an address problem, resolved a day later
    "exception": (
        Step(_h(0), S.LABEL_CREATED, "Shipper", eta_days=3),
        Step(_h(6), S.IN_TRANSIT, "Origin depot", eta_days=3),
        Step(_h(26), S.EXCEPTION, "Destination depot", eta_days=4),
        Step(_h(52), S.OUT_FOR_DELIVERY, "Destination depot", eta_days=4),
        Step(_h(57), S.DELIVERED, "Recipient"),
    ),
    # nobody home, delivered on the second attempt
    "attempted": (
        Step(_h(0), S.LABEL_CREATED, "Shipper", eta_days=2),
        Step(_h(5), S.IN_TRANSIT, "Origin depot", eta_days=2),
        Step(_h(26), S.OUT_FOR_DELIVERY, "Destination depot", eta_days=2),
        Step(_h(31), S.DELIVERY_ATTEMPTED, "Recipient", eta_days=3),
        Step(_h(50), S.OUT_FOR_DELIVERY, "Destination depot", eta_days=3),
        Step(_h(54), S.DELIVERED, "Recipient"),
    ),
    # refused, sent back
    "returned": (
        Step(_h(0), S.LABEL_CREATED, "Shipper", eta_days=2),
        Step(_h(5), S.IN_TRANSIT, "Origin depot", eta_days=2),
        Step(_h(27), S.OUT_FOR_DELIVERY, "Destination depot", eta_days=2),
        # each carrier's "cannot be delivered, going back" code
        Step(
            _h(30),
            S.EXCEPTION,
            "Recipient",
            codes={
                "inpost": "undelivered_unknown_receiver",
                "dhl": "RD",
                "ups": "064",
                "dpd": "06",
            },
        ),
        Step(_h(60), S.RETURNED_TO_SENDER, "Shipper"),
    ),
    # a pickup point or UPS Access Point: no courier at the door; collected the next day
    "pickup": (
        Step(_h(0), S.LABEL_CREATED, "Shipper", eta_days=2),
        Step(_h(5), S.IN_TRANSIT, "Origin depot", eta_days=2),
        Step(_h(18), S.IN_TRANSIT, "Sorting hub", eta_days=2),
        Step(_h(31), S.AVAILABLE_FOR_PICKUP, "Pickup point"),
        Step(_h(53), S.DELIVERED, "Pickup point"),
    ),
    # a locker parcel nobody collects: a reminder, then it goes back to the shop
    "locker_expired": (
        Step(_h(0), S.LABEL_CREATED, "Shipper"),
        Step(_h(4), S.IN_TRANSIT, "Origin branch"),
        Step(_h(16), S.IN_TRANSIT, "Sorting centre"),
        Step(_h(30), S.OUT_FOR_DELIVERY, "Destination branch"),
        Step(_h(34), S.AVAILABLE_FOR_PICKUP, "Parcel locker"),
        Step(_h(83), S.EXCEPTION, "Parcel locker", codes={"inpost": "pickup_time_expired"}),
        Step(_h(120), S.RETURNED_TO_SENDER, "Shipper"),
    ),
    # the carrier reports the label and then, straight away, the delivery
    "skip_to_delivered": (
        Step(_h(0), S.LABEL_CREATED, "Shipper"),
        Step(_h(28), S.DELIVERED, "Recipient"),
    ),
    # a label that never moves
    "stuck": (Step(_h(0), S.LABEL_CREATED, "Shipper", eta_days=2),),
}


@dataclass(frozen=True, slots=True)
class SandboxParcel:
    carrier: str
    tracking_number: str
    scenario: str
    start: datetime
    country: str = "PL"  # where it is delivered: pickup points and lockers are there

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SandboxParcel:
        """One entry of examples/sandbox_parcels.json (KeyError/ValueError if malformed)."""
        if data["scenario"] not in SCENARIOS:
            raise ValueError(f"unknown scenario {data['scenario']!r}: one of {sorted(SCENARIOS)}")
        return cls(
            data["carrier"],
            data["tracking_number"],
            data["scenario"],
            datetime.fromisoformat(data["start"]),
            data.get("country", "PL"),
        )

    def to_json(self) -> dict[str, str]:
        return {
            "carrier": self.carrier,
            "tracking_number": self.tracking_number,
            "scenario": self.scenario,
            "start": self.start.isoformat(),
            "country": self.country,
        }

    @property
    def pickup_place(self) -> tuple[str, str, str, str, str | None]:
        """Where it waits to be collected: (name, street, postal code, city, hours)."""
        kind = "locker" if self.scenario.startswith("locker") else "point"
        return PICKUP_PLACES.get((self.country, kind)) or PICKUP_PLACES[("PL", kind)]

    def visible_steps(self, now: datetime) -> list[tuple[datetime, Step]]:
        """The steps that have happened by `now`, oldest first, with their times."""
        return [
            (self.start + step.after, step)
            for step in SCENARIOS[self.scenario]
            if self.start + step.after <= now
        ]


#: Where each scripted place is, for carriers that report addresses: (city, postal code,
#: country, street or None). Unlisted places are reported by name, in Poland.
PLACES: dict[str, tuple[str, str, str, str | None]] = {
    "Shipper": ("Poznań", "60-001", "PL", "ul. Składowa 4"),
    "Origin depot": ("Poznań", "61-131", "PL", None),
    "Origin branch": ("Poznań", "61-131", "PL", None),
    "Sorting hub": ("Stryków", "95-010", "PL", None),
    "Sorting centre": ("Stryków", "95-010", "PL", None),
    "Destination depot": ("Warszawa", "02-305", "PL", None),
    "Destination branch": ("Warszawa", "02-305", "PL", None),
    "Recipient": ("Warszawa", "00-950", "PL", None),
    "Parcel locker": ("Warszawa", "00-950", "PL", "ul. Marszałkowska 10"),
}


#: (country, locker | point) -> (name, street, postal code, city, opening hours or None).
PICKUP_PLACES: dict[tuple[str, str], tuple[str, str, str, str, str | None]] = {
    ("PL", "locker"): (
        "Paczkomat WAW22M",
        "ul. Marszałkowska 104/122",
        "00-017",
        "Warszawa",
        "24/7",
    ),
    ("PL", "point"): ("Punkt DPD Pickup Żabka", "ul. Puławska 12", "02-512", "Warszawa", None),
    ("DE", "locker"): ("Packstation 157", "Friedrichstraße 50", "10117", "Berlin", None),
    ("DE", "point"): ("Kiosk am Markt", "Marktstraße 3", "10178", "Berlin", None),
    ("AT", "point"): ("Trafik Mariahilf", "Mariahilfer Straße 88", "1070", "Wien", None),
    ("GB", "point"): ("Corner News", "12 High Street", "SW1A 1AA", "London", None),
    ("IE", "point"): ("Spar Rathmines", "24 Rathmines Road", "D06 F2R2", "Dublin", None),
    ("US", "point"): ("The UPS Store #4512", "350 5th Avenue", "10118", "New York", None),
}


def place(name: str) -> tuple[str, str, str, str | None]:
    return PLACES.get(name, (name, "00-001", "PL", None))


def estimates(
    parcel: SandboxParcel, steps: list[tuple[datetime, Step]]
) -> tuple[date | None, date | None]:
    """(first estimate ever given, the estimate given now) as local dates; None when none.

    The current estimate is the newest step's: a step without one (delivered, waiting
    in a locker) means the carrier no longer shows an estimate."""
    etas = [s.eta_days for _, s in steps if s.eta_days is not None]
    if not etas:
        return None, None
    first = _eta_date(parcel, etas[0])
    newest = steps[-1][1].eta_days
    return first, None if newest is None else _eta_date(parcel, newest)


def _eta_date(parcel: SandboxParcel, days: int) -> date:
    return (parcel.start + timedelta(days=days)).astimezone(LOCAL_ZONE).date()
