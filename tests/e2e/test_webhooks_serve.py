"""`aftersale webhooks serve` as a real process: a signed Twilio STOP and a signed SendGrid
bounce become suppressions and a delivery state, and the next dispatch holds those
messages. On DuckDB they land in the spool (the database stays free for the cycle) and
the cycle's ingest applies them; on PostgreSQL the receiver writes them at once."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from twilio.request_validator import RequestValidator

from aftersale.cycle import dispatch_stage
from aftersale.dispatch import messages as msgs
from aftersale.dispatch.spool import ingest_webhook_spool
from aftersale.dispatch.suppressions import list_suppressions
from aftersale.models import ChannelKind, Customer, Decision, Item, Order
from aftersale.settings import Settings
from aftersale.store import Store, is_url, open_store
from aftersale.tracking.detect import detect_order_placed
from flows.wiring import build_parts
from tests.support.servers import webhook_receiver

pytestmark = pytest.mark.slow

TOKEN = "twilio-auth-token-for-the-receiver"
ANNA_EMAIL, ANNA_PHONE = "anna.nowak@example.com", "+48601234567"
NOW = datetime.now(UTC).replace(microsecond=0)
EMAIL, SMS = ChannelKind.EMAIL, ChannelKind.SMS


def customer(cid: str, name: str, email: str, phone: str) -> Customer:
    return Customer(cid, name, email, phone, "en", "Europe/Warsaw", True, True, "PL")


ORDERS = [
    Order(
        order_id,
        NOW - timedelta(hours=1),
        who,
        (Item("NW-CB-USB", "USB-C cable", "cables", 1, Decimal("39"), "PLN", 12),),
        (),
    )
    for order_id, who in [
        ("W-1", customer("C-1", "Anna Nowak", ANNA_EMAIL, ANNA_PHONE)),
        ("W-2", customer("C-2", "Piotr Lis", "piotr.lis@example.com", "+48602345678")),
    ]
]


def decisions(rule: str, *targets: tuple[Order, ChannelKind]) -> list[Decision]:
    return [
        Decision(
            rule,
            "thank_you",
            kind,
            order.order_id,
            f"{rule}:{order.order_id}:{kind}",
            NOW - timedelta(minutes=1),
            detect_order_placed(order),
        )
        for order, kind in targets
    ]


def queue(store: Store, ds: list[Decision]) -> list[str]:
    store.record_domain_events([d.event for d in ds], run_id="t", now=NOW)
    return msgs.queue_decisions(
        store, ds, {o.order_id: o.customer.customer_id for o in ORDERS}, run_id="t", now=NOW
    )


#: the public unsubscribe page behind the https proxy, and its key (a database URL has no
#: folder for the key file); the same for the receiver and the cycles
UNSUBSCRIBE_ENV = {
    "AFTERSALE_UNSUBSCRIBE_URL": "https://hooks.northwind.example/unsubscribe",
    "AFTERSALE_UNSUBSCRIBE_SECRET": "test-unsubscribe-key-of-enough-length",
}


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture(params=["duckdb", "postgres"])
def settings(workdir: Path, request: pytest.FixtureRequest) -> Iterator[Settings]:
    def made(db: str) -> Settings:
        return Settings(db=db, outbox_dir=workdir / "outbox", inbox_dir=workdir / "inbox")

    if request.param == "duckdb":
        yield made(str(workdir / "aftersale.duckdb"))
        return
    with request.getfixturevalue("postgres_cluster").database() as url:
        yield made(url)


@pytest.fixture
def sendgrid_key() -> tuple[ec.EllipticCurvePrivateKey, str]:
    private = ec.generate_private_key(ec.SECP256R1())
    der = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, base64.b64encode(der).decode()


@pytest.fixture
def receiver(
    workdir: Path, settings: Settings, sendgrid_key: tuple[ec.EllipticCurvePrivateKey, str]
) -> Iterator[str]:
    env = {
        "AFTERSALE_DB": str(settings.db),
        **UNSUBSCRIBE_ENV,
        "TWILIO_AUTH_TOKEN": TOKEN,
        "SENDGRID_WEBHOOK_PUBLIC_KEY": sendgrid_key[1],
    }
    with webhook_receiver(workdir, env) as url:
        yield url
    out = (workdir / "receiver.log").read_text()
    assert TOKEN not in out and ANNA_PHONE not in out and ANNA_EMAIL not in out, out


def twilio_post(url: str, path: str, form: dict[str, str], token: str = TOKEN) -> httpx.Response:
    signature = RequestValidator(token).compute_signature(url + path, form)
    return httpx.post(
        url + path,
        content=urlencode(form),
        headers={
            "X-Twilio-Signature": signature,
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )


def sendgrid_post(url: str, events: list[dict], key: ec.EllipticCurvePrivateKey) -> httpx.Response:
    payload = json.dumps(events).encode()
    ts = str(int(datetime.now(UTC).timestamp()))
    sig = key.sign(ts.encode() + payload, ec.ECDSA(hashes.SHA256()))
    return httpx.post(
        url + "/sendgrid/events",
        content=payload,
        headers={
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(sig).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": ts,
            "Content-Type": "application/json",
        },
    )


def test_stop_and_bounce_reach_the_store_and_hold_the_next_dispatch(
    receiver: str,
    settings: Settings,
    workdir: Path,
    sendgrid_key: tuple[ec.EllipticCurvePrivateKey, str],
) -> None:
    anna, piotr = ORDERS
    # Before: one thank-you email to Anna went out (through the outbox).
    with open_store(settings.db) as store:
        store.save_orders(ORDERS, source="test", now=NOW)
        (thanked,) = queue(store, decisions("thank_you", (anna, EMAIL)))
        parts, _ = build_parts(settings, store, env=UNSUBSCRIBE_ENV, carriers={})
        assert [o.outcome for o in dispatch_stage(parts, NOW, "run-1").listed()] == ["sent"]

    # Anna texts STOP; her thank-you email hard-bounces. A forged STOP changes nothing.
    forged = twilio_post(receiver, "/twilio/inbound", {"From": "+48602345678", "Body": "STOP"}, "x")
    assert forged.status_code == 403
    stop = twilio_post(
        receiver,
        "/twilio/inbound",
        {"From": ANNA_PHONE, "To": "+48221002030", "Body": "Stop", "MessageSid": "SM" + "1" * 32},
    )
    assert stop.status_code == 200 and "<Response" in stop.text
    bounce = {
        "email": "Anna.Nowak@example.com",
        "event": "bounce",
        "type": "bounce",
        "timestamp": int(NOW.timestamp()),
        "sg_event_id": "ev-1",
        "message_id": thanked,
        "reason": f"550 5.1.1 <{ANNA_EMAIL}>: user unknown",
    }
    answer = sendgrid_post(receiver, [bounce], sendgrid_key[0])
    assert (answer.status_code, answer.json()) == (200, {"applied": 1, "skipped": 0, "repeated": 0})

    spool = workdir / "webhooks"
    with open_store(settings.db, wait_s=0) as store:
        if is_url(settings.db):  # PostgreSQL: written by the receiver, no spool
            assert not spool.exists()
        else:  # DuckDB: the receiver never holds the file; the cycle ingests the spool
            assert len(list(spool.glob("*.jsonl"))) == 3  # sms stop, bounce, delivery state
            assert list_suppressions(store) == []
            assert ingest_webhook_spool(store, spool, NOW) == 3
        assert sorted((s.address, s.channel, s.reason) for s in list_suppressions(store)) == [
            ("+48601234567", SMS, "stop"),
            ("anna.nowak@example.com", EMAIL, "bounce"),
        ]
        m = store.load_message(thanked)
        assert m is not None
        assert (m.state, m.delivery_state, m.error_text) == (
            "sent",
            "bounced",
            "550 5.1.1 <a***@example.com>: user unknown",
        )

        # The next dispatch: nothing more to Anna on either channel; Piotr is unaffected.
        queue(
            store,
            decisions("shipped", (anna, EMAIL), (anna, SMS), (piotr, EMAIL), (piotr, SMS)),
        )
        parts, _ = build_parts(settings, store, env=UNSUBSCRIBE_ENV, carriers={})
        report = dispatch_stage(parts, NOW, "run-2")
    outcomes = sorted((o.order_id, o.channel, o.outcome, o.reason) for o in report.listed())
    assert outcomes == [
        ("W-1", "email", "suppressed", "recipient suppressed (bounce)"),
        ("W-1", "sms", "suppressed", "recipient suppressed (stop)"),
        ("W-2", "email", "sent", None),
        ("W-2", "sms", "sent", None),
    ]
    sms_lines = (settings.outbox_dir / "sms.jsonl").read_text().splitlines()
    assert [json.loads(line)["to"] for line in sms_lines] == ["+48602345678"]
