"""What a re-import may change, decided purely: a stored order never (an order id that
comes back with other content is reported and the stored order stays), a customer's
contact data and consent only from a newer order (by `placed_at`), every difference kept
in the customer's history either way. README.md "Order files" states the rule.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from aftersale.models import Customer, Order
from aftersale.store.records import CustomerChange, Notice, StoredCustomer

#: The customer fields an order carries; the order of the list is the order of reports.
CUSTOMER_FIELDS = (
    "name",
    "email",
    "phone",
    "locale",
    "time_zone",
    "consent_email",
    "consent_sms",
    "country",
    "tags",
)


def customer_differences(stored: Customer, new: Customer) -> dict[str, tuple[Any, Any]]:
    """field -> (stored value, new value), for the fields that differ."""
    return {
        name: (getattr(stored, name), getattr(new, name))
        for name in CUSTOMER_FIELDS
        if getattr(stored, name) != getattr(new, name)
    }


def stored_order_differences(stored: Order, new: Order) -> list[str]:
    """The order fields a re-import would change (the carrier is left out: detection and
    polling may have corrected the stored one)."""
    differ = []
    if stored.placed_at != new.placed_at:
        differ.append("placed_at")
    if stored.customer.customer_id != new.customer.customer_id:
        differ.append("customer.id")
    if stored.items != new.items:
        differ.append("items")
    if {s.tracking_number for s in stored.shipments} != {s.tracking_number for s in new.shipments}:
        differ.append("shipments")
    if stored.promised_delivery != new.promised_delivery:
        differ.append("promised_delivery")
    if stored.shipping_country != new.shipping_country:
        differ.append("shipping_country")
    return differ


def reconcile_customers(
    orders: Sequence[Order],
    stored: Mapping[str, StoredCustomer],
    *,
    source: str,
    lines: Mapping[str, int],
) -> tuple[list[Order], list[CustomerChange], list[Notice]]:
    """Give every order of one customer the data that wins (the newest order's, or the
    stored data when that is newer), and say what changed. Orders come back in their
    input order."""
    current: dict[str, StoredCustomer] = dict(stored)
    changes: list[CustomerChange] = []
    notices: list[Notice] = []
    # oldest first, so that the newest order's data is the one left standing
    for order in sorted(orders, key=lambda o: o.placed_at):
        cid = order.customer.customer_id
        known = current.get(cid)
        if known is None:
            current[cid] = StoredCustomer(order.customer, order.placed_at)
            continue
        differ = customer_differences(known.customer, order.customer)
        if not differ:
            if known.as_of is None or order.placed_at > known.as_of:
                current[cid] = StoredCustomer(known.customer, order.placed_at)
            continue
        applied = known.as_of is None or order.placed_at >= known.as_of
        changes.append(
            CustomerChange(cid, order.order_id, source, order.placed_at, applied, differ)
        )
        fields = ", ".join(differ)
        if applied:
            current[cid] = StoredCustomer(order.customer, order.placed_at)
            text = (
                f"customer {cid}: {fields} updated from order {order.order_id} (newer than the "
                "data stored; the previous values are kept in the customer's history)"
            )
        else:
            when = f"{known.as_of:%Y-%m-%d %H:%M} UTC" if known.as_of else "earlier"
            text = (
                f"customer {cid}: order {order.order_id} has other {fields}; the stored data "
                f"is newer ({when}) and stays (this order's values are kept in the history)"
            )
        notices.append(Notice(source, lines.get(order.order_id, 0), text))
    out = [replace(o, customer=current[o.customer.customer_id].customer) for o in orders]
    notices.sort(key=lambda n: n.line)
    return out, changes, notices
