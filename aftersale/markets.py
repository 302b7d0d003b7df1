"""Read shop.yaml: the shop's name and sender, its fallback contact block and its markets.

Every problem in the file is reported at once, as `shop.yaml:LINE:COL what is wrong`.
No file at the default path means the built-in `Shop()`; a path set on purpose
(AFTERSALE_SHOP) must exist.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import fields
from difflib import get_close_matches
from pathlib import Path
from typing import Any
from zoneinfo import available_timezones

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError

from aftersale.errors import ConfigError
from aftersale.settings import PROJECT_ROOT, Market, Shop

_SHOP_TEXT = (
    "name",
    "base_url",
    "default_locale",
    "from_email",
    "from_name",
    "reply_to",
    "unsubscribe_email",
    "email",
    "phone",
    "help_url",
)
#: The shop's promises to every customer (docs/shops.md "Returns, refunds and dispatch").
_SHOP_DAYS = ("dispatch_days", "return_days")
_SHOP_FIELDS = (*_SHOP_TEXT, "time_zone", *_SHOP_DAYS, "hours", "legal", "markets")
_MARKET_REQUIRED = ("countries", "currency", "phone", "email", "help_url")
_MARKET_FIELDS = (*_MARKET_REQUIRED, "hours", "legal")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
_URL_FIELDS = ("base_url", "help_url")
_EMAIL_FIELDS = ("email", "from_email", "reply_to", "unsubscribe_email")


def load_shop(path: Path) -> Shop:
    """The shop from `path`; the built-in shop when the default file is absent."""
    if not path.is_file():
        if path == PROJECT_ROOT / "shop.yaml":
            return Shop()
        raise ConfigError(f"{path}: no such file (AFTERSALE_SHOP names the shop's settings)")
    return parse_shop(path.read_text(encoding="utf-8"), str(path))


def parse_shop(text: str, filename: str) -> Shop:
    try:
        doc = YAML(typ="rt").load(text)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{filename}:{mark.line + 1}:{mark.column + 1}" if mark else filename
        raise ConfigError(f"{where} not valid YAML: {getattr(exc, 'problem', exc)}") from exc
    if doc is None:
        return Shop()
    if not isinstance(doc, CommentedMap):
        raise ConfigError(f"{filename}:1:1 expected the shop's fields (name:, markets: ...)")
    problems: list[str] = []
    values: dict[str, Any] = {}
    for key in doc:
        where = _at(filename, doc, key)
        if key not in _SHOP_FIELDS:
            problems.append(f"{where} unknown field '{key}'{_did_you_mean(key, _SHOP_FIELDS)}")
        elif key in _SHOP_TEXT:
            value = _text(filename, doc, key, "shop", problems)
            if value is not None:
                values[key] = value
        elif key in ("hours", "legal"):
            values[key] = _texts(filename, doc, key, "shop", problems)
        elif key == "time_zone":
            zone = doc.get(key)
            if not (isinstance(zone, str) and zone in available_timezones()):
                problems.append(
                    f"{_at_value(filename, doc, key)} shop: time_zone must be an IANA time "
                    f"zone such as Europe/Warsaw, got {zone!r}"
                )
            else:
                values[key] = zone
        elif key in _SHOP_DAYS:
            days = doc.get(key)
            if isinstance(days, bool) or not isinstance(days, int) or days < 0:
                problems.append(
                    f"{_at_value(filename, doc, key)} shop: {key} must be a whole number of "
                    f"days (0 or more), got {days!r}"
                )
            else:
                values[key] = days
    markets = doc.get("markets")
    if markets is not None:
        values["markets"] = _markets(filename, doc, markets, problems)
    if problems:
        raise ConfigError("\n".join(problems))
    known = {f.name for f in fields(Shop)}
    return Shop(**{k: v for k, v in values.items() if k in known})


def _markets(
    filename: str, doc: CommentedMap, markets: Any, problems: list[str]
) -> tuple[Market, ...]:
    if not isinstance(markets, CommentedMap):
        problems.append(f"{_at(filename, doc, 'markets')} markets: map each market's code to it")
        return ()
    out: list[Market] = []
    served: dict[str, str] = {}
    for code, body in markets.items():
        where = _at(filename, markets, code)
        label = f"market '{code}'"
        if not isinstance(body, CommentedMap):
            problems.append(f"{where} {label}: expected fields {', '.join(_MARKET_FIELDS)}")
            continue
        before = len(problems)
        for key in body:
            if key not in _MARKET_FIELDS:
                problems.append(
                    f"{_at(filename, body, key)} {label}: unknown field '{key}'"
                    f"{_did_you_mean(key, _MARKET_FIELDS)}"
                )
        missing = [k for k in _MARKET_REQUIRED if k not in body]
        if missing:
            problems.append(f"{where} {label}: missing {', '.join(missing)}")
            continue
        countries = _countries(filename, body, label, problems)
        for country in countries:
            if country in served:
                problems.append(
                    f"{_at_value(filename, body, 'countries')} {label}: country {country} is "
                    f"already served by market '{served[country]}' (a country belongs to one "
                    f"market)"
                )
            served.setdefault(country, str(code))
        currency = _text(filename, body, "currency", label, problems) or ""
        if currency and not _CURRENCY.match(currency):
            problems.append(
                f"{_at_value(filename, body, 'currency')} {label}: currency must be an ISO 4217 "
                f"code such as EUR or GBP, got {currency!r}"
            )
        texts = {k: _text(filename, body, k, label, problems) for k in _MARKET_REQUIRED[2:]}
        hours = _texts(filename, body, "hours", label, problems)
        legal = _texts(filename, body, "legal", label, problems)
        if len(problems) > before:
            continue
        out.append(
            Market(
                code=str(code),
                countries=countries,
                currency=currency,
                phone=texts["phone"] or "",
                email=texts["email"] or "",
                help_url=texts["help_url"] or "",
                hours=hours,
                legal=legal,
            )
        )
    return tuple(out)


def _countries(
    filename: str, body: CommentedMap, label: str, problems: list[str]
) -> tuple[str, ...]:
    raw = body.get("countries")
    if not isinstance(raw, CommentedSeq) or not raw:
        problems.append(
            f"{_at(filename, body, 'countries')} {label}: countries must be a list of "
            f"ISO 3166 codes, e.g. [DE, AT]"
        )
        return ()
    out = []
    for index, value in enumerate(raw):
        if not (isinstance(value, str) and _COUNTRY.match(value)):
            problems.append(
                f"{_at(filename, raw, index)} {label}: {value!r} is not a two-letter "
                f"upper-case country code such as GB"
            )
            continue
        out.append(value)
    return tuple(out)


def _text(
    filename: str, node: CommentedMap, key: str, label: str, problems: list[str]
) -> str | None:
    value = node.get(key)
    where = _at_value(filename, node, key)
    if not isinstance(value, str) or not value.strip():
        problems.append(f"{where} {label}: {key} must be a text, got {value!r}")
        return None
    value = value.strip()
    if key in _URL_FIELDS and not value.startswith("https://"):
        problems.append(f"{where} {label}: {key} must be an https:// link, got {value!r}")
    if key in _EMAIL_FIELDS and not _EMAIL.match(value):
        problems.append(f"{where} {label}: {key} must be an email address, got {value!r}")
    return value


def _texts(
    filename: str, node: CommentedMap, key: str, label: str, problems: list[str]
) -> Mapping[str, str]:
    """One text (for every language, as "*") or a map from language to text."""
    value = node.get(key)
    if value is None:
        return {}
    where = _at(filename, node, key)
    if isinstance(value, str) and value.strip():
        return {"*": value.strip()}
    if isinstance(value, CommentedMap) and value:
        out: dict[str, str] = {}
        for lang, text in value.items():
            if not (isinstance(lang, str) and _LANGUAGE.match(lang)):
                problems.append(
                    f"{_at(filename, value, lang)} {label}: {key}: {lang!r} is not a language "
                    f"such as en, pl or de"
                )
            elif not (isinstance(text, str) and text.strip()):
                problems.append(
                    f"{_at(filename, value, lang)} {label}: {key}.{lang} must be a text"
                )
            else:
                out[lang] = text.strip()
        return out
    problems.append(
        f"{where} {label}: {key} must be a text, or a map from language (en, pl, de) to text"
    )
    return {}


def pick_text(texts: Mapping[str, str], chain: Sequence[str]) -> str | None:
    """The text for the first language of `chain` (pl-PL, pl, en) that has one, else the
    language-neutral one, else the first given; None when there is none."""
    for lang in chain:
        if lang in texts:
            return texts[lang]
    if "*" in texts:
        return texts["*"]
    return next(iter(texts.values()), None)


def _at_value(filename: str, node: CommentedMap, key: Any) -> str:
    line, col = node.lc.value(key)
    return f"{filename}:{line + 1}:{col + 1}"


def _at(filename: str, node: Any, key: Any) -> str:
    line, col = node.lc.key(key) if isinstance(node, CommentedMap) else node.lc.item(key)
    return f"{filename}:{line + 1}:{col + 1}"


def _did_you_mean(name: Any, known: tuple[str, ...]) -> str:
    close = get_close_matches(str(name), list(known), n=1)
    return f" (did you mean '{close[0]}'?)" if close else f" (expected one of: {', '.join(known)})"
