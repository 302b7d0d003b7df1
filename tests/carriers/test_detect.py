"""Carrier auto-detection from each META's number formats (CARRIERS.md section 6), check
digits verified."""

from __future__ import annotations

import pytest

from aftersale.carriers_meta import normalise_tracking_number
from carriers.dhl import express_check_digit_ok
from carriers.dpd import iso7064_mod37_36
from carriers.registry import CARRIERS, DIRECTORY
from carriers.ups import check_digit_ok as ups_check_digit_ok

detect_carriers = DIRECTORY.detect


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("1z 5r89 3903 5756 7127", "1Z5R89390357567127"),
        ("  0034-0434-2921-3510-0124 ", "00340434292135100124"),
        ("jjd0001\t2345", "JJD00012345"),
        ("", ""),
    ],
)
def test_normalise_upper_cases_and_drops_spaces_and_dashes(raw: str, normalised: str) -> None:
    assert normalise_tracking_number(raw) == normalised


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        # UPS: jkeen's valid samples, written the way customers paste them
        ("1Z5R89390357567127", ["ups"]),
        ("1z879e930346834440", ["ups"]),
        ("1Z 410E 7W03 9275 1591", ["ups"]),
        # InPost: 24 digits
        ("642600027844200234823732", ["inpost"]),
        # DPD: 14 digits, with a printed check character, 28-char label barcode, DPD PL
        ("01906100441262", ["dpd"]),
        ("01906100441262B", ["dpd"]),
        ("008182709980000020033350276C", ["dpd"]),
        ("0123456789012U", ["dpd"]),
        # DHL: Express waybills (mod 7), piece ids, Paket 12/20 digits, eCommerce
        ("3318810025", ["dhl"]),
        ("8487135506", ["dhl"]),
        ("73891051146", ["dhl"]),
        ("JD014600006281230704", ["dhl"]),
        ("JJD000390007882617925", ["dhl"]),
        ("00340434292135100124", ["dhl"]),
        ("340434161094", ["dhl"]),
        ("GM2951173225174494", ["dhl"]),
    ],
)
def test_detects_each_format(number: str, expected: list[str]) -> None:
    assert detect_carriers(number) == expected


@pytest.mark.parametrize(
    "number",
    [
        "1Z5R89390357567128",  # UPS with a wrong check digit
        "1Z5R8939035756712",  # 17 characters
        "3318810026",  # DHL Express waybill with a wrong mod-7 digit
        "008182709980000020033350276D",  # DPD label with a wrong check character
        "12345",
        "",
        "HELLO-WORLD",
        "9400111899223197428490",  # USPS: not one of ours
    ],
)
def test_a_failing_check_digit_or_foreign_format_is_no_candidate(number: str) -> None:
    assert detect_carriers(number) == []


def test_check_digit_helpers_agree_with_published_samples() -> None:
    assert ups_check_digit_ok("1Z410E7W0392751591")
    assert not ups_check_digit_ok("1Z410E7W0392751592")
    assert express_check_digit_ok("73891051146")
    assert not express_check_digit_ok("73891051145")
    assert iso7064_mod37_36("008182709980000020033350276") == "C"


def test_every_detected_slug_is_a_known_carrier() -> None:
    samples = ["1Z5R89390357567127", "642600027844200234823732", "01906100441262", "3318810025"]
    assert {slug for n in samples for slug in detect_carriers(n)} == set(CARRIERS)
