"""The DuckDB backend of the store: one class made of one mixin per aggregate over one
connection (connection.py). Open it with `aftersale.store.open_store`."""

from __future__ import annotations

from aftersale.store.duckdb.events import Events
from aftersale.store.duckdb.health import Health
from aftersale.store.duckdb.keys import Keys
from aftersale.store.duckdb.messages import Messages
from aftersale.store.duckdb.orders import Orders
from aftersale.store.duckdb.platform_orders import PlatformOrders
from aftersale.store.duckdb.privacy import Privacy
from aftersale.store.duckdb.reports import Reports
from aftersale.store.duckdb.retention import Retention
from aftersale.store.duckdb.returns import Returns
from aftersale.store.duckdb.runs import Runs
from aftersale.store.duckdb.shipments import Shipments
from aftersale.store.duckdb.suppressions import Suppressions
from aftersale.store.duckdb.sync_state import SyncState


class DuckDBStore(
    Orders,
    PlatformOrders,
    Returns,
    SyncState,
    Shipments,
    Events,
    Messages,
    Suppressions,
    Runs,
    Retention,
    Health,
    Reports,
    Privacy,
    Keys,
):
    """All of aftersale's state in one DuckDB file (aftersale.store.protocols.Store)."""


#: The name aftersale/cycle.py imports until it types its store as aftersale.store.Store.
Store = DuckDBStore
