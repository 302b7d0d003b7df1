"""Refunds and returns a shop platform reported, parcels sent back, and the orders whose
shop promises (dispatch, return period) may be due."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from aftersale.models import EventKind, Status
from aftersale.store.backend import Backend
from aftersale.store.records import RefundRecord, ReturnParcel, ReturnRecord
from aftersale.store.rows import (
    OPEN_RETURN_STATUSES,
    from_db,
    refund_rows,
    return_parcel_rows,
    return_rows,
    to_db,
)

_REFUND_COLS = "order_id, refund_id, amount, currency, created_at"
_RETURN_COLS = "order_id, return_id, status, requested_at, updated_at"


class Returns(Backend):
    def order_ids_by_platform_id(self, platform: str, ids: Iterable[str]) -> dict[str, str]:
        wanted = list(set(ids))
        if not wanted:
            return {}
        d = self.dialect
        rows = self.rows(
            "SELECT platform_order_id, order_id FROM platform_orders "
            f"WHERE platform = {d.param} AND {d.in_list('platform_order_id')}",
            [platform, wanted],
        )
        return {r[0]: r[1] for r in rows}

    def save_refunds(self, refunds: Sequence[RefundRecord]) -> int:
        # in key order: two workers inserting the same refunds lock them in the same order
        rows = sorted(refund_rows(refunds), key=lambda r: (r["order_id"], r["refund_id"]))
        return self.insert_count("order_refunds", rows, "ON CONFLICT DO NOTHING")

    def save_returns(self, returns: Sequence[ReturnRecord]) -> int:
        # one row per key in a statement (ON CONFLICT cannot touch a row twice): newest last
        latest: dict[tuple[str, str], dict[str, Any]] = {}
        for row in sorted(return_rows(returns), key=lambda r: r["updated_at"]):
            latest[(row["order_id"], row["return_id"])] = row
        return self.insert_count(
            "order_returns",
            [latest[k] for k in sorted(latest)],
            "ON CONFLICT (order_id, return_id) DO UPDATE SET status = excluded.status, "
            "updated_at = excluded.updated_at "
            "WHERE excluded.updated_at > order_returns.updated_at "
            "OR (excluded.updated_at = order_returns.updated_at "
            "AND excluded.status <> order_returns.status)",
        )

    def returns_by_id(self, return_ids: Iterable[str]) -> dict[str, ReturnRecord]:
        rows = self.rows_in(f"SELECT {_RETURN_COLS} FROM order_returns", "return_id", return_ids)
        return {r[1]: _return(r) for r in rows}

    def refunds_and_returns_of(
        self, order_ids: Iterable[str]
    ) -> tuple[list[RefundRecord], list[ReturnRecord]]:
        ids = list(set(order_ids))
        refunds = self.rows_in(
            f"SELECT {_REFUND_COLS} FROM order_refunds",
            "order_id",
            ids,
            "ORDER BY created_at, refund_id",
        )
        returns = self.rows_in(
            f"SELECT {_RETURN_COLS} FROM order_returns",
            "order_id",
            ids,
            "ORDER BY requested_at, return_id",
        )
        return [_refund(r) for r in refunds], [_return(r) for r in returns]

    def add_return_parcels(self, parcels: Sequence[ReturnParcel], now: datetime) -> int:
        return self.insert_count(
            "shipments", return_parcel_rows(parcels, now), "ON CONFLICT DO NOTHING"
        )

    def refunds_without_event(self) -> list[RefundRecord]:
        rows = self.rows(
            f"SELECT {_REFUND_COLS} FROM order_refunds r "
            f"WHERE NOT EXISTS (SELECT 1 FROM domain_events e WHERE e.kind = {self.dialect.param} "
            "AND e.order_id = r.order_id AND e.reason = r.refund_id) ORDER BY created_at",
            [EventKind.REFUND_ISSUED.value],
        )
        return [_refund(r) for r in rows]

    def returns_without_event(self) -> list[ReturnRecord]:
        d = self.dialect
        p = d.param
        told = (
            f"EXISTS (SELECT 1 FROM domain_events e WHERE e.kind = {p} "
            "AND e.order_id = r.order_id AND e.reason = r.return_id)"
        )
        rows = self.rows(
            f"SELECT {_RETURN_COLS} FROM order_returns r WHERE "
            f"({d.in_list('status')} AND NOT {told}) OR (status = {p} AND NOT {told}) "
            "ORDER BY requested_at",
            [
                list(OPEN_RETURN_STATUSES),
                EventKind.RETURN_REQUESTED.value,
                "declined",
                EventKind.RETURN_DECLINED.value,
            ],
        )
        return [_return(r) for r in rows]

    def cancelled_orders(self, order_ids: Iterable[str]) -> set[str]:
        rows = self.rows_in(
            "SELECT order_id FROM platform_orders",
            "order_id",
            order_ids,
            "AND cancelled_at IS NOT NULL",
        )
        return {r[0] for r in rows}

    def orders_due_for_shop_promises(
        self,
        now: datetime,
        *,
        dispatch_days: int | None,
        return_days: int | None,
        return_window_days: Sequence[int],
    ) -> list[str]:
        d = self.dialect
        now_ = d.named("now")
        params: dict[str, Any] = {"now": to_db(now)}
        parts = []
        if dispatch_days is not None:
            params |= {"dispatch": dispatch_days, "kind": EventKind.FULFILMENT_DELAYED.value}
            parts.append(
                # only a shop platform's orders gain tracking numbers after they are stored
                "SELECT o.order_id FROM orders o JOIN platform_orders p USING (order_id) "
                f"WHERE o.placed_at + {d.interval(d.named('dispatch'), 'days')} <= {now_} "
                "AND NOT EXISTS (SELECT 1 FROM shipments s "
                "WHERE s.order_id = o.order_id AND s.return_id IS NULL) "
                "AND NOT EXISTS (SELECT 1 FROM domain_events e "
                f"WHERE e.order_id = o.order_id AND e.kind = {d.named('kind')})"
            )
        if return_days is not None and return_window_days:
            # the exact end (local end of day, in the shop's zone) is computed in detection;
            # a day either side here keeps every order it could be due for
            params |= {
                "lead": return_days - max(return_window_days) - 1,
                "ends": return_days + 2,
                "delivered": Status.DELIVERED.value,
                "asked": ["requested", "open", "closed"],
            }
            parts.append(
                # a customer who asked to return the items needs no reminder
                "SELECT order_id FROM shipments WHERE return_id IS NULL "
                "AND order_id NOT IN (SELECT order_id FROM order_returns "
                f"WHERE {d.in_list('status', d.named('asked', 'varchar[]'))}) "
                f"GROUP BY order_id HAVING bool_and(status = {d.named('delivered')}) "
                f"AND max(delivered_at) + {d.interval(d.named('lead'), 'days')} <= {now_} "
                f"AND max(delivered_at) + {d.interval(d.named('ends'), 'days')} > {now_}"
            )
        if not parts:
            return []
        sql = (
            f"SELECT order_id FROM ({' UNION '.join(parts)}) due WHERE NOT EXISTS "
            "(SELECT 1 FROM platform_orders p WHERE p.order_id = due.order_id "
            "AND p.cancelled_at IS NOT NULL)"
        )
        return sorted(r[0] for r in self.rows(sql, params))


def _refund(r: tuple[Any, ...]) -> RefundRecord:
    return RefundRecord(r[0], r[1], Decimal(r[2]), r[3], from_db(r[4]))


def _return(r: tuple[Any, ...]) -> ReturnRecord:
    return ReturnRecord(r[0], r[1], r[2], from_db(r[3]), from_db(r[4]))
