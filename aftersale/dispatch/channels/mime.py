"""RFC 5322 / MIME bytes for the outbox's `.eml` files, composed directly.

Why not `email.message.EmailMessage`: building one costs 1.6-2.6 ms (a header object
and a fold per header, a fresh regex per boundary), half of a 10,000-shipment cycle.
What a rendered message needs is narrow: a few unstructured headers, two addresses, a
text and an HTML body, so it is written here from pieces worked out once per sender.

The rules kept (tests/dispatch/test_mime.py parses the output back with the standard
library's parser):
- header values never contain CR or LF: a line break (or another control character) in
  a subject or name becomes a space, so no text can start a header of its own;
- long header lines are folded at spaces to at most 78 characters; non-ASCII header text
  and text that looks like an encoded word are RFC 2047 encoded words (`=?utf-8?b?…?=`,
  whole characters each);
- addresses are checked (one `@`, no spaces, controls or brackets); a non-ASCII one is
  written as UTF-8 (RFC 6532), which is how such a mailbox is addressed at all;
- a body that is ASCII with lines of at most 998 octets is 7bit; any other is
  quoted-printable, or base64 when more than a sixth of it is non-ASCII (then base64 is
  shorter); bodies end with a line break; lines end with LF, as the stdlib writes files.
"""

from __future__ import annotations

import base64
import binascii
import functools
import random
import re
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from email import policy
from email.errors import HeaderParseError
from email.utils import format_datetime

#: Control characters (CR and LF among them) that may not reach a header line.
_CONTROLS = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]+")
#: A plain address: local@domain, no whitespace, controls, brackets, quotes or separators.
_ADDRESS = re.compile(r"[^\s\x00-\x1f\x7f<>()\[\],;:\"\\@]+@[^\s\x00-\x1f\x7f<>()\[\],;:\"\\@]+")
#: Characters a display name may carry unquoted (RFC 5322 atext and spaces).
_ATOM_PHRASE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]*")
_HIGH_BYTES = bytes(range(0x80, 0x100))
_LINE_LIMIT = 78  # RFC 5322 SHOULD; encoded words keep every line under it
_BODY_LINE_LIMIT = 998  # RFC 5322 MUST, in octets, without the line break
#: UTF-8 bytes per encoded word: 42 bytes are 56 base64 characters, 68 with the
#: `=?utf-8?b?` and `?=` around them, so "Subject: " + one word fits in 78.
_WORD_BYTES = 42


class AddressError(ValueError):
    """An address that cannot go into a header as it is (the message says why)."""


def check_address(address: str) -> str:
    """The address itself if it is one plain `local@domain`, else AddressError."""
    if _ADDRESS.fullmatch(address):
        return address
    if _CONTROLS.search(address):
        raise AddressError("recipient address contains a line break or control character")
    raise AddressError("recipient address is not one plain local@domain address")


def encoded_words(data: bytes) -> list[str]:
    """RFC 2047 B-encoded words for UTF-8 `data`, never splitting a character."""
    words, start = [], 0
    while start < len(data):
        end = min(start + _WORD_BYTES, len(data))
        while end < len(data) and data[end] & 0xC0 == 0x80:  # a continuation byte
            end -= 1
        words.append("=?utf-8?b?" + base64.b64encode(data[start:end]).decode("ascii") + "?=")
        start = end
    return words


def fold(name: str, tokens: list[str]) -> str:
    """Tokens joined by spaces, with a line break before the space wherever the line
    `name: …` would pass 78 characters (unfolding restores the space)."""
    lines, width = [tokens[0]], _LINE_LIMIT - len(name) - 2
    for token in tokens[1:]:
        if len(lines[-1]) + 1 + len(token) <= width:
            lines[-1] += " " + token
        else:
            lines.append(token)
            width = _LINE_LIMIT - 1
    return "\n ".join(lines)


def header_text(name: str, value: str) -> str:
    """`value` as the body of the unstructured header `name:`: as it is when it is plain
    ASCII, folded at its spaces when long, encoded words otherwise."""
    if (  # short plain ASCII as it is, on the spot: a message id or order number is new
        len(value) < _LINE_LIMIT - len(name) - 2  # every time, no use keeping it
        and value.isascii()
        and value.isprintable()
        and "=?" not in value
        and "  " not in value
        and value.strip() == value
    ):
        return value
    return _folded_or_encoded(name, value)


@functools.lru_cache(maxsize=4096)  # subjects (often), rule and template names repeat
def _folded_or_encoded(name: str, value: str) -> str:
    value = _CONTROLS.sub(" ", value)
    if value.isascii() and "=?" not in value and value.strip() == value and "  " not in value:
        words = value.split(" ")
        if max(map(len, words)) < _LINE_LIMIT - len(name) - 2:
            return fold(name, words)
    return fold(name, encoded_words(value.encode("utf-8")))


def mailbox_tokens(display_name: str, address: str) -> list[str]:
    """`Name <local@domain>` as foldable tokens, the name quoted or encoded as needed.
    A non-ASCII name longer than one encoded word (42 bytes) is split into adjacent
    words, which RFC 2047 decoders join; Python's address parser keeps a space there."""
    check_address(address)
    name = " ".join(_CONTROLS.sub(" ", display_name).split())
    if not name:
        return [address]
    if not name.isascii():
        tokens = encoded_words(name.encode("utf-8"))
    elif _ATOM_PHRASE.fullmatch(name):
        tokens = name.split(" ")
    else:  # a quoted string may be folded at its spaces too (RFC 5322 3.2.4)
        tokens = ('"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"').split(" ")
    return [*tokens, f"<{address}>"]


def parse_sender(sender: str) -> str:
    """A configured `Name <address>` (encoded words allowed) as a safe From value; a line
    break in the name becomes a space, as in a subject."""
    try:
        parsed = policy.default.header_factory("From", _CONTROLS.sub(" ", sender))
        (address,) = parsed.addresses  # type: ignore[attr-defined]
    except (HeaderParseError, ValueError) as exc:
        raise AddressError(f"sender {sender!r} is not one 'Name <address>'") from exc
    if not address.username or not address.domain:
        raise AddressError(f"sender {sender!r} has no address")
    return fold("From", mailbox_tokens(address.display_name, address.addr_spec))


#: RFC 8058: the body a mail program POSTs to the https target to unsubscribe in one click.
ONE_CLICK = "List-Unsubscribe=One-Click"


def list_unsubscribe(targets: Sequence[str]) -> str:
    """`<https://…>, <mailto:…>`: the List-Unsubscribe value (RFC 2369), unfolded. A target
    with a space, a control or an angle bracket would break the header: AddressError."""
    for target in targets:
        if _CONTROLS.search(target) or any(c in target for c in " <>"):
            raise AddressError(f"unsubscribe target {target[:60]!r} has a space or control")
    return ", ".join(f"<{t}>" for t in targets)


def list_unsubscribe_headers(targets: Sequence[str]) -> list[tuple[str, str]]:
    """The List-Unsubscribe header (folded between targets) and, when one target is https,
    List-Unsubscribe-Post for one-click (Gmail and Yahoo ask bulk senders for both)."""
    if not targets:
        return []
    tokens = [f"<{t}>," for t in targets[:-1]] + [f"<{targets[-1]}>"]
    list_unsubscribe(targets)  # checked: nothing can break out of the header
    headers = [("List-Unsubscribe", fold("List-Unsubscribe", tokens))]
    if any(t.startswith("https://") for t in targets):
        headers.append(("List-Unsubscribe-Post", ONE_CLICK))
    return headers


def body_part(text: str, content_type: str, boundary: str) -> bytes:
    """The part's own headers, a blank line and the encoded body (ending with LF)."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.endswith("\n"):
        text += "\n"
    data = text.encode("utf-8")
    if (
        data.isascii()
        and b"\x00" not in data
        and max(map(len, data.split(b"\n"))) <= _BODY_LINE_LIMIT
        and boundary.encode("ascii") not in data
    ):
        cte, payload = "7bit", data
    elif mostly_non_ascii(text, data):
        cte, payload = "base64", base64.encodebytes(data)
    else:
        # qp never writes "=_", so a boundary starting with it cannot occur in the body
        cte, payload = "quoted-printable", quoted_printable(data)
    head = f'Content-Type: {content_type}; charset="utf-8"\nContent-Transfer-Encoding: {cte}\n\n'
    return head.encode("ascii") + payload


def mostly_non_ascii(text: str, data: bytes) -> bool:
    """Whether more than a sixth of `data`, the UTF-8 of `text`, is non-ASCII bytes (then
    base64 is shorter than quoted-printable). A non-ASCII character is 2 to 4 such bytes,
    1 to 3 more than one: so there are between 4/3 and 2 times as many as the bytes over
    the character count, and only when that leaves it open are they counted."""
    extra = len(data) - len(text)
    if 12 * extra <= len(data):
        return False
    if 8 * extra > len(data):
        return True
    return (len(data) - len(data.translate(None, _HIGH_BYTES))) * 6 > len(data)


class _LineCache:
    """Encoded lines by their text, in two generations: when the young one is full it
    becomes the old one (and the old one is dropped), and a line found only in the old
    one moves back to the young one. The lines every message repeats stay; a line of one
    customer's (a name, a tracking link) is gone after two generations."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.young: dict[bytes, bytes] = {}
        self.old: dict[bytes, bytes] = {}

    def quoted_printable(self, data: bytes) -> bytes:
        young, old = self.young, self.old
        lines = data.split(b"\n")
        lines.pop()  # the empty rest after the last LF
        encoded = []
        for line in lines:
            qp = young.get(line)
            if qp is None:
                qp = old.get(line)
                if qp is None:
                    qp = binascii.b2a_qp(line + b"\n", istext=True)
                if len(line) <= _QP_CACHE_LINE_BYTES:
                    young[line] = qp
            encoded.append(qp)
        if len(young) > self.size:  # a whole generation at once, safe with threads
            self.young, self.old = {}, young
        return b"".join(encoded)


#: Lines kept encoded per generation, and the longest kept: at most 2 x 4,096 x (1 KB + its
#: encoding), about 2 MB with the shipped templates.
_QP_CACHE_LINE_BYTES = 1024
_qp_lines = _LineCache(4096)


def quoted_printable(data: bytes) -> bytes:
    """`binascii.b2a_qp(data, istext=True)` for text ending with LF and without CR, worked
    out a line at a time through a cache. Quoted-printable encodes each line on its own (a
    soft break or an escaped trailing space never reaches past the line's end), and most
    lines of a message are its template's, the same on every message: encoding them was
    the largest cost of writing one (tests/dispatch/test_mime.py checks it against b2a_qp)."""
    return _qp_lines.quoted_printable(data)


def date_header(now: datetime) -> str:
    """`now` as an RFC 5322 date (`email.utils.format_datetime`), worked out once a second
    rather than once a message: the text depends on the wall time to the second and the
    UTC offset only."""
    return _date_text(now.replace(microsecond=0, tzinfo=None), now.utcoffset())


@functools.lru_cache(maxsize=4)
def _date_text(wall: datetime, offset: timedelta | None) -> str:
    return format_datetime(wall if offset is None else wall.replace(tzinfo=timezone(offset)))


def compose(
    headers: Sequence[tuple[str, str]], text: str, html: str | None, *, boundary: str = ""
) -> bytes:
    """The whole message: `headers` (name, ready value) in order, then MIME-Version and
    the body: text/plain alone (no HTML), or multipart/alternative with text then HTML."""
    # Unguessable is not needed: a body that holds the boundary is never 7bit (body_part).
    boundary = boundary or f"=_{random.getrandbits(96):024x}"
    head = "".join([f"{name}: {value}\n" for name, value in headers]) + "MIME-Version: 1.0\n"
    if not html:
        return head.encode("utf-8") + body_part(text, "text/plain", boundary)
    dash = b"--" + boundary.encode("ascii")
    return b"".join(
        (
            head.encode("utf-8"),
            f'Content-Type: multipart/alternative; boundary="{boundary}"\n\n'.encode("ascii"),
            dash + b"\n",
            body_part(text, "text/plain", boundary),
            b"\n" + dash + b"\n",
            body_part(html, "text/html", boundary),
            b"\n" + dash + b"--\n",
        )
    )
