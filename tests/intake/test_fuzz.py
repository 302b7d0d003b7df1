"""Property: an order file never makes intake raise, and every record in it is either an
order or a rejection with a reason (issue 15). Generated input: valid orders with fields
replaced by hostile values, arbitrary JSON, arbitrary text (separators, BOM, NUL, quotes),
and CSV rows of arbitrary cells; a sample goes all the way into a DuckDB file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aftersale.intake.files import import_file, parse_csv, parse_ndjson
from aftersale.store import open_store
from carriers.registry import DIRECTORY
from tests.intake.test_intake import CSV_HEADER, NOW, order

#: inputs each property tries (the closing note of issue 15 quotes these)
EXAMPLES = {"ndjson": 400, "csv": 300, "stored": 60}

HOSTILE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(
        [
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59-14:00",
            "1795000000",
            "[bold red]x[/]",
            "a@x.pl,b@y.com",
            "\u2028",
            "\x85",
            "\ufeff",
            "\x00",
            "0048 600 700 800",
            "+48 600",
            "Europe/Warsw",
            "2026-02-30",
            "",
            " ",
            "NaN",
        ]
    ),  # fmt: skip
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)
PATHS = [
    ("order_id",), ("placed_at",), ("promised_delivery",), ("customer", "name"),
    ("customer", "email"), ("customer", "phone"), ("customer", "time_zone"),
    ("customer", "consent"), ("customer", "consent", "email"), ("customer", "tags"),
    ("items",), ("items", 0, "quantity"), ("items", 0, "price"), ("items", 0, "sku"),
    ("items", 0, "warranty_months"), ("shipments",), ("shipments", 0, "tracking_number"),
    ("shipments", 0, "carrier"), ("extra",),
]  # fmt: skip


def _mutate(row: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    row = json.loads(json.dumps(row))
    node: Any = row
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return row


def _line(value: Any) -> str:
    try:
        return json.dumps(value, allow_nan=True)
    except (ValueError, TypeError):
        return "{}"


MUTATED = st.builds(
    lambda i, path, value: _line(_mutate(order(order_id=f"F-{i}"), path, value)),
    st.integers(0, 10**6),
    st.sampled_from(PATHS),
    HOSTILE,
)
RAW_LINE = st.one_of(
    MUTATED,
    st.text(max_size=200),
    st.recursive(
        HOSTILE,
        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
        max_leaves=20,
    ).map(_line),
    st.integers(1, 3000).map(lambda n: "[" * n + "]" * n),
    st.integers(4300, 6000).map(lambda n: '{"n": ' + "7" * n + "}"),
)


def _records(text: str) -> list[int]:
    """The line numbers holding a record (not blank, not a comment)."""
    lines = text.removeprefix("\ufeff").split("\n")
    return [
        n
        for n, line in enumerate(lines, start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]


@settings(max_examples=EXAMPLES["ndjson"], deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(RAW_LINE, min_size=1, max_size=6))
def test_ndjson_every_record_is_an_order_or_a_rejection(lines: list[str]) -> None:
    text = "\n".join(line.replace("\n", " ") for line in lines) + "\n"
    result = parse_ndjson(text, "f.ndjson", DIRECTORY, now=NOW)
    placed = set(result.lines.values())
    rejected = {r.line for r in result.rejections}
    assert all(r.reason.strip() for r in result.rejections)
    for line in _records(text):
        assert (line in placed) != (line in rejected), (line, text)


CELL = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        ['"', '"x', "a,b", "\r", "\x00", "\u2028", "x" * 140_000, "2026-11-23T08:00:00+01:00"]
    ),
)


@settings(max_examples=EXAMPLES["csv"], deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.lists(CELL, min_size=0, max_size=23), min_size=1, max_size=5))
def test_csv_never_raises_and_every_row_is_accounted_for(rows: list[list[str]]) -> None:
    text = CSV_HEADER + "".join(",".join(cells) + "\n" for cells in rows)
    result = parse_csv(text, "f.csv", DIRECTORY, now=NOW)
    assert all(r.reason.strip() and r.line >= 1 for r in result.rejections)
    assert len(result.orders) <= len(rows)


@settings(max_examples=EXAMPLES["stored"], deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(MUTATED, min_size=1, max_size=4))
def test_what_parses_is_stored(tmp_path_factory: Any, lines: list[str]) -> None:
    folder: Path = tmp_path_factory.mktemp("fuzz")
    path = folder / "f.ndjson"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with open_store(folder / "s.duckdb") as store:
        report = import_file(store, path, now=NOW, detect=DIRECTORY)
        assert store.count("orders") == report.loaded
        assert store.count("rejections") == len(report.rejections)
    assert report.loaded + len(report.rejections) >= 1
