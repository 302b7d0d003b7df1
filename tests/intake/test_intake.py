"""Order intake: good rows load, bad rows are rejected with file:line and the exact reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from aftersale.intake.files import import_file, parse_csv, parse_ndjson
from aftersale.store import open_store
from carriers.registry import DIRECTORY

NOW = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)


def order(**overrides: object) -> dict:
    row = {
        "order_id": "NW-1",
        "placed_at": "2026-11-23T08:00:00+01:00",
        "customer": {
            "id": "C-1",
            "name": "Anna Kowalska",
            "email": "Anna.Kowalska@example.pl",
            "phone": "+48601234567",
            "locale": "pl-PL",
            "time_zone": "Europe/Warsaw",
            "consent": {"email": True, "sms": False},
            "country": "PL",
        },
        "items": [
            {
                "sku": "TV-55",
                "name": "TV",
                "category": "tv",
                "price": "2799.00",
                "currency": "PLN",
                "warranty_months": 24,
            }
        ],
        "shipments": [{"carrier": "inpost", "tracking_number": "6426 0002 7844 2000 0000 0001"}],
        "promised_delivery": "2026-11-26",
    }
    row.update(overrides)
    return row


def ndjson(*rows: object) -> str:
    return "\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n"


def test_good_row_becomes_an_order_in_utc_with_normalised_fields() -> None:
    result = parse_ndjson(ndjson(order()), "orders.ndjson", DIRECTORY, now=NOW)
    assert result.rejections == []
    (o,) = result.orders
    assert o.placed_at == datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
    assert o.customer.email == "anna.kowalska@example.pl"
    assert o.shipments[0].tracking_number == "642600027844200000000001"
    assert o.total == Decimal("2799.00") and o.currency == "PLN"
    assert o.shipping_country == "PL"


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        (
            "{not json",
            "orders.ndjson:2: row: not valid JSON (Expecting property name enclosed in double quotes at column 2)",
        ),
        ("[1, 2]", "orders.ndjson:2: row: expected a JSON object, got list"),
        (
            order(customer={**order()["customer"], "phone": "+48 600"}),
            "orders.ndjson:2: customer.phone: '+48 600' is not a valid phone number (like +48601234567)",
        ),
        (
            order(customer={**order()["customer"], "time_zone": "Europe/Warsw"}),
            "orders.ndjson:2: customer.time_zone: 'Europe/Warsw' is not an IANA time zone (like Europe/Warsaw)",
        ),
        (
            order(customer={**order()["customer"], "email": "anna.example.pl"}),
            "orders.ndjson:2: customer.email: 'anna.example.pl' is not an email address",
        ),
        (
            order(shipments=[{"carrier": "fedex", "tracking_number": "123456789012"}]),
            "orders.ndjson:2: shipments.0.carrier: unknown carrier 'fedex': use one of ups, dhl, inpost, dpd, "
            "or leave it empty to detect it from the tracking number",
        ),
        (
            order(placed_at="2026-11-23T08:00:00"),
            "orders.ndjson:2: placed_at: needs a UTC offset, like 2026-11-20T09:15:00+01:00",
        ),
        (
            order(items=[]),
            "orders.ndjson:2: items: Tuple should have at least 1 item after validation, not 0",
        ),
        (
            order(colour="red"),
            "orders.ndjson:2: colour: unknown field (check the spelling against README.md 'Order files')",
        ),
        (
            {k: v for k, v in order().items() if k != "order_id"},
            "orders.ndjson:2: order_id: is required",
        ),
        (
            order(items=[{**order()["items"][0], "price": "-1"}]),
            "orders.ndjson:2: items.0.price: Input should be greater than or equal to 0",
        ),
    ],
)
def test_bad_row_is_rejected_with_line_and_reason_and_the_rest_loads(
    row: object, expected: str
) -> None:
    text = ndjson(order(order_id="NW-0", shipments=[]), row, order(order_id="NW-2", shipments=[]))
    result = parse_ndjson(text, "orders.ndjson", DIRECTORY, now=NOW)
    assert [f"{r.source}:{r.line}: {r.reason}" for r in result.rejections] == [expected]
    assert [o.order_id for o in result.orders] == ["NW-0", "NW-2"]


def test_duplicate_order_id_in_one_file_is_rejected() -> None:
    result = parse_ndjson(ndjson(order(), "", order()), "o.ndjson", DIRECTORY, now=NOW)
    assert [f"{r.line}: {r.reason}" for r in result.rejections] == [
        "3: order_id: 'NW-1' already on line 1"
    ]


CSV_HEADER = (
    "order_id,placed_at,customer_id,customer_name,email,phone,locale,time_zone,consent_email,"
    "consent_sms,country,sku,item_name,category,quantity,price,currency,warranty_months,"
    "carrier,tracking_number,promised_delivery\n"
)


def test_csv_rows_sharing_an_order_id_form_one_order() -> None:
    text = CSV_HEADER + (
        "NW-7,2026-11-23T08:00:00+01:00,C-7,Jan Nowak,jan@example.pl,+48601234567,pl,Europe/Warsaw,yes,no,PL,"
        "TV-55,TV,tv,1,2799.00,PLN,24,inpost,642600027844200000000009,\n"
        "NW-7,2026-11-23T08:00:00+01:00,C-7,Jan Nowak,jan@example.pl,+48601234567,pl,Europe/Warsaw,yes,no,PL,"
        "CB-1,Cable,cables,2,39.00,PLN,,inpost,642600027844200000000009,\n"
    )
    result = parse_csv(text, "orders.csv", DIRECTORY, now=NOW)
    assert result.rejections == []
    (o,) = result.orders
    assert [i.sku for i in o.items] == ["TV-55", "CB-1"]
    assert len(o.shipments) == 1 and o.customer.consent_email and not o.customer.consent_sms


def test_csv_item_error_points_at_its_own_line() -> None:
    text = CSV_HEADER + (
        "NW-7,2026-11-23T08:00:00+01:00,C-7,Jan,jan@example.pl,,pl,Europe/Warsaw,yes,no,PL,TV-55,TV,tv,1,2799.00,PLN,24,,,\n"
        "NW-7,2026-11-23T08:00:00+01:00,C-7,Jan,jan@example.pl,,pl,Europe/Warsaw,yes,no,PL,CB-1,Cable,cables,1,abc,PLN,,,,\n"
        "NW-8,2026-11-23T08:00:00+01:00,C-8,Ola,ola@example.pl,,pl,Europe/Warsaw,maybe,no,PL,CB-1,Cable,cables,1,3,PLN,,,,\n"
    )
    result = parse_csv(text, "orders.csv", DIRECTORY, now=NOW)
    assert [f"{r.line}: {r.reason}" for r in result.rejections] == [
        "3: items.1.price: Input should be a valid decimal",
        "4: consent_email: 'maybe' is not yes/no",
    ]


def test_csv_with_unknown_column_is_rejected_as_a_whole() -> None:
    result = parse_csv("order_id,placed_at,customer_name,sku,colour\n", "o.csv", DIRECTORY, now=NOW)
    assert [r.reason for r in result.rejections] == ["header: unknown columns ['colour']"]


def test_import_is_idempotent_and_detects_empty_carriers(tmp_path: Path) -> None:
    path = tmp_path / "orders.ndjson"
    path.write_text(
        ndjson(order(shipments=[{"carrier": "", "tracking_number": "642600027844200000000001"}]))
    )
    with open_store(tmp_path / "a.duckdb") as store:
        first = import_file(store, path, now=NOW, detect=DIRECTORY)
        second = import_file(store, path, now=NOW, detect=DIRECTORY)
        assert (first.loaded, first.already_known) == (1, 0)
        assert (second.loaded, second.already_known) == (0, 1)
        assert store.count("orders") == 1 and store.count("items") == 1
        (shipment,) = store.due_shipments(NOW)
        assert shipment.carrier == "inpost"
        assert store.load_order("NW-1").customer.time_zone == "Europe/Warsaw"


def test_a_tracking_number_belongs_to_one_order(tmp_path: Path) -> None:
    path = tmp_path / "orders.ndjson"
    path.write_text(ndjson(order(), order(order_id="NW-2")))
    with open_store(tmp_path / "a.duckdb") as store:
        report = import_file(store, path, now=NOW, detect=DIRECTORY)
        assert report.loaded == 1
        assert [f"{r.line}: {r.reason}" for r in report.rejections] == [
            "2: shipments.tracking_number: 642600027844200000000001 already belongs to order NW-1"
        ]
        assert store.count("rejections") == 1


def test_example_orders_all_load(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "orders.ndjson"
    result = parse_ndjson(example.read_text(encoding="utf-8"), example.name, DIRECTORY, now=NOW)
    assert result.rejections == []
    assert len(result.orders) == 45
    carriers = {s.carrier for o in result.orders for s in o.shipments}
    assert carriers == {"ups", "dhl", "inpost", "dpd", None}


def test_a_split_shipment_says_which_items_each_parcel_carries(tmp_path: Path) -> None:
    cable = {"sku": "CB-1", "name": "Cable", "category": "cables", "price": "39", "currency": "PLN"}
    row = order(
        items=[order()["items"][0], cable],
        shipments=[
            {
                "carrier": "inpost",
                "tracking_number": "642600027844200000000001",
                "items": ["TV-55"],
            },
            {"carrier": "inpost", "tracking_number": "642600027844200000000002", "items": ["CB-1"]},
        ],
    )
    stranger = order(
        order_id="NW-2",
        shipments=[{"tracking_number": "642600027844200000000003", "items": ["TV-65"]}],
    )
    result = parse_ndjson(ndjson(row, stranger), "orders.ndjson", DIRECTORY, now=NOW)
    assert [s.items for s in result.orders[0].shipments] == [("TV-55",), ("CB-1",)]
    assert [f"{r.line}: {r.reason}" for r in result.rejections] == [
        "2: shipments: parcel 1 (642600027844200000000003) lists 'TV-65', which is not an "
        "item of this order"
    ]
    path = tmp_path / "orders.ndjson"
    path.write_text(ndjson(row))
    with open_store(tmp_path / "a.duckdb") as store:
        import_file(store, path, now=NOW, detect=DIRECTORY)
        stored = store.load_order("NW-1")
        assert stored is not None and [s.items for s in stored.shipments] == [("TV-55",), ("CB-1",)]


def test_csv_rows_naming_their_own_parcel_make_a_split_shipment() -> None:
    text = CSV_HEADER + (
        "NW-7,2026-11-23T08:00:00+01:00,C-7,Jan,jan@example.pl,,pl,Europe/Warsaw,yes,no,PL,"
        "TV-55,TV,tv,1,2799.00,PLN,24,inpost,642600027844200000000009,\n"
        "NW-7,2026-11-23T08:00:00+01:00,C-7,Jan,jan@example.pl,,pl,Europe/Warsaw,yes,no,PL,"
        "CB-1,Cable,cables,2,39.00,PLN,,inpost,642600027844200000000010,\n"
    )
    (o,) = parse_csv(text, "orders.csv", DIRECTORY, now=NOW).orders
    assert [(s.tracking_number[-2:], s.items) for s in o.shipments] == [
        ("09", ("TV-55",)),
        ("10", ("CB-1",)),
    ]
