"""Which due shipments this process polls (DuckDB): one writer process holds the file, so
the due shipments are its own, with no lease to take."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from aftersale.models import ShipmentState
from aftersale.store.duckdb.connection import Connection
from aftersale.store.queries import shipments
from aftersale.store.rows import SHIPMENT_COLS, TERMINAL, shipment_from_row, to_db


class Shipments(shipments.Shipments, Connection):
    def due_order_ids(self, now: datetime, *, limit: int, after: str | None = None) -> list[str]:
        sql = f"SELECT DISTINCT s.order_id FROM shipments s WHERE {shipments.due(self.dialect)}"
        params: dict[str, Any] = {"terminal": TERMINAL, "now": to_db(now), "limit": limit}
        if after is not None:
            sql += " AND s.order_id > $after"
            params["after"] = after
        return [r[0] for r in self.rows(f"{sql} ORDER BY 1 LIMIT $limit", params)]

    def claim_shipments(self, order_ids: Sequence[str], now: datetime) -> list[ShipmentState]:
        if not order_ids:
            return []
        rows = self.rows(
            f"SELECT {SHIPMENT_COLS} FROM shipments s WHERE s.order_id IN (SELECT unnest($orders)) "
            f"AND {shipments.due(self.dialect)} ORDER BY order_id, shipment_id",
            {"orders": list(order_ids), "terminal": TERMINAL, "now": to_db(now)},
        )
        return [shipment_from_row(r) for r in rows]
