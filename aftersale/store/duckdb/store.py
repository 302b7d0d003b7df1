"""The DuckDB backend of the store: the queries written once (aftersale/store/queries/)
and this backend's own shipments claim and messages, over one connection
(connection.py). Open it with `aftersale.store.open_store`."""

from __future__ import annotations

from aftersale.store.duckdb.messages import Messages
from aftersale.store.duckdb.shipments import Shipments
from aftersale.store.queries import Queries


class DuckDBStore(Queries, Shipments, Messages):
    """All of aftersale's state in one DuckDB file (aftersale.store.protocols.Store)."""
