"""Runs: when each cycle, replay or housekeeping started and finished, and its summary."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from aftersale.store.backend import Backend
from aftersale.store.records import RunRecord
from aftersale.store.rows import from_db, from_json, to_db, to_json


class Runs(Backend):
    def start_run(self, run_id: str, kind: str, clock: datetime) -> None:
        self.execute(
            f"INSERT INTO runs (run_id, kind, started_at, clock) VALUES ({self.dialect.params(4)})",
            [run_id, kind, to_db(datetime.now(UTC)), to_db(clock)],
        )

    def finish_run(self, run_id: str, summary: Mapping[str, Any]) -> None:
        p = self.dialect.param
        self.execute(
            f"UPDATE runs SET finished_at = {p}, summary = {p} WHERE run_id = {p}",
            [to_db(datetime.now(UTC)), to_json(dict(summary)), run_id],
        )

    def list_runs(self) -> list[RunRecord]:
        rows = self.rows(
            "SELECT run_id, kind, started_at, clock, finished_at, summary FROM runs "
            "ORDER BY started_at, run_id"
        )
        return [
            RunRecord(
                run_id=r[0],
                kind=r[1],
                started_at=from_db(r[2]),
                clock=from_db(r[3]),
                finished_at=from_db(r[4]),
                summary=from_json(r[5]) if r[5] is not None else None,
            )
            for r in rows
        ]
