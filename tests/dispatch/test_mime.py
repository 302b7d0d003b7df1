"""The outbox's `.eml` files read back with the standard library's parser (policy=default):
the headers and decoded bodies are what was rendered, in every script and shape, and no
text can add a header."""

from __future__ import annotations

import binascii
import email
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aftersale.dispatch.channels import mime
from aftersale.dispatch.channels.outbox import OutboxChannel
from aftersale.models import ChannelKind, OutgoingMessage, RenderedMessage

NOW = datetime(2026, 11, 23, 9, 30, 15, tzinfo=UTC)
SENDER = "Northwind Electronics <orders@northwind.example>"
HEADERS = {"subject", "from", "to", "date", "message-id", "x-aftersale-message-id",
           "x-aftersale-rule", "x-aftersale-template", "x-aftersale-attempt", "mime-version",
           "content-type"}  # fmt: skip


@dataclass(frozen=True)
class Case:
    subject: str
    text: str
    html: str | None
    to: str = "anna@example.pl"
    sender: str = SENDER
    encoding: str = "7bit"  # expected Content-Transfer-Encoding of the text part


LONG = "Your parcel NW-1001 is on its way and will arrive tomorrow between 9:00 and 17:00. "
CASES = {
    "ascii": Case("Your parcel is on its way", "Hello Anna,\nYour parcel left.", "<p>Hi</p>"),
    "polish": Case(
        "Twoja paczka jest w drodze – zażółć gęślą jaźń",
        "Dzień dobry Anno,\nPaczka wyruszyła z magazynu w Łodzi.\n",
        "<p>Paczka wyruszyła – śledź ją <a href='https://x.example/ż'>tutaj</a>.</p>",
        sender="Sklep Żółw <sklep@zolw.example>",
        encoding="quoted-printable",
    ),
    "german": Case(
        "Ihre Bestellung ist unterwegs: Größe, Straße, Übermaß",
        "Guten Tag,\nIhre Bestellung (Größe XL) ist unterwegs.\nGrüße aus Köln",
        "<p>Grüße</p>",
        sender='"Müller & Söhne, GmbH" <versand@mueller.example>',
        encoding="quoted-printable",
    ),
    "emoji": Case(
        "📦 Paczka 🚚 w drodze 🎉 👨‍👩‍👧",
        "🎉🎉🎉 📦🚚🏠 👨‍👩‍👧‍👦 🇵🇱🇩🇪",
        "<p>📦🚚🏠</p>",
        encoding="base64",
    ),
    "long lines": Case(
        LONG * 4,
        LONG * 60 + "\n" + "x" * 2000,  # one line of 5,000 octets and one of 2,000
        "<p>" + "Paczka wyruszyła. " * 300 + "</p>",
        encoding="quoted-printable",
    ),
    "ascii lines up to 998 octets stay 7bit": Case("Long", "y" * 998 + "\n" + "z" * 80, None),
    "awkward text": Case(
        "=?utf-8?q?not_an_encoded_word?=  two  spaces ",
        "From the warehouse\r\n.\r\ntrailing space \nand a tab\t\n--=_not-the-boundary\n",
        "=?utf-8?q?x?= <b>bold</b>\r\n",
    ),
    "text only": Case("Your parcel", "Only text, no HTML.", None),
    "empty subject": Case("", "Body", "<p>Body</p>"),
    "non-ASCII address": Case("Hej", "Hej", None, to="zażółć@przykład.pl"),
    "long display name": Case("Hi", "Hi", None, sender=f"{'Northwind ' * 12}<o@n.example>"),
}
INJECTIONS = {
    "CRLF in the subject": Case("Hello\r\nBcc: victim@example.com", "x", "<p>x</p>"),
    "LF in the subject": Case("Hello\nX-Evil: 1\n\nbody", "x", None),
    "CR in the subject": Case("Hello\rBcc: victim@example.com", "x", None),
    "unicode line separators": Case("Hello\u2028Bcc: a@b.c\x85X-Evil: 1", "x", None),
    "CRLF in the sender's name": Case(
        "Hi", "x", None, sender='"Shop\r\nBcc: victim@example.com" <orders@shop.example>'
    ),
}


def outgoing(case: Case, *, message_id: str = "m-1", test: bool = False) -> OutgoingMessage:
    return OutgoingMessage(
        message_id=message_id,
        idempotency_key=f"k-{message_id}",
        rule_id="shipped-pl",
        template="shipped",
        order_id="NW-1",
        marketing=False,
        content=RenderedMessage(ChannelKind.EMAIL, case.to, case.subject, case.text, case.html),
        test=test,
    )


def send(tmp_path: Path, case: Case, **kw: object) -> tuple[bytes, EmailMessage]:
    channel = OutboxChannel(tmp_path, ChannelKind.EMAIL, sender=case.sender, clock=lambda: NOW)
    result = channel.send(outgoing(case, **kw))  # type: ignore[arg-type]
    assert result.ok, result
    raw = (tmp_path / "email" / "m-1.eml").read_bytes()
    return raw, email.message_from_bytes(raw, policy=policy.default)  # type: ignore[return-value]


def as_body(text: str) -> str:
    """What a body reads back as: LF line ends, ending with one."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text if text.endswith("\n") else text + "\n"


def one_line(header: str) -> str:
    return mime._CONTROLS.sub(" ", header)


def sender_parts(sender: str) -> tuple[str, str]:
    (address,) = policy.default.header_factory("From", one_line(sender)).addresses  # type: ignore[attr-defined]
    return " ".join(address.display_name.split()), address.addr_spec


def assert_read_back(raw: bytes, parsed: EmailMessage, case: Case) -> None:
    assert {k.lower() for k in parsed} == HEADERS | (
        set() if case.html else {"content-transfer-encoding"}
    )
    assert parsed["Subject"] == one_line(case.subject)
    assert (parsed["From"].addresses[0].display_name, parsed["From"].addresses[0].addr_spec) == (
        sender_parts(case.sender)
    )
    assert str(parsed["To"]) == case.to
    assert parsed["Date"].datetime == NOW
    assert parsed["Message-ID"].endswith(".m-1@aftersale.local>")
    assert (parsed["X-Aftersale-Rule"], parsed["X-Aftersale-Template"]) == ("shipped-pl", "shipped")
    text = parsed.get_body(("plain",))
    assert text is not None and text.get_content() == as_body(case.text)
    assert text["Content-Transfer-Encoding"] == case.encoding
    if case.html:
        assert parsed.get_content_type() == "multipart/alternative"
        html = parsed.get_body(("html",))
        assert html is not None and html.get_content() == as_body(case.html)
        assert [p.get_content_type() for p in parsed.iter_parts()] == ["text/plain", "text/html"]
    else:
        assert parsed.get_content_type() == "text/plain"
    head, _, _ = raw.partition(b"\n\n")
    assert all(len(line) <= 78 for line in head.split(b"\n")), head
    assert all(len(line) <= 998 for line in raw.split(b"\n"))
    assert b"\r" not in raw


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_what_was_rendered_reads_back(tmp_path: Path, case: Case) -> None:
    raw, parsed = send(tmp_path, case)
    assert_read_back(raw, parsed, case)
    if case.to.isascii():
        assert raw.isascii()  # 7-bit clean: non-ASCII text is encoded words, qp or base64
        assert not parsed.defects and all(not p.defects for p in parsed.walk())


@pytest.mark.parametrize("case", INJECTIONS.values(), ids=INJECTIONS.keys())
def test_a_line_break_in_a_subject_or_name_never_makes_a_header(tmp_path: Path, case: Case) -> None:
    raw, parsed = send(tmp_path, case)
    assert_read_back(raw, parsed, case)  # exactly our headers: no Bcc, no X-Evil
    assert "Bcc" not in parsed and "X-Evil" not in parsed


@pytest.mark.parametrize(
    "to",
    [
        "anna@example.pl\r\nBcc: victim@example.com",
        "anna@example.pl\nBcc: victim@example.com",
        "Anna <anna@example.pl>",
        "anna@example.pl, eve@example.com",
        "anna@b@example.pl",
        "anna example.pl",
    ],
)
def test_a_recipient_that_is_not_one_plain_address_is_refused(tmp_path: Path, to: str) -> None:
    channel = OutboxChannel(tmp_path, ChannelKind.EMAIL)
    result = channel.send(outgoing(Case("Hi", "x", None, to=to)))
    assert not result.ok and not result.transient and result.error_code == "bad_address"
    assert to not in (result.error_text or "")  # the reason, not the address (logs are masked)
    assert not list((tmp_path / "email").glob("*.eml"))


def test_a_sender_that_is_not_one_address_is_a_setup_error(tmp_path: Path) -> None:
    with pytest.raises(mime.AddressError, match="not one 'Name <address>'"):
        OutboxChannel(tmp_path, ChannelKind.EMAIL, sender="a@x.example, b@x.example")


def test_a_test_send_says_so(tmp_path: Path) -> None:
    _, parsed = send(tmp_path, CASES["ascii"], test=True)
    assert parsed["X-Aftersale-Test"] == "yes"


def test_what_email_message_writes_reads_back_the_same(tmp_path: Path) -> None:
    """Our bytes and the stdlib's own composition parse to the same headers and bodies."""
    case = CASES["polish"]
    raw, ours = send(tmp_path, case)
    theirs = EmailMessage()
    for name in ("Subject", "From", "To", "Date", "Message-ID", "X-Aftersale-Rule"):
        theirs[name] = ours[name]
    theirs.set_content(case.text)
    theirs.add_alternative(case.html, subtype="html")
    again = email.message_from_bytes(bytes(theirs), policy=policy.default)
    for name in ("Subject", "From", "To", "Date", "Message-ID", "X-Aftersale-Rule"):
        assert str(again[name]) == str(ours[name])
    for kind in ("plain", "html"):
        assert again.get_body((kind,)).get_content() == ours.get_body((kind,)).get_content()  # type: ignore[union-attr]


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(subject=st.text(max_size=200), text=st.text(max_size=400), html=st.text(max_size=400))
def test_any_text_reads_back(tmp_path: Path, subject: str, text: str, html: str) -> None:
    raw = mime.compose([("Subject", mime.header_text("Subject", subject))], text, html)
    parsed = email.message_from_bytes(raw, policy=policy.default)
    assert [k.lower() for k in parsed] == ["subject", "mime-version", "content-type"] + (
        [] if html else ["content-transfer-encoding"]
    )
    assert parsed["Subject"] == one_line(subject)
    assert parsed.get_body(("plain",)).get_content() == as_body(text)  # type: ignore[union-attr]
    if html:
        assert parsed.get_body(("html",)).get_content() == as_body(html)  # type: ignore[union-attr]
    assert raw.isascii() and all(len(line) <= 998 for line in raw.split(b"\n"))


QP_AWKWARD = [
    "",
    ".",
    "=",
    "a=b" * 40,
    "trailing space ",
    "trailing tab\t",
    "x" * 75 + "=",
    "x" * 74 + "ż",
    "x" * 76,
    "x" * 77,
    "\x00nul and \x7f del and \x1b escape",
    "zażółć gęślą jaźń " * 12,
]


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(st.sampled_from(QP_AWKWARD) | st.text(max_size=200), max_size=12))
def test_quoted_printable_is_binascii_line_by_line(lines: list[str]) -> None:
    """The line cache writes exactly what b2a_qp writes for the whole text, the first time
    a line is seen and every time after."""
    data = "".join(line.replace("\r", " ").replace("\n", " ") + "\n" for line in lines)
    expected = binascii.b2a_qp(data.encode("utf-8"), istext=True)
    assert mime.quoted_printable(data.encode("utf-8")) == expected
    assert mime.quoted_printable(data.encode("utf-8")) == expected


@pytest.mark.parametrize(
    "now",
    [
        NOW,
        NOW.replace(microsecond=999_999),
        datetime(1969, 12, 31, 23, 59, 59, 500_000, tzinfo=UTC),
        datetime(2026, 3, 29, 1, 30, tzinfo=ZoneInfo("Europe/Warsaw")),
        datetime(2026, 3, 29, 2, 30, tzinfo=ZoneInfo("Europe/Warsaw")),  # not a wall time
        datetime(2026, 11, 23, 9, 30, 15),  # naive: -0000
        datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=ZoneInfo("Europe/Warsaw")),
        datetime(2026, 11, 23, 9, 30, 15, tzinfo=timezone(timedelta(hours=5, minutes=30))),
    ],
)
def test_the_date_header_is_the_standard_librarys(now: datetime) -> None:
    assert mime.date_header(now) == format_datetime(now)
    assert mime.date_header(now) == format_datetime(now)  # again, from the cache


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(["a", " ", "ż", "€", "📦", "中"]) | st.text(max_size=5)))
def test_base64_is_chosen_when_more_than_a_sixth_of_the_bytes_are_not_ascii(
    pieces: list[str],
) -> None:
    text = "".join(pieces)
    data = text.encode("utf-8")
    high = sum(byte >= 0x80 for byte in data)
    assert mime.mostly_non_ascii(text, data) == (high * 6 > len(data))


@settings(max_examples=500, deadline=None)
@given(
    name=st.sampled_from(["Subject", "X-Aftersale-Message-Id"]),
    value=st.text(st.sampled_from("ab =?\t\x7fż"), max_size=90)
    | st.sampled_from(["x" * 67, "x" * 68, "x" * 69, "m-0123456789abcdef0123"]),
)
def test_a_plain_header_value_is_written_as_the_folding_rules_write_it(
    name: str, value: str
) -> None:
    """Short plain ASCII skips the folding and encoding rules: the same text they give."""
    assert mime.header_text(name, value) == mime._folded_or_encoded.__wrapped__(name, value)
