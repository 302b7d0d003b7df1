"""Benchmark: render 100,000 messages (every type, locale and channel; email with inlined
CSS) on one core. Target: at least 5,000 messages/s. Also prints the CPU microseconds per
message, steadier than the rate when other work shares the machine.

    .venv/bin/python bench/render.py [--count N]
"""

from __future__ import annotations

import argparse
import time
from itertools import cycle, islice

from aftersale.models import ChannelKind
from aftersale.render.context import Fields
from aftersale.render.library import TemplateLibrary
from aftersale.render.samples import sample_contexts, sample_recipient
from aftersale.settings import PROJECT_ROOT, Shop
from carriers.registry import DIRECTORY

TARGET = 5_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=100_000)
    args = parser.parse_args()
    library = TemplateLibrary.load(
        PROJECT_ROOT / "templates",
        Shop(),
        PROJECT_ROOT / "catalogue" / "products.yaml",
        DIRECTORY,
    )
    # Every template x channel x sample situation; each customer's locale picks the variant,
    # and every variant is also rendered for a customer of its own locale.
    work = []
    for template, channel in library.templates():
        for _, context in sample_contexts(
            template, library.shop, library.catalogue, library.carriers
        ):
            for locale in library.locales():
                customer = Fields("customer", {**context["customer"], "locale": locale})
                ctx = {**context, "customer": customer}
                work.append((template, channel, ctx, sample_recipient(ctx, channel)))
    started = time.perf_counter()
    compiled = [library.render(t, c, ctx, to) for t, c, ctx, to in work]  # compile + warm up
    warmup = time.perf_counter() - started

    emails = sms = 0
    started, cpu = time.perf_counter(), time.process_time()
    for template, channel, ctx, to in islice(cycle(work), args.count):
        message = library.render(template, channel, ctx, to)
        if channel is ChannelKind.EMAIL:
            emails += 1
        else:
            sms += message.sms_segments or 0
    elapsed = time.perf_counter() - started
    per_message_us = (time.process_time() - cpu) / args.count * 1e6
    rate = args.count / elapsed
    print(
        f"rendered {args.count:,} messages ({emails:,} email with inlined CSS, "
        f"{args.count - emails:,} SMS) from {len(work):,} distinct template x locale x sample "
        f"contexts in {elapsed:.2f} s: {rate:,.0f} messages/s, {per_message_us:.0f} us CPU each "
        f"(target {TARGET:,}: {'met' if rate >= TARGET else 'MISSED'}); "
        f"first render of all {len(compiled)} incl. compiling: {warmup:.2f} s"
    )


if __name__ == "__main__":
    main()
