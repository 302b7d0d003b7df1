"""The SQL type of each column the shared queries write in bulk, per table, in types
both backends know. PostgreSQL casts its array parameters to them; DuckDB builds an
Arrow batch's schema from them where it cannot infer one (aftersale/store/*/connection.py).
A `[]` suffix is an array. The messages table's own bulk writes keep their types beside
their statements (duckdb/messages.py, postgres/messages.py)."""

from __future__ import annotations

from collections.abc import Iterable

COLUMN_TYPES: dict[str, dict[str, str]] = {
    "customers": {
        "customer_id": "varchar",
        "name": "varchar",
        "email": "varchar",
        "phone": "varchar",
        "locale": "varchar",
        "time_zone": "varchar",
        "consent_email": "boolean",
        "consent_sms": "boolean",
        "country": "varchar",
        "tags": "varchar[]",
        "updated_at": "timestamp",
    },
    "customer_changes": {
        "customer_id": "varchar",
        "order_id": "varchar",
        "source": "varchar",
        "as_of": "timestamp",
        "applied": "boolean",
        "changes": "json",
        "recorded_at": "timestamp",
    },
    "orders": {
        "order_id": "varchar",
        "customer_id": "varchar",
        "placed_at": "timestamp",
        "promised_delivery": "date",
        "shipping_country": "varchar",
        "source": "varchar",
        "imported_at": "timestamp",
    },
    "items": {
        "order_id": "varchar",
        "line": "integer",
        "sku": "varchar",
        "name": "varchar",
        "category": "varchar",
        "quantity": "integer",
        "price": "numeric",
        "currency": "varchar",
        "warranty_months": "integer",
    },
    "shipments": {
        "shipment_id": "varchar",
        "order_id": "varchar",
        "carrier": "varchar",
        "carrier_candidates": "varchar[]",
        "tracking_number": "varchar",
        "items": "varchar[]",
        "status": "varchar",
        "code": "varchar",
        "description": "varchar",
        "estimated_delivery": "date",
        "first_estimate": "date",
        "window_start": "timestamp",
        "window_end": "timestamp",
        "delivered_at": "timestamp",
        "pickup_point": "varchar",
        "last_event_at": "timestamp",
        "status_since": "timestamp",
        "last_polled_at": "timestamp",
        "next_check_at": "timestamp",
        "created_at": "timestamp",
        "problem": "varchar",
        "poll_failures": "integer",
        "delivery_type": "varchar",
        "pickup_deadline": "timestamp",
        "pickup_hours": "varchar",
        "return_id": "varchar",
    },
    "tracking_events": {
        "shipment_id": "varchar",
        "occurred_at": "timestamp",
        "code": "varchar",
        "location": "varchar",
        "status": "varchar",
        "description": "varchar",
        "recorded_at": "timestamp",
    },
    "domain_events": {
        "event_id": "varchar",
        "kind": "varchar",
        "order_id": "varchar",
        "shipment_id": "varchar",
        "item_sku": "varchar",
        "status": "varchar",
        "reason": "varchar",
        "occurred_at": "timestamp",
        "facts": "json",
        "run_id": "varchar",
        "detected_at": "timestamp",
    },
    "rejections": {
        "source": "varchar",
        "line": "integer",
        "reason": "varchar",
        "rejected_at": "timestamp",
    },
    "health": {
        "component": "varchar",
        "name": "varchar",
        "state": "varchar",
        "since": "timestamp",
        "checked_at": "timestamp",
        "last_ok_at": "timestamp",
        "calls": "integer",
        "failures": "integer",
        "errors": "json",
        "last_error": "varchar",
        "breaker_opened_at": "timestamp",
        "alerted_at": "timestamp",
    },
    "platform_orders": {
        "order_id": "varchar",
        "platform": "varchar",
        "platform_order_id": "varchar",
        "updated_at": "timestamp",
        "cancelled_at": "timestamp",
        "cancel_reason": "varchar",
        "refunded": "varchar",
        "refund_currency": "varchar",
    },
    "order_refunds": {
        "order_id": "varchar",
        "refund_id": "varchar",
        "amount": "varchar",
        "currency": "varchar",
        "created_at": "timestamp",
    },
    "order_returns": {
        "order_id": "varchar",
        "return_id": "varchar",
        "status": "varchar",
        "requested_at": "timestamp",
        "updated_at": "timestamp",
    },
}


def column_types(table: str, columns: Iterable[str]) -> dict[str, str]:
    """The types of these columns of `table`, in their order."""
    types = COLUMN_TYPES[table]
    return {c: types[c] for c in columns}
