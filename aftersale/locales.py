"""The world's vocabularies marketers write values from: locale tags, countries,
currencies and time zones (CLDR through Babel, IANA through zoneinfo), and which value a
misspelt one meant.

A locale tag is written the way templates and the catalogue name it: a language (`de`)
or a language and region (`pl-PL`). `ger` and `deu` are other names of German, not tags:
they are suggested as `de`. Countries are ISO 3166 codes (`PL`), currencies ISO 4217.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from difflib import get_close_matches
from functools import cache, lru_cache
from zoneinfo import available_timezones

from babel import Locale, UnknownLocaleError
from babel.core import get_global

_TAG = re.compile(r"^([a-z]{2,3})(?:[-_]([A-Z]{2}|\d{3}))?$", re.IGNORECASE)


@lru_cache(maxsize=512)
def is_locale(tag: str) -> bool:
    """True for a language (`de`) or language-region (`pl-PL`) tag that CLDR knows."""
    match = _TAG.match(tag)
    if not match:
        return False
    try:
        parsed = Locale.parse(tag.replace("-", "_"))
    except (UnknownLocaleError, ValueError):
        return False
    # Babel resolves aliases (ger -> de): an alias is not the tag itself
    return parsed.language == match.group(1).lower()


def language_name(tag: str) -> str:
    """`de` -> German, `pl-PL` -> Polish (Poland); the tag itself when unknown."""
    try:
        return Locale.parse(tag.replace("-", "_")).get_display_name("en") or tag
    except (UnknownLocaleError, ValueError):
        return tag


def suggest_locale(tag: str, known: Collection[str], missing: Collection[str] = ()) -> str:
    """` (did you mean 'de'?)` for a misspelt tag: its alias (ger -> de), else the one
    locale `missing` where it was written, else the closest of `known`."""
    alias = get_global("language_aliases").get(tag.lower().split("-")[0].split("_")[0])
    if alias:
        language = alias.split("_")[0]
        return f" (did you mean '{language}'?)"
    if len(missing) == 1:
        return f" (did you mean '{next(iter(missing))}'?)"
    close = get_close_matches(tag, sorted(known), n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""


@cache
def countries() -> dict[str, str]:
    """ISO 3166-1 alpha-2 code -> English name."""
    names = Locale("en").territories
    return {
        str(code): names[code]
        for code in names
        if isinstance(code, str) and len(code) == 2 and code.isalpha()
    }


@cache
def currencies() -> frozenset[str]:
    return frozenset(get_global("all_currencies"))


@cache
def time_zones() -> frozenset[str]:
    return frozenset(available_timezones())


@cache
def _country_names() -> dict[str, str]:
    """Country names in a few languages marketers write (Poland, Polska, Polen) -> code."""
    names: dict[str, str] = {}
    for language in ("fr", "es", "de", "pl", "en"):
        territories = Locale(language).territories
        names.update((str(territories[c]).lower(), c) for c in countries() if c in territories)
    return names


def suggest_country(value: str) -> str:
    """` (did you mean 'PL'?)` for pl, Poland, Polska..."""
    known = countries()
    if value.upper() in known:
        return f" (did you mean '{value.upper()}'?)"
    by_name = _country_names()
    code = by_name.get(value.lower())
    if code is None:
        close = get_close_matches(value.lower(), sorted(by_name), n=1, cutoff=0.7)
        code = by_name[close[0]] if close else None
    return f" (did you mean '{code}'?)" if code else ""
