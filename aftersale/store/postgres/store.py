"""The PostgreSQL backend of the store: one class made of one mixin per aggregate over one
connection pool (connection.py). Open it with `aftersale.store.open_store`."""

from __future__ import annotations

from aftersale.store.postgres.limits import Limits
from aftersale.store.postgres.messages import Messages
from aftersale.store.postgres.shipments import Shipments
from aftersale.store.queries.events import Events
from aftersale.store.queries.health import Health
from aftersale.store.queries.keys import Keys
from aftersale.store.queries.orders import Orders
from aftersale.store.queries.platform_orders import PlatformOrders
from aftersale.store.queries.privacy import Privacy
from aftersale.store.queries.reports import Reports
from aftersale.store.queries.retention import Retention
from aftersale.store.queries.returns import Returns
from aftersale.store.queries.runs import Runs
from aftersale.store.queries.suppressions import Suppressions
from aftersale.store.queries.sync_state import SyncState


class PostgresStore(
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
    Limits,
    Privacy,
    Keys,
):
    """All of aftersale's state in one PostgreSQL database, shared by several workers
    (aftersale.store.protocols.Store)."""
