"""Order files that once crashed the import or changed data without a word (issue 15):
each bad row is one rejection naming its line and field, the good rows load, and a
re-import never changes anything silently."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aftersale.cli.app import app
from aftersale.intake.files import import_file, parse_csv, parse_ndjson
from aftersale.store import open_store
from carriers.registry import DIRECTORY
from tests.intake.test_intake import CSV_HEADER, NOW, ndjson, order


def rejected(result_rejections: list) -> list[str]:
    return [f"{r.line}: {r.reason}" for r in result_rejections]


def good(order_id: str) -> dict:
    return order(order_id=order_id, shipments=[])


def parse(*rows: object) -> tuple[list[str], list[str]]:
    result = parse_ndjson(ndjson(*rows), "o.ndjson", DIRECTORY, now=NOW)
    return [o.order_id for o in result.orders], rejected(result.rejections)


ITEM = order()["items"][0]
CUSTOMER = order()["customer"]


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("[" * 100_000 + "]" * 100_000, "row: nested deeper than 8 levels"),
        (
            json.dumps(good("X")).replace('"tags"', '"x"')[:-1]
            + ', "deep": '
            + "[" * 20
            + "]" * 20
            + "}",
            "row: nested deeper than 8 levels",
        ),
        (
            '{"order_id": "X", "order_id": "Y"}',
            "row: duplicate key 'order_id' in one object (which one is meant?)",
        ),
        ('{"n": ' + "9" * 5000 + "}", "row: a number with more than 30 digits"),
        ('{"n": NaN}', "row: NaN is not a JSON value"),
        (
            order(placed_at="0001-01-01T00:00:00+01:00"),
            "placed_at: '0001-01-01T00:00:00+01:00' is not a valid time",
        ),
        (
            order(placed_at="9999-12-31T23:59:59-14:00"),
            "placed_at: '9999-12-31T23:59:59-14:00' is not a valid time",
        ),
        (
            order(placed_at="2006-11-23T08:00:00+01:00"),
            "placed_at: '2006-11-23T08:00:00+01:00' is more than 10 years ago",
        ),
        (
            order(placed_at="2026-12-23T08:00:00+01:00"),
            "placed_at: '2026-12-23T08:00:00+01:00' is in the future",
        ),
        (
            order(promised_delivery="9999-12-31"),
            "promised_delivery: '9999-12-31' is more than 10 years from today",
        ),
        (
            order(placed_at=1_795_000_000),
            "placed_at: expected an ISO 8601 time like 2026-11-20T09:15:00+01:00, got 1795000000",
        ),
        (
            order(placed_at="1795000000"),
            "placed_at: '1795000000' is not an ISO 8601 time like 2026-11-20T09:15:00+01:00",
        ),
        (
            order(items=[{**ITEM, "quantity": 2**31}]),
            "items.0.quantity: Input should be less than or equal to 9999",
        ),
        (
            order(items=[{**ITEM, "quantity": "2147483648"}]),
            "items.0.quantity: expected a whole number, got '2147483648'",
        ),
        (
            order(items=[{**ITEM, "quantity": 10**30}]),
            "row: a number with more than 30 digits",
        ),
        (
            order(items=[{**ITEM, "quantity": True}]),
            "items.0.quantity: expected a whole number, got true",
        ),
        (
            order(items=[{**ITEM, "quantity": 1.5}]),
            "items.0.quantity: expected a whole number, got 1.5",
        ),
        (
            order(items=[{**ITEM, "price": "99999999999.00"}]),
            "items.0.price: Input should be less than or equal to 10000000",
        ),
        (
            order(items=[{**ITEM, "price": True}]),
            'items.0.price: expected a decimal string like "39.90", got True',
        ),
        (
            order(customer={**CUSTOMER, "consent": {"email": 1, "sms": False}}),
            "customer.consent.email: Input should be a valid boolean",
        ),
        (
            order(customer={**CUSTOMER, "email": "a@x.pl,b@y.com"}),
            "customer.email: 'a@x.pl,b@y.com' holds more than one email address; give one",
        ),
        (
            order(customer={**CUSTOMER, "email": "a@x.pl b@y.com"}),
            "customer.email: 'a@x.pl b@y.com' holds more than one email address; give one",
        ),
        (
            order(customer={**CUSTOMER, "name": "Anna\x00Kowalska"}),
            "customer.name: contains a control character or line break (U+0000)",
        ),
        (
            order(customer={**CUSTOMER, "name": "A" * 201}),
            "customer.name: String should have at most 200 characters",
        ),
    ],
)
def test_a_bad_row_is_one_rejection_and_the_rest_loads(row: object, reason: str) -> None:
    loaded, problems = parse(good("A"), row, good("B"))
    assert problems == [f"2: {reason}"]
    assert loaded == ["A", "B"]


def test_unicode_line_separators_inside_strings_do_not_split_the_line() -> None:
    weird = good("W")
    weird["customer"] = {**CUSTOMER, "tags": ["a\u2028b", "c\x85d", "e\u2029f"]}
    weird["customer"]["name"] = "Anna Kowalska"
    text = ndjson(weird, {"order_id": "bad"}, good("Z"))
    result = parse_ndjson(text, "o.ndjson", DIRECTORY, now=NOW)
    # the tags are refused (one line each), not cut: line numbers stay those of the file
    assert [o.order_id for o in result.orders] == ["Z"]
    assert [r.line for r in result.rejections] == [1, 1, 1, 2, 2, 2]
    weird["customer"]["tags"] = ["vip"]
    weird["customer"]["name"] = "Zoë\u2028"[:3]
    assert parse(weird, good("Z"))[0] == ["W", "Z"]


def test_a_byte_order_mark_is_not_part_of_the_first_row() -> None:
    result = parse_ndjson("\ufeff" + ndjson(good("A")), "o.ndjson", DIRECTORY, now=NOW)
    assert [o.order_id for o in result.orders] == ["A"] and result.rejections == []
    csv_text = "\ufeff" + CSV_HEADER + CSV_ROW.format(id="A", name="Jan Nowak", sku="TV-55")
    result = parse_csv(csv_text, "o.csv", DIRECTORY, now=NOW)
    assert [o.order_id for o in result.orders] == ["A"] and result.rejections == []


CSV_ROW = (
    "{id},2026-11-23T08:00:00+01:00,C-7,{name},jan@example.pl,+48601234567,pl,Europe/Warsaw,"
    "yes,no,PL,{sku},TV,tv,1,2799.00,PLN,24,,,\n"
)


def csv_parse(text: str) -> tuple[list[str], list[str]]:
    result = parse_csv(text, "o.csv", DIRECTORY, now=NOW)
    return [o.order_id for o in result.orders], rejected(result.rejections)


def test_csv_rows_with_missing_or_extra_cells_are_rejected_alone() -> None:
    text = (
        CSV_HEADER
        + CSV_ROW.format(id="A", name="Jan", sku="TV-55")
        + "B,2026-11-23T08:00:00+01:00,C-8\n"
        + CSV_ROW.format(id="C", name="Jan", sku="TV-55").replace("\n", ",extra\n")
        + CSV_ROW.format(id="D", name="Jan", sku="TV-55")
    )
    assert csv_parse(text) == (
        ["A", "D"],
        ["3: row: 3 cells, the header has 21", "4: row: 22 cells, the header has 21"],
    )


def test_csv_with_reordered_columns_and_a_short_row() -> None:
    text = (
        "sku,order_id,customer_name,placed_at,currency,price,item_name,category\n"
        "TV-55,A,Jan,2026-11-23T08:00:00+01:00,PLN,10.00,TV,tv\n"
        "TV-55,B,Jan\n"
    )
    assert csv_parse(text) == (["A"], ["3: row: 3 cells, the header has 8"])


def test_csv_unclosed_quote_costs_one_row_not_the_rest_of_the_file() -> None:
    text = (
        CSV_HEADER
        + CSV_ROW.format(id="A", name='"Jan', sku="TV-55")
        + CSV_ROW.format(id="B", name="Ola", sku="TV-55")
    )
    assert csv_parse(text) == (
        ["B"],
        ["2: row: a quoted cell is never closed (check the quotes on this line)"],
    )


def test_csv_cell_longer_than_the_csv_limit_is_one_rejection() -> None:
    text = (
        CSV_HEADER
        + CSV_ROW.format(id="A", name="x" * 140_000, sku="TV-55")
        + CSV_ROW.format(id="B", name="Ola", sku="TV-55")
    )
    assert csv_parse(text) == (["B"], ["2: row: a cell longer than 131,072 characters"])


def test_csv_rows_of_one_order_with_different_customers_are_rejected() -> None:
    text = (
        CSV_HEADER
        + CSV_ROW.format(id="A", name="Jan Nowak", sku="TV-55")
        + CSV_ROW.format(id="A", name="Ola Nowak", sku="CB-1")
        + CSV_ROW.format(id="B", name="Ola", sku="TV-55")
    )
    assert csv_parse(text) == (
        ["B"],
        [
            "3: customer_name: differs from line 2; every row of order 'A' must agree on the "
            "order and customer columns"
        ],
    )


def test_an_order_id_reimported_with_other_content_is_rejected_and_the_stored_one_stays(
    tmp_path: Path,
) -> None:
    first, second = tmp_path / "a.ndjson", tmp_path / "b.ndjson"
    first.write_text(ndjson(order()))
    changed = order(items=[{**ITEM, "quantity": 3}], promised_delivery="2026-11-28")
    second.write_text(ndjson(good("NW-9"), changed))
    with open_store(tmp_path / "s.duckdb") as store:
        import_file(store, first, now=NOW, detect=DIRECTORY)
        report = import_file(store, second, now=NOW, detect=DIRECTORY)
        assert (report.loaded, report.already_known) == (1, 0)
        assert rejected(report.rejections) == [
            "2: order_id: 'NW-1' is already stored with other items, promised_delivery; a "
            "stored order is never changed by a re-import (the first import stands)"
        ]
        assert store.load_order("NW-1").items[0].quantity == 1


def test_a_newer_order_updates_the_customer_and_the_change_is_kept_and_reported(
    tmp_path: Path,
) -> None:
    path = tmp_path / "o.ndjson"
    newer = order(
        order_id="NW-2",
        placed_at="2026-11-23T09:00:00+01:00",
        shipments=[],
        customer={
            **CUSTOMER,
            "email": "anna@new.example",
            "consent": {"email": False, "sms": True},
        },
    )
    older = order(
        order_id="NW-0",
        placed_at="2026-11-20T09:00:00+01:00",
        shipments=[],
        customer={**CUSTOMER, "phone": "+48600700800"},
    )
    first = tmp_path / "first.ndjson"
    first.write_text(ndjson(order()))
    path.write_text(ndjson(newer, older))
    with open_store(tmp_path / "s.duckdb") as store:
        import_file(store, first, now=NOW, detect=DIRECTORY)
        report = import_file(store, path, now=NOW, detect=DIRECTORY)
        assert report.loaded == 2 and report.rejections == []
        assert [f"{n.line}: {n.text}" for n in report.notices] == [
            "1: customer C-1: email, consent_email, consent_sms updated from order NW-2 (newer "
            "than the data stored; the previous values are kept in the customer's history)",
            "2: customer C-1: order NW-0 has other phone; the stored data is newer "
            "(2026-11-23 07:00 UTC) and stays (this order's values are kept in the history)",
        ]
        customer = store.load_order("NW-1").customer
        assert (customer.email, customer.phone) == ("anna@new.example", "+48601234567")
        assert store.count("customer_changes") == 2
        # a later file with an older order changes nothing either
        again = tmp_path / "p.ndjson"
        again.write_text(
            ndjson(order(order_id="NW-3", shipments=[], placed_at="2026-11-21T09:00:00+01:00"))
        )
        later = import_file(store, again, now=NOW, detect=DIRECTORY)
        assert "the stored data is newer (2026-11-23 08:00 UTC)" in later.notices[0].text
        assert store.load_order("NW-1").customer.email == "anna@new.example"


def test_phone_numbers_are_normalised_at_intake() -> None:
    row = order(customer={**CUSTOMER, "phone": "0048 600 700 800"})
    national = order(order_id="NW-2", customer={**CUSTOMER, "phone": "600-700-800"})
    result = parse_ndjson(ndjson(row, national), "o.ndjson", DIRECTORY, now=NOW)
    assert [o.customer.phone for o in result.orders] == ["+48600700800", "+48600700800"]


def test_cli_prints_bracketed_user_text_as_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AFTERSALE_DB", str(tmp_path / "s.duckdb"))
    path = tmp_path / "[bold]orders.ndjson"
    path.write_text(
        ndjson(
            order(customer={**CUSTOMER, "time_zone": "[bold red]Europe/Warsaw"}),
            order(order_id="[/]", customer={**CUSTOMER, "locale": "[/]"}),
            good("NW-5"),
        )
    )
    result = CliRunner().invoke(app, ["import", str(path)])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert f"{path}: 1 orders loaded, 0 already known, 2 rows rejected" in result.stdout
    assert (
        f"{path}:1: customer.time_zone: '[bold red]Europe/Warsaw' is not an IANA time zone "
        "(like Europe/Warsaw)"
    ) in result.stderr
    assert f"{path}:2: customer.locale: String should match pattern" in result.stderr


def test_a_line_that_is_not_utf8_is_one_rejection(tmp_path: Path) -> None:
    path = tmp_path / "o.ndjson"
    path.write_bytes(
        ndjson(good("A")).encode() + b'{"order_id": "\xff"}\n' + ndjson(good("B")).encode()
    )
    with open_store(tmp_path / "s.duckdb") as store:
        report = import_file(store, path, now=NOW, detect=DIRECTORY)
    assert report.loaded == 2
    assert rejected(report.rejections) == [
        "2: row: not UTF-8 text (byte 0xff at column 15); save the file as UTF-8"
    ]


def test_now_is_what_the_bounds_are_measured_from() -> None:
    later = datetime(2036, 11, 1, tzinfo=UTC)
    result = parse_ndjson(ndjson(good("A")), "o.ndjson", DIRECTORY, now=later)
    assert result.orders and not result.rejections
