"""Parse benchmark: parse + normalise per parcel on the recorded payloads of each carrier.

Floor: plain `json.loads` of the same bytes. Target: <= 50 us per parcel and <= 5x the
floor. The adapters decode with orjson (`carriers.base.decode_json`; an orjson.loads
column shows that share). When karrio's parsers are importable (`karrio-ups`,
`karrio-dhl-universal`; not a dependency: `pip install --target /tmp/karrio karrio-ups
karrio-dhl-universal karrio-dpd`, then `PYTHONPATH=/tmp/karrio`), they run on the same
payloads in the same run and their statuses are shown where they differ from ours.
karrio-dpd parses DPD's SOAP XML (option B), not the plc JSON we record, so it has no
comparable figure.

Usage: .venv/bin/python bench/parse.py [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from carriers.base import Carrier
from carriers.dhl import Dhl
from carriers.dpd import Dpd
from carriers.ups import Ups

PAYLOADS = Path(__file__).resolve().parent.parent / "tests" / "carriers" / "payloads"
TARGET_US = 50.0
TARGET_RATIO = 5.0


def adapters() -> dict[str, Carrier]:
    found: dict[str, Carrier] = {
        "ups": Ups("https://ups.invalid", "id", "secret"),
        "dhl": Dhl("https://dhl.invalid", "key"),
        "dpd": Dpd("https://dpd.invalid"),
    }
    try:
        from carriers.inpost import InPost
    except ImportError:
        return found
    found["inpost"] = InPost("https://inpost.invalid")
    return found


def recorded(slug: str) -> list[tuple[str, bytes]]:
    """(tracking number, body) of every 200 payload that describes a parcel."""
    cases = []
    for raw in sorted((PAYLOADS / slug).glob("*.json")):
        if raw.name.endswith(".expected.json") or re.search(r"\.http\d{3}$", raw.stem):
            continue
        expected = json.loads(raw.with_name(raw.stem + ".expected.json").read_text("utf-8"))
        if expected["found"] and expected["events"]:
            cases.append((expected["tracking_number"], raw.read_bytes()))
    return cases


def per_parcel_us(
    fn: Callable[[str, bytes], Any], cases: list[tuple[str, bytes]], rounds: int
) -> float:
    """Mean over the parcels of each parcel's best time (best of 7 runs of `rounds` calls),
    in microseconds: the minimum filters out noise from other processes on the machine."""
    total = 0.0
    for number, body in cases:
        best = float("inf")
        for _ in range(7):
            start = time.perf_counter()
            for _ in range(rounds):
                fn(number, body)
            best = min(best, (time.perf_counter() - start) / rounds)
        total += best
    return total / len(cases) * 1e6


def _parse(adapter: Carrier, number: str, body: bytes) -> Any:
    return adapter.parse_response(number, 200, body)


def karrio_parsers() -> dict[str, Callable[[str, bytes], str]]:
    """slug -> parse(number, body) returning karrio's status, for what is importable."""
    parsers: dict[str, Callable[[str, bytes], str]] = {}
    try:
        import karrio.lib as lib
        from karrio.mappers.ups.settings import Settings as UpsSettings
        from karrio.providers.ups.tracking import parse_tracking_response as ups_parse
    except ImportError:
        pass
    else:
        ups_settings = UpsSettings(client_id="id", client_secret="secret", account_number="A1")

        def ups(number: str, body: bytes) -> str:
            response = lib.Deserializable(
                [(number, body.decode())], lambda res: [(n, lib.to_dict(d)) for n, d in res]
            )
            details, _ = ups_parse(response, ups_settings)
            return details[0].status if details else "-"

        parsers["ups"] = ups
    try:
        import karrio.lib as lib
        from karrio.mappers.dhl_universal.settings import Settings as DhlSettings
        from karrio.providers.dhl_universal.tracking import parse_tracking_response as dhl_parse
    except ImportError:
        pass
    else:
        dhl_settings = DhlSettings(consumer_key="key", consumer_secret="secret")

        def dhl(number: str, body: bytes) -> str:
            response = lib.Deserializable(
                [body.decode()], lambda res: [lib.to_dict(r) for r in res]
            )
            details, _ = dhl_parse(response, dhl_settings)
            return details[0].status if details else "-"

        parsers["dhl"] = dhl
    return parsers


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=100, help="calls per timed run")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # the unknown-code cases log on purpose

    karrio = karrio_parsers()
    print(f"python {sys.version.split()[0]}; per parcel, best of 7 runs of {args.rounds} calls")
    from orjson import loads as fast_loads

    header = f"{'carrier':8} {'parcels':>7} {'json.loads':>11} {'orjson':>8} {'aftersale':>10}"
    header += f" {'ratio':>6}"
    print(header + f" {'karrio':>9} {'karrio/ours':>11}  verdict")
    ok = True
    mismatches: list[str] = []
    karrio_errors: list[str] = []
    for slug, adapter in adapters().items():
        cases = recorded(slug)
        if not cases:
            print(f"{slug:8} no recorded parcels")
            continue
        floor = per_parcel_us(lambda _n, b: json.loads(b), cases, args.rounds)
        fast = per_parcel_us(lambda _n, b: fast_loads(b), cases, args.rounds)
        parse = partial(_parse, adapter)
        ours = per_parcel_us(parse, cases, args.rounds)
        ratio = ours / floor
        passed = ours <= TARGET_US and ratio <= TARGET_RATIO
        ok &= passed
        theirs_text, speedup = "n/a", ""
        if slug in karrio:
            statuses: dict[str, str] = {}
            usable = []
            for number, body in cases:
                try:
                    statuses[number] = str(karrio[slug](number, body))
                    usable.append((number, body))
                except Exception as exc:  # karrio's failures are part of the comparison
                    karrio_errors.append(f"  {slug} {number}: karrio raised {exc!r}"[:160])
            theirs = per_parcel_us(karrio[slug], usable, max(1, args.rounds // 10))
            ours_same = per_parcel_us(parse, usable, args.rounds)
            theirs_text, speedup = f"{theirs:7.1f}us", f"{theirs / ours_same:10.1f}x"
            for number, body in usable:
                status = str(adapter.parse_response(number, 200, body).status)
                if status != statuses[number]:
                    mismatches.append(
                        f"  {slug} {number}: aftersale {status}, karrio {statuses[number]}"
                    )
        print(
            f"{slug:8} {len(cases):7d} {floor:9.1f}us {fast:6.1f}us {ours:8.1f}us {ratio:5.1f}x"
            f" {theirs_text:>9} {speedup:>11}  {'PASS' if passed else 'FAIL'}"
        )
    print(f"target: <= {TARGET_US:.0f} us per parcel and <= {TARGET_RATIO:.0f}x json.loads")
    if not karrio:
        print("karrio parsers not importable: no comparison (see module docstring)")
    if karrio_errors:
        print("payloads karrio could not parse (left out of its timing):")
        print("\n".join(karrio_errors))
    if mismatches:
        print("status where karrio differs (karrio's vocabulary: pending, on_hold, ...):")
        print("\n".join(mismatches))
    print("overall:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
