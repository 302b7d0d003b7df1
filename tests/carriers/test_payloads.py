"""Recorded carrier payloads beside their expected normalised result, one test over them all.

Layout: `payloads/<slug>/<case>.json` is the raw body the carrier sent (bytes, may be
malformed on purpose) and `<case>.expected.json` is `tracking_to_json` of the result.
The HTTP status is 200 unless the case name ends in `.http<code>` (`gone.http404.json`).
The tracking number passed to the parser is the expected file's `tracking_number`.
A new edge case is a new pair of files. To (re)write expected files after a deliberate
change, run with AFTERSALE_REGEN_PAYLOADS=1 and review the diff before committing.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

import pytest

from carriers.dhl import Dhl
from carriers.dpd import Dpd
from carriers.jsonout import tracking_to_json
from carriers.registry import CARRIERS, DIRECTORY, build_carriers
from carriers.ups import Ups

PAYLOADS = Path(__file__).parent / "payloads"
BASE_URL = "https://carrier.invalid"
#: every registered carrier, with its sandbox credentials; each needs its payload folder
ADAPTERS = build_carriers(
    {slug: BASE_URL for slug in CARRIERS},
    {k: v for meta in DIRECTORY for k, v in meta.sandbox_env.items()},
)

_STATUS = re.compile(r"\.http(\d{3})$")


def _cases() -> list[pytest.param]:
    cases = []
    for slug in sorted(ADAPTERS):
        for raw in sorted((PAYLOADS / slug).glob("*.json")):
            if raw.name.endswith(".expected.json"):
                continue
            cases.append(pytest.param(slug, raw, id=f"{slug}/{raw.stem}"))
    return cases


def _expected_path(raw: Path) -> Path:
    return raw.with_name(raw.stem + ".expected.json")


@pytest.mark.parametrize(("slug", "raw"), _cases())
def test_payload_normalises_to_expected(slug: str, raw: Path) -> None:
    expected_path = _expected_path(raw)
    expected = json.loads(expected_path.read_text(encoding="utf-8"))
    match = _STATUS.search(raw.stem)
    status_code = int(match.group(1)) if match else 200
    adapter = ADAPTERS[slug]

    tracking = adapter.parse_response(expected["tracking_number"], status_code, raw.read_bytes())
    actual = tracking_to_json(tracking)

    if os.environ.get("AFTERSALE_REGEN_PAYLOADS") == "1":
        expected_path.write_text(json.dumps(actual, indent=2, ensure_ascii=False) + "\n", "utf-8")
    assert actual == expected
    assert tracking.carrier == slug


def test_every_registered_carrier_has_recorded_payloads() -> None:
    tested = {slug for slug in ADAPTERS if any((PAYLOADS / slug).glob("*.expected.json"))}
    assert tested == set(ADAPTERS), f"no payloads/<slug>/ cases for {set(ADAPTERS) - tested}"


def test_every_payload_has_an_expected_file() -> None:
    for raw in PAYLOADS.glob("*/*.json"):
        if not raw.name.endswith(".expected.json"):
            assert _expected_path(raw).exists(), f"{raw} has no {_expected_path(raw).name}"


def test_every_expected_file_has_a_payload() -> None:
    for expected in PAYLOADS.glob("*/*.expected.json"):
        raw = expected.with_name(expected.name.removesuffix(".expected.json") + ".json")
        assert raw.exists(), f"{expected} has no recorded payload {raw.name}"


@pytest.mark.parametrize(
    ("slug", "case", "code"),
    [
        ("ups", "unknown_code", "999"),
        ("dhl", "unknown_code", "held"),
        ("dpd", "unknown_code", "77"),
    ],
)
def test_unmapped_code_is_logged_with_carrier_code_and_number(
    slug: str, case: str, code: str, caplog: pytest.LogCaptureFixture
) -> None:
    raw = PAYLOADS / slug / f"{case}.json"
    number = json.loads(_expected_path(raw).read_text("utf-8"))["tracking_number"]
    with caplog.at_level(logging.WARNING, logger=f"carriers.{slug}"):
        ADAPTERS[slug].parse_response(number, 200, raw.read_bytes())
    records = [r for r in caplog.records if getattr(r, "code", None) == code]
    assert records, caplog.text
    assert records[0].carrier == slug
    assert records[0].tracking_number == number
    assert number in records[0].getMessage() and code in records[0].getMessage()


def test_dhl_request_carries_the_key_and_one_number() -> None:
    request = Dhl("https://api-eu.dhl.com/", "k3y").build_request("00340434292135100124")
    assert request.url == (
        "https://api-eu.dhl.com/track/shipments?trackingNumber=00340434292135100124&language=en"
    )
    assert request.headers["DHL-API-Key"] == "k3y"
    assert "DHL-API-Key" not in Dhl("https://sandbox.test").build_request("1").headers
    assert Dhl.default_rate_per_s == 1.0


@pytest.mark.parametrize(
    ("number", "path"),
    [
        ("01906100441262", "/rest/plc/en_DE/01906100441262"),
        ("0190 6100 4412 62B", "/rest/plc/en_DE/01906100441262"),  # printed check character
        ("008182709980000020033350276C", "/rest/plc/en_DE/09980000020033"),  # label barcode
    ],
)
def test_dpd_request_uses_the_14_digit_parcel_number(number: str, path: str) -> None:
    request = Dpd("https://tracking.dpd.de").build_request(number)
    assert request.method == "GET" and request.url == "https://tracking.dpd.de" + path
    assert (
        Dpd("https://tracking.dpd.de", "de_DE")
        .build_request(number)
        .url.startswith("https://tracking.dpd.de/rest/plc/de_DE/")
    )


def test_ups_request_shape_without_a_token() -> None:
    request = Ups("https://onlinetools.ups.com").build_request("1Z5R89390357567127")
    assert request.url == (
        "https://onlinetools.ups.com/api/track/v1/details/1Z5R89390357567127?locale=en_US"
    )
    assert request.headers["transactionSrc"] == "aftersale"
    assert "Authorization" not in request.headers
