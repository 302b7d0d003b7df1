"""`aftersale preview` and `aftersale send-test`: the marketer's workbench on the command line.

Plain typer-annotated functions; aftersale/cli/app.py registers them as commands.
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from aftersale.cli.common import fail
from aftersale.dispatch.channels.base import RenderFormat
from aftersale.dispatch.channels.kinds import CHANNELS, spec_of
from aftersale.errors import AftersaleError
from aftersale.models import ChannelKind, OutgoingMessage, RenderedMessage, ShipmentState, Status
from aftersale.render.context import build_context
from aftersale.render.library import TemplateLibrary
from aftersale.render.market_samples import all_samples
from aftersale.render.samples import (
    SAMPLE_NOW,
    Sample,
    sample_recipient,
    sample_situations,
)
from aftersale.render.sms import sms_segments
from aftersale.settings import Settings

console = Console()
err = Console(stderr=True)

OrderOption = Annotated[
    str | None,  # noqa: UP007 - typer reads the annotation
    typer.Option(
        "--order",
        help="Order id in the store, or a sample name (typical, no_phone, "
        "zero_price, twenty_items, rtl_name, long_everything, and market_<code> for each "
        "market of shop.yaml: market_gb, market_us ...). Default: typical",
    ),
]
LocaleOption = Annotated[
    str | None,  # noqa: UP007
    typer.Option(
        "--locale", help="Render this locale (en, pl, de, pl-PL ...) instead of the customer's"
    ),
]


def _library(settings: Settings) -> TemplateLibrary:
    from carriers.registry import DIRECTORY

    return TemplateLibrary.load(
        settings.templates_dir, settings.shop, settings.catalogue_path, DIRECTORY
    )


def _find_sample(library: TemplateLibrary, settings: Settings, order_id: str | None) -> Sample:
    """A built-in sample by name, or an order (and its first parcel) from the store."""
    samples = {s.name: s for s in all_samples(library.shop, library.carriers)}
    if order_id is None or order_id in samples:
        return samples[order_id or "typical"]
    from aftersale.store import is_url, open_store

    if not is_url(settings.db) and not Path(settings.db).exists():
        fail(
            f"no sample or stored order '{order_id}' (no store at {settings.db}); "
            f"samples: {', '.join(samples)}"
        )
    with open_store(settings.db, wait_s=settings.store_lock_wait_s) as store:
        order = store.load_order(order_id)
        if order is None:
            fail(
                f"no order '{order_id}' in {settings.db} and no sample of that name; "
                f"samples: {', '.join(samples)}"
            )
        assert order is not None
        stored = [s for s in store.shipments_of([order_id]).values() if s.order_id == order_id]
    if stored:
        shipment = stored[0]
    else:
        ref = order.shipments[0] if order.shipments else None
        shipment = ShipmentState(
            shipment_id=f"{order_id}-preview",
            order_id=order_id,
            carrier=ref.carrier if ref else None,
            tracking_number=ref.tracking_number if ref else "NOT-SHIPPED-YET",
            status=Status.IN_TRANSIT,
        )
    return Sample(order_id, "order from the store", order, shipment)


def render_for_preview(
    library: TemplateLibrary,
    template: str,
    channel: ChannelKind,
    sample: Sample,
    locale: str | None,
) -> tuple[str, RenderedMessage]:
    """(situation, message) for `template` about `sample`, optionally in another locale."""
    label, kwargs = sample_situations(template, sample)[0]
    order = sample.order
    if locale:
        order = replace(order, customer=replace(order.customer, locale=locale))
    context: dict[str, Any] = build_context(
        order,
        library.shop,
        carriers=library.carriers,
        catalogue=library.catalogue,
        now=SAMPLE_NOW,
        **kwargs,
    )
    to = sample_recipient(context, channel)
    return label, library.render(template, channel, context, to)


def preview(
    template: Annotated[
        str | None,  # noqa: UP007
        typer.Argument(help="Message type, e.g. shipped (not needed with --serve)"),
    ] = None,
    order: OrderOption = None,
    locale: LocaleOption = None,
    channel: Annotated[ChannelKind, typer.Option("--channel", help="email or sms")] = (
        ChannelKind.EMAIL
    ),
    out: Annotated[
        Path | None,  # noqa: UP007
        typer.Option("--out", help="Write the email as an HTML file to open in a browser"),
    ] = None,
    serve: Annotated[
        bool, typer.Option("--serve", help="Start the gallery of every template on 127.0.0.1")
    ] = False,
    port: Annotated[int, typer.Option("--port", help="Gallery port; 0 picks a free one")] = 0,
) -> None:
    """Render one template for an order (stored or sample), or serve the whole gallery."""
    from carriers.registry import load_settings

    settings = load_settings()
    if serve:
        from aftersale.render.gallery import start_gallery

        try:
            _library(settings)
        except AftersaleError as exc:
            fail(exc)
        gallery = start_gallery(lambda: _library(settings), port)
        console.print(f"gallery on {gallery.url} (Ctrl-C to stop)", markup=False)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            gallery.stop()
        return
    if template is None:
        fail("name the template to preview, e.g. `aftersale preview shipped`, or use --serve")
    assert template is not None
    try:
        library = _library(settings)
        sample = _find_sample(library, settings, order)
        situation, message = render_for_preview(library, template, channel, sample, locale)
    except AftersaleError as exc:
        fail(exc)
    console.print(
        f"[bold]{escape(template)}[/] · {channel.value} · order "
        f"{escape(sample.order.order_id)} ({escape(situation)}) · to {escape(message.to)}",
        highlight=False,
    )
    if spec_of(channel).render_format is RenderFormat.TEXT:
        info = sms_segments(message.text)
        console.print(message.text, markup=False, highlight=False)
        console.print(
            f"{info.segments} segment(s), {info.encoding}, {info.length} characters",
            highlight=False,
        )
        return
    console.print(f"Subject: {message.subject}", markup=False, highlight=False)
    console.print()
    console.print(message.text, markup=False, highlight=False)
    if out is not None:
        out.write_text(message.html or "", encoding="utf-8")
        console.print(f"\nHTML written to {out}", markup=False, highlight=False)


def _channel_for(address: str) -> ChannelKind | None:
    """The first channel whose addresses look like `address`."""
    for spec in CHANNELS.values():
        try:
            spec.normalise(address)
        except ValueError:
            continue
        return spec.kind
    return None


def send_test(
    template: Annotated[str, typer.Argument(help="Message type, e.g. shipped")],
    to: Annotated[str, typer.Option("--to", help="Email address or phone number (E.164)")],
    order: OrderOption = None,
    locale: LocaleOption = None,
) -> None:
    """Send one template to yourself through the configured channel (the outbox by default),
    marked as a test."""
    from aftersale.dispatch.channels.config import build_channels
    from carriers.registry import load_settings

    settings = load_settings()
    channel = _channel_for(to)
    if channel is None:
        fail(f"'{to}' is neither an email address nor a phone number in E.164 (+48…)")
    assert channel is not None
    try:
        library = _library(settings)
        sample = _find_sample(library, settings, order)
        _, rendered = render_for_preview(library, template, channel, sample, locale)
        setup = build_channels(os.environ, settings.shop, settings.outbox_dir)
    except AftersaleError as exc:
        fail(exc)
    # a test is marked where every inbox shows it: the subject (and the X-Aftersale-Test
    # header, SendGrid's "test" category)
    subject = f"[TEST] {rendered.subject}" if rendered.subject is not None else None
    rendered = replace(rendered, to=to, subject=subject)
    message_id = f"test-{uuid.uuid4().hex[:12]}"
    outgoing = OutgoingMessage(
        message_id=message_id,
        idempotency_key=message_id,
        rule_id="send-test",
        template=template,
        order_id=sample.order.order_id,
        marketing=library.is_marketing(template, channel),
        content=rendered,
        test=True,
    )
    sender = setup.channels[channel]
    result = sender.send(outgoing)
    if not result.ok:
        fail(
            f"{sender.name} refused the test {channel.value}: {result.error_code} "
            f"{result.error_text}"
        )
    console.print(
        f"test {channel.value} '{template}' sent to {to} via {sender.name} ({result.provider_id})",
        markup=False,
        highlight=False,
    )
