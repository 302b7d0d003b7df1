"""One way to read an email address or a phone number, for every door they come in by:
order files, the suppression list, STOP messages, provider webhooks.

Phones become E.164 through `phonenumbers`: `+48 600-700-800`, `0048600700800` and (with
the customer's country) `600 700 800` are all `+48600700800`. Emails are lower-cased and
must be one address: `a@x.pl,b@y.com` is refused, not half-used.
"""

from __future__ import annotations

import re

import phonenumbers

#: One mailbox: no list separators, spaces, quotes or brackets; a dotted domain.
_EMAIL = re.compile(
    r"^[^@\s,;:<>()\[\]\"\\]+@(?:[^\W_](?:[\w-]*[^\W_])?\.)+(?:[^\W\d_]{2,}|xn--[\w-]+)$"
)
#: RFC 5321: 254 characters is the longest address a mail server accepts.
MAX_EMAIL_LENGTH = 254
#: What an international call prefix looks like before the country code.
_IDD = re.compile(r"^\s*(?:00|011)\s*(?=[1-9])")


def normalise_email(text: str) -> str:
    """`text` as one lower-case email address; ValueError saying what is wrong."""
    value = text.strip()
    if len(value) > MAX_EMAIL_LENGTH:
        raise ValueError(f"email address longer than {MAX_EMAIL_LENGTH} characters")
    if value.count("@") > 1 or any(sep in value for sep in ",;"):
        raise ValueError(f"{value!r} holds more than one email address; give one")
    if not _EMAIL.match(value):
        raise ValueError(f"{value!r} is not an email address")
    return value.lower()


def normalise_phone(text: str, region: str | None = None) -> str:
    """`text` in E.164. A number starting with `+` or an international prefix (`00`,
    `011`) needs no `region`; a national one is read in `region` (ISO country code).
    ValueError saying what is wrong."""
    return e164(parse_phone(text, region))


def parse_phone(text: str, region: str | None = None) -> phonenumbers.PhoneNumber:
    """`text` as a valid phone number (read as `normalise_phone` reads it), for a caller
    that needs more than its E.164 text (the country code) without parsing it twice."""
    raw = text.strip()
    dialled = _IDD.match(raw) is not None  # 0048…: the + written the way one dials it
    international = raw.startswith("+") or dialled
    candidate = "+" + _IDD.sub("", raw, count=1) if dialled else raw
    try:
        number = phonenumbers.parse(candidate, None if international else region)
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_valid_number(number):
        hint = "" if international or region else ": without a country it must start with +"
        raise ValueError(f"{raw!r} is not a valid phone number{hint} (like +48601234567)")
    return number


def e164(number: phonenumbers.PhoneNumber) -> str:
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def looks_like_phone(text: str) -> bool:
    """Digits with phone punctuation only (used to guess a channel from an address)."""
    return "@" not in text and re.fullmatch(r"[+\d\s().\-/]{5,}", text.strip()) is not None
