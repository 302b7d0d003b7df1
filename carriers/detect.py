"""Which carrier a tracking number probably belongs to, from its format and check digits.

Formats and check-digit rules: CARRIERS.md section 6 (jkeen/tracking_number_data, DPD
docs). The answer is a ranked list: an explicit carrier from the shop always wins, and a
wrong first guess corrects itself when that carrier says it does not know the number.
"""

from __future__ import annotations

import re

_DROP = re.compile(r"[\s\-]+")

_UPS = re.compile(r"^1Z[0-9A-Z]{16}$")
_INPOST = re.compile(r"^\d{24}$")
_DPD_LABEL = re.compile(r"^\d{27}[0-9A-Z]$")  # zip(7) parcel(14) service(3) country(3) check
_DPD = re.compile(r"^\d{14}[0-9A-Z]?$")  # optional printed check character
_DPD_PL = re.compile(r"^\d{13}[A-Z]$")  # DPD Poland waybill (unverified pattern)
_DHL_EXPRESS = re.compile(r"^\d{10,11}$")  # waybill, mod-7 check digit
_DHL_PIECE = re.compile(r"^J[A-Z]{1,3}\d{9,21}$")  # JD.../JJD... piece ids
_DHL_PAKET = re.compile(r"^(?:\d{12}|\d{20})$")
_DHL_ECOMMERCE = re.compile(r"^(?:GM|LX|RX|UV|CN|SG|TH|IN|HK|MY)\d{10,39}$")

_ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def normalise_tracking_number(s: str) -> str:
    """Upper-case, without spaces and dashes: the form every carrier adapter receives."""
    return _DROP.sub("", s).upper()


def detect_carriers(tracking_number: str) -> list[str]:
    """Candidate carrier slugs, most likely first; empty when no format matches.

    A number whose format has a check digit (UPS mod 10, DHL Express mod 7, DPD label
    mod 37,36) is not a candidate for that carrier when the digit is wrong."""
    n = normalise_tracking_number(tracking_number)
    ranked: list[str] = []
    if _UPS.match(n) and ups_check_digit_ok(n):
        ranked.append("ups")
    if _INPOST.match(n):
        ranked.append("inpost")
    if _DPD_LABEL.match(n) and iso7064_mod37_36(n[:27]) == n[27]:
        ranked.append("dpd")
    if _DPD.match(n) or _DPD_PL.match(n):
        ranked.append("dpd")
    if (_DHL_EXPRESS.match(n) and dhl_express_check_digit_ok(n)) or any(
        p.match(n) for p in (_DHL_PIECE, _DHL_PAKET, _DHL_ECOMMERCE)
    ):
        ranked.append("dhl")
    return list(dict.fromkeys(ranked))


def ups_check_digit_ok(n: str) -> bool:
    """1Z + 15 characters + check digit: letters count (ord - ord('A') + 2) % 10, every
    second character doubled, check = (10 - sum % 10) % 10."""
    total = 0
    for i, c in enumerate(n[2:17]):
        value = int(c) if c.isdigit() else (ord(c) - ord("A") + 2) % 10
        total += value * 2 if i % 2 else value
    return n[17].isdigit() and (10 - total % 10) % 10 == int(n[17])


def dhl_express_check_digit_ok(n: str) -> bool:
    """The last digit is the number formed by the others, mod 7."""
    return int(n[:-1]) % 7 == int(n[-1])


def iso7064_mod37_36(s: str) -> str:
    """ISO 7064 hybrid MOD 37,36 check character over digits and letters (DPD labels)."""
    product = 36
    for c in s:
        total = (product + _ALNUM.index(c)) % 36 or 36
        product = (total * 2) % 37
    return _ALNUM[(37 - product) % 36]
