"""`aftersale check` for templates: render every template × locale × channel against every
sample context and report every problem, each as one readable line with file:line.

Kinds of problem: Jinja syntax errors, undefined names (with "did you mean"),
sandbox violations, any other render failure, an SMS longer than the maximum
segments, a marketing template without its unsubscribe link, a missing locale
variant, and a template a rule names that does not exist.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aftersale.decide.ruleset import RuleSet
from aftersale.dispatch.channels.base import RenderFormat
from aftersale.dispatch.channels.kinds import spec_of
from aftersale.errors import TemplateError
from aftersale.models import ChannelKind
from aftersale.render.library import TemplateLibrary, Variant, did_you_mean
from aftersale.render.samples import sample_contexts
from aftersale.render.sms import non_gsm7_characters, sms_segments

LANGUAGE_NAMES = {"en": "English", "pl": "Polish", "de": "German"}


def check_templates(
    library: TemplateLibrary,
    *,
    template_names: Iterable[tuple[str, ChannelKind]] | None = None,
    max_sms_segments: int = 1,
) -> list[str]:
    """Every problem found, sorted by file; an empty list means all templates are fine.

    `template_names` limits the check to the (template, channel) pairs the rules use and
    reports any that have no file; by default every template found is checked.
    """
    problems: list[str] = []
    wanted = sorted(set(template_names)) if template_names is not None else library.templates()
    locales = library.locales()
    for template, channel in wanted:
        found = library.variants.get((template, channel), {})
        folder = f"{library.root.name}/{channel.value}/{template}"
        if not found:
            problems.append(
                f"{folder}/{library.shop.default_locale}.j2: missing: a rule sends "
                f"'{template}' by {channel.value}, but there is no such template"
                + did_you_mean(template, [t for t, c in library.variants if c == channel])
            )
            continue
        if not library.has(template, channel):
            problems.append(
                f"{folder}/{library.shop.default_locale}.j2: missing: the shop's default locale "
                f"'{library.shop.default_locale}' is the fallback for every customer, every "
                f"template needs it"
            )
        for locale in locales:
            default = locale.lower() == library.shop.default_locale.lower()
            if locale.lower() not in found and "-" not in locale and not default:
                language = LANGUAGE_NAMES.get(locale, locale)
                problems.append(
                    f"{folder}/{locale}.j2: missing: no {language} ({locale}) variant; "
                    f"{language}-speaking customers would get the "
                    f"'{library.shop.default_locale}' version"
                )
        marketing = library.is_marketing(template, channel)
        contexts = sample_contexts(template, library.shop, library.catalogue, library.carriers)
        for variant in found.values():
            problems.extend(_check_variant(library, variant, contexts, marketing, max_sms_segments))
    return sorted(dict.fromkeys(problems), key=_sort_key)


def _sort_key(line: str) -> tuple[str, int, str]:
    where = line.split(": ", 1)[0]
    path, _, number = where.partition(":")
    return path, int(number) if number.isdigit() else 0, line


def _check_variant(
    library: TemplateLibrary,
    variant: Variant,
    contexts: list[tuple[str, dict[str, Any]]],
    marketing: bool,
    max_sms_segments: int,
) -> list[str]:
    problems: list[str] = []
    where = library.display(str(library.root / variant.name))
    try:
        library.compile(variant.name)
    except TemplateError as exc:
        return [str(exc)]
    worst: tuple[int, str, str] | None = None
    failed: dict[str, list[str]] = {}  # one line per distinct error, naming its samples
    for label, context in contexts:
        to = spec_of(variant.channel).sample_address
        try:
            message = library.render_variant(variant, context, to)
        except TemplateError as exc:
            failed.setdefault(str(exc), []).append(label)
            continue
        render_format = spec_of(variant.channel).render_format
        if render_format is RenderFormat.TEXT:
            info = sms_segments(message.text)
            if info.segments > max_sms_segments and (worst is None or info.length > worst[0]):
                detail = (
                    f"{info.length} characters, GSM-7"
                    if info.encoding == "GSM-7"
                    else f"{info.length} characters, UCS-2 because of "
                    + " ".join(repr(c) for c in non_gsm7_characters(message.text)[:5])
                )
                worst = (info.length, label, f"{info.segments} segments ({detail})")
            if marketing and not _has_opt_out_sms(message.text, context):
                failed.setdefault(
                    f"{where}: marketing SMS without a way to opt out: add "
                    f"'{{{{ links.unsubscribe_short }}}}' or a 'reply STOP' line",
                    [],
                ).append(label)
        elif (
            render_format is RenderFormat.EMAIL
            and marketing
            and f'href="{context["links"]["unsubscribe"]}' not in (message.html or "")
        ):
            failed.setdefault(
                f"{where}: marketing email without an unsubscribe link: add "
                f'<a href="{{{{ links.unsubscribe }}}}">…</a> (e.g. in {{% block footer %}})',
                [],
            ).append(label)
    for problem, labels in failed.items():
        more = f" and {len(labels) - 1} more" if len(labels) > 1 else ""
        problems.append(f"{problem} [sample: {labels[0]}{more}]")
    if worst is not None:
        problems.append(
            f"{where}: SMS too long: {worst[2]}, the maximum is {max_sms_segments} "
            f"[sample: {worst[1]}]"
        )
    return problems


def _has_opt_out_sms(text: str, context: dict[str, Any]) -> bool:
    return context["links"]["unsubscribe_short"] in text or "STOP" in text


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
