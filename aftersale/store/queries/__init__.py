"""The store's queries written once for both backends: one mixin per aggregate over
`aftersale.store.backend.Backend`, its statements spelled with the backend's `Dialect`.
What a backend does its own way (bulk paths, leases, the messages table) lives in its
folder, and its store class is `Queries` plus those."""

from __future__ import annotations

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


class Queries(
    Orders,
    PlatformOrders,
    Returns,
    SyncState,
    Events,
    Suppressions,
    Runs,
    Retention,
    Health,
    Reports,
    Privacy,
    Keys,
):
    """Every aggregate's queries that both backends run alike (shipments' are subclassed
    by each backend, which adds how it takes due shipments)."""
