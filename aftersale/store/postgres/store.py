"""The PostgreSQL backend of the store: the queries written once (aftersale/store/queries/)
and this backend's own shipment leases, messages and shared carrier limits, over one
connection pool (connection.py). Open it with `aftersale.store.open_store`."""

from __future__ import annotations

from aftersale.store.postgres.limits import Limits
from aftersale.store.postgres.messages import Messages
from aftersale.store.postgres.shipments import Shipments
from aftersale.store.queries import Queries


class PostgresStore(Queries, Shipments, Messages, Limits):
    """All of aftersale's state in one PostgreSQL database, shared by several workers
    (aftersale.store.protocols.Store)."""
