"""A small, real world for flow tests: one DuckDB file with one order and the sandbox."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from aftersale.intake.files import import_file
from aftersale.store import open_store
from carriers.registry import DIRECTORY
from sandbox.app import SandboxClock, SandboxState
from sandbox.timelines import SandboxParcel

START = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
NUMBER = "642600027844200000000077"
EMAIL = "anna@example.pl"
PHONE = "+48601234567"


def order_line(order_id: str = "NW-77", number: str = NUMBER) -> str:
    return (
        json.dumps(
            {
                "order_id": order_id,
                "placed_at": (START - timedelta(hours=1)).isoformat(),
                "customer": {
                    "id": "C-77",
                    "name": "Anna Kowalska",
                    "email": EMAIL,
                    "phone": PHONE,
                    "locale": "pl-PL",
                    "time_zone": "Europe/Warsaw",
                    "consent": {"email": True, "sms": True},
                    "country": "PL",
                },
                "items": [
                    {
                        "sku": "NW-HP-200",
                        "name": "Słuchawki",
                        "category": "headphones",
                        "price": "449.00",
                        "currency": "PLN",
                        "warranty_months": 24,
                    }
                ],
                "shipments": [{"carrier": "inpost", "tracking_number": number}],
            }
        )
        + "\n"
    )


def sandbox_state() -> SandboxState:
    state = SandboxState(SandboxClock(START))
    state.add([SandboxParcel("inpost", NUMBER, "normal", START)])
    return state


def aftersale_env(tmp_path: Path, sandbox_url: str) -> dict[str, str]:
    return {
        "AFTERSALE_DB": str(tmp_path / "a.duckdb"),
        "AFTERSALE_OUTBOX": str(tmp_path / "outbox"),
        "AFTERSALE_INBOX": str(tmp_path / "inbox"),
        "AFTERSALE_INPOST_URL": sandbox_url,
    }


def prepare(tmp_path: Path, sandbox_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Import one order into a fresh store and point the environment at it."""
    for key, value in aftersale_env(tmp_path, sandbox_url).items():
        monkeypatch.setenv(key, value)
    orders = tmp_path / "orders.ndjson"
    orders.write_text(order_line(), encoding="utf-8")
    with open_store(tmp_path / "a.duckdb") as store:
        import_file(store, orders, now=START, detect=DIRECTORY)
    return tmp_path / "a.duckdb"
