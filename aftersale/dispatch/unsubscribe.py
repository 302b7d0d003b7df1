"""Unsubscribe links nobody can forge or reuse forever, and the opt-outs they record.

A marketing message carries a link (and List-Unsubscribe headers, RFC 2369 / RFC 8058)
with a token: the address, its channel and the customer's language, a day after which
the token expires, and an HMAC-SHA256 signature over them with the shop's unsubscribe key.
Changing any of it breaks the signature, so `/unsubscribe/C-2039`-style guessing is gone.
The token is signed, not encrypted: it carries the address it unsubscribes, and it only
ever appears in that address's own messages.

The key is AFTERSALE_UNSUBSCRIBE_SECRET; else, on PostgreSQL, one kept in the database;
else `unsubscribe.key` beside the DuckDB file (the cycle signs, `aftersale webhooks serve`
verifies: both find it, as both find the webhook spool). Either is made on first use.
Links point at AFTERSALE_UNSUBSCRIBE_URL, else the
webhook receiver's public URL + `/unsubscribe`, else the shop's own site + `/unsubscribe`
(which must then forward to the receiver).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import html
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import quote, urlsplit

from aftersale.dispatch.channels.kinds import spec_of
from aftersale.errors import ConfigError
from aftersale.models import ChannelKind
from aftersale.settings import Settings
from aftersale.store import is_url
from aftersale.store.protocols import KeyStore

#: How long a link keeps working: well over the 30 days CAN-SPAM asks for.
TOKEN_DAYS = 90
KEY_FILE = "unsubscribe.key"
KEY_NAME = "unsubscribe"  # its name among the database's signing keys (PostgreSQL)
#: A receiver on this machine (tests, a trial run) may be plain http.
_LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_EPOCH = date(2000, 1, 1)
_SIG_BYTES = 16


class BadToken(Exception):
    """An unsubscribe token that was tampered with, cut short, or has expired."""

    def __init__(self, reason: str, expired: bool = False) -> None:
        super().__init__(reason)
        self.expired = expired


@dataclass(frozen=True, slots=True)
class OptOut:
    """What a valid token asks for: stop marketing to `address` on `channel`."""

    address: str
    channel: ChannelKind
    locale: str
    expires: date


@dataclass(frozen=True, slots=True)
class UnsubscribeLinks:
    """Makes and reads unsubscribe tokens, and the links and headers that carry them."""

    key: bytes = field(repr=False)
    page_url: str  # e.g. https://hooks.northwind.example/unsubscribe
    mailbox: str | None = None  # the List-Unsubscribe mailto: address
    days: int = TOKEN_DAYS

    def token(self, address: str, channel: ChannelKind, locale: str, now: datetime) -> str:
        expires = (now.astimezone(UTC).date() - _EPOCH).days + self.days
        payload = f"{ChannelKind(channel).value}|{expires}|{locale}|{address}".encode()
        return f"{_b64(payload)}.{_b64(self._sign(payload))}"

    def url(self, address: str, channel: ChannelKind, locale: str, now: datetime) -> str:
        return f"{self.page_url}?t={self.token(address, channel, locale, now)}"

    def mailto(self, token: str) -> str | None:
        """The List-Unsubscribe mailto: target, the token in its subject; None without one."""
        if not self.mailbox:
            return None
        # quote("unsubscribe " + token) byte for byte, without quoting the space's neighbours
        # one by one: a token's characters (base64url and ".") need none.
        return f"mailto:{self.mailbox}?subject=unsubscribe%20{quote(token)}"

    def read(self, token: str, now: datetime) -> OptOut:
        """The opt-out a token asks for; BadToken when it is forged, broken or expired."""
        body, dot, sig = token.strip().partition(".")
        try:
            payload, signature = _unb64(body), _unb64(sig)
        except (binascii.Error, ValueError):
            raise BadToken("the link is incomplete") from None
        if not dot or not hmac.compare_digest(signature, self._sign(payload)):
            raise BadToken("the link's signature does not match")
        try:
            kind, days, locale, address = payload.decode().split("|", 3)
            channel = ChannelKind(kind)
            expires = _EPOCH + timedelta(days=int(days))
        except (UnicodeDecodeError, ValueError):
            raise BadToken("the link is not an unsubscribe link") from None
        if now.astimezone(UTC).date() > expires:
            raise BadToken(f"the link expired on {expires.isoformat()}", expired=True)
        return OptOut(address, channel, locale, expires)

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self.key, payload, hashlib.sha256).digest()[:_SIG_BYTES]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    if not text:
        raise ValueError("empty")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def unsubscribe_key(
    settings: Settings, env: Mapping[str, str], store: KeyStore | None = None
) -> bytes:
    """AFTERSALE_UNSUBSCRIBE_SECRET; else, on PostgreSQL, the key kept in the database;
    else (DuckDB, whose file the receiver never opens) the key file beside the database.
    A missing key is made the first time it is needed."""
    secret = env.get("AFTERSALE_UNSUBSCRIBE_SECRET", "").strip()
    if secret:
        return hashlib.sha256(secret.encode()).digest()
    if is_url(settings.db):
        if store is None:
            raise ConfigError(
                "AFTERSALE_UNSUBSCRIBE_SECRET is not set and the database is not open here: "
                "set it to a long random text, the same for the cycles and the receiver"
            )
        text = store.signing_key(KEY_NAME, secrets.token_hex(32), datetime.now(UTC))
        return hashlib.sha256(text.encode()).digest()
    path = Path(settings.db).parent / KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first: use theirs
            pass
        else:
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_hex(32) + "\n")
    text = path.read_text(encoding="ascii").strip()
    if len(text) < 32:
        raise ConfigError(f"{path}: the unsubscribe key is too short (delete it to make a new one)")
    return hashlib.sha256(text.encode()).digest()


def unsubscribe_links(
    settings: Settings, env: Mapping[str, str], store: KeyStore | None = None
) -> UnsubscribeLinks:
    """The links this installation puts in its marketing messages (see the module doc)."""
    page = env.get("AFTERSALE_UNSUBSCRIBE_URL", "").strip()
    if not page:
        hooks = env.get("AFTERSALE_WEBHOOK_PUBLIC_URL", "").strip()
        page = f"{(hooks or settings.shop.base_url).rstrip('/')}/unsubscribe"
    host = urlsplit(page).hostname or ""
    if not (page.startswith("https://") or host in _LOCAL_HOSTS):
        raise ConfigError(
            f"unsubscribe page {page!r} must be an https:// link (mail programs refuse others)"
        )
    domain = settings.shop.from_email.rpartition("@")[2]
    mailbox = settings.shop.unsubscribe_email or f"unsubscribe@{domain}"
    return UnsubscribeLinks(unsubscribe_key(settings, env, store), page, mailbox)


# --- the page a customer sees ----------------------------------------------------------

_WORDS = {
    "en": {
        "title": "Unsubscribe",
        "email": "emails",
        "text": "text messages",
        "ask": "Stop tips, offers and review requests to {address}?",
        "keep": "Messages about your orders and deliveries keep coming.",
        "button": "Unsubscribe",
        "done": "Done: {address} gets no more {what} with tips and offers from {shop}.",
        "expired": "This unsubscribe link has expired.",
        "bad": "This unsubscribe link is not valid.",
        "help": "Use the link in a newer message, or write to {contact} and we will do it.",
    },
    "pl": {
        "title": "Wypisz się",
        "email": "e-maili",
        "text": "SMS-ów",
        "ask": "Wypisać adres {address} z porad, ofert i próśb o opinię?",
        "keep": "Wiadomości o zamówieniach i dostawach będą nadal przychodzić.",
        "button": "Wypisz mnie",
        "done": "Gotowe: {address} nie dostanie już od {shop} {what} z poradami i ofertami.",
        "expired": "Ten link do wypisania się wygasł.",
        "bad": "Ten link do wypisania się jest nieprawidłowy.",
        "help": "Użyj linku z nowszej wiadomości albo napisz na {contact}, a wypiszemy Cię.",
    },
    "de": {
        "title": "Abmelden",
        "email": "E-Mails",
        "text": "SMS",
        "ask": "Tipps, Angebote und Bewertungsanfragen an {address} abbestellen?",
        "keep": "Nachrichten zu Ihren Bestellungen und Lieferungen erhalten Sie weiterhin.",
        "button": "Abmelden",
        "done": "Erledigt: {address} erhält keine {what} mit Tipps und Angeboten von {shop} mehr.",
        "expired": "Dieser Abmeldelink ist abgelaufen.",
        "bad": "Dieser Abmeldelink ist ungültig.",
        "help": "Nutzen Sie den Link aus einer neueren Nachricht, oder schreiben Sie an {contact}.",
    },
}


def unsubscribe_page(
    outcome: str,
    *,
    locale: str,
    shop_name: str,
    contact: str,
    opt_out: OptOut | None = None,
    token: str = "",
) -> str:
    """The receiver's answer page: `ask` (a button that confirms by POST: a mail scanner
    following the link unsubscribes nobody), `done`, `expired` or `bad`."""
    lang = locale.split("-")[0].lower()
    words = _WORDS.get(lang, _WORDS["en"])
    esc = html.escape
    address = esc(opt_out.address) if opt_out else ""
    if outcome == "ask":
        body = (
            f"<p>{esc(words['ask']).format(address=f'<strong>{address}</strong>')}</p>"
            f"<p>{esc(words['keep'])}</p>"
            f'<form method="post" action="?t={esc(token)}">'
            f'<button type="submit">{esc(words["button"])}</button></form>'
        )
    elif outcome == "done":
        assert opt_out is not None
        what = words[spec_of(opt_out.channel).render_format.value]
        text = esc(words["done"]).format(
            address=f"<strong>{address}</strong>", what=esc(what), shop=esc(shop_name)
        )
        body = f"<p>{text}</p><p>{esc(words['keep'])}</p>"
    else:
        mail = f'<a href="mailto:{esc(contact)}">{esc(contact)}</a>'
        body = f"<p>{esc(words[outcome])}</p><p>{esc(words['help']).format(contact=mail)}</p>"
    return (
        f'<!DOCTYPE html><html lang="{esc(lang)}"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(words['title'])} · {esc(shop_name)}</title>"
        "<style>body{font-family:Helvetica,Arial,sans-serif;max-width:32em;margin:3em auto;"
        "padding:0 1em;color:#1f2933;line-height:1.5}button{background:#0b5394;color:#fff;"
        "border:0;border-radius:4px;padding:12px 24px;font-size:16px;cursor:pointer}</style>"
        f"</head><body><h1>{esc(shop_name)}</h1>{body}</body></html>"
    )
