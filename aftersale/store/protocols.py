"""The store seam: what each stage may ask of the database, one protocol per aggregate.

Stages type their store parameter with the narrowest protocol they need; `Store` is all
of them plus the lifecycle. A backend (aftersale/store/duckdb/, postgres/) is one class
that implements `Store`: the queries written once (aftersale/store/queries/) over its own
connection, bulk paths and dialect (aftersale/store/backend.py); `aftersale.store.open_store`
picks it from AFTERSALE_DB.
Every time in and out is timezone-aware UTC. Writes made inside `transaction()` commit
together or not at all; outside one, each method commits on its own.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import date, datetime
from typing import Any, Protocol

from aftersale.models import (
    ChannelKind,
    DomainEvent,
    EventKind,
    MessageState,
    Order,
    ShipmentState,
    TrackingEvent,
)
from aftersale.store.records import (
    CarrierBacklog,
    Claim,
    Closure,
    CustomerChange,
    DelayNotice,
    DelayWatch,
    DeliveredShipment,
    DueCursor,
    DueMessage,
    Erasure,
    Grant,
    HealthRecord,
    MessageCount,
    MessageResult,
    MessageRow,
    MessageStat,
    NewMessage,
    PastMessage,
    PlatformOrderRecord,
    RefundRecord,
    Rejection,
    ReturnParcel,
    ReturnRecord,
    RunRecord,
    StoredCustomer,
    Suppression,
)


class Transactional(Protocol):
    def transaction(self) -> AbstractContextManager[None]:
        """Everything written inside commits together, or (on any exception) not at all."""
        ...


class OrderStore(Protocol):
    """Orders with their customer, items and shipment references; rejected input rows."""

    def save_orders(
        self,
        orders: Sequence[Order],
        *,
        source: str,
        now: datetime,
        candidates: Mapping[str, list[str]] | None = None,
        changes: Sequence[CustomerChange] = (),
    ) -> tuple[int, int]:
        """Store new orders (idempotent by order id); returns (inserted, already known).
        Each order's customer is written as given (intake decided which data wins) with
        the newest `placed_at` among them as its `as_of`, never older than the stored one;
        `changes` go to the customers' history in the same transaction."""
        ...

    def update_customers(
        self, customers: Sequence[StoredCustomer], changes: Sequence[CustomerChange], now: datetime
    ) -> None:
        """Replace these customers' contact data and consent (newer than what is stored:
        the caller decided), keeping each difference in their history."""
        ...

    def load_customers(self, customer_ids: Iterable[str]) -> dict[str, StoredCustomer]:
        """The stored customers among these ids, each with the `as_of` of its data."""
        ...

    def known_order_ids(self, order_ids: Iterable[str]) -> set[str]: ...

    def known_tracking_numbers(self, numbers: Iterable[str]) -> dict[str, str]:
        """tracking number -> order id, for numbers already stored."""
        ...

    def record_rejections(self, rejections: Sequence[Rejection], now: datetime) -> None: ...

    def load_orders(self, order_ids: Iterable[str]) -> dict[str, Order]: ...

    def load_order(self, order_id: str) -> Order | None: ...

    def customer_ids_of(self, order_ids: Iterable[str]) -> dict[str, str]:
        """order id -> customer id, for the stored ones."""
        ...

    def orders_without_event(
        self, kind: EventKind, *, among: Iterable[str] | None = None
    ) -> list[str]:
        """Orders (of `among`, when given) with no domain event of this kind, oldest first."""

    def orders_due_for_time_events(
        self,
        now: datetime,
        *,
        delivered_ago_days: Mapping[str | None, Sequence[int]],
        warranty_ending_days: Sequence[int],
        moving: DelayWatch | None = None,
    ) -> list[str]:
        """Orders with a date-based event due at `now` and not recorded yet: a delivered
        parcel N days ago (`delivered_ago_days`: carrier slug -> N, None for the rest),
        a warranty ending in N days. With `moving`, also the orders with a parcel still
        moving whose delay or arrival check may be due (a superset: tracking.detect
        decides), not every order with a parcel on its way."""
        ...


class PlatformOrderStore(Protocol):
    """What shop platforms (Shopify, WooCommerce) last said about orders."""

    def platform_orders(self, order_ids: Iterable[str]) -> dict[str, PlatformOrderRecord]: ...

    def save_platform_orders(self, records: Sequence[PlatformOrderRecord]) -> None:
        """Insert or replace each order's record (the caller keeps only newer copies)."""
        ...

    def add_shipments(
        self, orders: Sequence[Order], *, now: datetime, candidates: Mapping[str, list[str]]
    ) -> int:
        """Add these orders' shipments (to orders already stored); returns how many were new."""
        ...

    def cancel_pending_of_orders(self, order_ids: Sequence[str], reason: str, now: datetime) -> int:
        """pending -> cancelled for every message of these orders; returns how many."""
        ...

    def order_ids_by_platform_id(self, platform: str, ids: Iterable[str]) -> dict[str, str]:
        """The platform's order id -> aftersale's order id, for the orders stored."""
        ...

    def save_refunds(self, refunds: Sequence[RefundRecord]) -> int:
        """Store refunds not stored yet (by order and refund id); returns how many were new."""
        ...

    def save_returns(self, returns: Sequence[ReturnRecord]) -> int:
        """Insert each return, or update its status from a copy at least as new; returns
        how many rows changed."""
        ...

    def returns_by_id(self, return_ids: Iterable[str]) -> dict[str, ReturnRecord]: ...

    def refunds_and_returns_of(
        self, order_ids: Iterable[str]
    ) -> tuple[list[RefundRecord], list[ReturnRecord]]:
        """These orders' refunds and returns, oldest first."""
        ...

    def add_return_parcels(self, parcels: Sequence[ReturnParcel], now: datetime) -> int:
        """Add the parcels customers send back as shipments (tracking numbers not stored
        yet); returns how many were new."""
        ...

    def refunds_without_event(self) -> list[RefundRecord]:
        """Refunds no `refund_issued` event was recorded for yet."""
        ...

    def returns_without_event(self) -> list[ReturnRecord]:
        """Returns requested or open that no `return_requested` event was recorded for, and
        returns declined that no `return_declined` event was recorded for."""
        ...

    def cancelled_orders(self, order_ids: Iterable[str]) -> set[str]:
        """Those of these orders the shop platform cancelled."""
        ...

    def orders_due_for_shop_promises(
        self,
        now: datetime,
        *,
        dispatch_days: int | None,
        return_days: int | None,
        return_window_days: Sequence[int],
    ) -> list[str]:
        """Orders (not cancelled) whose shop promise may be due at `now`: a shop platform's
        order (a file's order never gains a tracking number later) with no parcel to the
        customer `dispatch_days` (calendar days, at least as many as business days) after
        the order and no `fulfilment_delayed` recorded; or the last parcel delivered, with
        the return period (`return_days`) ending within the largest of `return_window_days`."""
        ...


class SyncStateStore(Protocol):
    """Where each pull from a shop platform's API got to, so the next pulls only what
    changed since (aftersale.intake.reconcile)."""

    def sync_checkpoint(self, source: str) -> datetime | None:
        """The checkpoint saved for `source` (`shopify-admin:<shop>`), None before the first."""
        ...

    def save_sync_checkpoint(self, source: str, checkpoint: datetime, now: datetime) -> None:
        """Record `checkpoint` for `source`; it never moves back (two runs overlapping keep
        the later one)."""
        ...


class KeyStore(Protocol):
    """Secrets every process on this database shares (the unsubscribe links' signing key)."""

    def signing_key(self, name: str, candidate: str, now: datetime) -> str:
        """The key stored under `name`; `candidate` is stored first when there is none (the
        first process to ask wins, every later one reads the same key)."""
        ...


class ShipmentStore(Protocol):
    """Shipments' tracking state, their scans, poll failures and carrier candidates."""

    def due_shipments(self, now: datetime, limit: int | None = None) -> list[ShipmentState]:
        """Non-terminal shipments whose next check is due, oldest check first."""
        ...

    def due_order_ids(self, now: datetime, *, limit: int, after: str | None = None) -> list[str]:
        """The next `limit` orders (by id, after `after`) with a shipment due at `now` that
        no other worker holds: one page of the cycle's work."""
        ...

    def claim_shipments(self, order_ids: Sequence[str], now: datetime) -> list[ShipmentState]:
        """Take the due shipments of these orders for this worker, by (order, shipment).
        PostgreSQL leases them (skipping those another live worker holds) until their new
        state is saved, the lease expires or the worker is gone; DuckDB has one writer."""
        ...

    def carrier_candidates(self, shipment_ids: Iterable[str]) -> dict[str, list[str]]:
        """Ranked carriers auto-detection proposed, for shipments that have more than one."""
        ...

    def poll_failures(self, shipment_ids: Iterable[str]) -> dict[str, int]:
        """Consecutive failed polls so far, for shipments that have any."""
        ...

    def shipments_of(
        self, order_ids: Iterable[str], *, leaving_out: Collection[str] = ()
    ) -> dict[str, ShipmentState]:
        """The parcels of these orders by id, but those in `leaving_out` (parcels the
        caller holds newer states of)."""
        ...

    def load_shipment(self, shipment_id: str) -> ShipmentState | None: ...

    def list_shipments(self) -> list[ShipmentState]:
        """Every shipment, by id (operators' views and tests; not for the cycle)."""
        ...

    def save_shipment_states(
        self, states: Sequence[ShipmentState], poll_failures: Mapping[str, int] | None = None
    ) -> None: ...

    def save_tracking_events(
        self, events: Sequence[tuple[str, TrackingEvent]], now: datetime
    ) -> int:
        """Store new scans (shipment id, scan); returns how many were new."""
        ...

    def tracking_events(self, shipment_id: str) -> list[TrackingEvent]: ...

    def tracking_events_of(self, shipment_ids: Iterable[str]) -> dict[str, list[TrackingEvent]]:
        """Each shipment's scans, oldest first."""
        ...

    def expire_stale_shipments(self, now: datetime, silent_since: datetime) -> list[str]:
        """Non-terminal shipments with no scan since `silent_since` become `expired` and
        stop being polled; returns their ids, sorted."""
        ...


class EventStore(Protocol):
    """Domain events, stored once each (a replay yields nothing new)."""

    def record_domain_events(
        self, events: Sequence[DomainEvent], *, run_id: str, now: datetime
    ) -> list[DomainEvent]:
        """Store events; returns those not seen before."""
        ...

    def load_domain_event(self, event_id: str) -> DomainEvent | None: ...

    def load_domain_events(self, event_ids: Iterable[str]) -> dict[str, DomainEvent]: ...

    def domain_events_between(
        self, start: datetime, end: datetime
    ) -> list[tuple[datetime, DomainEvent]]:
        """Events that occurred in [start, end), with when each was detected, in detection
        order."""
        ...


class MessageStore(Protocol):
    """The outbox: messages queued, claimed, sent (or not), and what providers said later."""

    def queue_messages(self, messages: Sequence[NewMessage], now: datetime) -> list[str]:
        """Insert as `pending` the messages whose idempotency key is new; returns their ids."""
        ...

    def cancel_pending_messages(
        self, idempotency_keys: Sequence[str], reason: str, now: datetime
    ) -> int:
        """`pending -> cancelled` for these keys; returns how many were cancelled."""
        ...

    def due_messages(
        self, now: datetime, *, limit: int, after: DueCursor | None = None
    ) -> list[DueMessage]:
        """One page of pending messages due at `now`, in `DueCursor` order (due_at,
        order_id, message_id), starting after `after` (the previous page's last message)."""
        ...

    def claim_messages(self, claims: Sequence[Claim], *, run_id: str, now: datetime) -> set[str]:
        """`pending -> sending` for a batch, recording what is about to go out; returns the
        ids this run now holds (one another run claimed first is not among them)."""
        ...

    def record_results(self, results: Sequence[MessageResult], now: datetime) -> None:
        """Record the outcome of claimed (`sending`) messages."""
        ...

    def record_and_claim(
        self,
        results: Sequence[MessageResult],
        claims: Sequence[Claim],
        *,
        closures: Sequence[Closure] = (),
        run_id: str,
        now: datetime,
    ) -> set[str]:
        """`close_messages(closures)`, `record_results(results)` and `claim_messages(claims)`
        in one transaction: a dispatch closes a batch's messages that will not go out and
        records the previous batch's outcomes as it claims the batch, one commit per batch.
        Cost per batch stays flat as the table grows, for batches up to 1,000 messages."""
        ...

    def close_messages(self, closures: Sequence[Closure], now: datetime) -> None:
        """`pending -> failed / suppressed / cancelled`, each with its reason."""
        ...

    def mark_stuck_unknown(
        self, reason: str, *, claimed_before: datetime | None = None
    ) -> list[MessageRow]:
        """`sending -> unknown` (all, or those claimed before `claimed_before`): a run died
        between claim and result, so nobody knows whether they went out. `updated_at`
        stays the claim's time: a provider is asked what it got since then."""
        ...

    def settle_unknown(self, results: Sequence[MessageResult], now: datetime) -> set[str]:
        """What a provider said about messages in doubt: `unknown -> sent` (with its id)
        or `unknown -> pending` (due at `retry_at`); returns the ids settled."""
        ...

    def release_unknown(self, message_ids: Sequence[str], *, resend: bool, now: datetime) -> int:
        """After a human check: `unknown -> pending` (resend) or `unknown -> sent`."""
        ...

    def load_message(self, message_id: str) -> MessageRow | None: ...

    def messages_in_state(self, state: MessageState) -> list[MessageRow]:
        """Messages in one state, least recently updated first."""
        ...

    def list_messages(self) -> list[MessageRow]:
        """Every message, oldest first (operators' views and tests; not for the cycle)."""
        ...

    def count_messages(self, state: MessageState) -> int: ...

    def message_counts(self) -> list[MessageCount]:
        """How many messages per template, channel and state."""
        ...

    def past_messages(self, customer_ids: Iterable[str]) -> list[PastMessage]:
        """Every message ever decided for these customers (decide's send history)."""
        ...

    def set_delivery_state(self, message_id: str, state: str, problem: str | None) -> None:
        """Record a provider's delivery report; `problem` (when given) becomes the error."""
        ...

    def record_engagement(self, message_id: str, kind: str, at: datetime) -> None:
        """The recipient opened (`kind` "opened") or clicked ("clicked") the message; the
        first time of each is kept."""
        ...

    def find_messages(
        self,
        *,
        order_id: str | None = None,
        customer_id: str | None = None,
        since: datetime | None = None,
        limit: int = 500,
    ) -> list[MessageRow]:
        """Messages of an order and/or a customer, and/or changed since `since`, newest
        first (operators' views)."""
        ...


class SuppressionStore(Protocol):
    """Addresses (normalised) that get no messages, or no marketing, on a channel."""

    def get_suppression(self, address: str, channel: ChannelKind) -> Suppression | None: ...

    def put_suppression(self, entry: Suppression) -> None:
        """Insert the entry, or replace the one for its address and channel."""
        ...

    def delete_suppression(self, address: str, channel: ChannelKind) -> None: ...

    def list_suppressions(
        self, *, channel: ChannelKind | None = None, reason: str | None = None
    ) -> list[Suppression]:
        """Entries, newest first, optionally of one channel and/or reason."""
        ...

    def suppression_reasons(self, addresses: Iterable[str]) -> dict[tuple[str, str], str]:
        """(address, channel) -> reason, for those of these (normalised) addresses listed."""
        ...


class RunStore(Protocol):
    def start_run(self, run_id: str, kind: str, clock: datetime) -> None: ...

    def finish_run(self, run_id: str, summary: Mapping[str, Any]) -> None: ...

    def list_runs(self) -> list[RunRecord]:
        """Every run, in start order."""
        ...


class HealthStore(Protocol):
    """Carriers' and channels' health from run to run (aftersale.ops.health decides it)."""

    def load_health(self) -> list[HealthRecord]:
        """Every record, by component and name."""
        ...

    def save_health(self, records: Sequence[HealthRecord]) -> None:
        """Insert each record, or replace the one of its component and name."""
        ...

    def carrier_backlog(self) -> list[CarrierBacklog]:
        """Per carrier, its shipments not settled yet, by carrier."""
        ...


class ReportStore(Protocol):
    """What the period report (aftersale.ops.trends) reads, for [start, end)."""

    def message_stats(self, start: datetime, end: datetime) -> list[MessageStat]:
        """Messages counted per day (sent, else last changed), rule, channel, state and
        delivery state, with how many were opened and clicked."""
        ...

    def delivered_shipments(self, start: datetime, end: datetime) -> list[DeliveredShipment]:
        """Parcels delivered in the range, with their promise, destination and first scans."""
        ...

    def delay_notices(self, start: datetime, end: datetime) -> list[DelayNotice]:
        """Delay messages sent in the range (for a `delayed` event), with their parcel."""
        ...


class RetentionStore(Protocol):
    """Purges past retention (housekeeping)."""

    def purge_tracking_events(self, before: datetime) -> int:
        """Delete scans older than `before` of settled (terminal) parcels; returns how many."""
        ...

    def erase_personal_data(self, now: datetime, placed_before: datetime) -> tuple[int, int]:
        """Erase name, email and phone of customers with nothing live (no order placed
        since `placed_before`, no parcel moving, no warranty running, no message open),
        and the recipient and body of their settled messages. Returns (customers erased,
        messages scrubbed)."""
        ...


class TableStore(Protocol):
    """Whole tables in bulk, for moving a store from one backend to another
    (`aftersale store copy`). JSON columns travel as text."""

    def table_columns(self, table: str) -> list[str]:
        """The columns of one of the store's tables, in their order."""
        ...

    def read_table(
        self, table: str, columns: Sequence[str], batch: int = 10_000
    ) -> Iterator[list[tuple[Any, ...]]]:
        """Every row of `table` (these columns), `batch` rows at a time."""
        ...

    def write_table(
        self, table: str, columns: Sequence[str], batches: Iterable[list[tuple[Any, ...]]]
    ) -> int:
        """Append the rows to `table` (meant for an empty one); returns how many."""
        ...

    def empty_tables(self) -> None:
        """Delete every row of every table, in one transaction (the demo starting over)."""
        ...


class SharedLimits(Protocol):
    """Carrier request budgets that several workers draw from together."""

    def take_requests(
        self,
        carrier: str,
        want: int,
        *,
        rate_per_s: float | None,
        capacity: float,
        per_day: int | None,
        today: date,
    ) -> Grant:
        """Take up to `want` requests from the carrier's budget: a token bucket refilling
        at `rate_per_s` (None: no limit) holding at most `capacity`, and at most `per_day`
        requests per UTC day (`today`)."""


class PrivacyStore(Protocol):
    """Erasing one customer on request (GDPR art. 17)."""

    def erase_customer(self, customer_id: str, now: datetime) -> Erasure | None:
        """In one transaction: their name, contacts, tags and history erased, their
        messages' recipients and texts scrubbed (pending ones cancelled), their data quoted
        in rejection reasons replaced, their id renamed `erased-<hash>` everywhere, and an
        `erasures` record with the counts. None when no such customer; `already` when an
        earlier request erased them."""
        ...


class Store(
    Transactional,
    OrderStore,
    PlatformOrderStore,
    SyncStateStore,
    ShipmentStore,
    EventStore,
    MessageStore,
    SuppressionStore,
    RunStore,
    RetentionStore,
    PrivacyStore,
    TableStore,
    HealthStore,
    ReportStore,
    KeyStore,
    Protocol,
):
    """Every aggregate behind one handle, plus its lifecycle. One per process."""

    def close(self) -> None: ...

    def shared_limits(self) -> SharedLimits | None:
        """The carrier budgets shared by every worker on this store (PostgreSQL), or None
        where one process holds the store and its own limits suffice (DuckDB)."""
        ...

    def __enter__(self) -> Store: ...

    def __exit__(self, *exc: object) -> None: ...

    def migrate(self) -> list[int]:
        """Apply the migrations not applied yet; returns their versions."""
        ...

    def schema_version(self) -> int: ...

    def count(self, table: str) -> int:
        """Rows in one of the store's tables (StoreError for any other name)."""
        ...
