"""A newer platform copy of an order with another email or phone: the customer's contact
data changes (the change kept in their history), and a message decided before it but not
sent yet goes to the new address, since a message's recipient is read when it is sent.
On both backends, through the real dispatch to the outbox."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from aftersale.cycle import dispatch_stage
from aftersale.intake.platform import apply_platform_orders, parse_platform
from aftersale.intake.shops.base import ShopMapping
from aftersale.models import ChannelKind
from aftersale.store import open_store
from aftersale.store.records import NewMessage
from carriers.registry import DIRECTORY, load_settings
from flows.wiring import build_parts

PAYLOADS = Path(__file__).parent / "payloads"
NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


@pytest.fixture(params=["duckdb", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path):
    if request.param == "duckdb":
        yield str(tmp_path / "a.duckdb")
        return
    with request.getfixturevalue("postgres_cluster").database() as url:
        yield url


def copy_of(**changes) -> str:
    data = json.loads((PAYLOADS / "shopify_order_split.json").read_text(encoding="utf-8"))
    for path, value in changes.items():
        node = data
        *parents, leaf = path.split("__")
        for key in parents:
            node = node[key]
        node[leaf] = value
    return json.dumps(data)


def apply(store, text: str, now: datetime):  # type: ignore[no-untyped-def]
    parsed, facts = parse_platform(text, "w", "shopify", ShopMapping(), DIRECTORY, now=now)
    return apply_platform_orders(store, parsed, facts, "w", now, DIRECTORY)


def test_a_newer_copy_changes_where_pending_messages_go(database: str, tmp_path: Path) -> None:
    env = {"AFTERSALE_DB": database, "AFTERSALE_OUTBOX": str(tmp_path / "outbox")}
    settings = load_settings(env)
    with open_store(database) as store:
        apply(store, copy_of(), NOW)
        pending = [
            NewMessage(
                message_id=f"m-{channel}",
                idempotency_key=f"delivered|#1047/1Z999AA10123456784|{channel}",
                rule_id="delivered",
                template="delivered",
                channel=channel,
                marketing=False,
                order_id="#1047",
                shipment_id="1Z999AA10123456784",
                item_sku=None,
                customer_id="shopify:7151245689",
                event_id="e-1",
                due_at=NOW + timedelta(hours=1),
                run_id="r",
            )
            for channel in (ChannelKind.EMAIL, ChannelKind.SMS)
        ]
        store.queue_messages(pending, NOW)
        newer = copy_of(
            updated_at="2026-11-25T10:30:00+00:00",
            email="james.w@example.net",
            customer__email="james.w@example.net",
            customer__phone="+447400123456",
        )
        report = apply(store, newer, NOW + timedelta(minutes=30))
        assert any("email, phone updated from order #1047" in n.text for n in report.notices)
        customer = store.load_order("#1047").customer
        assert (customer.email, customer.phone) == ("james.w@example.net", "+447400123456")
        # an older copy, delivered late, does not bring the old address back
        apply(store, copy_of(updated_at="2026-11-25T10:10:00+00:00"), NOW + timedelta(minutes=40))
        assert store.load_order("#1047").customer.email == "james.w@example.net"
        parts, _ = build_parts(settings, store, env=env)
        report = dispatch_stage(parts, NOW + timedelta(hours=2), "send")
        assert sorted(o.outcome for o in report.listed()) == ["sent", "sent"]
        sent = {m.channel: m.recipient for m in store.list_messages()}
    assert sent == {"email": "james.w@example.net", "sms": "+447400123456"}
    emails = list((tmp_path / "outbox" / "email").glob("*.eml"))
    assert len(emails) == 1 and "To: james.w@example.net" in emails[0].read_text()
