"""Benchmark: build the render context and render each message of bench/cycle.py's kind,
as dispatch does, on one core: per order a thank-you email and a shipped email, and a
shipped SMS for the customers with a phone and SMS consent (Polish, German and British
customers in turn). Prints the CPU microseconds per message of the context and of the
render: the cycle's dispatch stage without its store and outbox.

    .venv/bin/python bench/render_cycle.py [--orders N]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aftersale.dispatch.unsubscribe import UnsubscribeLinks  # noqa: E402
from aftersale.models import (  # noqa: E402
    ChannelKind,
    Customer,
    DomainEvent,
    EventKind,
    Item,
    Order,
    ShipmentRef,
    ShipmentState,
    Status,
)
from bench.cycle import CLOCK, LOCALES, START, number  # noqa: E402
from carriers.registry import load_settings  # noqa: E402
from flows.wiring import _context, load_library  # noqa: E402

Message = tuple[Order, ShipmentState | None, DomainEvent, str, ChannelKind, str]


def messages(n: int) -> Iterator[Message]:
    """The messages of n orders like bench/cycle.py's, after their first scan."""
    for i in range(n):
        locale, zone, country, prefix, digits = LOCALES[i % len(LOCALES)]
        phone = f"{prefix}{i % 10**digits:0{digits}d}" if i % 4 else None
        customer = Customer(
            f"C-{i:06d}", f"Customer {i}", f"customer{i}@example.com", phone, locale, zone,
            consent_email=True, consent_sms=i % 2 == 0, country=country,
        )  # fmt: skip
        item = Item("NW-HP-200", "Headphones", "headphones", 1, Decimal("449.00"), "PLN", 24)
        order = Order(
            f"B-{i:06d}", START - timedelta(hours=1), customer, (item,),
            (ShipmentRef(number(i), "inpost"),),
        )  # fmt: skip
        parcel = ShipmentState(
            f"S-{i:06d}", order.order_id, "inpost", number(i), Status.IN_TRANSIT,
            last_event_at=CLOCK, created_at=START,
        )  # fmt: skip
        shipped = DomainEvent(
            EventKind.SHIPPED, order.order_id, CLOCK, shipment_id=parcel.shipment_id
        )
        placed = DomainEvent(EventKind.ORDER_PLACED, order.order_id, START)
        yield order, None, placed, "thank_you", ChannelKind.EMAIL, customer.email or ""
        yield order, parcel, shipped, "shipped", ChannelKind.EMAIL, customer.email or ""
        if phone and customer.consent_sms:
            yield order, parcel, shipped, "shipped", ChannelKind.SMS, phone


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=3000)
    args = parser.parse_args()
    settings = load_settings()
    library = load_library(settings)
    signer = UnsubscribeLinks(b"k" * 32, "https://northwind.example/unsubscribe", "u@x.example")
    build: Callable[..., dict[str, Any]] = partial(_context, library, settings, signer)
    work = list(messages(args.orders))

    def context_of(
        order: Order, parcel: ShipmentState | None, event: DomainEvent
    ) -> dict[str, Any]:
        parcels = [parcel] if parcel else []
        return build(order, shipment=parcel, shipments=parcels, events=[], event=event, now=CLOCK)

    for order, parcel, event, template, channel, to in work[:300]:  # compile and warm up
        library.render(template, channel, context_of(order, parcel, event), to)
    started = time.process_time()
    for order, parcel, event, template, channel, to in work:
        library.render(template, channel, context_of(order, parcel, event), to)
    total = (time.process_time() - started) / len(work) * 1e6
    started = time.process_time()
    for order, parcel, event, _, _, _ in work:  # the contexts alone, for the split
        context_of(order, parcel, event)
    contexts = (time.process_time() - started) / len(work) * 1e6
    print(
        f"{len(work):,} messages of {args.orders:,} orders: {total:.0f} us CPU each to build "
        f"the context and render (the context alone, built again: {contexts:.0f} us)"
    )


if __name__ == "__main__":
    main()
