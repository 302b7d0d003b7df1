"""Benchmark: the local outbox channel sending rendered messages (compose the `.eml`, write
it as a new file; append SMS lines), without rendering: every template x locale x sample
is rendered once before the clock starts, then sent round-robin under fresh message ids,
each with its own order and tracking number (as in a real run, no two are the same).
Prints the CPU microseconds (user + system, so the file system calls count) per email and
per SMS, on one core.

    .venv/bin/python bench/outbox.py [--emails N] [--sms N] [--profile FILE]
"""

from __future__ import annotations

import argparse
import cProfile
import resource
import tempfile
from collections.abc import Callable
from dataclasses import replace
from itertools import cycle, islice
from pathlib import Path

from aftersale.dispatch.channels.outbox import OutboxChannel
from aftersale.models import ChannelKind, OutgoingMessage, RenderedMessage
from aftersale.render.context import Fields
from aftersale.render.library import TemplateLibrary
from aftersale.render.samples import sample_contexts, sample_recipient
from aftersale.settings import PROJECT_ROOT, Shop
from carriers.registry import DIRECTORY

#: (template, message, the sample's order number, its tracking number or "")
Rendered = tuple[str, RenderedMessage, str, str]


def rendered() -> dict[ChannelKind, list[Rendered]]:
    """Every template x channel x sample x locale, rendered once."""
    library = TemplateLibrary.load(
        PROJECT_ROOT / "templates",
        Shop(),
        PROJECT_ROOT / "catalogue" / "products.yaml",
        DIRECTORY,
    )
    out: dict[ChannelKind, list[Rendered]] = {}
    for template, channel in library.templates():
        for _, context in sample_contexts(
            template, library.shop, library.catalogue, library.carriers
        ):
            for locale in library.locales():
                customer = Fields("customer", {**context["customer"], "locale": locale})
                ctx = {**context, "customer": customer}
                message = library.render(template, channel, ctx, sample_recipient(ctx, channel))
                tracking = (ctx["shipment"] or {}).get("tracking_number") or ""
                out.setdefault(channel, []).append(
                    (template, message, ctx["order"]["number"], tracking)
                )
    return out


def unique(text: str, own: dict[str, str]) -> str:
    for sample, value in own.items():
        text = text.replace(sample, value)
    return text


def outgoing(work: list[Rendered], count: int, tag: str) -> list[OutgoingMessage]:
    """`count` messages round-robin from `work`, each with its own order and tracking number."""
    messages = []
    for i, (template, message, order, tracking) in enumerate(islice(cycle(work), count)):
        own = {order: f"NW-{100_000 + i}", tracking: f"{620_000_000_000 + i:024d}"}
        own.pop("", None)
        content = replace(
            message,
            subject=message.subject and unique(message.subject, own),
            text=unique(message.text, own),
            html=message.html and unique(message.html, own),
        )
        messages.append(
            OutgoingMessage(
                message_id=f"m-{tag}{i:019x}",
                idempotency_key=f"{template}:{i}",
                rule_id=template,
                template=template,
                order_id=own[order],
                marketing=bool(message.list_unsubscribe),
                content=content,
            )
        )
    return messages


def timed(
    send: Callable[[OutgoingMessage], object], messages: list[OutgoingMessage]
) -> tuple[float, float]:
    """User and system CPU microseconds per message."""
    before = resource.getrusage(resource.RUSAGE_SELF)
    for message in messages:
        send(message)
    after = resource.getrusage(resource.RUSAGE_SELF)
    n = max(len(messages), 1)
    return (after.ru_utime - before.ru_utime) / n * 1e6, (
        after.ru_stime - before.ru_stime
    ) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--emails", type=int, default=20_000)
    parser.add_argument("--sms", type=int, default=2_500)
    parser.add_argument("--profile", type=Path, help="write a cProfile of the sends here")
    args = parser.parse_args()
    work = rendered()
    emails = outgoing(work[ChannelKind.EMAIL], args.emails, "e")
    texts = outgoing(work[ChannelKind.SMS], args.sms, "s")
    with tempfile.TemporaryDirectory(prefix="bench-outbox-") as folder:
        email = OutboxChannel(Path(folder), ChannelKind.EMAIL)
        sms = OutboxChannel(Path(folder), ChannelKind.SMS)
        email.send(outgoing(work[ChannelKind.EMAIL], 1, "warm")[0])
        profiler = cProfile.Profile() if args.profile else None
        if profiler:
            profiler.enable()
        email_us = timed(email.send, emails)
        sms_us = timed(sms.send, texts)
        if profiler:
            profiler.disable()
            profiler.dump_stats(args.profile)
        size = sum(p.stat().st_size for p in (Path(folder) / "email").iterdir()) / (args.emails + 1)
    print(
        f"outbox: {args.emails:,} emails ({len(work[ChannelKind.EMAIL])} distinct, "
        f"{size / 1024:.1f} KB each): {sum(email_us):.0f} us CPU each "
        f"({email_us[0]:.0f} user + {email_us[1]:.0f} system); "
        f"{args.sms:,} SMS: {sum(sms_us):.0f} us each ({sms_us[0]:.0f} + {sms_us[1]:.0f})"
    )


if __name__ == "__main__":
    main()
