"""Property: `parse_response` never raises, whatever JSON (or bytes) a carrier sends.

Three generators per carrier: arbitrary JSON; the carrier's recorded payloads with a few
nodes replaced by arbitrary JSON or carrier-flavoured strings (so the parser gets deep
into the shape); and arbitrary bytes. Every answer must be a well-formed `Tracking`.
"""

from __future__ import annotations

import json
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aftersale.models import Status, Tracking
from carriers.jsonout import tracking_to_json
from tests.carriers.test_payloads import ADAPTERS, PAYLOADS

SLUGS = sorted(ADAPTERS)
HTTP = st.sampled_from([200, 200, 200, 400, 401, 404, 500])
NUMBER = st.sampled_from(["1Z5R89390357567127", "3318810025", "01906100441262", "", "x y"])

#: Strings the parsers look for, so mutations reach the interesting branches.
FLAVOUR = st.sampled_from(
    [
        "011", "005", "161", "999", "000", "D", "I", "M", "MV", "X", "OT", "YI", "TW0001",
        "RDD", "SDD", "DEL", "EDW", "20260115", "074700", "7:47:00", "-05:00", "+0100",
        "transit", "pre-transit", "delivered", "failure", "unknown", "WC", "ZF", "DOR_SP",
        "AWI01", "express", "parcel-de", "parcel-pl", "DE", "US", "2026-01-20T12:23:45",
        "2026-01-20T12:23:45+01:00", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00",
        "13", "06", "03", "Delivered to DPD Pickup parcelshop.", "Return to sender",
        "20.01.2026, 12:23", "ACCEPTED", "DELIVERED", "99999999", "00000000",
    ]
)  # fmt: skip
LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    FLAVOUR,
)
JSON = st.recursive(
    LEAF,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.text(max_size=8) | FLAVOUR, inner, max_size=4),
    ),
    max_leaves=12,
)


def _paths(node: Any, here: tuple = ()) -> list[tuple]:
    found = [here]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*here, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*here, index))
    return found


def _replace(node: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(node, dict):
        return {**node, head: _replace(node[head], rest, value)}
    copy = list(node)
    copy[head] = _replace(node[head], rest, value)
    return copy


def _recorded(slug: str) -> list[Any]:
    docs = []
    for raw in sorted((PAYLOADS / slug).glob("*.json")):
        if raw.name.endswith(".expected.json"):
            continue
        try:
            docs.append(json.loads(raw.read_bytes()))
        except ValueError:
            continue  # the malformed-body cases
    return docs


RECORDED = {slug: _recorded(slug) for slug in SLUGS}


@st.composite
def mutated(draw: st.DrawFn, slug: str) -> Any:
    doc = draw(st.sampled_from(RECORDED[slug]))
    paths = _paths(doc)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        path = draw(st.sampled_from(paths))
        doc = _replace(doc, path, draw(JSON))
        paths = _paths(doc)
    return doc


def _check(slug: str, number: str, status: int, body: bytes) -> None:
    tracking = ADAPTERS[slug].parse_response(number, status, body)
    assert isinstance(tracking, Tracking)
    assert tracking.carrier == slug
    assert isinstance(tracking.tracking_number, str)  # InPost echoes the carrier's number
    assert isinstance(tracking.status, Status)
    times = [e.occurred_at for e in tracking.events]
    assert times == sorted(times)
    for moment in [*times, tracking.delivered_at, *(tracking.estimated_window or ())]:
        assert moment is None or moment.utcoffset() == timedelta(0), moment
    for event in tracking.events:
        assert event.status is None or isinstance(event.status, Status)
        assert isinstance(event.code, str) and isinstance(event.description, str)
    assert all(isinstance(p, str) and p for p in tracking.problems)
    json.dumps(tracking_to_json(tracking))  # the CLI can always print it
    # every answer is data (found or not) or refused with a reason, never a silent guess
    if tracking.unusable is not None:
        assert tracking.unusable.strip()
    elif tracking.found and tracking.status is Status.UNKNOWN:
        code = tracking.code or ""
        own = ADAPTERS[slug].own_unknown_codes
        assert code in own or code.split("/")[0] in own, (code, tracking.problems)
    if tracking.delivered_at is not None:
        assert tracking.delivered_at.tzinfo is not None and tracking.delivered_at.tzinfo == UTC


FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("slug", SLUGS)
@FAST
@given(doc=JSON, number=NUMBER, status=HTTP)
def test_never_raises_on_arbitrary_json(slug: str, doc: Any, number: str, status: int) -> None:
    _check(slug, number, status, json.dumps(doc).encode())


@pytest.mark.parametrize("slug", SLUGS)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), number=NUMBER, status=HTTP)
def test_never_raises_on_mutated_recorded_payloads(
    slug: str, data: st.DataObject, number: str, status: int
) -> None:
    if not RECORDED[slug]:
        pytest.skip(f"no recorded {slug} payloads yet")
    _check(slug, number, status, json.dumps(data.draw(mutated(slug))).encode())


@pytest.mark.parametrize("slug", SLUGS)
@FAST
@given(body=st.binary(max_size=64), status=HTTP)
def test_never_raises_on_arbitrary_bytes(slug: str, body: bytes, status: int) -> None:
    _check(slug, "01906100441262", status, body)


def _hostile(doc: Any, path: tuple, kind: int) -> bytes:
    """A recorded payload with one node made hostile in its raw text: nested 5,000 deep,
    a number of 5,000 digits, or a date at the edge of the calendar."""
    marker = "__HOSTILE__"
    text = json.dumps(_replace(doc, path, marker))
    fragment = ["[" * 5000 + "]" * 5000, "9" * 5000, '"9999-12-31T23:59:59-14:00"'][kind]
    return text.replace(f'"{marker}"', fragment).encode()


@pytest.mark.parametrize("slug", SLUGS)
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), kind=st.integers(0, 2), number=NUMBER)
def test_never_raises_on_hostile_bodies(
    slug: str, data: st.DataObject, kind: int, number: str
) -> None:
    doc = data.draw(st.sampled_from(RECORDED[slug]))
    path = data.draw(st.sampled_from(_paths(doc)))
    _check(slug, number, 200, _hostile(doc, path, kind))


def test_recorded_payloads_exist_for_every_carrier() -> None:
    for slug in SLUGS:
        assert RECORDED[slug], f"{Path(PAYLOADS / slug)} has no readable payloads"
