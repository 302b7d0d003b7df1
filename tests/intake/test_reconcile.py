"""The Shopify reconcile on a real DuckDB file against the local Admin API fake: the first
run stores what the shop holds (a bad order rejected with its name), the checkpoint is
kept, a second run pulls only what changed since (a new order; a stored one gained a
fulfilment), and `aftersale shops reconcile` does the same by hand."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from aftersale.cli.app import app
from aftersale.intake.reconcile import ReconcileStore, reconcile_shopify
from aftersale.intake.shops.shopify_admin import AdminClient, AdminConfig
from aftersale.store import open_store
from carriers.registry import DIRECTORY
from tests.intake.shops.test_mapping import MAPPING
from tests.intake.shops.test_shopify_admin import FakeClock
from tests.support.shopify_admin import FakeShop, FakeShopifyAdmin, load_orders

FIRST = datetime(2026, 11, 25, 0, 0, tzinfo=UTC)
SECOND = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
SOURCE = "shopify-admin:northwind"
INPOST = "642600027844200000000048"


def later_changes(shop: FakeShop) -> None:
    """Between the runs: #1048 is fulfilled by InPost, a new order #1052 comes in."""
    shipped = shop.order("#1048")
    shipped["fulfillments"] = [
        {
            "status": "SUCCESS",
            "trackingInfo": [{"company": "InPost", "number": INPOST}],
            "fulfillmentLineItems": [
                {"lineItem": {"sku": line["sku"]}} for line in shipped["lineItems"]
            ],
        }
    ]
    shipped["updatedAt"] = "2026-11-25T08:00:00Z"
    new = copy.deepcopy(shop.order("#1051"))
    new.update(
        id="gid://shopify/Order/5745038016654",
        name="#1052",
        createdAt="2026-11-25T09:00:00Z",
        updatedAt="2026-11-25T09:00:00Z",
        fulfillments=[],
    )
    shop.orders.append(new)


def run(fake: FakeShopifyAdmin, db: Path, now: datetime, clock: FakeClock):  # type: ignore[no-untyped-def]
    @contextmanager
    def session() -> Iterator[ReconcileStore]:
        with open_store(str(db)) as store:
            yield store

    with httpx.Client(timeout=10) as http:
        client = AdminClient(
            AdminConfig("northwind", "shpat_test", fake.url),
            http,
            clock=clock,
            sleep=clock.sleep,
            page_size=2,
        )
        return reconcile_shopify(
            client, session, source=SOURCE, mapping=MAPPING, carriers=DIRECTORY, now=now
        )


def test_a_second_run_pulls_only_what_changed_and_applies_it(tmp_path: Path) -> None:
    clock = FakeClock()
    shop = FakeShop(load_orders(), clock=clock)
    db = tmp_path / "a.duckdb"
    with FakeShopifyAdmin(shop) as fake:
        first = run(fake, db, FIRST, clock)
        asked_first = len(shop.requests)
        later_changes(shop)
        second = run(fake, db, SECOND, clock)
    searches = [r["variables"]["query"] for r in shop.requests if "query" in r["variables"]]
    # the first run looks back a week; the second from its checkpoint, less 5 minutes
    assert searches[0] == "updated_at:>'2026-11-18T00:00:00Z'"
    assert set(searches[asked_first - 1 :]) == {"updated_at:>'2026-11-24T18:55:00Z'"}

    assert first.as_dict() | {"requests": 0} == {
        "source": SOURCE,
        "since": "2026-11-18T00:00:00+00:00",
        "checkpoint": "2026-11-24T19:00:00+00:00",  # #1051's, the newest seen
        "pages": 3,
        "seen": 5,
        "new": 4,
        "updated": 0,
        "unchanged": 0,
        "rejected": 1,
        "requests": 0,
        "throttled": 0,
        "waited_s": 0.0,
    }
    assert [(r.source, r.line, r.reason) for r in first.rejections] == [
        (SOURCE, 4, "order #1050: line_items.0.price: expected a price, got None")
    ]
    # #1051 changed at the checkpoint itself: the 5 minutes looked back see it again,
    # and it changes nothing
    assert (second.seen, second.new, second.updated, second.unchanged) == (3, 1, 1, 1)
    assert second.rejections == [] and second.checkpoint == datetime(2026, 11, 25, 9, tzinfo=UTC)

    with open_store(str(db)) as store:
        assert store.sync_checkpoint(SOURCE) == datetime(2026, 11, 25, 9, tzinfo=UTC)
        shipments = store.shipments_of(["#1048"])
        assert [(s.carrier, s.tracking_number) for s in shipments.values()] == [("inpost", INPOST)]
        order = store.load_order("#1048")
        assert order is not None and len(order.items) == 12
        # which parcel carries what comes with the pull too (fulfillmentLineItems)
        split = store.load_order("#1047")
        assert split is not None
        assert [(s.tracking_number, s.items) for s in split.shipments] == [
            ("1Z999AA10123456784", ("NW-TV-55",)),
            ("JJD000390007777777", ("NW-HDMI-2M",)),
        ]
        platform = store.platform_orders(["#1047", "#1049", "#1052"])
        assert str(platform["#1047"].refunded) == "9.99"
        # its refund and its return (a returns/* webhook missed) are kept as if delivered
        refunds, returns = store.refunds_and_returns_of(["#1047"])
        assert [(r.refund_id, str(r.amount)) for r in refunds] == [("921430", "9.99")]
        assert [(r.return_id, r.status) for r in returns] == [("9901", "open")]
        # and its parcel sent back (a reverse_deliveries/attach_deliverable webhook missed),
        # tracked like any parcel, apart from the parcels to the customer
        back = store.shipments_of(["#1047"])["1Z999AA10123456785"]
        assert (back.carrier, back.return_id) == ("ups", "9901")
        assert platform["#1049"].cancel_reason == "customer"
        assert platform["#1052"].platform_order_id == "5745038016654"
        assert store.known_order_ids(["#1050"]) == set()
        rejected = store.count("rejections")
    assert rejected == 1


def test_aftersale_shops_reconcile_by_hand(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shop = FakeShop(load_orders())
    db = tmp_path / "a.duckdb"
    monkeypatch.setenv("AFTERSALE_DB", str(db))
    monkeypatch.setenv("SHOPIFY_SHOP", "northwind")
    monkeypatch.setenv("SHOPIFY_ADMIN_TOKEN", "shpat_test")
    runner = CliRunner()
    with FakeShopifyAdmin(shop) as fake:
        monkeypatch.setenv("AFTERSALE_SHOPIFY_ADMIN_URL", fake.url)
        result = runner.invoke(app, ["shops", "reconcile", "--since", "2026-11-20T00:00:00+00:00"])
        again = runner.invoke(app, ["shops", "reconcile", "--json"])
        monkeypatch.setenv("SHOPIFY_ADMIN_TOKEN", "shpat_wrong")
        refused = runner.invoke(app, ["shops", "reconcile"])
    assert result.exit_code == 1, result.output  # one order rejected
    assert result.stdout.splitlines() == [
        f"{SOURCE}: orders updated after 2026-11-20T00:00:00+00:00",
        # the page, #1048's long lists, #1047's return parcels (an approved return)
        "5 seen, 4 new, 0 updated, 0 unchanged, 1 rejected (1 page(s), 3 request(s), waited 0.0 s)",
        "checkpoint: 2026-11-24T19:00:00+00:00",
    ]
    assert result.stderr.splitlines() == [
        f"{SOURCE}:4: order #1050: line_items.0.price: expected a price, got None",
        f"{SOURCE}:3: note: #1049: cancelled",
        f"{SOURCE}: note: 1 return parcel(s) to track",
    ]
    assert again.exit_code == 0, again.output
    assert '"seen": 1' in again.stdout  # #1051 again, within the 5 minutes looked back
    assert refused.exit_code == 2
    assert "refused the access token (401)" in refused.stderr


def test_the_summary_for_the_ui_masks_addresses_in_rejection_reasons() -> None:
    from aftersale.intake.reconcile import ReconcileReport
    from aftersale.store.records import Rejection

    report = ReconcileReport(SOURCE, FIRST, None)
    report.rejections.append(
        Rejection(SOURCE, 2, "order #1060: email: 'anna@example.pl,piotr@example.pl' is two")
    )
    assert "anna@example.pl" not in report.markdown()
    assert report.rejection_rows() == [
        {"record": "2", "reason": "order #1060: email: 'a***@example.pl,p***@example.pl' is two"}
    ]
