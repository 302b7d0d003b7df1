"""What several workers on one PostgreSQL store rely on beyond the shared suite: carrier
budgets (a token bucket per carrier taken from in one statement, refilled by the server's
clock, with a per-UTC-day count; many takers at once never get more than the budget),
and connections that survive the server dropping them."""

from __future__ import annotations

import threading
import time
from datetime import date

from aftersale.store import open_store
from aftersale.store.records import Grant
from tests.support.postgres import PostgresCluster

TODAY = date(2026, 11, 30)


def test_a_bucket_grants_what_it_holds_then_says_how_long_to_wait(
    postgres_cluster: PostgresCluster,
) -> None:
    with postgres_cluster.database() as url, open_store(url) as store:
        limits = store.shared_limits()
        assert limits is not None

        def take(want: int, day: date = TODAY) -> Grant:
            return limits.take_requests(
                "dhl", want, rate_per_s=10.0, capacity=3.0, per_day=5, today=day
            )

        assert take(2).granted == 2  # a new bucket starts full (3)
        assert take(5).granted == 1
        empty = take(1)
        assert empty.granted == 0 and 0 < empty.wait_s <= 0.1
        time.sleep(0.35)  # refills at 10/s, up to the capacity: 3
        assert take(5).granted == 2  # only 2 of the day's 5 are left
        assert take(1) == Grant(0, day_spent=True)
        assert take(1, date(2026, 12, 1)).granted == 1  # a new UTC day, a new budget
        # another carrier has a bucket of its own; no rate means no per-second limit
        assert limits.take_requests(
            "ups", 50, rate_per_s=None, capacity=1, per_day=None, today=TODAY
        ) == Grant(50)


def test_many_workers_at_once_never_get_more_than_the_budget(
    postgres_cluster: PostgresCluster,
) -> None:
    granted: list[int] = []
    with postgres_cluster.database() as url:
        stores = [open_store(url) for _ in range(4)]
        try:

            def worker(i: int) -> None:
                limits = stores[i].shared_limits()
                assert limits is not None
                for _ in range(25):
                    granted.append(
                        limits.take_requests(
                            "inpost", 3, rate_per_s=0.001, capacity=40.0, per_day=None,
                            today=TODAY,
                        ).granted
                    )  # fmt: skip

            threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        finally:
            for s in stores:
                s.close()
    assert sum(granted) == 40  # the full bucket, not a token more (the refill is negligible)


def test_a_connection_the_server_dropped_is_replaced(postgres_cluster: PostgresCluster) -> None:
    """A PostgreSQL restart or failover closes the pool's connections; the store carries
    on with new ones (same lease owner name) instead of failing the next statement."""
    with postgres_cluster.database() as url, open_store(url) as store:
        assert store.count("orders") == 0
        with postgres_cluster.admin() as admin:
            dropped = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = %s",
                [store.owner],  # type: ignore[attr-defined]
            ).fetchone()
        assert dropped is not None and dropped[0] >= 1
        assert store.count("orders") == 0
