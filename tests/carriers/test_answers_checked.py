"""Carrier answers are not believed too easily (issue 15): an answer about another parcel,
a malformed body or an unmapped current status is a failed poll (retried like an outage,
the parcel back soon); a scan dated in the future is ignored with a problem; DHL's detail
code refines its coarse status, never contradicts it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from aftersale.cycle import PollBatch, claim_pages, decide_stage, detect_stage, poll_page
from aftersale.errors import CarrierAnswerError
from aftersale.models import (
    Customer,
    Item,
    Order,
    PollResult,
    ShipmentRef,
    ShipmentState,
    Status,
)
from aftersale.settings import Settings
from aftersale.store import open_store
from aftersale.tracking.answers import drop_future_scans
from carriers.dhl import parse_shipments
from carriers.dpd import parse_lifecycle
from carriers.poll import RetryPolicy, poll_batch
from carriers.transport import HttpxClient
from flows.wiring import build_parts
from tests.carriers.test_payloads import ADAPTERS, PAYLOADS

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)

#: (slug, payload, the number it is about, the key that names it in the body)
ABOUT = [
    ("ups", "delivered.json", "1ZA82D672031716786"),
    ("dhl", "express_in_transit.json", None),
    ("inpost", "avizo_attempted.json", "642600027844200234823732"),
    ("dpd", "customs.json", "03123456789012"),
]


def _number_in(slug: str, payload: str, given: str | None) -> str:
    if given:
        return given
    doc = json.loads((PAYLOADS / slug / payload).read_text())
    return doc["shipments"][0]["id"]


@pytest.mark.parametrize(("slug", "payload", "number"), ABOUT)
def test_an_answer_about_another_parcel_is_unusable(
    slug: str, payload: str, number: str | None
) -> None:
    adapter = ADAPTERS[slug]
    body = (PAYLOADS / slug / payload).read_bytes()
    answered = _number_in(slug, payload, number)
    assert adapter.parse_response(answered, 200, body).unusable is None
    other = "1Z999AA10123456784" if slug == "ups" else answered[:-3] + "999"
    tracking = adapter.parse_response(other, 200, body)
    assert tracking.unusable == f"the answer is about {answered}, not {other}"
    assert tracking.status is Status.UNKNOWN and tracking.events == ()


@pytest.mark.parametrize("slug", sorted(ADAPTERS))
def test_a_malformed_body_is_unusable(slug: str) -> None:
    tracking = ADAPTERS[slug].parse_response("00340434292135100124", 200, b'{"cut')
    assert tracking.unusable is not None and "JSON" in tracking.unusable


def test_an_unmapped_current_status_is_unusable_and_a_carrier_unknown_is_not() -> None:
    body = json.loads((PAYLOADS / "inpost" / "avizo_attempted.json").read_text())
    number = body["tracking_number"]
    inpost = ADAPTERS["inpost"]
    body["status"] = "teleported"
    body["tracking_details"][0]["status"] = "teleported"
    tracking = inpost.parse_response(number, 200, json.dumps(body).encode())
    assert tracking.unusable == "the current status 'teleported' is not mapped"
    body["status"] = body["tracking_details"][0]["status"] = "other"  # InPost: "we do not know"
    assert inpost.parse_response(number, 200, json.dumps(body).encode()).unusable is None


def test_a_future_delivered_scan_does_not_deliver_a_parcel() -> None:
    doc = json.loads((PAYLOADS / "dpd" / "in_transit.json").read_text())
    scans = doc["parcellifecycleResponse"]["parcelLifeCycleData"]["scanInfo"]["scan"]
    delivered = json.loads(json.dumps(scans[-1]))
    delivered["date"] = "2099-01-01T10:00:00"
    delivered["scanData"]["date"] = "2099-01-01T10:00:00"
    delivered["scanData"]["scanType"] = {"code": "13", "name": "Delivered"}
    scans.append(delivered)
    number = doc["parcellifecycleResponse"]["parcelLifeCycleData"]["shipmentInfo"][
        "parcelLabelNumber"
    ]
    raw = parse_lifecycle(number, 200, json.dumps(doc).encode())
    assert raw.status is Status.DELIVERED  # what the carrier claims
    now = max(e.occurred_at for e in raw.events if e.occurred_at.year < 2099)
    checked = drop_future_scans(raw, now)
    assert checked.status is Status.IN_TRANSIT and checked.delivered_at is None
    assert [e.occurred_at.year for e in checked.events if e.occurred_at.year == 2099] == []
    assert checked.problems[-1].startswith("1 scan(s) dated in the future ignored (newest 2099")
    assert checked.unusable is None
    # within the clock skew a scan is believed
    assert drop_future_scans(raw, datetime(2099, 1, 1, 8, 30, tzinfo=UTC)) == raw


def test_dhl_detail_code_refines_within_the_coarse_status_never_against_it() -> None:
    number = "1234567890"

    def answer(coarse: str, detail: str) -> bytes:
        event = {
            "timestamp": "2026-11-20T10:00:00+01:00",
            "statusCode": coarse,
            "status": detail,
            "description": "x",
        }
        shipment = {"id": number, "service": "express", "status": event, "events": [event]}
        return json.dumps({"shipments": [shipment]}).encode()

    refined = parse_shipments(number, 200, answer("transit", "WC"))
    assert refined.status is Status.OUT_FOR_DELIVERY
    contradicted = parse_shipments(number, 200, answer("pre-transit", "PU"))
    assert contradicted.status is Status.LABEL_CREATED
    assert (
        "DHL: detail code 'PU' (in_transit) contradicts statusCode 'pre-transit'; "
        "the statusCode is used"
    ) in contradicted.problems


def _run_poll(handler, attempts: int = 3) -> PollResult:  # type: ignore[no-untyped-def]
    carrier = ADAPTERS["inpost"]
    body = json.loads((PAYLOADS / "inpost" / "avizo_attempted.json").read_text())
    number = body["tracking_number"]
    state = ShipmentState(number, "O", "inpost", number, Status.IN_TRANSIT)

    async def main() -> PollResult:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            report = await poll_batch(
                [state],
                {"inpost": carrier},
                HttpxClient(client),
                retry=RetryPolicy(attempts=attempts, base_delay_s=0.0, jitter=0.0),
                sleep=lambda s: asyncio.sleep(0),
            )
        return report.results[0]

    return asyncio.run(main())


def test_a_malformed_answer_is_retried_like_an_outage() -> None:
    good = (PAYLOADS / "inpost" / "avizo_attempted.json").read_bytes()
    answers = [httpx.Response(200, content=good[:40]), httpx.Response(200, content=good)]
    result = _run_poll(lambda request: answers.pop(0))
    assert result.error is None and result.tracking.status is Status.DELIVERY_ATTEMPTED
    always_bad = _run_poll(lambda request: httpx.Response(200, content=good[:40]))
    assert always_bad.tracking is None
    assert "(after 3 attempts)" in always_bad.error and "not a JSON object" in always_bad.error
    assert issubclass(CarrierAnswerError, Exception)


def test_a_bad_answer_brings_the_parcel_back_soon_and_changes_nothing(tmp_path: Path) -> None:
    settings = Settings(db=str(tmp_path / "a.duckdb"), outbox_dir=tmp_path / "out")
    number = "1" * 24
    with open_store(settings.db) as store:
        customer = Customer("C", "Anna", "a@example.pl", None, "pl", "Europe/Warsaw", True, False)
        order = Order(
            "O",
            NOW - timedelta(hours=1),
            customer,
            (Item("S", "n", "tv", 1, Decimal("1"), "PLN"),),
            (ShipmentRef(number, "inpost"),),
        )
        store.save_orders([order], source="t", now=NOW)
        parts, _ = build_parts(settings, store, env={}, carriers={})
        good = ADAPTERS["inpost"].parse_response(
            number,
            200,
            (PAYLOADS / "inpost" / "avizo_attempted.json")
            .read_bytes()
            .replace(b"642600027844200234823732", number.encode()),
        )
        future = replace(
            good,
            events=(
                *good.events,
                replace(good.events[-1], occurred_at=datetime(2099, 1, 1, tzinfo=UTC)),
            ),
        )

        def answers(due: Sequence[ShipmentState], _: Mapping[str, list[str]]) -> PollBatch:
            return PollBatch(
                [PollResult(s.shipment_id, "inpost", None, "inpost: answer not JSON") for s in due]
            )

        parts_bad = replace(parts, poll=answers)
        ((page, _),) = claim_pages(parts_bad, NOW)
        stage = detect_stage(parts_bad, poll_page(parts_bad, page), NOW, None)
        decide_stage(parts_bad, stage, NOW, "r")
        (state,) = store.shipments_of(["O"]).values()
        assert state.status is Status.PENDING and state.next_check_at == NOW + timedelta(minutes=15)
        assert state.problem == "inpost: answer not JSON"

        later = NOW + timedelta(minutes=15)

        def believed(due: Sequence[ShipmentState], _: Mapping[str, list[str]]) -> PollBatch:
            return PollBatch([PollResult(s.shipment_id, "inpost", future) for s in due])

        parts_ok = replace(parts, poll=believed)
        ((page, _),) = claim_pages(parts_ok, later)
        stage = detect_stage(parts_ok, poll_page(parts_ok, page), later, None)
        decide_stage(parts_ok, stage, later, "r2")
        (state,) = store.shipments_of(["O"]).values()
        assert state.status is Status.DELIVERY_ATTEMPTED
        assert len(store.tracking_events(number)) == len(good.events)
