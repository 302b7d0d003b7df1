"""Segment counting against known examples (GSM-7 160/153, UCS-2 70/67)."""

from __future__ import annotations

import pytest

from aftersale.render.sms import SmsInfo, non_gsm7_characters, sms_segments


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", SmsInfo("GSM-7", 1, 0)),
        ("Hello", SmsInfo("GSM-7", 1, 5)),
        ("a" * 160, SmsInfo("GSM-7", 1, 160)),
        ("a" * 161, SmsInfo("GSM-7", 2, 161)),
        ("a" * 306, SmsInfo("GSM-7", 2, 306)),
        ("a" * 307, SmsInfo("GSM-7", 3, 307)),
        # German umlauts and ß are in the GSM-7 basic table.
        ("Grüße aus Köln, Ihr Paket ist unterwegs", SmsInfo("GSM-7", 1, 39)),
        # Extension characters cost two septets each.
        ("€" * 80, SmsInfo("GSM-7", 1, 160)),
        ("€" * 81, SmsInfo("GSM-7", 2, 162)),
        ("Price: 10€ [x]", SmsInfo("GSM-7", 1, 17)),
        # An escape pair never straddles two segments: 152 'a' + '€' does not fit in 153.
        ("a" * 152 + "€" + "a" * 10, SmsInfo("GSM-7", 2, 164)),
        ("a" * 152 + "€" * 77, SmsInfo("GSM-7", 3, 306)),
        # Polish diacritics are not GSM-7: the whole message becomes UCS-2.
        ("Zażółć gęślą jaźń", SmsInfo("UCS-2", 1, 17)),
        ("ł" * 70, SmsInfo("UCS-2", 1, 70)),
        ("ł" * 71, SmsInfo("UCS-2", 2, 71)),
        ("ł" * 134, SmsInfo("UCS-2", 2, 134)),
        ("ł" * 135, SmsInfo("UCS-2", 3, 135)),
        # One emoji turns the message UCS-2 and counts two code units.
        ("Your parcel is here 📦", SmsInfo("UCS-2", 1, 22)),
        ("a" * 68 + "📦", SmsInfo("UCS-2", 1, 70)),
        ("a" * 69 + "📦", SmsInfo("UCS-2", 2, 71)),
        # A surrogate pair is not split: 66 + emoji does not fit the 67 of the first segment.
        ("a" * 66 + "📦" + "a" * 10, SmsInfo("UCS-2", 2, 78)),
        ("مرحبا", SmsInfo("UCS-2", 1, 5)),
        # A lone surrogate (from bad data) is one code unit, not an error.
        ("ł\ud800", SmsInfo("UCS-2", 1, 2)),
    ],
)
def test_sms_segments(text: str, expected: SmsInfo) -> None:
    assert sms_segments(text) == expected


def test_non_gsm7_characters_lists_each_offender_once() -> None:
    assert non_gsm7_characters("Łódź, łąka 📦 ok €") == ["Ł", "ó", "ź", "ł", "ą", "📦"]
