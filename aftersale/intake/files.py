"""Order intake from NDJSON and CSV files: validate each row, keep the good, report the bad.

Parsing is pure (`parse_orders`); `import_file` is the I/O edge that stores the result.
Every rejected row names its file, line and field, e.g.
`orders.ndjson:7: customer.phone: '+48 600' is not a valid phone number (like +48601234567)`.
No input makes parsing raise: a line that is not JSON, nested too deeply, holds a
duplicate key or a number too long, a CSV row with missing cells, an unclosed quote or a
huge cell, each is one rejection and the rest of the file loads. The schema and its
bounds are in aftersale/intake/rows.py and README.md ("Order files").
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from aftersale.carriers_meta import Carriers
from aftersale.errors import IntakeError
from aftersale.intake.customers import reconcile_customers, stored_order_differences
from aftersale.intake.rows import validate_row
from aftersale.models import Order
from aftersale.store.protocols import OrderStore
from aftersale.store.records import Notice, Rejection

#: What intake needs to know about carriers: the slugs a row may name, and a ranked guess
#: for a row that names none. (The name aftersale/cycle.py's CycleParts still uses.)
DetectCarriers = Carriers

_BOM = "\ufeff"
#: One NDJSON line (one order) longer than this is refused unread.
MAX_LINE_CHARS = 1_000_000
#: JSON nesting deeper than this is refused (an order needs 3: order, customer, consent).
MAX_DEPTH = 8
#: Digits in one JSON number: longer ones are refused before Python converts them.
MAX_NUMBER_DIGITS = 30


@dataclass(frozen=True, slots=True)
class ParseResult:
    orders: list[Order]
    rejections: list[Rejection]
    lines: dict[str, int] = field(default_factory=dict)  # order id -> first line


class _BadJson(ValueError):
    """A line that is JSON in no sense we accept; the text is the reason."""


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _BadJson(f"duplicate key {key[:40]!r} in one object (which one is meant?)")
        out[key] = value
    return out


def _number(text: str) -> int:
    if len(text.lstrip("-")) > MAX_NUMBER_DIGITS:
        raise _BadJson(f"a number with more than {MAX_NUMBER_DIGITS} digits")
    return int(text)


def _decimal(text: str) -> Decimal:
    if len(text) > MAX_NUMBER_DIGITS + 10:
        raise _BadJson(f"a number with more than {MAX_NUMBER_DIGITS} digits")
    return Decimal(text)


def _constant(name: str) -> Any:
    raise _BadJson(f"{name} is not a JSON value")


def _depth(value: Any) -> int:
    """Nesting depth of parsed JSON, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, level)
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, level + 1) for child in children)
    return deepest


def load_json_row(line: str) -> Any:
    """One NDJSON line as Python values; `_BadJson` says in words why it is refused."""
    if len(line) > MAX_LINE_CHARS:
        raise _BadJson(f"line longer than {MAX_LINE_CHARS:,} characters")
    try:
        data = json.loads(
            line,
            object_pairs_hook=_pairs,
            parse_int=_number,
            parse_float=_decimal,
            parse_constant=_constant,
        )
    except _BadJson:
        raise
    except json.JSONDecodeError as exc:
        raise _BadJson(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    except RecursionError:
        raise _BadJson(f"nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # pragma: no cover - every known cause is handled above
        raise _BadJson(f"not valid JSON ({exc})") from None
    if _depth(data) > MAX_DEPTH:
        raise _BadJson(f"nested deeper than {MAX_DEPTH} levels")
    return data


def _physical_lines(text: str) -> list[str]:
    """Lines split on \\n only: U+2028, U+0085 and friends are characters inside JSON
    strings and CSV cells, not line breaks (str.splitlines would split on them)."""
    return text.removeprefix(_BOM).split("\n")


def parse_ndjson(text: str, source: str, carriers: Carriers, *, now: datetime) -> ParseResult:
    """One order per line; blank lines and lines starting with '#' are skipped."""
    orders: list[Order] = []
    rejections: list[Rejection] = []
    lines: dict[str, int] = {}
    for line_no, raw in enumerate(_physical_lines(text), start=1):
        line = raw.removesuffix("\r")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            data = load_json_row(line)
        except _BadJson as exc:
            rejections.append(Rejection(source, line_no, f"row: {exc}"))
            continue
        order, problems = validate_row(source, line_no, data, carriers, now)
        rejections.extend(problems)
        if order and order.order_id in lines:
            first = lines[order.order_id]
            rejections.append(
                Rejection(source, line_no, f"order_id: {order.order_id!r} already on line {first}")
            )
        elif order:
            orders.append(order)
            lines[order.order_id] = line_no
    return ParseResult(orders, rejections, lines)


CSV_COLUMNS = (
    "order_id",
    "placed_at",
    "customer_id",
    "customer_name",
    "email",
    "phone",
    "locale",
    "time_zone",
    "consent_email",
    "consent_sms",
    "country",
    "sku",
    "item_name",
    "category",
    "quantity",
    "price",
    "currency",
    "warranty_months",
    "carrier",
    "tracking_number",
    "promised_delivery",
)
#: Columns about the order and its customer: every row of one order must agree on them.
ORDER_COLUMNS = (
    "placed_at",
    "customer_id",
    "customer_name",
    "email",
    "phone",
    "locale",
    "time_zone",
    "consent_email",
    "consent_sms",
    "country",
    "promised_delivery",
)
_TRUE = {"true", "yes", "1", "y"}
_FALSE = {"false", "no", "0", "n", ""}


def _flag(value: str, column: str) -> bool:
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise ValueError(f"{column}: {value!r} is not yes/no")


def csv_records(text: str) -> Iterator[tuple[int, list[str] | None, str | None]]:
    """(first line, cells, None) per CSV record, or (line, None, problem) for one that cannot
    be read (unclosed quote, NUL, a cell over the csv module's limit). Reading goes on
    from the line after a bad record's first, so one bad quote costs one row, not the
    rest of the file."""
    lines = _physical_lines(text)
    chunks = [line + "\n" for line in lines[:-1]] + ([lines[-1]] if lines[-1] else [])
    start = 0
    while start < len(chunks):
        reader = csv.reader(iter(chunks[start:]), strict=True)
        consumed = 0
        try:
            for cells in reader:
                yield start + consumed + 1, cells, None
                consumed = reader.line_num
            return
        except csv.Error as exc:
            problem = str(exc)
            if "unexpected end of data" in problem:
                problem = "a quoted cell is never closed (check the quotes on this line)"
            elif "field larger than field limit" in problem:
                problem = f"a cell longer than {csv.field_size_limit():,} characters"
            yield start + consumed + 1, None, problem
            start += consumed + 1


def parse_csv(text: str, source: str, carriers: Carriers, *, now: datetime) -> ParseResult:
    """One row per item; rows sharing an order id form one order (all its rows must be good
    and agree on the order and customer columns)."""
    records = csv_records(text)
    first = next(records, None)
    if first is None or first[1] is None:
        why = first[2] if first else "the file is empty"
        return ParseResult([], [Rejection(source, 1, f"header: {why}")])
    header = [cell.strip() for cell in first[1]]
    problem = _header_problem(header)
    if problem:
        return ParseResult([], [Rejection(source, 1, f"header: {problem}")])
    groups: dict[str, list[tuple[int, dict[str, str]]]] = {}
    rejections: list[Rejection] = []
    for line, cells, problem in records:
        if cells is None:
            rejections.append(Rejection(source, line, f"row: {problem}"))
            continue
        if not any(c.strip() for c in cells):
            continue  # a blank line, or only commas
        if len(cells) != len(header):
            rejections.append(
                Rejection(source, line, f"row: {len(cells)} cells, the header has {len(header)}")
            )
            continue
        row = dict(zip(header, cells, strict=True))
        groups.setdefault(row["order_id"].strip(), []).append((line, row))
    orders = []
    for order_id, rows in groups.items():
        order, problems = _csv_order(source, order_id, rows, carriers, now)
        rejections.extend(problems)
        if order:
            orders.append(order)
    rejections.sort(key=lambda r: r.line)
    return ParseResult(orders, rejections, {o.order_id: groups[o.order_id][0][0] for o in orders})


def _header_problem(header: list[str]) -> str | None:
    missing = [c for c in ("order_id", "placed_at", "customer_name", "sku") if c not in header]
    unknown = [c for c in header if c not in CSV_COLUMNS]
    twice = sorted({c for c in header if header.count(c) > 1})
    parts = []
    if missing:
        parts.append(f"missing columns {missing}")
    if unknown:
        parts.append(f"unknown columns {unknown}")
    if twice:
        parts.append(f"columns named twice {twice}")
    return "; ".join(parts) or None


def _csv_order(
    source: str,
    order_id: str,
    rows: list[tuple[int, dict[str, str]]],
    carriers: Carriers,
    now: datetime,
) -> tuple[Order | None, list[Rejection]]:
    first_line, first = rows[0]
    for line, row in rows[1:]:
        differ = [c for c in ORDER_COLUMNS if row.get(c, "").strip() != first.get(c, "").strip()]
        if differ:
            return None, [
                Rejection(
                    source,
                    line,
                    f"{', '.join(differ)}: differs from line {first_line}; every row of order "
                    f"{order_id!r} must agree on the order and customer columns",
                )
            ]
    try:
        consent = {
            "email": _flag(first.get("consent_email", ""), "consent_email"),
            "sms": _flag(first.get("consent_sms", ""), "consent_sms"),
        }
    except ValueError as exc:
        return None, [Rejection(source, first_line, str(exc))]
    shipments: dict[str, dict[str, Any]] = {}
    for _, r in rows:
        if r.get("tracking_number", "").strip():
            shipments.setdefault(
                r["tracking_number"].strip(),
                {"carrier": r.get("carrier", ""), "tracking_number": r["tracking_number"]},
            )
    # a split shipment: each item row names its own parcel, so each parcel knows its items
    if len(shipments) > 1 and all(r.get("tracking_number", "").strip() for _, r in rows):
        for _, r in rows:
            parcel = shipments[r["tracking_number"].strip()]
            parcel.setdefault("items", []).append(r.get("sku", ""))
    data = {
        "order_id": order_id,
        "placed_at": first["placed_at"],
        "customer": {
            "id": first.get("customer_id") or None,
            "name": first["customer_name"],
            "email": first.get("email") or None,
            "phone": first.get("phone") or None,
            "locale": first.get("locale") or "en",
            "time_zone": first.get("time_zone") or "UTC",
            "consent": consent,
            "country": first.get("country") or None,
        },
        "items": [
            {
                "sku": r["sku"],
                "name": r.get("item_name", ""),
                "category": r.get("category", ""),
                "quantity": r.get("quantity") or 1,
                "price": r.get("price", ""),
                "currency": r.get("currency", ""),
                "warranty_months": r.get("warranty_months") or None,
            }
            for _, r in rows
        ],
        "shipments": list(shipments.values()),
        "promised_delivery": first.get("promised_delivery") or None,
    }
    order, problems = validate_row(source, first_line, data, carriers, now)
    # Point item errors at the CSV line the item came from.
    out = []
    for p in problems:
        line = first_line
        head = p.reason.split(":", 1)[0]
        parts = head.split(".")
        if parts[0] == "items" and len(parts) > 1 and parts[1].isdigit():
            index = int(parts[1])
            line = rows[index][0] if index < len(rows) else first_line
        out.append(Rejection(source, line, p.reason))
    return order, out


def parse_orders(path: Path, text: str, carriers: Carriers, *, now: datetime) -> ParseResult:
    suffix = path.suffix.lower()
    if suffix in (".ndjson", ".jsonl"):
        return parse_ndjson(text, path.name, carriers, now=now)
    if suffix == ".csv":
        return parse_csv(text, path.name, carriers, now=now)
    raise IntakeError(f"{path}: unknown order file type {suffix!r} (use .ndjson, .jsonl or .csv)")


@dataclass(frozen=True, slots=True)
class ImportReport:
    source: str
    loaded: int
    already_known: int
    rejections: list[Rejection]
    #: what loaded but changed something a person should know of (a customer's new email)
    notices: list[Notice] = field(default_factory=list)


def import_file(
    store: OrderStore, path: Path, *, now: datetime, detect: DetectCarriers | None
) -> ImportReport:
    """Read, validate and store one order file. Idempotent by order id: an order already
    stored is skipped when it is the same, rejected (and the stored one kept) when not.

    `detect` is the carrier directory the edge passes in: rows may only name its carriers,
    and a row that names none gets the carrier its tracking number's format suggests."""
    if detect is None:
        raise IntakeError(f"{path}: no carrier directory to check the file's carriers against")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise IntakeError(f"{path}: cannot read: {exc}") from exc
    text, undecodable = decode_lines(data, path.name)
    parsed = parse_orders(path, text, detect, now=now)
    return store_parsed(store, parsed, path.name, now=now, carriers=detect, extra=undecodable)


def store_parsed(
    store: OrderStore,
    parsed: ParseResult,
    source: str,
    *,
    now: datetime,
    carriers: Carriers,
    extra: Sequence[Rejection] = (),
) -> ImportReport:
    """Store parsed orders the one way every intake does (files, shop platforms): a
    tracking number belongs to one order, a stored order is never changed by a re-import,
    customers' changes are reconciled, missing carriers come from the number's format."""
    orders, rejections = _dedupe_tracking(store, parsed, source)
    rejections += extra
    orders, same, changed = _split_known(store, orders, parsed.lines, source)
    rejections += changed
    stored = store.load_customers({o.customer.customer_id for o in orders})
    orders, changes, notices = reconcile_customers(
        orders, stored, source=source, lines=parsed.lines
    )
    orders, candidates = assign_carriers(orders, carriers)
    loaded, known = store.save_orders(
        orders, source=source, now=now, candidates=candidates, changes=changes
    )
    rejections.sort(key=lambda r: r.line)
    store.record_rejections(rejections, now)
    return ImportReport(source, loaded, known + same, rejections, notices)


def decode_lines(data: bytes, source: str) -> tuple[str, list[Rejection]]:
    """The file as text; a line that is not UTF-8 becomes an empty line (numbers stay)
    and a rejection, so one bad byte costs one row."""
    try:
        return data.decode("utf-8"), []
    except UnicodeDecodeError:
        pass
    lines, rejections = [], []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            lines.append("")
            rejections.append(
                Rejection(
                    source,
                    number,
                    f"row: not UTF-8 text (byte {raw[exc.start]:#04x} at column {exc.start + 1});"
                    " save the file as UTF-8",
                )
            )
    return "\n".join(lines), rejections


def _split_known(
    store: OrderStore, orders: list[Order], lines: dict[str, int], source: str
) -> tuple[list[Order], int, list[Rejection]]:
    """(orders not stored yet, how many were stored as they are, a rejection for each
    stored with other content: a re-import never changes a stored order)."""
    stored = store.load_orders(o.order_id for o in orders)
    fresh, same, rejections = [], 0, []
    for order in orders:
        before = stored.get(order.order_id)
        if before is None:
            fresh.append(order)
            continue
        differ = stored_order_differences(before, order)
        if not differ:
            same += 1
            continue
        rejections.append(
            Rejection(
                source,
                lines.get(order.order_id, 0),
                f"order_id: {order.order_id!r} is already stored with other "
                f"{', '.join(differ)}; a stored order is never changed by a re-import "
                "(the first import stands)",
            )
        )
    return fresh, same, rejections


def _dedupe_tracking(
    store: OrderStore, parsed: ParseResult, source: str
) -> tuple[list[Order], list[Rejection]]:
    """A tracking number belongs to one order: a second order claiming it is rejected."""
    owners = store.known_tracking_numbers(
        ref.tracking_number for o in parsed.orders for ref in o.shipments
    )
    rejections = list(parsed.rejections)
    keep = []
    for order in parsed.orders:
        clash = next(
            (
                r.tracking_number
                for r in order.shipments
                if owners.setdefault(r.tracking_number, order.order_id) != order.order_id
            ),
            None,
        )
        if clash:
            rejections.append(
                Rejection(
                    source,
                    parsed.lines.get(order.order_id, 0),
                    f"shipments.tracking_number: {clash} already belongs to order {owners[clash]}",
                )
            )
        else:
            keep.append(order)
    return keep, rejections


def assign_carriers(
    orders: Sequence[Order], carriers: Carriers
) -> tuple[list[Order], dict[str, list[str]]]:
    """Fill empty carriers from the tracking number; remember the other candidates."""
    candidates: dict[str, list[str]] = {}
    out = []
    for order in orders:
        refs = []
        for ref in order.shipments:
            if ref.carrier is None:
                ranked = carriers.detect(ref.tracking_number)
                candidates[ref.tracking_number] = ranked
                ref = replace(ref, carrier=ranked[0] if ranked else None)
            refs.append(ref)
        out.append(replace(order, shipments=tuple(refs)))
    return out, candidates
