"""The template gallery (`aftersale preview --serve`): every template × locale × channel
rendered with sample data on one local page, emails as the customer sees them and SMS as
a phone bubble with its segment count. Templates are re-read on every page load, so a
marketer edits, saves and refreshes.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, assert_never
from urllib.parse import parse_qs, urlsplit

from aftersale.dispatch.channels.base import RenderFormat
from aftersale.dispatch.channels.kinds import spec_of
from aftersale.errors import AftersaleError
from aftersale.models import ChannelKind
from aftersale.render.library import TemplateLibrary, Variant
from aftersale.render.market_samples import all_samples
from aftersale.render.samples import sample_contexts, sample_recipient
from aftersale.render.sms import sms_segments

_PAGE_STYLE = """
body{font-family:system-ui,Helvetica,Arial,sans-serif;margin:0;background:#eef1f4;color:#1f2933}
header{background:#1f2933;color:#fff;padding:16px 24px}
header a{color:#9fd3ff;margin-right:12px}
.summary{font-size:18px;font-weight:bold}
.summary.bad{color:#ffb4b4}
main{display:grid;grid-template-columns:repeat(auto-fill,minmax(420px,1fr));gap:16px;padding:16px}
.entry{background:#fff;border:1px solid #d9dee3;border-radius:8px;padding:12px;overflow:hidden}
.entry h2{font-size:15px;margin:0 0 4px 0}
.entry .meta{color:#616e7c;font-size:12px;margin-bottom:8px}
.entry.error{border:2px solid #c0392b;background:#fff5f5}
.badge{display:inline-block;border-radius:10px;padding:1px 8px;font-size:12px;margin-left:6px}
.ok{background:#d4f5dd;color:#11632b}.err{background:#c0392b;color:#fff}
.subject{font-weight:bold;margin:4px 0 8px 0}
iframe{width:100%;height:560px;border:1px solid #d9dee3;border-radius:4px;background:#fff}
.phone{background:#f3f5f7;border-radius:18px;padding:16px;max-width:340px}
.bubble{background:#e5e5ea;border-radius:16px;padding:10px 14px;font-size:15px;line-height:1.35;
  white-space:pre-wrap;word-wrap:break-word}
.problem{color:#c0392b;font-family:monospace;white-space:pre-wrap;font-size:13px}
"""


@dataclass(frozen=True, slots=True)
class Entry:
    template: str
    channel: ChannelKind
    locale: str
    situation: str
    ok: bool
    body: str  # HTML fragment


def build_gallery(
    library: TemplateLibrary, *, sample: str = "typical", every_situation: bool = False
) -> tuple[str, list[Entry]]:
    """The whole gallery page and its entries (each rendered, or showing its error)."""
    samples = {s.name: s for s in all_samples(library.shop, library.carriers)}
    chosen = samples.get(sample) or samples["typical"]
    entries: list[Entry] = []
    for template, channel in library.templates():
        contexts = sample_contexts(
            template, library.shop, library.catalogue, library.carriers, (chosen,)
        )
        if not every_situation:
            contexts = contexts[:1]
        found = library.variants.get((template, channel), {})
        for locale in library.locales():
            variant = found.get(locale.lower())
            for label, context in contexts:
                if variant is None:
                    path = f"{library.root.name}/{channel.value}/{template}/{locale}.j2"
                    problem = _problem(f"{path}: missing: no {locale} variant of this template")
                    entries.append(Entry(template, channel, locale, label, False, problem))
                    continue
                entries.append(_entry(library, variant, label, context))
    errors = sum(not e.ok for e in entries)
    summary = f"{len(entries) - errors} rendered, {errors} with errors"
    links = " ".join(
        f'<a href="/?sample={html.escape(name)}">{html.escape(name)}</a>' for name in samples
    )
    cards = "\n".join(_card(e) for e in entries)
    page = (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(library.shop.name)}: message gallery</title>"
        f"<style>{_PAGE_STYLE}</style></head><body>"
        f'<header><div class="summary{" bad" if errors else ""}" id="summary" '
        f'data-rendered="{len(entries) - errors}" data-errors="{errors}">{summary}</div>'
        f"<div>Sample: <strong>{html.escape(chosen.name)}</strong>, "
        f"{html.escape(chosen.description)}. Other samples: {links} "
        f'<a href="/?sample={html.escape(chosen.name)}&amp;all=1">every situation</a></div>'
        f"</header><main>{cards}</main></body></html>"
    )
    return page, entries


def _entry(
    library: TemplateLibrary, variant: Variant, label: str, context: dict[str, Any]
) -> Entry:
    to = sample_recipient(context, variant.channel)
    try:
        message = library.render_variant(variant, context, to)
    except AftersaleError as exc:
        return Entry(
            variant.template, variant.channel, variant.locale, label, False, _problem(str(exc))
        )
    render_format = spec_of(variant.channel).render_format
    match render_format:
        case RenderFormat.TEXT:
            info = sms_segments(message.text)
            body = (
                f'<div class="phone"><div class="bubble">{html.escape(message.text)}</div></div>'
                f'<div class="meta" data-segments="{info.segments}">{info.segments} '
                f"segment{'s' if info.segments != 1 else ''} · {info.encoding} · "
                f"{info.length} characters</div>"
            )
        case RenderFormat.EMAIL:
            body = (
                f'<div class="subject">{html.escape(message.subject or "")}</div>'
                f'<iframe sandbox="" title="{html.escape(variant.name)}" '
                f'srcdoc="{html.escape(message.html or "", quote=True)}"></iframe>'
            )
        case _:
            assert_never(render_format)
    return Entry(variant.template, variant.channel, variant.locale, label, True, body)


def _problem(text: str) -> str:
    return f'<div class="problem">{html.escape(text)}</div>'


def _card(e: Entry) -> str:
    status = "rendered" if e.ok else "error"
    badge = (
        '<span class="badge ok">rendered</span>'
        if e.ok
        else ('<span class="badge err">error</span>')
    )
    return (
        f'<section class="entry{"" if e.ok else " error"}" data-status="{status}" '
        f'data-template="{e.template}" data-channel="{e.channel.value}" '
        f'data-locale="{html.escape(e.locale)}">'
        f"<h2>{e.template} · {e.channel.value} · {html.escape(e.locale)}{badge}</h2>"
        f'<div class="meta">{html.escape(e.situation)}</div>{e.body}</section>'
    )


class Gallery:
    """A running gallery server on 127.0.0.1; `stop()` shuts it down."""

    def __init__(self, load: Callable[[], TemplateLibrary], port: int = 0) -> None:
        handler = _handler(load)
        self.server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/"
        self.thread = threading.Thread(
            target=self.server.serve_forever, daemon=True, name="aftersale-gallery"
        )

    def start(self) -> Gallery:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def start_gallery(load: Callable[[], TemplateLibrary], port: int = 0) -> Gallery:
    """Serve the gallery in a background thread (port 0: any free port)."""
    return Gallery(load, port).start()


def _handler(load: Callable[[], TemplateLibrary]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            url = urlsplit(self.path)
            if url.path != "/":
                self._send(404, "text/plain; charset=utf-8", b"not found")
                return
            query = parse_qs(url.query)
            try:
                page, _ = build_gallery(
                    load(),
                    sample=query.get("sample", ["typical"])[0],
                    every_situation=query.get("all", ["0"])[0] == "1",
                )
            except AftersaleError as exc:  # e.g. the catalogue itself is broken
                page = f'<!DOCTYPE html><pre class="problem">{html.escape(str(exc))}</pre>'
                self._send(500, "text/html; charset=utf-8", page.encode())
                return
            self._send(200, "text/html; charset=utf-8", page.encode())

        def _send(self, status: int, kind: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return  # keep the terminal for the marketer's own output

    return Handler
