"""`aftersale orders show ID [--json] [--unmasked]`: one stored order as the store has it:
customer (masked unless asked), items, shipments with carrier and status, and what its
shop platform last said (cancellation, refunds, returns; a parcel sent back is listed
with its return)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console

from aftersale.errors import AftersaleError
from aftersale.masking import mask_recipient

orders_app = typer.Typer(help="Stored orders.", no_args_is_help=True)
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


@orders_app.command("show")
def show(
    order_id: Annotated[str, typer.Argument(help="The order id as stored (e.g. #1047)")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    unmasked: Annotated[
        bool, typer.Option("--unmasked", help="Show the customer's email and phone in full")
    ] = False,
) -> None:
    """Print one stored order."""
    from aftersale.store import open_store
    from carriers.registry import DIRECTORY, load_settings

    settings = load_settings()
    try:
        with open_store(settings.db, wait_s=settings.store_lock_wait_s) as store:
            order = store.load_order(order_id)
            if order is None:
                err.print(f"no order {order_id!r} in {settings.db}", markup=False)
                raise typer.Exit(1)
            shipments = store.shipments_of([order_id])
            platform = store.platform_orders([order_id]).get(order_id)
            refunds, returns = store.refunds_and_returns_of([order_id])
    except AftersaleError as exc:
        err.print(str(exc), markup=False)
        raise typer.Exit(1) from exc
    c = order.customer

    def contact(value: str | None) -> str | None:
        return value if unmasked or value is None else mask_recipient(value)

    data: dict[str, Any] = {
        "order_id": order.order_id,
        "placed_at": order.placed_at.isoformat(),
        "customer": {
            "id": c.customer_id,
            "name": c.name,
            "email": contact(c.email),
            "phone": contact(c.phone),
            "locale": c.locale,
            "time_zone": c.time_zone,
            "country": c.country,
            "consent": {"email": c.consent_email, "sms": c.consent_sms},
        },
        "items": [
            {
                "sku": i.sku,
                "name": i.name,
                "category": i.category,
                "quantity": i.quantity,
                "price": str(i.price),
                "currency": i.currency,
                "warranty_months": i.warranty_months,
            }
            for i in order.items
        ],
        "shipments": [
            {
                "carrier": s.carrier,
                "carrier_name": DIRECTORY.name(s.carrier),
                "tracking_number": s.tracking_number,
                "status": s.status.value,
                "estimated_delivery": s.estimated_delivery.isoformat()
                if s.estimated_delivery
                else None,
                "return_id": s.return_id,
            }
            for s in sorted(shipments.values(), key=lambda s: s.tracking_number)
        ],
        "platform": None
        if platform is None
        else {
            "name": platform.platform,
            "id": platform.platform_order_id,
            "updated_at": platform.updated_at.isoformat(),
            "cancelled_at": platform.cancelled_at.isoformat() if platform.cancelled_at else None,
            "cancel_reason": platform.cancel_reason,
            "refunded": str(platform.refunded),
            "refund_currency": platform.refund_currency,
        },
        "refunds": [
            {
                "id": r.refund_id,
                "amount": str(r.amount),
                "currency": r.currency,
                "at": r.created_at.isoformat(),
            }
            for r in refunds
        ],
        "returns": [
            {
                "id": r.return_id,
                "status": r.status,
                "requested_at": r.requested_at.isoformat(),
                "updated_at": r.updated_at.isoformat(),
            }
            for r in returns
        ],
    }
    if as_json:
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    lines = [
        f"order {order.order_id} placed {data['placed_at']}",
        f"customer {c.customer_id}: {c.name}, {data['customer']['email'] or 'no email'}, "
        f"{data['customer']['phone'] or 'no phone'}, {c.locale}, {c.time_zone}",
    ]
    lines += [
        f"  item {i['sku']} × {i['quantity']}: {i['name']} ({i['category']}) "
        f"{i['price']} {i['currency']}"
        for i in data["items"]
    ]
    lines += [
        f"  {'return parcel' if s['return_id'] else 'shipment'} "
        f"{s['carrier_name'] or '(carrier unknown)'} {s['tracking_number']}: {s['status']}"
        for s in data["shipments"]
    ] or ["  no shipment yet"]
    lines += [
        f"  refund {r['id']}: {r['amount']} {r['currency']} at {r['at']}" for r in data["refunds"]
    ]
    lines += [f"  return {r['id']}: {r['status']} since {r['updated_at']}" for r in data["returns"]]
    if platform is not None:
        state = "cancelled" if platform.cancelled_at else "open"
        lines.append(
            f"{platform.platform} order {platform.platform_order_id}: {state}"
            + (
                f", refunded {platform.refunded} {platform.refund_currency}"
                if platform.refunded
                else ""
            )
        )
    for line in lines:
        console.print(line, markup=False, highlight=False)
