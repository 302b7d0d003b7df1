"""Filters templates use: dates, times and money per locale (Babel) in the recipient's time
zone, plural forms, carrier tracking links, UTM parameters, GSM-7 transliteration.
`build_filters` binds them to the carriers the edge knows (for tracking links).

Filters read the variant's locale (`locale`) and the recipient's time zone
(`customer.time_zone`) from the render context, so a template writes
`{{ order.total|money }}` and gets "1 299,50 zł" for a Polish customer.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_datetime, format_time
from babel.numbers import format_currency, format_decimal, get_currency_symbol
from jinja2 import pass_context
from jinja2.runtime import Context
from jinja2.utils import missing

from aftersale.carriers_meta import Carriers
from aftersale.render.sms import GSM7_BASIC, GSM7_EXTENSION

UTM_SOURCE = "aftersale"


@lru_cache(maxsize=256)
def babel_locale(tag: str) -> Locale:
    try:
        return Locale.parse(tag.replace("-", "_"))
    except (UnknownLocaleError, ValueError):
        return Locale.parse(tag.split("-")[0].split("_")[0] or "en")


@lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r} in customer.time_zone") from exc


@lru_cache(maxsize=256)
def _format_tag(variant: str, customer_locale: str) -> str:
    """The customer's region when it speaks the variant's language (pl-PL), else the variant."""
    customer = customer_locale.replace("_", "-")
    if customer.split("-")[0].lower() == variant.split("-")[0].lower():
        return customer
    return variant


def _tag(ctx: Context) -> str:
    """The tag of the locale to format in (babel_locale makes it): a text, so the caches of
    formatted amounts and dates need not hash a babel Locale at every look-up."""
    customer = _read(ctx, "customer") or {}
    return _format_tag(str(_read(ctx, "locale") or "en"), str(customer.get("locale") or ""))


def _locale(ctx: Context) -> Locale:
    return babel_locale(_tag(ctx))


def _read(ctx: Context, name: str) -> Any:
    """`ctx.get(name)` in one call rather than three: filters read a few names each time."""
    value = ctx.resolve_or_missing(name)
    return None if value is missing else value


def _locale_tag(ctx: Context) -> str:
    """The customer's locale when the message is in their language (en-US for an "en"
    message to an American), else the message's language: for carriers' pages."""
    return _page_tag(_tag(ctx))


@lru_cache(maxsize=256)
def _page_tag(tag: str) -> str:
    locale = babel_locale(tag)
    return f"{locale.language}-{locale.territory}" if locale.territory else locale.language


def _local(ctx: Context, value: datetime) -> datetime:
    customer = _read(ctx, "customer") or {}
    tz = customer.get("time_zone") or "UTC"
    return value.astimezone(zone(tz))


@pass_context
def money_filter(ctx: Context, amount: Any, currency: str | None = None) -> str:
    """`{{ item.price|money }}` -> "1 299,50 zł"; currency defaults to the order's."""
    if currency is None:
        currency = (_read(ctx, "order") or {}).get("currency") or "EUR"
    # Decimal(str(x)): a float's shortest text (0.1), not its binary value; a Decimal as is
    value = amount if type(amount) is Decimal else Decimal(str(amount))
    return _money_in(value, str(currency), _tag(ctx))


# Formatting is pure and the same few prices, dates and locales recur across messages:
# memoising keeps Babel's pattern work out of the per-message cost.
@lru_cache(maxsize=8192)
def _money_in(amount: Decimal, currency: str, tag: str) -> str:
    return _money(amount, currency, babel_locale(tag))


def _money(amount: Decimal, currency: str, locale: Locale) -> str:
    text = format_currency(amount, currency, locale=locale)
    # CLDR's currency spacing, which Babel leaves out: a symbol that ends (or starts) with
    # a letter gets a no-break space before (after) the digits: "PLN 899.00", not "PLN899.00"
    symbol = get_currency_symbol(currency, locale)
    at = text.find(symbol)
    if symbol and at >= 0:
        end = at + len(symbol)
        if symbol[-1].isalpha() and end < len(text) and text[end].isdigit():
            text = text[:end] + "\u00a0" + text[end:]
        if symbol[0].isalpha() and at > 0 and text[at - 1].isdigit():
            text = text[:at] + "\u00a0" + text[at:]
    return text


class DateFormatError(ValueError):
    """A template named a date format that is not one of DATE_FORMATS."""


#: The date formats templates may name: Babel's four, and two without the year (for dates
#: this year: "Friday, 27 November", "27 Nov"), each as the customer's locale writes it.
DATE_FORMATS = ("short", "medium", "long", "full", "day", "day_short")
_WITHOUT_YEAR = {"day": "full", "day_short": "medium"}
_YEAR = re.compile(r"[\s,]*y+[\s]*")


def date_format_problem(format: str) -> str | None:
    """Why `|date(format)` is refused (a pattern of one's own), or None for a named format:
    the same words from `check` (before sending) and from rendering."""
    if format in DATE_FORMATS:
        return None
    return (
        f"|date({format!r}): use a named format ({', '.join(DATE_FORMATS)}); the customer's "
        f"locale decides how the date is written"
    )


@lru_cache(maxsize=256)
def date_pattern(format: str, locale: Locale) -> str:
    """The locale's pattern for a named format; "day"/"day_short" are its full/medium
    pattern without the year (en-US "EEEE, MMMM d", en-GB "EEEE d MMMM", de "dd.MM.")."""
    problem = date_format_problem(format)
    if problem:
        raise DateFormatError(problem)
    base = _WITHOUT_YEAR.get(format)
    if base is None:
        return str(locale.date_formats[format].pattern)
    pattern = str(locale.date_formats[base].pattern)
    return _YEAR.sub(" ", pattern).strip(" ,") if "y" in pattern else pattern


@lru_cache(maxsize=8192)
def _date(value: date, format: str, tag: str) -> str:
    locale = babel_locale(tag)
    return format_date(value, format=date_pattern(format, locale), locale=locale)


@pass_context
def number_filter(ctx: Context, value: Any) -> str:
    return format_decimal(value, locale=_locale(ctx))


@pass_context
def date_filter(ctx: Context, value: date | datetime, format: str = "long") -> str:
    """`{{ shipment.estimated_delivery|date }}`; formats: short, medium, long, full, day
    (full without the year), day_short (medium without the year). Datetimes are shown on
    the recipient's calendar (their time zone)."""
    if isinstance(value, datetime):
        value = _local(ctx, value).date()
    return _date(value, format, _tag(ctx))


@pass_context
def time_filter(ctx: Context, value: datetime, format: str = "short") -> str:
    """`{{ shipment.window_start|time }}` -> "14:00" in the recipient's time zone."""
    return format_time(_local(ctx, value), format=format, locale=_locale(ctx))


@pass_context
def datetime_filter(ctx: Context, value: datetime, format: str = "medium") -> str:
    return format_datetime(_local(ctx, value), format=format, locale=_locale(ctx))


@pass_context
def weekday_filter(ctx: Context, value: date | datetime) -> str:
    """`{{ shipment.estimated_delivery|weekday }}` -> "Dienstag"."""
    if isinstance(value, datetime):
        value = _local(ctx, value).date()
    return _weekday(value, _tag(ctx))


@lru_cache(maxsize=1024)
def _weekday(value: date, tag: str) -> str:
    # a CLDR pattern of its own, not one of the named formats `date_pattern` looks up
    return format_date(value, format="EEEE", locale=babel_locale(tag))


@pass_context
def plural_filter(ctx: Context, count: int, **forms: str) -> str:
    """`{{ n|plural(one="produkt", few="produkty", many="produktów") }}`: the form the
    locale's plural rules pick for `count` (English and German need one= and other=)."""
    category = _locale(ctx).plural_form(abs(count))
    for name in (category, "other", "many"):
        if name in forms:
            return forms[name]
    if not forms:
        raise ValueError("plural needs the word forms, e.g. plural(one='item', other='items')")
    return list(forms.values())[-1]


def add_utm(url: str, medium: str, campaign: str, content: str | None = None) -> str:
    """`url` with the UTM parameters added to its query. Not memoised: the links a shared
    part tags are rendered once anyway (memo.py), and the rest are each customer's own."""
    params = _utm_params(medium, campaign, content)
    if _PLAIN_LINK.fullmatch(url):  # most links: no need to take them apart
        return f"{url}&{params}" if "?" in url else f"{url}?{params}"
    parts = urlsplit(url)
    query = f"{parts.query}&{params}" if parts.query else params
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


@lru_cache(maxsize=256)
def _utm_params(medium: str, campaign: str, content: str | None) -> str:
    params = {"utm_source": UTM_SOURCE, "utm_medium": medium, "utm_campaign": campaign}
    if content:
        params["utm_content"] = content
    return urlencode(params)


#: A link that urlsplit and urlunsplit give back unchanged: http(s) in lower case, a host
#: (and port), a path and a non-empty query of plain URL characters, and no fragment. Any
#: other link is taken apart and put back together, which may normalise it.
_PLAIN_LINK = re.compile(
    r"https?://[A-Za-z0-9.-]+(?::[0-9]+)?"
    r"(?:/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*)?"
    r"(?:\?[A-Za-z0-9._~!$&'()*+,;=:@%/?-]+)?"
)


def _campaign(ctx: Context) -> tuple[str, str]:
    """(channel, message type) from the template's path, e.g. email/shipped/en.j2."""
    parts = (ctx.name or "").split("/")
    if len(parts) >= 3:
        return parts[0], parts[1]
    return "email", "message"


#: Filters given the render context that read nothing of it but the template's name: a
#: shared part using them still renders the same for the same values (memo.py).
NAME_ONLY = frozenset({"utm"})


@pass_context
def utm_filter(ctx: Context, url: str, content: str | None = None) -> str:
    """`{{ links.review|utm }}`: adds utm_source=aftersale, utm_medium=<channel>,
    utm_campaign=<message type> (and utm_content when given)."""
    medium, campaign = _campaign(ctx)
    return add_utm(str(url), medium, campaign, content)


def tracking_url_filter(carriers: Carriers) -> Callable[[Context, Mapping[str, Any]], str]:
    # An email links its parcel twice (in its HTML and in its text): the second time from
    # here. Keyed by every value the link is made of.
    @lru_cache(maxsize=256)
    def tagged_page(
        carrier: str | None, number: str, locale: str, medium: str, campaign: str
    ) -> str | None:
        page = carriers.tracking_page(carrier, number, locale)
        return add_utm(page, medium, campaign) if page is not None else None

    @pass_context
    def tracking_url(ctx: Context, shipment: Mapping[str, Any]) -> str:
        """`{{ shipment|tracking_url }}`: the carrier's tracking page with UTM parameters, or
        the order page when the carrier is not known yet."""
        medium, campaign = _campaign(ctx)
        number = str(shipment.get("tracking_number"))
        link = tagged_page(shipment.get("carrier"), number, _locale_tag(ctx), medium, campaign)
        if link is None:
            link = add_utm(str((_read(ctx, "links") or {}).get("order")), medium, campaign)
        return link

    return tracking_url


_GSM_REPLACEMENTS = {"ł": "l", "Ł": "L", "đ": "d", "Đ": "D", "œ": "oe", "Œ": "OE"}


def gsm_filter(text: Any) -> str:
    """`{{ customer.first_name|gsm }}`: strip accents GSM-7 cannot carry (Łukasz -> Lukasz,
    keeping ä ö ü ß é) so one name does not turn the whole SMS into UCS-2; characters with
    no Latin form are dropped."""
    out = []
    for ch in str(text):
        if ch in GSM7_BASIC or ch in GSM7_EXTENSION:
            out.append(ch)
        elif ch in _GSM_REPLACEMENTS:
            out.append(_GSM_REPLACEMENTS[ch])
        else:
            base = unicodedata.normalize("NFKD", ch)
            out.extend(c for c in base if c in GSM7_BASIC)
    return "".join(out).strip()


def build_filters(carriers: Carriers) -> Mapping[str, Callable[..., Any]]:
    """Every filter templates may use, by name (templates/README.md documents them)."""
    return {
        "money": money_filter,
        "number": number_filter,
        "date": date_filter,
        "time": time_filter,
        "datetime": datetime_filter,
        "weekday": weekday_filter,
        "plural": plural_filter,
        "utm": utm_filter,
        "tracking_url": tracking_url_filter(carriers),
        "gsm": gsm_filter,
    }
