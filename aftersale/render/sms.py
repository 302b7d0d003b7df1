"""SMS character set detection and segment counting (GSM 03.38 / 3GPP TS 23.038).

A message is GSM-7 when every character is in the basic table or its extension
table (extension characters take two septets); otherwise the whole message is
UCS-2 and counts UTF-16 code units, so one emoji turns it UCS-2 and costs two.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
#: Reached through the escape code: each costs two septets.
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

GSM7_SINGLE, GSM7_MULTI = 160, 153  # septets per segment (the multipart header takes 7)
UCS2_SINGLE, UCS2_MULTI = 70, 67  # UTF-16 code units per segment


@dataclass(frozen=True, slots=True)
class SmsInfo:
    encoding: Literal["GSM-7", "UCS-2"]
    segments: int
    length: int  # septets for GSM-7, UTF-16 code units for UCS-2


_GSM7 = GSM7_BASIC | GSM7_EXTENSION


def is_gsm7(text: str) -> bool:
    return _GSM7.issuperset(text)


def _count_segments(units: list[int], single: int, multi: int) -> int:
    """Pack characters (each `units` long) into segments; a character never straddles two."""
    total = sum(units)
    if total <= single:
        return 1
    segments, used = 1, 0
    for size in units:
        if used + size > multi:
            segments += 1
            used = 0
        used += size
    return segments


def sms_segments(text: str) -> SmsInfo:
    """Encoding, segment count and length of `text` as a carrier would bill it."""
    if is_gsm7(text):
        length = len(text) + sum(map(text.count, GSM7_EXTENSION))
        if length <= GSM7_SINGLE:  # most messages: one segment, no need to pack them
            return SmsInfo("GSM-7", 1, length)
        units = [2 if ch in GSM7_EXTENSION else 1 for ch in text]
        return SmsInfo("GSM-7", _count_segments(units, GSM7_SINGLE, GSM7_MULTI), length)
    length = len(text.encode("utf-16-le", "surrogatepass")) // 2  # UTF-16 code units
    if length <= UCS2_SINGLE:
        return SmsInfo("UCS-2", 1, length)
    units = [2 if ord(ch) > 0xFFFF else 1 for ch in text]
    return SmsInfo("UCS-2", _count_segments(units, UCS2_SINGLE, UCS2_MULTI), length)


def non_gsm7_characters(text: str) -> list[str]:
    """The characters that force UCS-2, in order of first appearance (for error messages)."""
    seen: dict[str, None] = {}
    for ch in text:
        if ch not in GSM7_BASIC and ch not in GSM7_EXTENSION:
            seen.setdefault(ch, None)
    return list(seen)
