"""Mask email addresses and phone numbers for logs, artifacts and stored error texts.

Enough stays visible to tell recipients apart when debugging ("j***@example.com",
"+48******789"); never enough to contact them.
"""

from __future__ import annotations

import re

import phonenumbers

from aftersale.contacts import e164, parse_phone

_EMAIL_IN_TEXT = re.compile(r"[\w.%+\-]+@[\w\-]+(?:\.[\w\-]+)+")
# A phone number in any form people write: "+" or an international prefix ("00") and 7+
# digits, possibly spaced; or a national number written in groups ("600 700 800").
# A bare run of digits stays: in provider texts it is an order or message id.
_PHONE_IN_TEXT = re.compile(
    r"(?<![\w+])(?:\+|00)\d(?:[ \-().]{0,2}\d){6,}"
    r"|(?<![\w+\-.:/])\(?\d{2,4}\)?(?:[ \-.]\d{2,4}){2,4}(?![\w\-:/])"
)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_NOT_DIGIT = re.compile(r"\D")


def mask_email(s: str) -> str:
    """'jan.kowalski@example.com' -> 'j***@example.com'; the domain stays readable."""
    local, at, domain = s.strip().rpartition("@")
    if not at:
        return _mask_opaque(s)
    head = local[:1] if len(local) > 1 else ""
    return f"{head}***@{domain}"


def mask_phone(s: str) -> str:
    """'+48123456789' -> '+48******789': country code and last three digits stay readable.
    `0048 123 456 789` is the same number and masks the same way."""
    raw = s.strip()
    country = ""
    try:  # one parse gives the E.164 form and its country code
        number = parse_phone(raw)
        raw, country = e164(number), str(number.country_code)
    except ValueError:  # not a valid number: mask the digits as written
        pass
    digits = _NOT_DIGIT.sub("", raw)
    if len(digits) < 6:
        return "*" * len(digits) if digits else "***"
    if raw.startswith("+") and not country:
        try:
            country = str(phonenumbers.parse(raw, None).country_code)
        except phonenumbers.NumberParseException:
            country = digits[:2]
    rest = digits[len(country) :]
    hidden = "*" * max(len(rest) - 3, 1)
    return f"{'+' if raw.startswith('+') else ''}{country}{hidden}{rest[-3:]}"


def mask_recipient(s: str) -> str:
    """Mask an email address or a phone number, whichever `s` looks like."""
    if "@" in s:
        return mask_email(s)
    if re.search(r"\d", s):
        return mask_phone(s)
    return _mask_opaque(s)


def mask_text(s: str) -> str:
    """Mask every email address and phone-like number inside free text (provider errors)."""
    s = _EMAIL_IN_TEXT.sub(lambda m: mask_email(m.group(0)), s)
    return _PHONE_IN_TEXT.sub(_mask_match, s)


def _mask_match(m: re.Match[str]) -> str:
    found = m.group(0)
    digits = sum(c.isdigit() for c in found)
    if _DATE.search(found) or (found[0] not in "+0" and not 9 <= digits <= 12):
        return found  # a date, or too short / long for a national number
    return mask_phone(found)


def _mask_opaque(s: str) -> str:
    s = s.strip()
    return f"{s[:1]}***" if len(s) > 3 else "***"
