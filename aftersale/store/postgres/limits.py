"""Carrier request budgets shared by every worker (PostgreSQL): one token bucket row per
carrier, taken from in one statement under its row lock, refilled by the server's clock
(the workers' clocks need not agree), with a per-UTC-day count beside it.

Workers take requests in small chunks (carriers/poll.py), so the statement is paid once
per chunk, not per request: bench/limits.py measures it against Prefect's rate limits."""

from __future__ import annotations

from datetime import date
from typing import Any

from aftersale.store.postgres.connection import Connection
from aftersale.store.protocols import SharedLimits
from aftersale.store.records import Grant

_TAKE = """
WITH cur AS (
    SELECT b.carrier, clock_timestamp() AS at,
           CASE WHEN %(rate)s::float8 IS NULL THEN %(want)s::float8
                ELSE least(%(capacity)s::float8, b.tokens + %(rate)s::float8
                     * extract(epoch FROM clock_timestamp() - b.updated_at)::float8) END AS avail,
           CASE WHEN b.day = %(today)s THEN b.day_used ELSE 0 END AS used
    FROM rate_buckets b WHERE b.carrier = %(carrier)s FOR UPDATE),
granted AS (
    SELECT cur.*, greatest(0, least(floor(avail)::int, %(want)s,
                                    coalesce(%(per_day)s - used, %(want)s))) AS n
    FROM cur)
UPDATE rate_buckets b SET tokens = g.avail - g.n, updated_at = g.at, day = %(today)s,
                          day_used = g.used + g.n
FROM granted g WHERE b.carrier = g.carrier
RETURNING g.n, g.avail - g.n, g.used + g.n
"""


class Limits(Connection):
    def shared_limits(self) -> SharedLimits:
        return self

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
        params: dict[str, Any] = {
            "carrier": carrier,
            "want": want,
            "rate": rate_per_s,
            "capacity": capacity,
            "per_day": per_day,
            "today": today,
        }
        row = self.one(_TAKE, params)
        if row is None:  # the carrier's first request ever: its bucket starts full
            self.execute(
                "INSERT INTO rate_buckets VALUES (%(carrier)s, %(capacity)s, clock_timestamp(), "
                "%(today)s, 0) ON CONFLICT DO NOTHING",
                params,
            )
            row = self.one(_TAKE, params)
            assert row is not None
        granted, left, used = int(row[0]), float(row[1]), int(row[2])
        if granted or want <= 0:
            return Grant(granted)
        if per_day is not None and used >= per_day:
            return Grant(0, day_spent=True)
        # wait for the chunk asked (not one request): takers stay a few per second each
        full = min(want, capacity)
        return Grant(0, wait_s=max(full - left, 0.0) / rate_per_s if rate_per_s else 0.0)
