"""Carrier facts: each carrier's `CarrierMeta` (defined in its own file under carriers/) and
`Carriers`, the directory of them that the edge builds and passes in.

The core never lists carriers itself: intake checks slugs, rules check condition values,
templates get names and tracking pages, settings get API URLs and detection gets
per-carrier thresholds, all from the directory it is given.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from types import MappingProxyType
from typing import Any
from urllib.parse import quote

from babel.core import get_global

_DROP = re.compile(r"[\s\-]+")


def normalise_tracking_number(raw: str) -> str:
    """Upper-case, without spaces and dashes: the form stored and sent to every carrier."""
    return _DROP.sub("", raw).upper()


@lru_cache(maxsize=1024)  # every tracking link asks, for one of a few locales
def language_and_region(locale: str) -> tuple[str, str]:
    """("en", "GB") for en-GB or en_GB; a bare language gets its usual country (CLDR's
    likely subtags: en -> US, de -> DE, pl -> PL)."""
    parts = [p for p in locale.replace("_", "-").split("-") if p]
    lang = parts[0].lower() if parts else "en"
    region = next((p.upper() for p in parts[1:] if len(p) == 2 and p.isalpha()), "")
    if not region:
        likely = str(get_global("likely_subtags").get(lang, "")).split("_")
        region = likely[-1] if len(likely) > 1 and len(likely[-1]) == 2 else "US"
    return lang, region


@dataclass(frozen=True, slots=True)
class NumberPattern:
    """One tracking-number format (on the normalised number), and its check digit if any."""

    regex: str
    check: Callable[[str], bool] | None = None
    compiled: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "compiled", re.compile(self.regex))

    def matches(self, number: str) -> bool:
        return self.compiled.match(number) is not None and (
            self.check is None or self.check(number)
        )


@dataclass(frozen=True, slots=True)
class CarrierMeta:
    """Who a carrier is, for everything but the HTTP calls (its adapter does those).

    `tracking_pages` maps a locale (`en-US`) or a language (`pl`, `de`) to the public
    tracking page for customers who speak it, and `*` to the page for everyone else;
    `{number}` is the tracking number, `{lang}` the customer's language code and `{region}`
    their country (from the locale, else the language's usual one: en -> US, pl -> PL).
    `sandbox_env` is what a client needs to talk to the local sandbox (environment
    variable -> the test value the sandbox accepts).
    `delay_thresholds` overrides `DelayThresholds` fields for this carrier's parcels.
    """

    slug: str  # one slug everywhere: file, registry key, column, rule YAML
    name: str  # as customers read it: "InPost"
    api_url: str  # production tracking API; AFTERSALE_<SLUG>_URL points elsewhere
    tracking_pages: Mapping[str, str]
    number_patterns: tuple[NumberPattern, ...] = ()
    sandbox_env: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    delay_thresholds: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        if "*" not in self.tracking_pages:
            raise ValueError(f"carrier {self.slug!r}: tracking_pages needs a '*' page")

    def tracking_page(self, number: str, locale: str) -> str:
        """The public tracking page for `number`, in the customer's language if offered."""
        lang, region = language_and_region(locale)
        page = (
            self.tracking_pages.get(f"{lang}-{region}")
            or self.tracking_pages.get(lang)
            or self.tracking_pages["*"]
        )
        return page.format(number=quote(number, safe=""), lang=lang, region=region)

    def recognises(self, normalised_number: str) -> bool:
        return any(p.matches(normalised_number) for p in self.number_patterns)


@dataclass(frozen=True, slots=True)
class Carriers:
    """The carriers this installation knows, in registry order (which breaks detection ties)."""

    metas: tuple[CarrierMeta, ...]
    _by_slug: Mapping[str, CarrierMeta] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_slug = {m.slug: m for m in self.metas}
        if len(by_slug) != len(self.metas):
            raise ValueError(f"two carriers share a slug in {[m.slug for m in self.metas]}")
        object.__setattr__(self, "_by_slug", MappingProxyType(by_slug))

    @property
    def slugs(self) -> tuple[str, ...]:
        return tuple(self._by_slug)

    def __iter__(self) -> Iterator[CarrierMeta]:
        return iter(self.metas)

    def __contains__(self, slug: object) -> bool:
        return slug in self._by_slug

    def get(self, slug: str | None) -> CarrierMeta | None:
        return self._by_slug.get(slug) if slug else None

    def name(self, slug: str | None) -> str:
        """The carrier's display name; an unknown slug shows as itself, no carrier as ''."""
        meta = self.get(slug)
        return meta.name if meta else slug or ""

    def tracking_page(self, slug: str | None, number: str, locale: str) -> str | None:
        """The carrier's public tracking page for `number`; None for an unknown carrier."""
        meta = self.get(slug)
        return meta.tracking_page(number, locale) if meta else None

    def detect(self, tracking_number: str) -> list[str]:
        """Slugs of the carriers whose number formats (and check digits) fit, most likely
        first; empty when none does. A wrong first guess corrects itself at the first poll,
        when that carrier says it does not know the number."""
        n = normalise_tracking_number(tracking_number)
        return [m.slug for m in self.metas if m.recognises(n)]

    def api_urls(self) -> dict[str, str]:
        return {m.slug: m.api_url for m in self.metas}
