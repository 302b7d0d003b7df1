"""`aftersale check`: see what every customer will see, before any of them does.

One run looks at everything and reports every problem, each on one line with its
file:line, whatever fails first: the catalogue (fields, content, locales, categories),
the rules (fields, vocabularies, time windows, references, their own cases), and every
template × channel × locale. A template is read for what its source shows (syntax, with
an unclosed tag at the line that opened it; text outside blocks; date patterns; escaping;
links) and rendered, within its budget, with every shape of data its rules can hand it
(`cases.data_cases`): a render that fails, prints None or a raw value, leaves a sentence
dangling, runs past the SMS length or lacks the opt-out is reported with the situation
("when the shipment has no pickup point").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from jinja2 import meta, nodes

from aftersale.carriers_meta import Carriers
from aftersale.decide.replay import run_cases
from aftersale.decide.ruleset import RuleSet, read_ruleset, rule_files
from aftersale.decide.schema import OnceScope, Rule
from aftersale.dispatch.channels.base import RenderFormat
from aftersale.dispatch.channels.kinds import spec_of
from aftersale.errors import TemplateError
from aftersale.locales import is_locale, language_name, suggest_locale
from aftersale.models import ChannelKind, DelayReason, EventKind, RenderedMessage
from aftersale.render.cases import DataCase, Market, data_cases, market_for
from aftersale.render.catalogue import Catalogue, check_catalogue
from aftersale.render.library import TemplateLibrary, Variant, did_you_mean
from aftersale.render.lint import Finding, lint_source
from aftersale.render.samples import SHOP_SIDE_TEMPLATES
from aftersale.render.sandbox import RenderBudget
from aftersale.render.sms import non_gsm7_characters, sms_segments
from aftersale.settings import Shop
from aftersale.tracking.detect import default_thresholds

#: Languages without a template of theirs: their customers get the default one.
FOREIGN_LOCALES = ("ar", "ja", "fr")
_DANGLING = re.compile(r":\s*$|\s[.,;:!?]|\(\s*\)|:\s*[.,;]")
_EMPTY_ELEMENT = re.compile(r"<(p|li|td|th|strong|b|em|h[1-6]|a)\b[^>]*>\s*</\1>")
_HREF = re.compile(r"""href=["'](http://[^"']*)""")
_NONE = re.compile(r"\bNone\b")
#: Blocks the renderer reads from a message itself, beside those its layout shows.
RENDERED_BLOCKS = frozenset({"subject", "html", "text", "footer", "preheader"})


def run_check(
    *,
    rules_dir: Path,
    templates_dir: Path,
    catalogue_path: Path | None,
    shop: Shop,
    carriers: Carriers,
    max_sms_segments: int = 1,
    budget: RenderBudget | None = None,
) -> list[str]:
    """Every problem of the catalogue, the rules and the templates, in that order."""
    catalogue, problems = Catalogue(), list[str]()
    categories: list[str] | None = None
    if catalogue_path is not None and catalogue_path.exists():
        catalogue, problems, categories = check_catalogue(catalogue_path)
    library = TemplateLibrary.load(templates_dir, shop, catalogue, carriers, budget)
    ruleset, rule_problems = read_ruleset(
        rule_files(rules_dir),
        carriers=carriers,
        template_exists=library.has,
        categories=categories,
    )
    problems.extend(rule_problems)
    problems.extend(check_rule_kinds(ruleset, library))
    # the rules files' own examples: a case that no longer fires (or now fires) is a problem;
    # detection runs with the cycle's thresholds (the carriers', asking for the rules' days)
    thresholds = ruleset.due_thresholds(default_thresholds(carriers))
    problems.extend(
        f"{result.source}: case '{result.name}': {failure}"
        for result in run_cases(ruleset, thresholds)
        for failure in result.failures
    )
    problems.extend(check_templates(library, ruleset, max_sms_segments=max_sms_segments))
    problems.extend(check_offer_prices(library, catalogue_path))
    return problems


def check_rule_kinds(ruleset: RuleSet, library: TemplateLibrary) -> list[str]:
    """A marketing template (unsubscribe link, consent needed) must be sent by a marketing
    rule, and the other way round: otherwise consent and opt-outs are checked wrongly."""
    problems = []
    for rule in ruleset.rules:
        for channel in rule.channels:
            if not library.has(rule.template, channel):
                continue
            template_marketing = library.is_marketing(rule.template, channel)
            if template_marketing != rule.marketing:
                problems.append(
                    f"{rule.source} rule '{rule.id}': template '{rule.template}' ({channel}) is "
                    f"{'marketing' if template_marketing else 'transactional'} but the rule is "
                    f"{'marketing' if rule.marketing else 'transactional'}: set `kind: "
                    f"{'marketing' if template_marketing else 'transactional'}` on the rule, or "
                    f"change the template's '{{# kind: marketing #}}' marker"
                )
    return problems


# --- templates ------------------------------------------------------------------------------


@dataclass(slots=True)
class _Found:
    """One distinct problem: where, what, and the data cases it showed up with."""

    where: str
    line: int | None
    message: str
    labels: list[str] = field(default_factory=list)
    everywhere: bool = True  # every case of every variant that met it
    static: bool = False  # seen in the source: true whatever the data

    def __str__(self) -> str:
        at = f"{self.where}:{self.line}" if self.line else self.where
        when = ""
        if not self.everywhere and not self.static and self.labels:
            more = len(dict.fromkeys(self.labels)) - 1
            others = f", and {more} more case{'s' if more > 1 else ''}" if more else ""
            when = f" ({self.labels[0]}{others})"
        return f"{at}: {self.message}{when}"


class _Report:
    def __init__(self, default_locale: str) -> None:
        self.found: dict[tuple[str, int | None, str], _Found] = {}
        self.missing: dict[str, list[str]] = {}  # language -> folders without it
        self.default_locale = default_locale

    def add(
        self, where: str, line: int | None, message: str, labels: Sequence[str] = (),
        everywhere: bool = True,
    ) -> None:  # fmt: skip
        key = (where, line, message)
        entry = self.found.setdefault(key, _Found(where, line, message, []))
        entry.labels.extend(labels)
        entry.everywhere = entry.everywhere and everywhere
        entry.static = entry.static or not labels

    def lines(self) -> list[str]:
        for lang, folders in self.missing.items():
            name = language_name(lang)
            if len(folders) <= 3:
                for folder in folders:
                    self.add(
                        f"{folder}/{lang}.j2",
                        None,
                        f"missing: no {name} ({lang}) variant; {name}-speaking customers would "
                        f"get the '{self.default_locale}' version",
                    )
                continue
            root = folders[0].split("/")[0]
            shown = ", ".join(f.split("/", 1)[1] for f in folders[:3])
            self.add(
                root,
                None,
                f"missing: no {name} ({lang}) variant of {len(folders)} templates ({shown} and "
                f"{len(folders) - 3} more); {name}-speaking customers would get the "
                f"'{self.default_locale}' versions",
            )
        ordered = sorted(self.found.values(), key=lambda f: (f.where, f.line or 0, f.message))
        return [str(f) for f in ordered]


def check_templates(
    library: TemplateLibrary, ruleset: RuleSet | None = None, *, max_sms_segments: int = 1
) -> list[str]:
    """Every problem of every template, sorted by file; [] means all are fine. With the
    rules, each template is rendered with the data its rules' events produce."""
    report = _Report(library.shop.default_locale)
    rules = ruleset.rules if ruleset is not None else ()
    _check_shared_parts(library, report)
    languages = sorted(
        {
            v.locale.lower()
            for found in library.variants.values()
            for v in found.values()
            if "-" not in v.locale and "_" not in v.locale and is_locale(v.locale)
        }
    )
    for template, channel in library.templates():
        found = library.variants[(template, channel)]
        folder = f"{library.root.name}/{channel.value}/{template}"
        valid = {k: v for k, v in found.items() if is_locale(v.locale) and "_" not in v.locale}
        _check_locales(library, report, folder, found, valid, languages)
        senders = _senders(rules, template, channel)
        marketing = library.is_marketing(template, channel)
        for variant in valid.values():
            _check_variant(library, report, variant, senders, marketing, max_sms_segments)
    return report.lines()


def _check_locales(
    library: TemplateLibrary,
    report: _Report,
    folder: str,
    found: dict[str, Variant],
    valid: dict[str, Variant],
    languages: list[str],
) -> None:
    default = library.shop.default_locale.lower()
    missing = [lang for lang in languages if lang not in valid and lang != default]
    for variant in found.values():
        if variant.locale.lower() not in valid and "_" in variant.locale:
            report.add(
                f"{folder}/{variant.locale}.j2",
                None,
                f"a locale is written with '-' in file names (did you mean "
                f"'{variant.locale.replace('_', '-')}.j2'?); as it is, this file is never used",
            )
        elif variant.locale.lower() not in valid:
            hint = suggest_locale(variant.locale, languages, missing)
            named = re.search(r"'([^']+)'", hint)
            if named and named.group(1) in missing:
                missing.remove(named.group(1))  # the same mistake: say it once
            report.add(
                f"{folder}/{variant.locale}.j2",
                None,
                f"unknown locale '{variant.locale}'{hint}: a template file is named after a "
                f"locale such as en.j2, pl.j2, de.j2 or pl-PL.j2; this one is never used",
            )
    if default not in valid and found:
        report.add(
            f"{folder}/{library.shop.default_locale}.j2",
            None,
            f"missing: the shop's default locale '{library.shop.default_locale}' is the "
            f"fallback for every customer, every template needs it",
        )
    for lang in missing:
        report.missing.setdefault(lang, []).append(folder)


def _senders(rules: Iterable[Rule], template: str, channel: ChannelKind) -> list[Rule]:
    """The rules that send `template` by `channel` (directly or as a fallback); else those
    that send it by another channel (its events are the ones it would be sent for)."""
    rules = [r for r in rules if r.template == template]
    direct = [r for r in rules if channel in r.channels or channel in r.fallback.values()]
    return direct or rules


def _check_shared_parts(library: TemplateLibrary, report: _Report) -> None:
    for path in sorted(library.root.glob("*/_*.j2")):
        html = _is_html(path.parent.name)
        for finding in lint_source(library.env, path.read_text(encoding="utf-8"), html=html):
            report.add(library.display(str(path)), finding.line, finding.message)


def _is_html(folder: str) -> bool:
    try:
        return spec_of(folder).render_format is RenderFormat.EMAIL
    except (KeyError, ValueError):
        return False


def _check_variant(
    library: TemplateLibrary,
    report: _Report,
    variant: Variant,
    senders: list[Rule],
    marketing: bool,
    max_sms_segments: int,
) -> None:
    path = library.root / variant.name
    where = library.display(str(path))
    source = path.read_text(encoding="utf-8")
    findings: list[Finding] = lint_source(library.env, source, html=_is_html(variant.channel.value))
    for finding in findings:
        report.add(where, finding.line, finding.message)
    if any(f.message.startswith("syntax error") for f in findings):
        return
    for line, message in _unknown_blocks(library, source):
        report.add(where, line, message)
    try:
        library.compile(variant.name, strict=True)  # as the cases below render
    except TemplateError as exc:
        report.add(exc.template, exc.line, exc.message)
        return
    words = _words(library, variant.name)
    cases = _cases_for(library, variant, senders, words)
    renders = _Renders(library, report, variant, where, marketing, max_sms_segments)
    for market_label, case in cases:
        renders.run(market_label, case)
    renders.finish(static_http=any("is not https" in f.message for f in findings))


def _cases_for(
    library: TemplateLibrary, variant: Variant, senders: list[Rule], words: set[str]
) -> list[tuple[str, DataCase]]:
    """(market label, case) for every rule that sends the template and every market."""
    markets: list[tuple[str, Market]] = [("", market_for(variant.locale))]
    if variant.locale.lower() == library.shop.default_locale.lower():
        written = {v.locale.split("-")[0].lower() for v in library.variants.get(
            (variant.template, variant.channel), {}).values()}  # fmt: skip
        foreign = next((lang for lang in FOREIGN_LOCALES if lang not in written), None)
        if foreign:
            market = market_for(foreign)
            markets.append((f"for a {language_name(foreign)}-speaking customer", market))
    out: list[tuple[str, DataCase]] = []
    rules = senders or [_generic_rule(variant)]
    for rule in rules:
        for label, market in markets:
            cases = data_cases(
                rule,
                variant.channel,
                market,
                shop=library.shop,
                catalogue=library.catalogue,
                carriers=library.carriers,
                reads=words if senders else (),
            )
            out.extend((label, case) for case in cases)
    return out


def _generic_rule(variant: Variant) -> Rule:
    """A template no rule sends yet: render it once with every record present (a shipped
    message type about the shop's side of an order: with the event it is made for)."""
    on = SHOP_SIDE_TEMPLATES.get(variant.template, EventKind.DELAYED)
    reason = str(DelayReason.EXCEPTION) if on is EventKind.DELAYED else None
    return Rule(
        id="(no rule)", on=on, status=None, reason=reason,
        days=None, template=variant.template, channels=(variant.channel,), fallback={},
        marketing=variant.marketing, once=OnceScope.SHIPMENT, after=None, before=None,
        windows={}, priority=0, supersedes=(), collapse=True, conditions=(), source="",
    )  # fmt: skip


class _Renders:
    """Render one variant with each case and judge the output as a customer would."""

    def __init__(
        self,
        library: TemplateLibrary,
        report: _Report,
        variant: Variant,
        where: str,
        marketing: bool,
        max_sms_segments: int,
    ) -> None:
        self.library, self.report, self.variant, self.where = library, report, variant, where
        self.marketing, self.max_sms_segments = marketing, max_sms_segments
        self.failed: dict[tuple[str, int | None, str], list[str]] = {}
        self.rendered = 0
        self.full: dict[str, RenderedMessage] = {}
        self.worst: tuple[int, str, str] | None = None
        self.http: list[str] = []

    def run(self, market: str, case: DataCase) -> None:
        label = " ".join(p for p in (market, case.label) if p) or "when every fact is known"
        self.rendered += 1
        try:
            message = self.library.render_variant(
                self.variant, case.context, case.recipient, strict=True
            )
        except TemplateError as exc:
            self.failed.setdefault((exc.template, exc.line, exc.message), []).append(label)
            return
        key = f"{market}|{case.base}"
        if case.label == case.base:
            self.full[key] = message
        elif key in self.full:
            self._compare(self.full[key], message, label)
        match spec_of(self.variant.channel).render_format:
            case RenderFormat.TEXT:
                self._sms(message, case, label)
            case RenderFormat.EMAIL:
                self._email(message, case, label)

    def _fail(self, line: int | None, message: str, label: str) -> None:
        self.failed.setdefault((self.where, line, message), []).append(label)

    def _sms(self, message: RenderedMessage, case: DataCase, label: str) -> None:
        info = sms_segments(message.text)
        if info.segments > self.max_sms_segments and (
            self.worst is None or info.length > self.worst[0]
        ):
            detail = (
                f"{info.length} characters, GSM-7"
                if info.encoding == "GSM-7"
                else f"{info.length} characters, UCS-2 because of "
                + " ".join(repr(c) for c in non_gsm7_characters(message.text)[:5])
            )
            self.worst = (info.length, label, f"{info.segments} segments ({detail})")
        links = case.context["links"]
        if self.marketing and not (
            links["unsubscribe_short"] in message.text or "STOP" in message.text
        ):
            self._fail(
                None,
                "marketing SMS without a way to opt out: add '{{ links.unsubscribe_short }}' or "
                "a 'reply STOP' line",
                label,
            )

    def _email(self, message: RenderedMessage, case: DataCase, label: str) -> None:
        html = message.html or ""
        if self.marketing and f'href="{case.context["links"]["unsubscribe"]}' not in html:
            self._fail(
                None,
                'marketing email without an unsubscribe link: add <a href="{{ links.unsubscribe '
                '}}">…</a> (e.g. in {% block footer %})',
                label,
            )
        self.http.extend(_HREF.findall(html))

    def _compare(self, full: RenderedMessage, message: RenderedMessage, label: str) -> None:
        """Text that only dangles when a fact is missing: a label left without its value, or
        the word None that a filter made of an empty value."""
        if _NONE.search(message.text) and not _NONE.search(full.text):
            self._fail(
                None,
                "shows the word 'None': a value is empty here and a filter turned it into text; "
                "put it inside {% if … %}…{% endif %}",
                label,
            )
        before = _dangling(full.text)
        for fragment in _dangling(message.text) - before:
            line = _source_line(self.library, self.variant.name, fragment)
            self._fail(
                line,
                f"leaves '{_clip(fragment)}' dangling: put the words around the value inside "
                f"the same {{% if … %}} as the value",
                label,
            )
        if message.html is not None and full.html is not None:
            empty = list(_EMPTY_ELEMENT.finditer(message.html))
            if len(empty) > len(_EMPTY_ELEMENT.findall(full.html)):
                tag = empty[0].group(1)
                self._fail(
                    _element_line(self.library, self.variant.name, empty[0].group(0)),
                    f"leaves an empty <{tag}> element: put it inside the same {{% if … %}} as "
                    f"the value it shows",
                    label,
                )

    def finish(self, *, static_http: bool) -> None:
        for (where, line, message), labels in self.failed.items():
            everywhere = len(labels) >= self.rendered
            self.report.add(where, line, message, labels, everywhere)
        if self.worst is not None:
            self.report.add(
                self.where,
                None,
                f"SMS too long: {self.worst[2]}, the maximum is {self.max_sms_segments}",
                [self.worst[1]],
                everywhere=False,
            )
        if self.http and not static_http:
            self.report.add(
                self.where,
                None,
                f"link '{_clip(self.http[0])}' is not https: customers' mail programs warn about "
                f"plain http (check the shop's base_url and help_url)",
            )


def _unknown_blocks(library: TemplateLibrary, source: str) -> list[tuple[int, str]]:
    """Blocks of an extending template that neither its layout nor the renderer shows."""
    tree = library.env.parse(source)
    parents = [n.template for n in tree.find_all(nodes.Extends)]
    if not parents or not isinstance(parents[0], nodes.Const):
        return []
    parent = library.root / str(parents[0].value)
    if not parent.is_file():
        return []  # reported when rendering, with a suggestion
    shown = {b.name for b in library.env.parse(parent.read_text(encoding="utf-8")).find_all(
        nodes.Block)} | RENDERED_BLOCKS  # fmt: skip
    return [
        (
            block.lineno,
            f"{{% block {block.name} %}} is not a block of {parents[0].value}"
            f"{did_you_mean(block.name, sorted(shown))}: its content is never shown",
        )
        for block in tree.find_all(nodes.Block)
        if block.name not in shown
    ]


def _dangling(text: str) -> set[str]:
    """The last words before each dangling mark ("Pickup point:"): the words, not the whole
    line, so a name elsewhere on the line does not make it look new."""
    out = set()
    for line in text.splitlines():
        for match in _DANGLING.finditer(line):
            before = " ".join(line[: match.start()].split()[-2:])
            out.add(before + match.group(0).rstrip())
    return out


def _clip(text: str, width: int = 60) -> str:
    return text if len(text) <= width else "…" + text[-(width - 1) :]


def _source_line(library: TemplateLibrary, name: str, fragment: str) -> int | None:
    """The line of the template whose words end `fragment` ("Pickup point:")."""
    words = re.split(r"\s+", re.sub(r"[^\w\s]+$", "", fragment).strip())
    tail = " ".join(words[-2:])
    if not tail:
        return None
    source = (library.root / name).read_text(encoding="utf-8")
    for number, line in enumerate(source.splitlines(), start=1):
        if tail in line:
            return number
    return None


def _element_line(library: TemplateLibrary, name: str, element: str) -> int | None:
    """The line of the template with an element that holds only a value, like the empty one
    rendered (`<p class="notice">{{ … }}</p>`), its class first."""
    tag = element[1:].split(None, 1)[0].split(">")[0]
    css = re.search(r'class="([^"]*)"', element)
    holds_value = re.compile(rf"<{tag}\b[^>]*>\s*\{{\{{.*?\}}\}}\s*</{tag}>")
    source = (library.root / name).read_text(encoding="utf-8").splitlines()
    lines = [n for n, line in enumerate(source, start=1) if holds_value.search(line)]
    if css:
        lines = [n for n in lines if css.group(0) in source[n - 1]] or lines
    return lines[0] if lines else None


def _words(library: TemplateLibrary, name: str) -> set[str]:
    """The words of a template and of the shared parts it extends or includes."""
    seen: set[str] = set()
    words: set[str] = set()
    pending = [name]
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        path = library.root / current
        if not path.is_file():
            continue
        source = path.read_text(encoding="utf-8")
        words.update(re.findall(r"\w+", source))
        try:
            tree = library.env.parse(source)
        except Exception:  # noqa: BLE001 - a syntax error is reported on its own
            continue
        pending.extend(n for n in meta.find_referenced_templates(tree) if isinstance(n, str))
    return words


def check_offer_prices(library: TemplateLibrary, catalogue_path: Path | None) -> list[str]:
    """Every extended warranty needs a price in every market's currency (shop.yaml):
    without one, that market's customers are not offered it at all."""
    currencies = sorted({m.currency for m in library.shop.markets if m.currency})
    entries = [("category", n, i) for n, i in library.catalogue.categories.items()] + [
        ("product", n, i) for n, i in library.catalogue.products.items()
    ]
    problems = []
    for label, name, info in entries:
        offer = info.extended_warranty
        missing = [c for c in currencies if offer is not None and c not in offer.prices]
        if missing:
            markets = [m.code for m in library.shop.markets if m.currency in missing]
            problems.append(
                f"{catalogue_path}: {label} '{name}': extended_warranty has no price in "
                f"{', '.join(missing)}, the currency of market {', '.join(markets)} "
                f"(shop.yaml): add it under prices, or those customers are not offered it"
            )
    return problems
