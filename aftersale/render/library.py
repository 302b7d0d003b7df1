"""Render marketers' templates: email (subject, inlined HTML, text) and SMS, per locale.

Layout (templates/README.md): templates/<channel>/<type>/<locale>.j2. What a channel's
message is made of is its render format (channels/kinds.py): an email template extends
email/_layout.j2 and fills {% block subject %}, {% block html %} and optionally
{% block text %}; a text (SMS) template extends sms/_layout.j2 and fills {% block text %}.
Locale fallback: pl-PL -> pl -> the shop's default locale.
"""

from __future__ import annotations

import html as htmllib
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from types import TracebackType
from typing import Any

from jinja2 import (
    BaseLoader,
    Environment,
    Template,
    TemplateNotFound,
    TemplateSyntaxError,
    UndefinedError,
)
from jinja2.loaders import split_template_path
from jinja2.sandbox import SecurityError

from aftersale.carriers_meta import Carriers
from aftersale.dispatch.channels.base import RenderFormat
from aftersale.dispatch.channels.kinds import CHANNELS, spec_of
from aftersale.errors import TemplateError
from aftersale.models import ChannelKind, RenderedMessage
from aftersale.render.catalogue import Catalogue, load_catalogue, locale_chain
from aftersale.render.context import build_context
from aftersale.render.css import inline_css_source
from aftersale.render.filters import DateFormatError, build_filters
from aftersale.render.html_text import html_to_text
from aftersale.render.memo import known_text
from aftersale.render.sandbox import (
    BudgetExceeded,
    Metered,
    RenderBudget,
    Sandbox,
    StrictFieldsUndefined,
    TemplateMisuse,
    collect,
    did_you_mean,
    guard_filters,
    strict_mode,
)
from aftersale.render.sms import sms_segments
from aftersale.settings import Shop

__all__ = ["TemplateLibrary", "build_context", "did_you_mean", "render_error"]


STYLESHEET = "email/_style.css"
TEXT_FOOTER = "email/_footer.txt.j2"
MARKETING_MARKER = re.compile(r"\{#-?\s*kind:\s*marketing\s*-?#\}")


class _Loader(BaseLoader):
    """Reads templates from the folder; email sources get the brand CSS inlined at load."""

    def __init__(self, root: Path) -> None:
        self.root = root
        css_path = root / STYLESHEET
        self.css = css_path.read_text(encoding="utf-8") if css_path.is_file() else ""

    def get_source(
        self, environment: Environment, template: str
    ) -> tuple[str, str, Callable[[], bool]]:
        path = self.root.joinpath(*split_template_path(template))  # refuses "..", "/etc"
        if not path.is_file():
            raise TemplateNotFound(template)
        source = path.read_text(encoding="utf-8")
        if template.endswith(".j2") and self.css and _format_of(template) is RenderFormat.EMAIL:
            source = inline_css_source(source, self.css)
        mtime = path.stat().st_mtime
        return source, str(path), lambda: path.is_file() and path.stat().st_mtime == mtime


@dataclass(frozen=True, slots=True)
class Variant:
    template: str
    channel: ChannelKind
    locale: str
    name: str  # loader name, e.g. "email/shipped/pl.j2"
    marketing: bool
    format: RenderFormat  # what its channel's message is made of (channels/kinds.py)
    language: str = field(init=False)  # the variant's language: pl for pl-PL.j2

    def __post_init__(self) -> None:
        object.__setattr__(self, "language", self.locale.split("-")[0].lower())


@dataclass(slots=True)
class TemplateLibrary:
    """Every template variant found under `root`, with one compiled-template cache."""

    root: Path
    shop: Shop
    catalogue: Catalogue
    carriers: Carriers  # names and tracking pages for contexts and the tracking_url filter
    env: Sandbox
    text_env: Environment  # for text formats: every line break there counts
    strict_env: Environment  # both in strict mode, for `check` (sandbox.strict_mode)
    strict_text_env: Environment
    variants: dict[tuple[str, ChannelKind], dict[str, Variant]] = field(default_factory=dict)
    #: Jinja's globals (range, namespace) as one dict: a render's names are built on a copy
    #: of it, so Jinja need not merge globals and context anew for every template it runs.
    globals: dict[str, Any] = field(default_factory=dict)
    #: email/_footer.txt.j2 exists: looked up once, like every template (no auto reload)
    has_text_footer: bool = False
    budget: RenderBudget = field(default_factory=RenderBudget)
    # A variant that ran past its budget fails at once for the rest of this library's life:
    # one runaway template costs one budget, not one per message of the cycle.
    overran: dict[str, TemplateError] = field(default_factory=dict)
    #: resolve's answers: every message asks for one of a few templates x locales
    resolved: dict[tuple[str, ChannelKind, str], Variant] = field(default_factory=dict)

    @classmethod
    def load(
        cls,
        templates_dir: Path,
        shop: Shop,
        catalogue_path: Path | Catalogue | None,
        carriers: Carriers,
        budget: RenderBudget | None = None,
    ) -> TemplateLibrary:
        """Index templates_dir (no compiling yet) and read the product catalogue (a path, or
        one already read)."""
        env = Sandbox(
            loader=_Loader(templates_dir.resolve()),
            undefined=StrictFieldsUndefined,
            autoescape=lambda name: _format_of(name) is RenderFormat.EMAIL,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,
            cache_size=-1,
        )
        env.filters.update(build_filters(carriers))
        env.filters = guard_filters(env.filters)
        # Only what the README documents: no lorem ipsum, cyclers or dict() for templates.
        for name in ("lipsum", "cycler", "joiner", "dict"):
            env.globals.pop(name, None)
        # In an SMS every line break counts as a space, so keep the ones after tags.
        text_env = env.overlay(trim_blocks=False, lstrip_blocks=False)
        if isinstance(catalogue_path, Catalogue):
            catalogue = catalogue_path
        else:
            catalogue = load_catalogue(catalogue_path) if catalogue_path else Catalogue()
        library = cls(
            root=templates_dir,
            shop=shop,
            catalogue=catalogue,
            carriers=carriers,
            env=env,
            text_env=text_env,
            strict_env=strict_mode(env),
            strict_text_env=strict_mode(text_env),
            has_text_footer=(templates_dir / TEXT_FOOTER).is_file(),
            budget=budget or RenderBudget(),
            globals=dict(env.globals),
        )
        for channel in ChannelKind:
            folder = templates_dir / channel.value
            if not folder.is_dir():
                continue
            for path in sorted(folder.glob("*/*.j2")):
                template = path.parent.name
                if template.startswith("_") or path.name.startswith("_"):
                    continue
                text = path.read_text(encoding="utf-8")
                locale = path.name.removesuffix(".j2")
                library.variants.setdefault((template, channel), {})[locale.lower()] = Variant(
                    template=template,
                    channel=channel,
                    locale=locale,
                    name=f"{channel.value}/{template}/{path.name}",
                    marketing=bool(MARKETING_MARKER.search(text)),
                    format=spec_of(channel).render_format,
                )
        return library

    # --- queries ------------------------------------------------------------

    def templates(self) -> list[tuple[str, ChannelKind]]:
        return sorted(self.variants)

    def locales(self) -> list[str]:
        """Every locale any template is written in: each template should have them all."""
        return sorted({v.locale for found in self.variants.values() for v in found.values()})

    def has(self, template: str, channel: ChannelKind) -> bool:
        """True when the template exists for the channel in the shop's default locale."""
        return self.shop.default_locale.lower() in self.variants.get((template, channel), {})

    def is_marketing(self, template: str, channel: ChannelKind) -> bool:
        """Marked `{# kind: marketing #}` in any of its locale files."""
        return any(v.marketing for v in self.variants.get((template, channel), {}).values())

    def resolve(self, template: str, channel: ChannelKind, locale: str) -> Variant:
        """The variant for `locale`: pl-PL, then pl, then the shop's default locale."""
        variant = self.resolved.get((template, channel, locale))
        if variant is not None:
            return variant
        found = self.variants.get((template, channel), {})
        for candidate in locale_chain(locale, self.shop.default_locale):
            if candidate.lower() in found:
                variant = self.resolved[(template, channel, locale)] = found[candidate.lower()]
                return variant
        raise TemplateError(
            f"{self.root.name}/{channel.value}/{template}",
            f"no {channel.value} template '{template}' in {locale!r} nor in the shop's "
            f"default locale '{self.shop.default_locale}'"
            f"{did_you_mean(template, [t for t, c in self.variants if c == channel])}",
        )

    def display(self, filename: str | None) -> str:
        """A template's path as marketers see it: templates/email/shipped/en.j2."""
        if not filename:
            return self.root.name
        try:
            return f"{self.root.name}/{Path(filename).resolve().relative_to(self.root.resolve())}"
        except ValueError:
            return f"{self.root.name}/{filename}"

    # --- rendering ----------------------------------------------------------

    def compile(self, name: str, *, strict: bool = False) -> Template:
        """The compiled template (cached); syntax errors become TemplateError with file:line."""
        if _format_of(name) is RenderFormat.TEXT:
            env = self.strict_text_env if strict else self.text_env
        else:
            env = self.strict_env if strict else self.env
        try:
            return env.get_template(name)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a TemplateError
            raise render_error(self, exc, name, {}) from exc

    def render(
        self, template: str, channel: ChannelKind, context: Mapping[str, Any], to: str
    ) -> RenderedMessage:
        """Render the variant for context["customer"]["locale"]. Raises TemplateError."""
        customer = context.get("customer") or {}
        variant = self.resolve(template, channel, str(customer.get("locale") or ""))
        return self.render_variant(variant, context, to)

    def render_variant(
        self, variant: Variant, context: Mapping[str, Any], to: str, *, strict: bool = False
    ) -> RenderedMessage:
        """Render one locale variant whatever the customer's locale (check, gallery), within
        the library's budget. `strict` (check): printing None, a record or a raw date and
        time is an error at its line."""
        known = self.overran.get(variant.name)
        if known is not None:
            raise TemplateError(known.template, known.message, known.line)
        render = self._render_email if variant.format is RenderFormat.EMAIL else self._render_text
        compiled = self.compile(variant.name, strict=strict)
        # `locale` is the variant's language (pl for pl-PL.j2): shared parts keyed by
        # language serve region variants too; filters still format for the customer's region.
        values = {**self.globals, **context, "locale": variant.language}
        try:
            with Metered(self.budget):
                try:
                    message = render(variant.channel, compiled, values, to)
                except Exception:  # noqa: BLE001 - let Jinja rewrite the traceback to lines
                    compiled.environment.handle_exception()
            marketing = self.is_marketing(variant.template, variant.channel)
            return _with_unsubscribe(message, marketing, context)
        except TemplateError:
            raise
        except Exception as exc:  # noqa: BLE001
            error = render_error(self, exc, variant.name, values)
            if isinstance(exc, BudgetExceeded):
                self.overran[variant.name] = error
            raise error from exc
        raise AssertionError("unreachable")

    def _render_email(
        self, channel: ChannelKind, compiled: Template, values: dict[str, Any], to: str
    ) -> RenderedMessage:
        ctx = compiled.new_context(values, shared=True)  # `values` holds the globals already
        html = collect(compiled.root_render_func(ctx))
        if "subject" not in compiled.blocks:
            raise TemplateError(
                self.display(compiled.filename), "no {% block subject %}: every email needs one"
            )
        subject = " ".join(unescape(collect(compiled.blocks["subject"](ctx))).split())
        if "text" in compiled.blocks:
            body = _tidy(unescape(collect(compiled.blocks["text"](ctx))))
        elif "html" in compiled.blocks:
            parts = [
                html_to_text(collect(compiled.blocks[b](ctx)))
                for b in ("html", "footer")
                if b in compiled.blocks
            ]
            body = "\n\n".join(p for p in parts if p)
        else:
            body = html_to_text(html)
        if self.has_text_footer:
            # from the message's own environment: strict for check, as the message is
            footer = compiled.environment.get_template(TEXT_FOOTER)
            kept = known_text(footer, values)  # the same few footers for every message
            chunks = (
                (kept,)
                if kept is not None
                else footer.root_render_func(footer.new_context(values, shared=True))
            )
            footer_text = collect(chunks)
            body += "\n\n" + _plain_footer(footer_text)
        return RenderedMessage(channel=channel, to=to, subject=subject, text=body, html=html)

    def _render_text(
        self, channel: ChannelKind, compiled: Template, values: dict[str, Any], to: str
    ) -> RenderedMessage:
        ctx = compiled.new_context(values, shared=True)
        text = " ".join(collect(compiled.root_render_func(ctx)).split())
        return RenderedMessage(
            channel=channel,
            to=to,
            subject=None,
            text=text,
            sms_segments=sms_segments(text).segments,
        )


@lru_cache(maxsize=1024)  # Jinja asks autoescape for every context it makes
def _format_of(name: str | None) -> RenderFormat | None:
    """The render format of a template by its folder (email/..., sms/...); None outside."""
    folder = (name or "").split("/", 1)[0]
    return spec_of(folder).render_format if folder in CHANNELS else None


def _with_unsubscribe(
    message: RenderedMessage, marketing: bool, context: Mapping[str, Any]
) -> RenderedMessage:
    """A marketing email names where a mail program unsubscribes its reader (the signed
    link, and the mailto: when the shop has that mailbox): List-Unsubscribe's targets."""
    links = context.get("links") or {}
    if not marketing or message.subject is None or not links.get("unsubscribe"):
        return message
    targets = tuple(t for t in (links["unsubscribe"], links.get("unsubscribe_mailto")) if t)
    return replace(message, list_unsubscribe=targets)


def unescape(text: str) -> str:
    """`html.unescape(text)`. A text block is escaped as the HTML is, so a link with a
    query prints `&amp;`: when that is the only entity, it is replaced directly rather
    than through html.unescape's regex and a Python call per entity."""
    if "&" in text and text.count("&") == text.count("&amp;"):
        return text.replace("&amp;", "&")
    return htmllib.unescape(text)


def _tidy(text: str) -> str:
    """Trim each line and keep at most one blank line between paragraphs."""
    tidy = "\n".join(map(str.strip, text.strip().splitlines()))
    return _BLANK_LINES.sub("\n\n", tidy) if "\n\n\n" in tidy else tidy


_BLANK_LINES = re.compile(r"\n{3,}")


@lru_cache(maxsize=256)  # the contact block: the same few texts for every message
def _plain_footer(text: str) -> str:
    return _tidy(unescape(text))


def _template_frame(tb: TracebackType | None, known: Callable[[str], bool]) -> tuple[str, int]:
    """The innermost traceback frame that is a template line: (filename, line)."""
    found = ("", 0)
    for frame, line in _walk(tb):
        if known(frame):
            found = (frame, line)
    return found


def _walk(tb: TracebackType | None) -> Iterator[tuple[str, int]]:
    while tb is not None:
        yield tb.tb_frame.f_code.co_filename, tb.tb_lineno
        tb = tb.tb_next


def render_error(
    library: TemplateLibrary, exc: BaseException, name: str, values: Mapping[str, Any]
) -> TemplateError:
    """Turn any failure while compiling or rendering `name` into a TemplateError that names
    the file and line and says what is wrong in a marketer's words."""
    if isinstance(exc, TemplateError):
        return exc
    root = str(library.root.resolve())
    filename, line = _template_frame(exc.__traceback__, lambda f: f.startswith(root))
    if isinstance(exc, TemplateSyntaxError):
        filename = exc.filename or filename
        line = exc.lineno
        message = exc.message or ""
        unknown = re.fullmatch(r"No (filter|test) named '(\w+)'\.?", message)
        if unknown:
            names = library.env.filters if unknown.group(1) == "filter" else library.env.tests
            message += did_you_mean(unknown.group(2), sorted(names))
        return TemplateError(library.display(filename), f"syntax error: {message}", line)
    where = library.display(filename) if filename else library.display(str(library.root / name))
    if isinstance(exc, SecurityError):
        message = f"not allowed in templates (sandbox): {exc}"
    elif isinstance(exc, UndefinedError):
        message = str(exc.message)
        top = re.fullmatch(r"'(\w+)' is undefined", message)
        if top:
            known = sorted({*values, *library.env.globals})
            message += did_you_mean(top.group(1), known) or f" (known names: {', '.join(known)})"
    elif isinstance(exc, TemplateMisuse | DateFormatError):
        message = str(exc)
    elif isinstance(exc, TemplateNotFound):
        files = [p.relative_to(library.root).as_posix() for p in library.root.glob("*/*.j2")]
        message = (
            f"uses '{exc.name}', which does not exist under {library.root.name}/"
            f"{did_you_mean(str(exc.name), files)}"
        )
    elif "NoneType" in str(exc):
        message = (
            f"a value is empty (None) here and cannot be used like this ({exc}); put it inside "
            f"{{% if … %}}…{{% endif %}}"
        )
    else:
        message = f"{type(exc).__name__}: {exc}"
    return TemplateError(where, message, line or None)
