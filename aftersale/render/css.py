"""Inline a stylesheet into an email template's *source*, once, before Jinja compiles it.

The brand CSS is static, so every element's style can be computed from the
template's markup alone: Jinja tags are masked, css-inline computes the styles
of a skeleton copy, and the resulting `style="…"` attributes are written into
the original start tags. Nothing else in the source moves, so Jinja still
reports the marketer's own line numbers; messages then render with no
per-message inlining. Selectors apply within one file (a child template's body
is styled by class or element, not by where the layout places it).
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

import css_inline

_JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.S)
_START_TAG = re.compile(r"<([a-zA-Z][a-zA-Z0-9-]*)(\s[^<>]*?)?(/?)>")
_STYLE_ATTR = re.compile(r"\sstyle\s*=\s*(\"[^\"]*\"|'[^']*')", re.I)
_MARK = "data-aftersale-i"
_PLACEHOLDER = re.compile("\ue000(\\d+)\ue001")


class _StyleCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.styles: dict[int, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        mark, style = found.get(_MARK), found.get("style")
        if mark is not None and style:
            self.styles[int(mark)] = style


def inline_css_source(source: str, css: str) -> str:
    """`source` with `css` applied as style attributes on its static start tags."""
    if not css.strip() or "<" not in source:
        return source
    spans: list[str] = []

    def mask(match: re.Match[str]) -> str:
        spans.append(match.group(0))
        return f"\ue000{len(spans) - 1}\ue001"

    masked = _JINJA.sub(mask, source)
    tags: list[re.Match[str]] = []

    def annotate(match: re.Match[str]) -> str:
        name, attrs, slash = match.group(1), match.group(2) or "", match.group(3)
        if name.lower() in ("style", "script") or _PLACEHOLDER.search(_style_of(attrs)):
            return match.group(0)
        tags.append(match)
        return f'<{name}{attrs} {_MARK}="{len(tags) - 1}"{slash}>'

    annotated = _START_TAG.sub(annotate, masked)
    skeleton = _PLACEHOLDER.sub("", annotated)
    try:
        if "<html" in skeleton.lower():
            inliner = css_inline.CSSInliner(load_remote_stylesheets=False, extra_css=css)
            styled = inliner.inline(skeleton)
        else:
            inliner = css_inline.CSSInliner(load_remote_stylesheets=False)
            styled = inliner.inline_fragment(skeleton, css)
    except css_inline.InlineError:
        return source  # leave the markup as written; Jinja will still render it
    collector = _StyleCollector()
    collector.feed(styled)
    collector.close()

    counter = iter(range(len(tags)))

    def restyle(match: re.Match[str]) -> str:
        name, attrs, slash = match.group(1), match.group(2) or "", match.group(3)
        if name.lower() in ("style", "script") or _PLACEHOLDER.search(_style_of(attrs)):
            return match.group(0)
        style = collector.styles.get(next(counter))
        if not style:
            return match.group(0)
        attrs = _STYLE_ATTR.sub("", attrs)
        value = html.escape(" ".join(style.split()), quote=True)
        return f'<{name}{attrs} style="{value}"{slash}>'

    restyled = _START_TAG.sub(restyle, masked)
    return _PLACEHOLDER.sub(lambda m: spans[int(m.group(1))], restyled)


def _style_of(attrs: str) -> str:
    found = _STYLE_ATTR.search(attrs)
    return found.group(1) if found else ""
