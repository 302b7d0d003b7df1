"""The period report: its figures from a real store, `aftersale report --out` writing one
self-contained page, and that page as Chromium renders it (test-artifacts/report.png)."""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aftersale.cli.app import app
from aftersale.dispatch.messages import queue_decisions
from aftersale.models import (
    ChannelKind,
    Customer,
    Decision,
    DelayReason,
    DomainEvent,
    EventKind,
    Item,
    MessageState,
    Order,
    ShipmentRef,
    Status,
    TrackingEvent,
)
from aftersale.ops.trends import country_of, read_trends
from aftersale.settings import PROJECT_ROOT
from aftersale.store import Store, open_store
from aftersale.store.records import Claim, MessageResult

START = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
DAY = timedelta(days=1)
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def order(n: int, carrier: str, country: str) -> Order:
    customer = Customer(
        f"C-{n}", "Anna", f"a{n}@example.pl", None, "pl", "Europe/Warsaw", True, False, "PL"
    )
    item = Item("TV", "TV", "tv", 1, Decimal("10.00"), "PLN", 24)
    return Order(
        f"NW-{n}",
        START,
        customer,
        (item,),
        (ShipmentRef(f"T{n}", carrier),),
        promised_delivery=date(2026, 11, 25),
        shipping_country=country,
    )


def sent(store: Store, o: Order, rule: str, event: DomainEvent, at: datetime) -> str:
    key = f"{rule}|{o.order_id}"
    d = Decision(
        rule, rule, ChannelKind.EMAIL, o.order_id, key, at, event, shipment_id=event.shipment_id
    )
    [mid] = queue_decisions(store, [d], {o.order_id: o.customer.customer_id}, run_id="r", now=at)
    store.claim_messages(
        [Claim(mid, "x@example.pl", "s", "t", None, "outbox", 1)], run_id="r", now=at
    )
    store.record_results([MessageResult(mid, MessageState.SENT, "p")], at)
    return mid


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six parcels over two carriers and lanes: four on time, two late (one after a delay
    message); every message sent, some delivered, opened and clicked."""
    path = tmp_path_factory.mktemp("report") / "a.duckdb"
    with open_store(path) as store:
        orders = [order(n, "dhl" if n < 4 else "dpd", "DE" if n % 2 else "PL") for n in range(6)]
        store.save_orders(orders, source="t", now=START)
        states = {s.shipment_id: s for s in store.list_shipments()}
        for n, o in enumerate(orders):
            placed = DomainEvent(EventKind.ORDER_PLACED, o.order_id, START)
            mid = sent(store, o, "thank_you", placed, START + n * timedelta(hours=5))
            if n % 2:
                store.set_delivery_state(mid, "delivered", None)
                store.record_engagement(mid, "opened", START + DAY)
            if n == 1:
                store.record_engagement(mid, "clicked", START + DAY)
            late = n in (4, 5)
            number = f"T{n}"
            if n == 4:
                delay = DomainEvent(
                    EventKind.DELAYED,
                    o.order_id,
                    START + DAY,
                    number,
                    reason=DelayReason.ETA_SLIPPED,
                )
                store.record_domain_events([delay], run_id="r", now=START + DAY)
                sent(store, o, "delayed", delay, START + DAY)
            place = "Poznań, PL" if n < 4 else "Warszawa (PL)"
            store.save_tracking_events(
                [
                    (
                        number,
                        TrackingEvent(
                            START + timedelta(hours=6), Status.IN_TRANSIT, "I", "in", place
                        ),
                    )
                ],
                START,
            )
            delivered = START + timedelta(hours=30 + 10 * n) + (3 * DAY if late else timedelta(0))
            store.save_shipment_states(
                [replace(states[number], status=Status.DELIVERED, delivered_at=delivered)]
            )
    return path


def test_the_figures_follow_the_store(db: Path) -> None:
    with open_store(db) as store:
        trends = read_trends(store, START - DAY, START + 7 * DAY)
    assert trends.total("sent") == 7
    assert [(lane.lane, lane.delivered, lane.on_time, lane.late) for lane in trends.lanes] == [
        ("dhl PL→DE", 2, 2, 0),
        ("dhl PL→PL", 2, 2, 0),
        ("dpd PL→DE", 1, 0, 1),
        ("dpd PL→PL", 1, 0, 1),
    ]
    assert trends.lanes[0].percentile(50) == 34.0  # 07:00 + 30 h + 10 h - 13:00
    assert trends.on_time_rate() == 4 / 6
    [dpd] = trends.delay
    assert (dpd.carrier, dpd.late, dpd.on_time, dpd.precision) == ("dpd", 1, 0, 1.0)
    [first, *_] = [p for p in trends.provider_days() if p.sent]
    assert (first.sent, first.delivered, first.opened, first.clicked) == (4, 2, 2, 1)
    with pytest.raises(ValueError, match="the range is empty"):
        read_trends(store, START, START)


@pytest.mark.parametrize(
    ("place", "country"),
    [("Warszawa, PL", "PL"), ("Poznań (PL)", "PL"), ("ORIGINBR", None), (None, None), ("", None)],
)
def test_a_lane_starts_where_the_carrier_names_a_country(
    place: str | None, country: str | None
) -> None:
    assert country_of(place) == country


@pytest.mark.slow
def test_aftersale_report_writes_a_page_chromium_renders_offline(
    db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AFTERSALE_DB", str(db))
    out = tmp_path / "report.html"
    result = CliRunner().invoke(
        app, ["report", "--from", "2026-11-22", "--to", "2026-12-01", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"{out}: 2026-11-22 → 2026-11-30: 7 messages sent, 0 failed;")
    assert "6 parcels delivered, 67 % on time; delay messages right 100 %" in result.output
    html = out.read_text(encoding="utf-8")
    # nothing is fetched when it is opened: no script, no external source or stylesheet
    assert "<script" not in html and not re.search(r'(src|href)="(https?:)?//', html)
    charts = re.findall(r'src="data:image/svg\+xml;base64,([^"]+)"', html)
    assert len(charts) == 5
    assert all(base64.b64decode(c).lstrip().startswith(b"<?xml") for c in charts)
    for text in ("dhl", "PL → DE", "67 %", "What followed a delay message", "opened"):
        assert text in html

    shot = PROJECT_ROOT / "test-artifacts" / "report.png"
    shot.parent.mkdir(exist_ok=True)
    shot.unlink(missing_ok=True)
    home = tmp_path / "chromium-home"
    home.mkdir()
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--no-first-run", "--disable-dev-shm-usage", f"--user-data-dir={home / 'profile'}",
        "--window-size=1100,3000", "--run-all-compositor-stages-before-draw",
    ]  # fmt: skip
    env = {**os.environ, "HOME": str(home)}
    done = subprocess.run(
        [CHROMIUM, *flags, f"--screenshot={shot}", out.as_uri()],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert shot.exists(), done.stderr[-2000:]
    from PIL import Image

    with Image.open(shot) as image:
        colours = image.convert("RGB").resize((110, 300)).getcolors(maxcolors=100_000)
    # the charts' bars are drawn: many colours, among them the "sent" green
    assert colours is not None and len(colours) > 50
    assert any(g > 100 and r < 80 and b < 80 for _, (r, g, b) in colours)
