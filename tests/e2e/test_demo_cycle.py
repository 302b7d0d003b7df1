"""The demo's cycles in plain Python against the in-process sandbox: every example order
moves through its scripted journey to the right messages, and a replay adds none."""

from __future__ import annotations

import email
import json
import uuid
from collections import Counter, defaultdict
from datetime import timedelta
from email import policy
from pathlib import Path

import pytest

from aftersale.cycle import run_cycle
from aftersale.intake.files import import_file
from aftersale.settings import PROJECT_ROOT
from aftersale.store import open_store
from carriers.registry import DIRECTORY, load_settings
from flows.demo import CYCLE_HOURS, DEMO_START, load_parcels, sandbox_env
from flows.shop_demo import DemoShop, load_shop_demo
from flows.wiring import build_parts
from sandbox.app import SandboxClock, SandboxState
from sandbox.server import SandboxServer
from tests.support.customer_view import (
    foreign_money,
    leftovers,
    read_outbox,
    repeated_incidents,
    wrong_contacts,
    wrong_dates,
    wrong_delivery_story,
    wrong_links,
)

EXAMPLES = PROJECT_ROOT / "examples"

#: What each scripted journey must tell the customer (email), at the least.
STORY = {
    "normal": {"thank_you", "shipped", "out_for_delivery", "delivered"},
    "locker": {"thank_you", "shipped", "available_for_pickup", "delivered"},
    "pickup": {"thank_you", "shipped", "available_for_pickup", "delivered"},
    "locker_expired": {
        "thank_you",
        "shipped",
        "available_for_pickup",
        "pickup_reminder",
        "undeliverable",
        "returned_to_sender",
    },
    "delayed": {"thank_you", "shipped", "delayed", "delivered"},
    "exception": {"thank_you", "shipped", "delayed", "delivered"},
    # the first out-for-delivery scan is seen (or not) depending on the poll times
    "attempted": {"thank_you", "shipped", "delivery_attempted", "delivered"},
    "returned": {"thank_you", "shipped", "undeliverable", "returned_to_sender"},
    "skip_to_delivered": {"thank_you", "delivered"},
    "stuck": {"thank_you", "delayed"},
}
#: Home-delivery stories a parcel the customer collects must never hear.
_DOORSTEP = {"arriving_tomorrow", "out_for_delivery", "delivery_attempted"}
#: ... and what it must never say.
NEVER = {
    "returned": {"delivered", "setup_tip", "review_request", "delayed"},
    "locker_expired": {"delivered", "setup_tip", "review_request", "delayed"} | _DOORSTEP,
    "stuck": {"shipped", "delivered"},
    "normal": {"delayed"},
    "locker": {"delayed"} | _DOORSTEP,
    "pickup": {"delayed"} | _DOORSTEP,
}


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """The demo runs on both backends and must tell the same stories with the same counts."""
    if request.param == "duckdb":
        yield str(tmp_path_factory.mktemp("db") / "a.duckdb")
        return
    with request.getfixturevalue("postgres_cluster").database() as url:
        yield url


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, database: str) -> dict:
    workdir = tmp_path_factory.mktemp("demo")
    parcels = load_parcels(EXAMPLES / "sandbox_parcels.json")
    shop = load_shop_demo(EXAMPLES / "shop_demo.json")
    state = SandboxState(SandboxClock(DEMO_START))
    state.add(parcels)
    state.add(shop.parcels)
    spool = workdir / "webhooks"
    with (
        SandboxServer(state) as sandbox,
        DemoShop(shop, spool, state.clock, DEMO_START) as shopify,
        pytest.MonkeyPatch.context() as patch,
    ):
        # the cycle's intake reads the shop's spooled webhooks here (on PostgreSQL too)
        patch.setenv("AFTERSALE_WEBHOOK_SPOOL", str(spool))
        env = {
            "AFTERSALE_DB": database,
            "AFTERSALE_OUTBOX": str(workdir / "outbox"),
            "AFTERSALE_INBOX": str(workdir / "inbox"),
            **sandbox_env(sandbox.url),
        }
        settings = load_settings(env)
        with open_store(settings.db) as store:
            report = import_file(
                store, EXAMPLES / "orders.ndjson", now=DEMO_START, detect=DIRECTORY
            )
            assert report.rejections == []
            parts, _ = build_parts(settings, store, env=env)
            summaries = []
            for hours in CYCLE_HOURS:
                now = DEMO_START + timedelta(hours=hours)
                shopify.before_cycle(hours)
                state.clock.set(now)
                summaries.append(run_cycle(parts, now, f"c-{uuid.uuid4().hex[:8]}").as_dict())
            last = DEMO_START + timedelta(hours=CYCLE_HOURS[-1])
            replay = run_cycle(parts, last, "replay").as_dict()
            shipments = store.list_shipments()
            numbers: dict[str, list[str | None]] = defaultdict(list)
            number_of = {s.shipment_id: s.tracking_number for s in shipments}
            for s in shipments:
                numbers[s.order_id].append(s.tracking_number)
            messages = store.list_messages()
            # one row per message and parcel it is about: its own parcel, or every parcel
            # of its order for a message about the order (None: an order with no parcel)
            rows = [
                (m.order_id, m.template, m.channel, m.state, number)
                for m in messages
                for number in (
                    [number_of[m.shipment_id]]
                    if m.shipment_id
                    else numbers.get(m.order_id) or [None]
                )
            ]
            sent = Counter((m.template, m.channel) for m in messages if m.state == "sent")
            statuses = {s.tracking_number: s.status for s in shipments}
            orders = store.load_orders({m.order_id for m in messages})
            stored = store.domain_events_between(
                DEMO_START - timedelta(days=1), last + timedelta(hours=1)
            )
            events = {e.event_id: e for _, e in stored}
            reads = read_outbox(workdir / "outbox", messages, orders, shipments, events)
            stories: dict[str, list[tuple]] = defaultdict(list)
            for m in messages:
                stories[m.order_id].append((m.template, m.channel, m.state, m.error_text))
            sent_back = {s.tracking_number: s.return_id for s in shipments if s.return_id}
            shop_orders = store.load_orders(shop.order_names).values()
            categories = {
                (o.order_id, i.sku): (i.category, i.warranty_months)
                for o in shop_orders
                for i in o.items
            }
    return {
        "database": database,
        "workdir": workdir,
        "parcels": parcels,
        "summaries": summaries,
        "replay": replay,
        "rows": rows,
        "sent": sent,
        "statuses": statuses,
        "reads": reads,
        "shop_data": settings.shop,
        "stories": stories,
        "sent_back": sent_back,
        "shop": shop,
        "categories": categories,
    }


def test_every_parcel_ends_where_its_journey_ends(demo: dict) -> None:
    final = {
        "returned": "returned_to_sender",
        "locker_expired": "returned_to_sender",
        "stuck": "label_created",
    }
    for p in demo["parcels"]:
        assert demo["statuses"][p.tracking_number] == final.get(p.scenario, "delivered"), p


def test_each_journey_tells_its_story_and_nothing_false(demo: dict) -> None:
    sent: dict[str, set[str]] = defaultdict(set)
    for _order, template, channel, state, number in demo["rows"]:
        if state == "sent" and channel == "email":
            sent[number].add(template)
    for p in demo["parcels"]:
        templates = sent[p.tracking_number]
        if p.start < DEMO_START - timedelta(days=365):
            # bought two years ago, first seen delivered: only the warranty reminder is news
            assert templates == {"warranty_expiry"}, (p.tracking_number, templates)
            continue
        assert STORY[p.scenario] <= templates, (p.scenario, p.tracking_number, templates)
        assert not (NEVER.get(p.scenario, set()) & templates), (p.scenario, templates)


def test_exactly_these_messages_land_in_the_outbox(demo: dict) -> None:
    sent = demo["sent"]
    # the 40 file orders, plus the 4 Shopify orders of examples/shop_demo.json: 3 thank-yous
    # (the cancelled one's was cancelled), 4 shipped emails and 3 SMS (two parcels of the
    # split order, a day apart: one SMS a day), 2 arriving-tomorrow, 2 out-for-delivery,
    # 4 delivered, 2 setup tips (the two TVs, categorised by the example shop mapping; the
    # HDMI cable has none, the speaker was sent back) and 1 review request (not for the
    # speaker sent back), and the shop's side: 1
    # dispatch delay, 1 return step by step, 2 refunds (the cancelled order's and the
    # returned one's)
    assert sent == Counter(
        {
            ("thank_you", "email"): 46,
            ("shipped", "email"): 46,
            ("shipped", "sms"): 27,
            ("out_for_delivery", "email"): 24,
            ("out_for_delivery", "sms"): 1,
            ("delivery_attempted", "email"): 3,
            ("delivery_attempted", "sms"): 2,
            ("available_for_pickup", "email"): 11,
            ("available_for_pickup", "sms"): 8,
            ("pickup_reminder", "email"): 1,
            ("pickup_reminder", "sms"): 1,
            ("arriving_tomorrow", "email"): 16,
            ("delayed", "email"): 10,
            ("delayed", "sms"): 5,
            ("undeliverable", "email"): 4,
            ("undeliverable", "sms"): 2,
            ("returned_to_sender", "email"): 4,
            ("returned_to_sender", "sms"): 2,
            ("delivered", "email"): 44,
            ("setup_tip", "email"): 25,
            ("review_request", "email"): 30,
            ("warranty_expiry", "email"): 2,
            ("fulfilment_delayed", "email"): 1,
            ("fulfilment_delayed", "sms"): 1,
            ("return_requested", "email"): 1,
            ("return_in_transit", "email"): 1,
            ("return_received", "email"): 1,
            ("return_received", "sms"): 1,
            ("refund_issued", "email"): 2,
            ("refund_issued", "sms"): 2,
        }
    )
    outbox = demo["workdir"] / "outbox"
    emails = list((outbox / "email").glob("*.eml"))
    assert len(emails) == sum(n for (_t, c), n in sent.items() if c == "email")
    sms = (outbox / "sms.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(sms) == sum(n for (_t, c), n in sent.items() if c == "sms")
    assert all(json.loads(line)["segments"] == 1 for line in sms)
    parsed = email.message_from_bytes(emails[0].read_bytes(), policy=policy.default)
    assert parsed["From"] == "Northwind Electronics <orders@northwind.example>"


def test_the_shop_orders_arrive_by_webhook_and_tell_their_stories(demo: dict) -> None:
    """examples/shop_demo.json: signed Shopify deliveries to the real receiver."""
    stories = demo["stories"]

    def told(order_id: str, channel: str = "email") -> Counter[str]:
        return Counter(
            t for t, c, state, _ in stories[order_id] if c == channel and state == "sent"
        )

    assert demo["shop"].order_names == ["#1101", "#1102", "#1103", "#1104"]
    # categories from examples/shop-mapping.yaml (AFTERSALE_SHOP_MAPPING): product type
    # first, else the SKU prefix (the cable has no product type); warranty per category
    assert demo["categories"] == {
        ("#1101", "NW-TV-55"): ("tv", 24),
        ("#1101", "NW-HDMI-2M"): ("cables", None),
        ("#1102", "NW-HP-Q1"): ("headphones", 24),
        ("#1103", "NW-SPK-2"): ("speakers", 24),
        ("#1104", "NW-TV-65"): ("tv", 24),
    }
    assert told("#1101")["setup_tip"] == told("#1104")["setup_tip"] == 1
    # a split shipment: each parcel is shipped and delivered on its own (the replayed
    # orders/create changed nothing)
    parcels = {n for o, _t, _c, _s, n in demo["rows"] if o == "#1101"}
    assert parcels == {"1ZA1B2C30300002001", "3318812000"}
    assert told("#1101")["shipped"] == 2 and told("#1101")["delivered"] == 2
    # cancelled before it shipped: the thank-you still waiting is cancelled with the
    # reason, the refund is told (email and SMS); nothing else
    assert ("thank_you", "email", "cancelled", "order cancelled in shopify: customer") in stories[
        "#1102"
    ]
    assert told("#1102") == Counter({"refund_issued": 1}) and told("#1102", "sms") == Counter(
        {"refund_issued": 1}
    )
    # a return step by step: asked for, its parcel on the way and received (polled like
    # any parcel), the refund; the return parcel sends no shipped/delivered of its own
    assert demo["sent_back"] == {"642600027844200000002002": "99031"}
    assert demo["statuses"]["642600027844200000002002"] == "delivered"
    returned = told("#1103")
    for template in ("return_requested", "return_in_transit", "return_received", "refund_issued"):
        assert returned[template] == 1, (template, returned)
    assert returned["shipped"] == 1 and returned["delivered"] == 1
    # the speaker on its way back hears no setup tips and no review request
    assert not {"setup_tip", "review_request"} & set(returned)
    # not shipped in time: told by email and SMS, listed in the run summary, then shipped
    assert told("#1104")["fulfilment_delayed"] == 1 and told("#1104", "sms")["fulfilment_delayed"]
    assert [
        s["not_shipped_past_promise"] for s in demo["summaries"] if s["not_shipped_past_promise"]
    ] == [["#1104"]]
    assert told("#1104")["shipped"] == 1
    # links carry the order name encoded ("#" would start a fragment)
    outbox = Path(demo["workdir"]) / "outbox" / "email"
    bodies = [p.read_text(encoding="utf-8") for p in outbox.glob("*.eml")]
    assert any("/account/orders/%231103" in b for b in bodies)
    assert not any("/account/orders/?" in b for b in bodies)


def test_a_second_run_at_the_same_time_adds_nothing(demo: dict) -> None:
    replay = demo["replay"]
    assert (replay["queued"], replay["sent"], replay["events"]) == (0, 0, 0)


def test_nothing_failed_and_every_customer_reads_their_language(demo: dict) -> None:
    assert not [r for r in demo["rows"] if r[3] in ("failed", "unknown")]
    assert all(s["failed"] == 0 and not s["poll_errors"] for s in demo["summaries"])
    subjects = {}
    for path in (Path(demo["workdir"]) / "outbox" / "email").glob("*.eml"):
        msg = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        if msg["X-Aftersale-Template"] == "thank_you":
            subjects[msg["To"].split("@")[1]] = msg["Subject"]
    assert "Dziękujemy" in subjects["example.pl"]
    assert "Dank" in subjects["example.de"]
    assert "Thank" in subjects["example.co.uk"]


def test_replaying_the_demo_range_with_the_same_rules_decides_nothing_new(demo: dict) -> None:
    from typer.testing import CliRunner

    from aftersale.cli.app import app

    result = CliRunner().invoke(
        app,
        [
            "simulate",
            "--from",
            (DEMO_START - timedelta(days=1)).isoformat(),  # orders were placed before the start
            "--to",
            (DEMO_START + timedelta(hours=CYCLE_HOURS[-1] + 1)).isoformat(),
        ],
        env={"AFTERSALE_DB": demo["database"]},
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[-1].split(": ")[1].startswith("0 new decisions")
    assert any("already sent (key thank_you|NW-1001|email)" in line for line in lines)


# --- the outbox read as the customers read it (tests/support/customer_view.py) ---------


def test_every_message_in_the_outbox_is_read(demo: dict) -> None:
    assert len(demo["reads"]) == sum(demo["sent"].values())
    markets = {r.order.shipping_country or r.order.customer.country for r in demo["reads"]}
    assert {"GB", "US", "DE", "AT", "PL"} <= markets  # the demo speaks to every market
    types = {r.shipment.delivery_type for r in demo["reads"] if r.shipment}
    assert {"locker", "pickup_point", "access_point"} <= {str(t) for t in types}


def test_no_leftovers_raw_dates_or_foreign_words(demo: dict) -> None:
    assert [line for r in demo["reads"] for line in leftovers(r)] == []


def test_carrier_pages_speak_the_customers_locale(demo: dict) -> None:
    assert [line for r in demo["reads"] for line in wrong_links(r)] == []


def test_money_is_in_the_orders_currency(demo: dict) -> None:
    assert [line for r in demo["reads"] for line in foreign_money(r, demo["shop_data"])] == []


def test_contacts_are_the_customers_markets(demo: dict) -> None:
    assert [line for r in demo["reads"] for line in wrong_contacts(r, demo["shop_data"])] == []


def test_dates_are_the_stores(demo: dict) -> None:
    assert [line for r in demo["reads"] for line in wrong_dates(r)] == []


def test_lockers_and_pickup_points_hear_their_own_story(demo: dict) -> None:
    assert [line for r in demo["reads"] for line in wrong_delivery_story(r)] == []


def test_one_incident_one_delay_message(demo: dict) -> None:
    assert repeated_incidents(demo["reads"]) == []
