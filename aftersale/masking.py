"""Mask email addresses and phone numbers for logs, artifacts and stored error texts.

Enough stays visible to tell recipients apart when debugging ("j***@example.com",
"+48******789"); never enough to contact them.
"""

from __future__ import annotations

import re

import phonenumbers

_EMAIL_IN_TEXT = re.compile(r"[\w.%+\-]+@[\w\-]+(?:\.[\w\-]+)+")
# "+" and 7+ digits, possibly spaced: an E.164-ish number as providers quote them.
_PHONE_IN_TEXT = re.compile(r"\+\d(?:[ \-().]{0,2}\d){6,}")


def mask_email(s: str) -> str:
    """'jan.kowalski@example.com' -> 'j***@example.com'; the domain stays readable."""
    local, at, domain = s.strip().rpartition("@")
    if not at:
        return _mask_opaque(s)
    head = local[:1] if len(local) > 1 else ""
    return f"{head}***@{domain}"


def mask_phone(s: str) -> str:
    """'+48123456789' -> '+48******789': country code and last three digits stay readable."""
    raw = s.strip()
    digits = re.sub(r"\D", "", raw)
    if len(digits) < 6:
        return "*" * len(digits) if digits else "***"
    country = ""
    if raw.startswith("+"):
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
    return _PHONE_IN_TEXT.sub(lambda m: mask_phone(m.group(0)), s)


def _mask_opaque(s: str) -> str:
    s = s.strip()
    return f"{s[:1]}***" if len(s) > 3 else "***"
