"""The product catalogue marketers edit (catalogue/products.yaml): setup tips, guides, warranty.

Entries exist per category and per SKU; a SKU entry overrides its category's
fields one by one. Every problem in the file is reported at once, as file:line: the
fields, and the content as customers would read it (tips are plain text: no markup, no
template syntax; locales that exist; categories that are defined).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from difflib import get_close_matches
from functools import lru_cache
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError

from aftersale.errors import ConfigError
from aftersale.locales import is_locale, suggest_locale

ENTRY_FIELDS = ("category", "warranty_months", "guide_url", "tips", "extended_warranty")
OFFER_FIELDS = ("months", "prices", "url")
_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9]*")
_TEMPLATE_SYNTAX = re.compile(r"\{[{%#].*?(?:[}%#]\}|$)")


@dataclass(frozen=True, slots=True)
class ExtendedWarranty:
    """An offer to extend cover, priced per currency: a customer is offered it in their
    order's currency, or not at all (never in another market's money)."""

    months: int
    prices: Mapping[str, Decimal]  # ISO 4217 code -> price
    url: str

    def price_in(self, currency: str | None) -> Decimal | None:
        return self.prices.get(currency.upper()) if currency else None


@dataclass(frozen=True, slots=True)
class ProductInfo:
    """What the catalogue says about one product (category defaults merged with its SKU)."""

    category: str | None = None
    warranty_months: int | None = None
    guide_url: str | None = None
    tips: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    extended_warranty: ExtendedWarranty | None = None

    def tips_for(self, locale: str, default_locale: str) -> tuple[str, ...]:
        """Tips in `locale`, falling back pl-PL -> pl -> the shop's default locale."""
        for candidate in locale_chain(locale, default_locale):
            if candidate in self.tips:
                return self.tips[candidate]
        return ()


@lru_cache(maxsize=1024)  # every message asks, for one of a few locales
def locale_chain(locale: str, default_locale: str) -> tuple[str, ...]:
    """`pl_PL` -> ("pl-PL", "pl", default): the order in which variants are tried."""
    tag = locale.replace("_", "-").strip()
    chain = []
    if tag:
        chain.append(tag)
        language = tag.split("-")[0].lower()
        if language not in chain:
            chain.append(language)
    if default_locale not in chain:
        chain.append(default_locale)
    return tuple(chain)


@dataclass(frozen=True, slots=True)
class Catalogue:
    categories: Mapping[str, ProductInfo] = field(default_factory=dict)
    products: Mapping[str, ProductInfo] = field(default_factory=dict)
    #: Entries merged so far, by (sku, category): every message about a product asks.
    _merged: dict[tuple[str, str | None], ProductInfo | None] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def lookup(self, sku: str, category: str | None) -> ProductInfo | None:
        """The SKU's entry over its category's; None when the catalogue knows neither."""
        key = (sku, category)
        if key not in self._merged:
            self._merged[key] = self._merge(sku, category)
        return self._merged[key]

    def _merge(self, sku: str, category: str | None) -> ProductInfo | None:
        by_sku = self.products.get(sku)
        by_category = self.categories.get((by_sku and by_sku.category) or category or "")
        if by_sku is None:
            return by_category
        if by_category is None:
            return by_sku
        return ProductInfo(
            category=by_sku.category or by_category.category,
            warranty_months=(
                by_sku.warranty_months
                if by_sku.warranty_months is not None
                else by_category.warranty_months
            ),
            guide_url=by_sku.guide_url or by_category.guide_url,
            tips={**by_category.tips, **by_sku.tips},
            extended_warranty=by_sku.extended_warranty or by_category.extended_warranty,
        )


def load_catalogue(path: Path) -> Catalogue:
    """Read and validate the catalogue; ConfigError lists every problem with file:line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the product catalogue ({exc})") from exc
    return parse_catalogue(text, str(path))


def parse_catalogue(text: str, filename: str) -> Catalogue:
    """The catalogue, or ConfigError listing every problem (a broken catalogue sends nothing)."""
    catalogue, problems, _ = read_catalogue(text, filename)
    if problems:
        raise ConfigError("\n".join(problems))
    return catalogue


def check_catalogue(path: Path) -> tuple[Catalogue, list[str], list[str] | None]:
    """For `check`: the entries that are fine (templates are still checked against them),
    every problem of the file, and every category it defines, even one with problems (so a
    rule naming it is not a second problem); None when the file cannot be read at all."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        return Catalogue(), [f"{path}: cannot read the product catalogue ({exc})"], None
    # shown as marketers know it, beside rules/ and templates/: catalogue/products.yaml
    return read_catalogue(text, f"{path.parent.name}/{path.name}")


def read_catalogue(text: str, filename: str) -> tuple[Catalogue, list[str], list[str] | None]:
    """(the valid entries, every problem in file order, every category it names, or None
    when the file is not readable YAML)."""
    try:
        doc = YAML(typ="rt").load(text)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{filename}:{mark.line + 1}:{mark.column + 1}" if mark else filename
        return Catalogue(), [f"{where} not valid YAML: {getattr(exc, 'problem', exc)}"], None
    problems: list[str] = []
    if doc is None:
        return Catalogue(), [], []
    if not isinstance(doc, CommentedMap):
        expected = f"{filename}:1:1 expected 'categories:' and/or 'products:' sections"
        return Catalogue(), [expected], None
    sections: dict[str, dict[str, ProductInfo]] = {"categories": {}, "products": {}}
    for key in doc:
        where = _at(filename, doc, key)
        if key not in sections:
            problems.append(f"{where} unknown section '{key}'{_did_you_mean(key, sections)}")
            continue
        entries = doc[key]
        if entries is None:
            continue
        if not isinstance(entries, CommentedMap):
            problems.append(f"{where} '{key}' must map names to entries")
            continue
        label = "category" if key == "categories" else "product"
        for name, body in entries.items():
            info = _parse_entry(filename, entries, str(name), body, label, problems)
            if info is not None:
                if key == "categories":
                    info = replace(info, category=str(name))
                sections[key][str(name)] = info
    problems.extend(_unknown_categories(filename, doc))
    catalogue = Catalogue(categories=sections["categories"], products=sections["products"])
    named = doc.get("categories")
    categories = sorted(str(c) for c in named) if isinstance(named, CommentedMap) else []
    return catalogue, sorted(problems, key=_position), categories


def _unknown_categories(filename: str, doc: CommentedMap) -> list[str]:
    """A product whose category has no entry would silently get none of its tips."""
    problems = []
    products, categories = doc.get("products"), doc.get("categories")
    if not isinstance(products, CommentedMap) or not isinstance(categories, CommentedMap):
        return []
    for sku, body in products.items():
        category = body.get("category") if isinstance(body, CommentedMap) else None
        if category is not None and str(category) not in categories:
            known = sorted(str(c) for c in categories)
            hint = _did_you_mean(str(category), known) if known else ""
            line, col = body.lc.value("category")
            problems.append(
                f"{filename}:{line + 1}:{col + 1} product '{sku}': unknown category "
                f"'{category}': no entry under categories{hint}"
            )
    return problems


def _position(problem: str) -> tuple[int, int]:
    """(line, column) of a "file:line:col message" problem, to report in file order."""
    parts = problem.split(" ", 1)[0].rsplit(":", 2)
    return (int(parts[1]), int(parts[2])) if len(parts) == 3 and parts[1].isdigit() else (0, 0)


def _at(filename: str, node: Any, key: Any) -> str:
    line, col = node.lc.key(key) if isinstance(node, CommentedMap) else node.lc.item(key)
    return f"{filename}:{line + 1}:{col + 1}"


def _did_you_mean(name: str, known: Any) -> str:
    close = get_close_matches(str(name), [str(k) for k in known], n=1)
    return f" (did you mean '{close[0]}'?)" if close else f" (expected one of: {', '.join(known)})"


def _parse_entry(
    filename: str, parent: CommentedMap, name: str, body: Any, label: str, problems: list[str]
) -> ProductInfo | None:
    where = _at(filename, parent, name)
    if not isinstance(body, CommentedMap):
        problems.append(f"{where} {label} '{name}': expected fields such as 'tips:', 'guide_url:'")
        return None
    count = len(problems)
    for key in body:
        if key not in ENTRY_FIELDS:
            problems.append(
                f"{_at(filename, body, key)} {label} '{name}': unknown field '{key}'"
                f"{_did_you_mean(key, ENTRY_FIELDS)}"
            )
    months = body.get("warranty_months")
    if months is not None and (
        not isinstance(months, int) or isinstance(months, bool) or months < 0
    ):
        problems.append(
            f"{_at(filename, body, 'warranty_months')} {label} '{name}': warranty_months must be "
            f"a whole number of months, got {months!r}"
        )
    guide = body.get("guide_url")
    if guide is not None and not (isinstance(guide, str) and guide.startswith("https://")):
        problems.append(
            f"{_at(filename, body, 'guide_url')} {label} '{name}': guide_url must be an "
            f"https:// link, got {guide!r}"
        )
    tips = _parse_tips(filename, body, name, label, problems)
    offer = _parse_offer(filename, body, name, label, problems)
    if len(problems) > count:
        return None
    return ProductInfo(
        category=str(body["category"]) if body.get("category") else None,
        warranty_months=months,
        guide_url=guide,
        tips=tips,
        extended_warranty=offer,
    )


def _parse_tips(
    filename: str, body: CommentedMap, name: str, label: str, problems: list[str]
) -> dict[str, tuple[str, ...]]:
    tips = body.get("tips")
    if tips is None:
        return {}
    if not isinstance(tips, CommentedMap):
        problems.append(
            f"{_at(filename, body, 'tips')} {label} '{name}': tips must map a locale "
            f"(en, pl, de) to a list of tips"
        )
        return {}
    result: dict[str, tuple[str, ...]] = {}
    written = [str(k) for k in tips]
    for locale, lines in tips.items():
        if "_" in str(locale) and is_locale(str(locale)):
            problems.append(
                f"{_at(filename, tips, locale)} {label} '{name}': locale '{locale}' is written "
                f"with '-' here (did you mean '{str(locale).replace('_', '-')}'?); as it is, "
                f"these tips are never shown"
            )
            continue
        if not is_locale(str(locale)):
            missing = [c for c in ("en", "pl", "de") if c not in written]
            problems.append(
                f"{_at(filename, tips, locale)} {label} '{name}': unknown locale '{locale}'"
                f"{suggest_locale(str(locale), [*written, 'en', 'pl', 'de'], missing)}: tips "
                f"are filed under a locale such as en, pl, de or pl-PL"
            )
            continue
        before = len(problems)
        if isinstance(lines, list):
            for index, tip in enumerate(lines):
                if isinstance(tip, str):
                    problems.extend(
                        f"{_at(filename, lines, index)} {label} '{name}': tip {index + 1} "
                        f"({locale}): {wrong}"
                        for wrong in content_problems(tip)
                    )
        if len(problems) > before:
            continue
        if isinstance(lines, str):
            lines = [lines]
        if (
            not isinstance(lines, list)
            or not lines
            or not all(isinstance(t, str) and t.strip() for t in lines)
        ):
            problems.append(
                f"{_at(filename, tips, locale)} {label} '{name}': tips for '{locale}' must be "
                f"a list of non-empty texts"
            )
            continue
        result[str(locale)] = tuple(t.strip() for t in lines)
    return result


def content_problems(text: str) -> list[str]:
    """What customers would see wrongly in a catalogue text: it is shown as typed."""
    problems = []
    syntax = _TEMPLATE_SYNTAX.search(text)
    if syntax:
        problems.append(
            f"'{syntax.group(0)}' would be shown as typed: the catalogue is not a template, "
            f"so names are not filled in; write the text without {{{{ }}}} or {{% %}}"
        )
    tags = []
    for tag in _TAG.finditer(text):
        finished = re.match(r"[^<>]*>", text[tag.end() :])
        tags.append((finished is None, tag.group(0) + (finished.group(0) if finished else "")))
    if tags:
        unfinished, fragment = max(tags, key=lambda t: t[0])  # a broken tag first
        if unfinished:
            problems.append(
                f"broken markup '{fragment}': the tag is not finished and would be shown as "
                f"typed; tips are plain text, write it without tags"
            )
        else:
            problems.append(
                f"markup '{fragment}' would be shown as typed: tips are plain text (emails "
                f"escape them), write it without tags"
            )
    return problems


def _parse_offer(
    filename: str, body: CommentedMap, name: str, label: str, problems: list[str]
) -> ExtendedWarranty | None:
    offer = body.get("extended_warranty")
    if offer is None:
        return None
    where = _at(filename, body, "extended_warranty")
    if not isinstance(offer, CommentedMap):
        problems.append(
            f"{where} {label} '{name}': extended_warranty needs {', '.join(OFFER_FIELDS)}"
        )
        return None
    before = len(problems)
    for key in offer:
        if key not in OFFER_FIELDS:
            problems.append(
                f"{_at(filename, offer, key)} {label} '{name}': unknown extended_warranty field "
                f"'{key}'{_did_you_mean(key, OFFER_FIELDS)}"
            )
    missing = [k for k in OFFER_FIELDS if k not in offer]
    if missing:
        problems.append(
            f"{where} {label} '{name}': extended_warranty is missing {', '.join(missing)}"
        )
        return None
    prices = _parse_prices(filename, offer, name, label, problems)
    months, url = offer["months"], offer["url"]
    if not isinstance(months, int) or isinstance(months, bool) or months <= 0:
        problems.append(
            f"{_at(filename, offer, 'months')} {label} '{name}': months must be a positive "
            f"whole number, got {months!r}"
        )
    if not (isinstance(url, str) and url.startswith("https://")):
        problems.append(
            f"{_at(filename, offer, 'url')} {label} '{name}': url must be an https:// link"
        )
    if len(problems) > before:
        return None
    return ExtendedWarranty(months=months, prices=prices, url=url)


def _parse_prices(
    filename: str, offer: CommentedMap, name: str, label: str, problems: list[str]
) -> dict[str, Decimal]:
    """`prices: {PLN: 299.00, EUR: 69.00}`: one price per currency the shop sells in."""
    raw = offer["prices"]
    if not isinstance(raw, CommentedMap) or not raw:
        problems.append(
            f"{_at(filename, offer, 'prices')} {label} '{name}': prices must map a currency "
            f"to a price, e.g. {{PLN: 299.00, EUR: 69.00}}"
        )
        return {}
    prices: dict[str, Decimal] = {}
    for currency, value in raw.items():
        where = _at(filename, raw, currency)
        if not (isinstance(currency, str) and len(currency) == 3 and currency.isupper()):
            problems.append(
                f"{where} {label} '{name}': currency must be an ISO 4217 code such as PLN or "
                f"EUR, got {currency!r}"
            )
            continue
        try:
            price = Decimal(str(value))
        except InvalidOperation:
            price = Decimal("NaN")
        if isinstance(value, bool) or not price.is_finite() or price < 0:
            problems.append(
                f"{where} {label} '{name}': price in {currency} must be a number of 0 or "
                f"more, got {value!r}"
            )
            continue
        prices[currency] = price
    return prices
