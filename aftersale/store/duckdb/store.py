"""The DuckDB store on disk: one writer process per file, migrations applied on open.

DuckDB lets one process hold a file; while it does, no other process can even read
it. `Store.open` therefore waits with a bounded, logged retry and then fails with
`StoreLockedError` saying who to wait for, never touching the file meanwhile.
Batch writes go through Arrow tables (`INSERT … SELECT`), never `executemany`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, overload

import duckdb
import pyarrow as pa

from aftersale.errors import StoreError, StoreLockedError
from aftersale.models import (
    Customer,
    DomainEvent,
    EventKind,
    Item,
    Order,
    ShipmentRef,
    ShipmentState,
    Status,
    TrackingEvent,
)
from aftersale.store.migrations import MIGRATIONS

log = logging.getLogger(__name__)

_LOCK_TEXT = "Could not set lock"


def to_db(dt: datetime | None) -> datetime | None:
    """Aware UTC in the core, naive UTC in the file."""
    if dt is None:
        return None
    if dt.tzinfo is None:
        raise ValueError(f"naive datetime {dt!r} reached the store; the core keeps UTC-aware times")
    return dt.astimezone(UTC).replace(tzinfo=None)


@overload
def from_db(dt: datetime) -> datetime: ...
@overload
def from_db(dt: None) -> None: ...
def from_db(dt: datetime | None) -> datetime | None:
    return None if dt is None else dt.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Rejection:
    source: str
    line: int
    reason: str


@dataclass(frozen=True, slots=True)
class MessageRow:
    """A message as stored: the decision plus its delivery state."""

    message_id: str
    idempotency_key: str
    rule_id: str
    template: str
    channel: str
    marketing: bool
    order_id: str
    shipment_id: str | None
    item_sku: str | None
    customer_id: str
    event_id: str
    state: str
    due_at: datetime
    attempts: int
    recipient: str | None = None
    provider_id: str | None = None
    error_code: str | None = None
    error_text: str | None = None


class _Closed:
    def __getattr__(self, name: str) -> Any:
        raise StoreError("this store is closed")


_CLOSED: Any = _Closed()


class Store:
    """All reads and writes of aftersale's state. One instance per process."""

    def __init__(self, con: duckdb.DuckDBPyConnection, path: str) -> None:
        self.con = con
        self.path = path

    # --- lifecycle ---------------------------------------------------------

    @classmethod
    def open(cls, path: Path | str, *, wait_s: float = 60.0, poll_s: float = 0.5) -> Store:
        path = str(path)
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        attempt = 0
        while True:
            try:
                con = duckdb.connect(path)
                break
            except duckdb.IOException as exc:
                if _LOCK_TEXT not in str(exc):
                    raise StoreError(f"{path}: cannot open the database: {exc}") from exc
                waited = time.monotonic() - started
                if waited >= wait_s:
                    raise StoreLockedError(path, waited, str(exc).splitlines()[0]) from exc
                attempt += 1
                if attempt == 1 or attempt % 20 == 0:
                    log.warning(
                        "%s is held by another process; waiting (%.0f s so far)", path, waited
                    )
                time.sleep(poll_s)
        store = cls(con, path)
        store.migrate()
        return store

    def close(self) -> None:
        self.con.close()
        # Drop the handle too: something (a Prefect task's parameters, a traceback) may keep
        # this Store alive until exit, where DuckDB would report the connection as leaked.
        self.con = _CLOSED

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def migrate(self) -> list[int]:
        """Apply the migrations this file has not seen yet, each in its own transaction."""
        self.con.execute(
            "CREATE TABLE IF NOT EXISTS schema_version "
            "(version INTEGER PRIMARY KEY, description VARCHAR, applied_at TIMESTAMP)"
        )
        done = {r[0] for r in self.con.execute("SELECT version FROM schema_version").fetchall()}
        applied = []
        for version, description, sql in MIGRATIONS:
            if version in done:
                continue
            with self.transaction():
                self.con.execute(sql)
                self.con.execute(
                    "INSERT INTO schema_version VALUES (?, ?, ?)",
                    [version, description, to_db(datetime.now(UTC))],
                )
            applied.append(version)
        return applied

    def schema_version(self) -> int:
        row = self.con.execute("SELECT max(version) FROM schema_version").fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self.con.execute("BEGIN TRANSACTION")
        try:
            yield
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        self.con.execute("COMMIT")

    def insert_rows(self, table: str, rows: list[dict[str, Any]], conflict: str = "") -> int:
        """Bulk insert through Arrow; returns how many rows were actually inserted."""
        if not rows:
            return 0
        batch = pa.Table.from_pylist(rows)
        self.con.register("_batch", batch)
        try:
            cols = ", ".join(batch.column_names)
            result = self.con.execute(
                f"INSERT INTO {table} ({cols}) SELECT {cols} FROM _batch {conflict}"
            ).fetchone()
        finally:
            self.con.unregister("_batch")
        return int(result[0]) if result else 0

    # --- orders ------------------------------------------------------------

    def save_orders(
        self,
        orders: Sequence[Order],
        *,
        source: str,
        now: datetime,
        candidates: dict[str, list[str]] | None = None,
    ) -> tuple[int, int]:
        """Store new orders (idempotent by order id); returns (inserted, already known)."""
        candidates = candidates or {}
        known = self.known_order_ids([o.order_id for o in orders])
        fresh = [o for o in orders if o.order_id not in known]
        # Within one batch the last row for an id would silently win in DuckDB 2.0: dedupe.
        unique: dict[str, Order] = {}
        for order in fresh:
            unique.setdefault(order.order_id, order)
        fresh = list(unique.values())
        customers: dict[str, dict[str, Any]] = {}
        order_rows, item_rows, shipment_rows = [], [], []
        for o in fresh:
            c = o.customer
            customers[c.customer_id] = {
                "customer_id": c.customer_id,
                "name": c.name,
                "email": c.email,
                "phone": c.phone,
                "locale": c.locale,
                "time_zone": c.time_zone,
                "consent_email": c.consent_email,
                "consent_sms": c.consent_sms,
                "country": c.country,
                "tags": list(c.tags),
            }
            order_rows.append(
                {
                    "order_id": o.order_id,
                    "customer_id": c.customer_id,
                    "placed_at": to_db(o.placed_at),
                    "promised_delivery": o.promised_delivery,
                    "shipping_country": o.shipping_country,
                    "source": source,
                    "imported_at": to_db(now),
                }
            )
            for line, item in enumerate(o.items, start=1):
                item_rows.append(
                    {
                        "order_id": o.order_id,
                        "line": line,
                        "sku": item.sku,
                        "name": item.name,
                        "category": item.category,
                        "quantity": item.quantity,
                        "price": item.price,
                        "currency": item.currency,
                        "warranty_months": item.warranty_months,
                    }
                )
            for ref in o.shipments:
                shipment_rows.append(
                    {
                        "shipment_id": ref.tracking_number,
                        "order_id": o.order_id,
                        "carrier": ref.carrier,
                        "carrier_candidates": candidates.get(ref.tracking_number, []),
                        "tracking_number": ref.tracking_number,
                        "status": Status.PENDING.value,
                        "created_at": to_db(now),
                        "next_check_at": to_db(now),
                        "poll_failures": 0,
                    }
                )
        with self.transaction():
            self.insert_rows(
                "customers",
                list(customers.values()),
                "ON CONFLICT (customer_id) DO UPDATE SET name = excluded.name, "
                "email = excluded.email, phone = excluded.phone, locale = excluded.locale, "
                "time_zone = excluded.time_zone, consent_email = excluded.consent_email, "
                "consent_sms = excluded.consent_sms, country = excluded.country, "
                "tags = excluded.tags",
            )
            self.insert_rows("orders", order_rows, "ON CONFLICT DO NOTHING")
            self.insert_rows("items", item_rows, "ON CONFLICT DO NOTHING")
            self.insert_rows("shipments", shipment_rows, "ON CONFLICT DO NOTHING")
        return len(fresh), len(orders) - len(fresh)

    def known_order_ids(self, order_ids: Iterable[str]) -> set[str]:
        ids = list(set(order_ids))
        if not ids:
            return set()
        rows = self.con.execute(
            "SELECT order_id FROM orders WHERE order_id IN (SELECT unnest(?))", [ids]
        ).fetchall()
        return {r[0] for r in rows}

    def known_tracking_numbers(self, numbers: Iterable[str]) -> dict[str, str]:
        """tracking number -> order id, for numbers already stored."""
        nums = list(set(numbers))
        if not nums:
            return {}
        rows = self.con.execute(
            "SELECT tracking_number, order_id FROM shipments "
            "WHERE tracking_number IN (SELECT unnest(?))",
            [nums],
        ).fetchall()
        return dict(rows)

    def record_rejections(self, rejections: Sequence[Rejection], now: datetime) -> None:
        self.insert_rows(
            "rejections",
            [
                {"source": r.source, "line": r.line, "reason": r.reason, "rejected_at": to_db(now)}
                for r in rejections
            ],
        )

    def load_orders(self, order_ids: Iterable[str]) -> dict[str, Order]:
        ids = list(set(order_ids))
        if not ids:
            return {}
        order_rows = self.con.execute(
            "SELECT o.order_id, o.placed_at, o.promised_delivery, o.shipping_country, "
            "c.customer_id, c.name, c.email, c.phone, c.locale, c.time_zone, c.consent_email, "
            "c.consent_sms, c.country, c.tags "
            "FROM orders o JOIN customers c USING (customer_id) "
            "WHERE o.order_id IN (SELECT unnest(?))",
            [ids],
        ).fetchall()
        items: dict[str, list[Item]] = {}
        for r in self.con.execute(
            "SELECT order_id, sku, name, category, quantity, price, currency, warranty_months "
            "FROM items WHERE order_id IN (SELECT unnest(?)) ORDER BY order_id, line",
            [ids],
        ).fetchall():
            items.setdefault(r[0], []).append(
                Item(r[1], r[2], r[3], r[4], Decimal(r[5]), r[6], r[7])
            )
        refs: dict[str, list[ShipmentRef]] = {}
        for r in self.con.execute(
            "SELECT order_id, tracking_number, carrier FROM shipments "
            "WHERE order_id IN (SELECT unnest(?)) ORDER BY order_id, created_at, shipment_id",
            [ids],
        ).fetchall():
            refs.setdefault(r[0], []).append(ShipmentRef(r[1], r[2]))
        orders = {}
        for r in order_rows:
            customer = Customer(
                customer_id=r[4],
                name=r[5],
                email=r[6],
                phone=r[7],
                locale=r[8],
                time_zone=r[9],
                consent_email=r[10],
                consent_sms=r[11],
                country=r[12],
                tags=tuple(r[13]),
            )
            orders[r[0]] = Order(
                order_id=r[0],
                placed_at=from_db(r[1]),  # type: ignore[arg-type]
                customer=customer,
                items=tuple(items.get(r[0], ())),
                shipments=tuple(refs.get(r[0], ())),
                promised_delivery=r[2],
                shipping_country=r[3],
            )
        return orders

    def load_order(self, order_id: str) -> Order | None:
        return self.load_orders([order_id]).get(order_id)

    def orders_without_event(self, kind: EventKind) -> list[str]:
        rows = self.con.execute(
            "SELECT order_id FROM orders o WHERE NOT EXISTS (SELECT 1 FROM domain_events e "
            "WHERE e.order_id = o.order_id AND e.kind = ?) ORDER BY placed_at",
            [kind.value],
        ).fetchall()
        return [r[0] for r in rows]

    def orders_with_time_based_events(self, now: datetime, recent_days: int = 60) -> list[str]:
        """Orders that may still have time-based events: a parcel on its way or recently
        delivered, or an item under warranty. Settled orders are skipped each cycle."""
        rows = self.con.execute(
            "SELECT DISTINCT o.order_id FROM orders o "
            "LEFT JOIN shipments s USING (order_id) "
            "WHERE s.shipment_id IS NULL "
            "OR s.status NOT IN ('delivered', 'returned_to_sender', 'cancelled', 'expired') "
            "OR s.delivered_at >= ? - to_days(?) "
            "OR EXISTS (SELECT 1 FROM items i "
            "WHERE i.order_id = o.order_id AND i.warranty_months > 0) "
            "ORDER BY o.order_id",
            [to_db(now), recent_days],
        ).fetchall()
        return [r[0] for r in rows]

    # --- shipments ---------------------------------------------------------

    _SHIPMENT_COLS = (
        "shipment_id, order_id, carrier, tracking_number, status, code, description, "
        "estimated_delivery, first_estimate, window_start, window_end, delivered_at, "
        "pickup_point, last_event_at, status_since, last_polled_at, next_check_at, "
        "created_at, problem"
    )

    @staticmethod
    def _shipment(r: tuple[Any, ...]) -> ShipmentState:
        window = (from_db(r[9]), from_db(r[10])) if r[9] and r[10] else None
        return ShipmentState(
            shipment_id=r[0],
            order_id=r[1],
            carrier=r[2],
            tracking_number=r[3],
            status=Status(r[4]),
            code=r[5],
            description=r[6],
            estimated_delivery=r[7],
            first_estimate=r[8],
            estimated_window=window,  # type: ignore[arg-type]
            delivered_at=from_db(r[11]),
            pickup_point=r[12],
            last_event_at=from_db(r[13]),
            status_since=from_db(r[14]),
            last_polled_at=from_db(r[15]),
            next_check_at=from_db(r[16]),
            created_at=from_db(r[17]),
            problem=r[18],
        )

    def due_shipments(self, now: datetime, limit: int | None = None) -> list[ShipmentState]:
        """Non-terminal shipments whose next check is due, oldest check first."""
        terminal = [
            s.value
            for s in (Status.DELIVERED, Status.RETURNED_TO_SENDER, Status.CANCELLED, Status.EXPIRED)
        ]
        sql = (
            f"SELECT {self._SHIPMENT_COLS} FROM shipments WHERE status NOT IN (SELECT unnest(?)) "
            "AND (next_check_at IS NULL OR next_check_at <= ?) ORDER BY next_check_at, shipment_id"
        )
        params: list[Any] = [terminal, to_db(now)]
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [self._shipment(r) for r in self.con.execute(sql, params).fetchall()]

    def carrier_candidates(self, shipment_ids: Iterable[str]) -> dict[str, list[str]]:
        """Ranked carriers auto-detection proposed, for shipments that have more than one."""
        ids = list(set(shipment_ids))
        if not ids:
            return {}
        rows = self.con.execute(
            "SELECT shipment_id, carrier_candidates FROM shipments "
            "WHERE shipment_id IN (SELECT unnest(?)) AND len(carrier_candidates) > 1",
            [ids],
        ).fetchall()
        return {r[0]: list(r[1]) for r in rows}

    def poll_failures(self, shipment_ids: Iterable[str]) -> dict[str, int]:
        """Consecutive failed polls so far, for shipments that have any."""
        ids = list(set(shipment_ids))
        if not ids:
            return {}
        rows = self.con.execute(
            "SELECT shipment_id, poll_failures FROM shipments "
            "WHERE shipment_id IN (SELECT unnest(?)) AND poll_failures > 0",
            [ids],
        ).fetchall()
        return {r[0]: int(r[1]) for r in rows}

    def shipments_of(self, order_ids: Iterable[str]) -> dict[str, ShipmentState]:
        ids = list(set(order_ids))
        if not ids:
            return {}
        rows = self.con.execute(
            f"SELECT {self._SHIPMENT_COLS} FROM shipments WHERE order_id IN (SELECT unnest(?))",
            [ids],
        ).fetchall()
        return {r[0]: self._shipment(r) for r in rows}

    def load_shipment(self, shipment_id: str) -> ShipmentState | None:
        r = self.con.execute(
            f"SELECT {self._SHIPMENT_COLS} FROM shipments WHERE shipment_id = ?", [shipment_id]
        ).fetchone()
        return self._shipment(r) if r else None

    def save_shipment_states(
        self, states: Sequence[ShipmentState], poll_failures: dict[str, int] | None = None
    ) -> None:
        """Write polled states back (one UPDATE … FROM batch)."""
        if not states:
            return
        failures = poll_failures or {}
        rows = [
            {
                "shipment_id": s.shipment_id,
                "carrier": s.carrier,
                "status": s.status.value,
                "code": s.code,
                "description": s.description,
                "estimated_delivery": s.estimated_delivery,
                "first_estimate": s.first_estimate,
                "window_start": to_db(s.estimated_window[0]) if s.estimated_window else None,
                "window_end": to_db(s.estimated_window[1]) if s.estimated_window else None,
                "delivered_at": to_db(s.delivered_at),
                "pickup_point": s.pickup_point,
                "last_event_at": to_db(s.last_event_at),
                "status_since": to_db(s.status_since),
                "last_polled_at": to_db(s.last_polled_at),
                "next_check_at": to_db(s.next_check_at),
                "problem": s.problem,
                "poll_failures": failures.get(s.shipment_id, 0),
            }
            for s in states
        ]
        batch = pa.Table.from_pylist(rows, schema=_SHIPMENT_UPDATE_SCHEMA)
        self.con.register("_states", batch)
        try:
            sets = ", ".join(f"{c} = u.{c}" for c in batch.column_names if c != "shipment_id")
            self.con.execute(
                f"UPDATE shipments SET {sets} FROM _states u "
                "WHERE shipments.shipment_id = u.shipment_id"
            )
        finally:
            self.con.unregister("_states")

    def save_tracking_events(
        self, events: Sequence[tuple[str, TrackingEvent]], now: datetime
    ) -> int:
        rows = [
            {
                "shipment_id": sid,
                "occurred_at": to_db(e.occurred_at),
                "code": e.code,
                "location": e.location or "",
                "status": e.status.value if e.status else None,
                "description": e.description,
                "recorded_at": to_db(now),
            }
            for sid, e in events
        ]
        unique = {(r["shipment_id"], r["occurred_at"], r["code"], r["location"]): r for r in rows}
        return self.insert_rows("tracking_events", list(unique.values()), "ON CONFLICT DO NOTHING")

    def tracking_events(self, shipment_id: str) -> list[TrackingEvent]:
        return self.tracking_events_of([shipment_id]).get(shipment_id, [])

    def tracking_events_of(self, shipment_ids: Iterable[str]) -> dict[str, list[TrackingEvent]]:
        """Each shipment's scans, oldest first."""
        ids = list(set(shipment_ids))
        if not ids:
            return {}
        rows = self.con.execute(
            "SELECT shipment_id, occurred_at, status, code, description, location "
            "FROM tracking_events WHERE shipment_id IN (SELECT unnest(?)) "
            "ORDER BY shipment_id, occurred_at",
            [ids],
        ).fetchall()
        out: dict[str, list[TrackingEvent]] = {}
        for r in rows:
            out.setdefault(r[0], []).append(
                TrackingEvent(
                    from_db(r[1]), Status(r[2]) if r[2] else None, r[3], r[4], r[5] or None
                )
            )
        return out

    # --- domain events -----------------------------------------------------

    def record_domain_events(
        self, events: Sequence[DomainEvent], *, run_id: str, now: datetime
    ) -> list[DomainEvent]:
        """Store events; returns those not seen before (a replay yields nothing new)."""
        unique = {e.event_id: e for e in events}
        if not unique:
            return []
        seen = {
            r[0]
            for r in self.con.execute(
                "SELECT event_id FROM domain_events WHERE event_id IN (SELECT unnest(?))",
                [list(unique)],
            ).fetchall()
        }
        fresh = [e for eid, e in unique.items() if eid not in seen]
        self.insert_rows(
            "domain_events",
            [
                {
                    "event_id": e.event_id,
                    "kind": e.kind.value,
                    "order_id": e.order_id,
                    "shipment_id": e.shipment_id,
                    "item_sku": e.item_sku,
                    "status": e.status.value if e.status else None,
                    "reason": e.reason,
                    "occurred_at": to_db(e.occurred_at),
                    "facts": json.dumps(dict(e.facts), default=_json_default, sort_keys=True),
                    "run_id": run_id,
                    "detected_at": to_db(now),
                }
                for e in fresh
            ],
            "ON CONFLICT DO NOTHING",
        )
        return fresh

    def load_domain_event(self, event_id: str) -> DomainEvent | None:
        return self.load_domain_events([event_id]).get(event_id)

    _EVENT_COLS = "kind, order_id, occurred_at, shipment_id, item_sku, status, reason, facts"

    def load_domain_events(self, event_ids: Iterable[str]) -> dict[str, DomainEvent]:
        ids = list(set(event_ids))
        if not ids:
            return {}
        rows = self.con.execute(
            f"SELECT event_id, {self._EVENT_COLS} FROM domain_events "
            "WHERE event_id IN (SELECT unnest(?))",
            [ids],
        ).fetchall()
        return {r[0]: _domain_event(r[1:]) for r in rows}

    def domain_events_between(
        self, start: datetime, end: datetime
    ) -> list[tuple[datetime, DomainEvent]]:
        """Events that occurred in [start, end), with when each was detected, in detection order."""
        rows = self.con.execute(
            f"SELECT detected_at, {self._EVENT_COLS} FROM domain_events "
            "WHERE occurred_at >= ? AND occurred_at < ? "
            "ORDER BY detected_at, occurred_at, event_id",
            [to_db(start), to_db(end)],
        ).fetchall()
        return [(from_db(r[0]), _domain_event(r[1:])) for r in rows]

    # --- runs --------------------------------------------------------------

    def start_run(self, run_id: str, kind: str, clock: datetime) -> None:
        self.con.execute(
            "INSERT INTO runs (run_id, kind, started_at, clock) VALUES (?, ?, ?, ?)",
            [run_id, kind, to_db(datetime.now(UTC)), to_db(clock)],
        )

    def finish_run(self, run_id: str, summary: dict[str, Any]) -> None:
        self.con.execute(
            "UPDATE runs SET finished_at = ?, summary = ? WHERE run_id = ?",
            [to_db(datetime.now(UTC)), json.dumps(summary, default=_json_default), run_id],
        )

    def count(self, table: str) -> int:
        if table not in {
            "orders",
            "customers",
            "items",
            "shipments",
            "tracking_events",
            "domain_events",
            "messages",
            "runs",
            "rejections",
            "suppressions",
        }:
            raise StoreError(f"unknown table {table!r}")
        row = self.con.execute(f"SELECT count(*) FROM {table}").fetchone()
        return int(row[0]) if row else 0


_SHIPMENT_UPDATE_SCHEMA = pa.schema(
    [
        ("shipment_id", pa.string()),
        ("carrier", pa.string()),
        ("status", pa.string()),
        ("code", pa.string()),
        ("description", pa.string()),
        ("estimated_delivery", pa.date32()),
        ("first_estimate", pa.date32()),
        ("window_start", pa.timestamp("us")),
        ("window_end", pa.timestamp("us")),
        ("delivered_at", pa.timestamp("us")),
        ("pickup_point", pa.string()),
        ("last_event_at", pa.timestamp("us")),
        ("status_since", pa.timestamp("us")),
        ("last_polled_at", pa.timestamp("us")),
        ("next_check_at", pa.timestamp("us")),
        ("problem", pa.string()),
        ("poll_failures", pa.int32()),
    ]
)


def _domain_event(r: tuple[Any, ...]) -> DomainEvent:
    return DomainEvent(
        kind=EventKind(r[0]),
        order_id=r[1],
        occurred_at=from_db(r[2]),
        shipment_id=r[3],
        item_sku=r[4],
        status=Status(r[5]) if r[5] else None,
        reason=r[6],
        facts=json.loads(r[7]),
    )


def _json_default(value: object) -> object:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    raise TypeError(f"cannot store {type(value).__name__} in JSON facts")
