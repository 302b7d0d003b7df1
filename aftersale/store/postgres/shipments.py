"""Which due shipments this worker polls (PostgreSQL): the leases that let several
workers share the polling.

A worker claims the due shipments of a page of orders with `SELECT … FOR UPDATE SKIP
LOCKED` and a lease (owner, expiry): another worker skips them until the page is written
back (which releases the lease and moves `next_check_at` on), the lease expires, or the
owner's sessions are gone.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from aftersale.models import ShipmentState
from aftersale.store.postgres.connection import Connection, lease_free, lease_until
from aftersale.store.queries import shipments
from aftersale.store.rows import SHIPMENT_COLS, TERMINAL, shipment_from_row, to_db

_DUE = shipments.due(Connection.dialect)
_COLS_S = ", ".join(f"s.{c.strip()}" for c in SHIPMENT_COLS.split(","))


class Shipments(shipments.Shipments, Connection):
    def due_order_ids(self, now: datetime, *, limit: int, after: str | None = None) -> list[str]:
        sql = f"SELECT DISTINCT s.order_id FROM shipments s WHERE {_DUE} AND {lease_free('s')}"
        params = self.lease_params(terminal=TERMINAL, now=to_db(now), limit=limit)
        if after is not None:
            sql += " AND s.order_id > %(after)s"
            params["after"] = after
        return [r[0] for r in self.rows(f"{sql} ORDER BY 1 LIMIT %(limit)s", params)]

    def claim_shipments(self, order_ids: Sequence[str], now: datetime) -> list[ShipmentState]:
        if not order_ids:
            return []
        rows = self.rows(
            "WITH picked AS (SELECT s.shipment_id FROM shipments s "
            f"WHERE s.order_id = ANY(%(orders)s) AND {_DUE} AND {lease_free('s')} "
            "FOR UPDATE SKIP LOCKED) "
            f"UPDATE shipments s SET lease_owner = %(me)s, lease_until = {lease_until()} "
            f"FROM picked WHERE s.shipment_id = picked.shipment_id RETURNING {_COLS_S}",
            self.lease_params(orders=list(order_ids), terminal=TERMINAL, now=to_db(now)),
        )
        return sorted(
            (shipment_from_row(r) for r in rows), key=lambda s: (s.order_id, s.shipment_id)
        )
