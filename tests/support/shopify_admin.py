"""A local fake of the Shopify Admin GraphQL endpoint (API 2025-10) on 127.0.0.1, for the
reconcile tests and for trying docs/shops.md without a shop.

It answers `orders(first:, after:, query: "updated_at:>'…'", sortKey: UPDATED_AT)` and
`order(id:)` from GraphQL order nodes held in memory. Each answer is projected from the
query's own selection set: a field the client does not ask for is not returned, and a field
the stored nodes lack is refused the way Shopify refuses an unknown field. Lists and
connections honour `first` (and `after`, by cursor). Costs follow Shopify's published rule
(an object 1, a scalar 0, a connection 2 + first × its node), the bucket refills at
`restore_rate` points a second on the given clock, a query asking more than is available is
answered THROTTLED, and one above `max_cost` MAX_COST_EXCEEDED.

By hand: python -m tests.support.shopify_admin --port 8790 [--orders FILE] [--token T]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.support.servers import free_port

PATH = "/admin/api/2025-10/graphql.json"
ORDERS = (
    Path(__file__).parent.parent / "intake" / "shops" / "payloads" / "shopify_admin_orders.json"
)

# --- just enough GraphQL: fields, arguments, selection sets ---------------------------

_TOKEN = re.compile(r'\s*(?:(\.\.\.|[{}()\[\]:!$=,])|("(?:[^"\\]|\\.)*")|(-?\d+)|([A-Za-z_]\w*))')


@dataclass
class Field:
    name: str
    args: dict[str, Any] = field(default_factory=dict)
    selections: list[Field] | None = None
    #: an inline fragment (`... on Type { … }`): its fields apply when the value is a Type
    on_type: str | None = None


def parse_query(text: str, variables: dict[str, Any]) -> list[Field]:
    """The top-level fields of the one operation in `text`, variables filled in."""
    tokens = [m.group(m.lastindex or 0) for m in _TOKEN.finditer(text) if m.lastindex]
    start = tokens.index("{")
    selections, _ = _selection_set(tokens, start, variables)
    return selections


def _selection_set(tokens: list[str], i: int, variables: dict[str, Any]) -> tuple[list[Field], int]:
    assert tokens[i] == "{", f"expected {{ at token {i}"
    i += 1
    fields = []
    while tokens[i] != "}":
        if tokens[i] == "...":
            assert tokens[i + 1] == "on", "only inline fragments (... on Type)"
            fragment = Field("...", on_type=tokens[i + 2])
            fragment.selections, i = _selection_set(tokens, i + 3, variables)
            fields.append(fragment)
            continue
        item = Field(tokens[i])
        i += 1
        if tokens[i] == "(":
            i += 1
            while tokens[i] != ")":
                name, colon, value = tokens[i], tokens[i + 1], tokens[i + 2]
                assert colon == ":", f"expected : after argument {name}"
                i += 3
                if value == "$":
                    value, i = variables.get(tokens[i]), i + 1
                elif value.startswith('"'):
                    value = json.loads(value)
                elif re.fullmatch(r"-?\d+", value):
                    value = int(value)
                item.args[name] = value
                if tokens[i] == ",":
                    i += 1
            i += 1
        if tokens[i] == "{":
            item.selections, i = _selection_set(tokens, i, variables)
        fields.append(item)
    return fields, i + 1


# --- cost, projection --------------------------------------------------------------


def requested_cost(fields: list[Field]) -> int:
    """Shopify's rule: scalar 0, object 1, a connection 2 + first × its nodes, a list
    cut by `first` first × its item."""
    total = 0
    for f in fields:
        if f.selections is None:
            continue
        inner = requested_cost([s for s in f.selections if s.name != "pageInfo"])
        if f.on_type is not None:  # a fragment adds its fields to the object it is in
            total += inner
            continue
        if "first" in f.args and any(s.name == "nodes" for s in f.selections):
            nodes = next(s for s in f.selections if s.name == "nodes")
            total += 2 + int(f.args["first"]) * requested_cost(nodes.selections or [])
        elif f.name == "nodes":
            total += inner
        elif "first" in f.args:
            total += int(f.args["first"]) * (1 + inner)
        else:
            total += 1 + inner
    return total


class UnknownField(Exception):
    pass


def project(value: Any, selections: list[Field] | None, counter: list[int]) -> Any:
    """`value` cut to what the selection asks for; counter[0] adds up the objects returned
    (the actual cost)."""
    if selections is None or value is None:
        return value
    if isinstance(value, list):
        return [project(v, selections, counter) for v in value]
    counter[0] += 1
    out = {}
    for f in selections:
        if f.on_type is not None:
            # a union's member: its fields when the value is of that type (`__typename`)
            if value.get("__typename") == f.on_type:
                counter[0] -= 1  # the same object, not another
                out.update(project(value, f.selections, counter))
            continue
        if f.name not in value:
            raise UnknownField(f.name)
        found = value[f.name]
        if "first" in f.args and isinstance(found, list):
            found = _page(found, f, counter)
        out[f.name] = project(found, f.selections, counter)
    return out


def _page(items: list[Any], f: Field, counter: list[int]) -> Any:
    start = int(_cursor_offset(f.args.get("after")))
    chosen = items[start : start + int(f.args["first"])]
    if not any(s.name in ("nodes", "edges", "pageInfo") for s in f.selections or []):
        return chosen  # a plain list cut at `first`
    counter[0] += 2
    end = start + len(chosen)
    return {
        "nodes": chosen,
        "edges": [{"cursor": _cursor(start + n + 1), "node": n_} for n, n_ in enumerate(chosen)],
        "pageInfo": {
            "hasNextPage": end < len(items),
            "endCursor": _cursor(end) if chosen else None,
        },
    }


def _cursor(offset: int) -> str:
    return base64.b64encode(f"offset:{offset}".encode()).decode()


def _cursor_offset(cursor: Any) -> int:
    return int(base64.b64decode(cursor).decode().split(":")[1]) if cursor else 0


# --- the shop --------------------------------------------------------------------


@dataclass
class FakeShop:
    """The fake's state: orders (GraphQL nodes), its bucket, its clock, what it was asked."""

    orders: list[dict[str, Any]]
    token: str = "shpat_test"
    clock: Callable[[], float] = time.monotonic
    maximum: float = 1000.0
    restore_rate: float = 100.0
    available: float = 1000.0
    max_cost: int = 1000
    #: HTTP statuses to answer with before serving normally (a 502 from Shopify's edge)
    faults: list[int] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    #: per query answered: operation, outcome (ok or the error code), requested cost and
    #: the points available when it came
    log: list[dict[str, Any]] = field(default_factory=list)
    _last: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, token: str | None, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.requests.append(body)
            if self.faults:
                return self.faults.pop(0), {"errors": "Bad gateway"}
            if token != self.token:
                return 401, {
                    "errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"
                }
            self._refill()
            fields = parse_query(body["query"], body.get("variables") or {})
            cost = requested_cost(fields)
            entry = {"operation": body.get("operationName"), "requested": cost}
            self.log.append({**entry, "available": self.available, "outcome": "ok"})
            if cost > self.max_cost:
                self.log[-1]["outcome"] = "MAX_COST_EXCEEDED"
                return 200, self._error(
                    "MAX_COST_EXCEEDED",
                    f"Query cost is {cost}, which exceeds the single query max cost limit "
                    f"({self.max_cost}).",
                    cost,
                    None,
                )
            if self.available < cost:
                self.log[-1]["outcome"] = "THROTTLED"
                return 200, self._error("THROTTLED", "Throttled", cost, None)
            counter = [0]
            try:
                data = {f.name: project(self._resolve(f), f.selections, counter) for f in fields}
            except UnknownField as exc:
                self.log[-1]["outcome"] = "undefinedField"
                return 200, {
                    "errors": [
                        {
                            "message": f"Field '{exc}' doesn't exist on type",
                            "extensions": {"code": "undefinedField"},
                        }
                    ]
                }
            self.available -= counter[0]
            return 200, {"data": data, "extensions": self._cost(cost, counter[0])}

    def _refill(self) -> None:
        now = self.clock()
        if self._last is not None:
            self.available = min(
                self.maximum, self.available + (now - self._last) * self.restore_rate
            )
        self._last = now

    def _resolve(self, f: Field) -> Any:
        if f.name == "orders":
            assert f.args.get("sortKey") == "UPDATED_AT", f.args
            match = re.fullmatch(r"updated_at:>'([^']+)'", f.args.get("query") or "")
            assert match, f"unsupported search {f.args.get('query')!r}"
            chosen = sorted(
                (o for o in self.orders if _utc(o["updatedAt"]) > _utc(match[1])),
                key=lambda o: (_utc(o["updatedAt"]), o["id"]),
            )
            return _page(chosen, f, [0])
        if f.name == "order":
            return next((o for o in self.orders if o["id"] == f.args.get("id")), None)
        raise UnknownField(f.name)

    def _error(self, code: str, message: str, cost: int, actual: int | None) -> dict[str, Any]:
        return {
            "errors": [{"message": message, "extensions": {"code": code}}],
            "extensions": self._cost(cost, actual),
        }

    def _cost(self, requested: int, actual: int | None) -> dict[str, Any]:
        return {
            "cost": {
                "requestedQueryCost": requested,
                "actualQueryCost": actual,
                "throttleStatus": {
                    "maximumAvailable": self.maximum,
                    "currentlyAvailable": self.available,
                    "restoreRate": self.restore_rate,
                },
            }
        }

    def order(self, name: str) -> dict[str, Any]:
        return next(o for o in self.orders if o["name"] == name)


def _utc(text: str) -> str:
    """Comparable text for the ISO times the fake holds (all in UTC, Z or +00:00)."""
    return text.replace("+00:00", "Z")


class FakeShopifyAdmin:
    """`with FakeShopifyAdmin(shop) as fake: fake.url` — a real HTTP server on a free port."""

    def __init__(self, shop: FakeShop, port: int | None = None) -> None:
        self.shop = shop
        self.port = port or free_port()
        state = shop

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                if self.path != PATH:
                    return self._send(404, {"errors": "Not Found"})
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                status, answer = state.handle(self.headers.get("X-Shopify-Access-Token"), body)
                self._send(status, answer)

            def _send(self, status: int, answer: dict[str, Any]) -> None:
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{PATH}"

    def __enter__(self) -> FakeShopifyAdmin:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


def load_orders(path: Path = ORDERS) -> list[dict[str, Any]]:
    return json.loads(path.read_text(encoding="utf-8"))


def main() -> None:  # pragma: no cover - run by hand (docs/shops.md)
    parser = argparse.ArgumentParser(description="A local fake of Shopify's Admin GraphQL API")
    parser.add_argument("--port", type=int, default=8790)
    parser.add_argument("--orders", type=Path, default=ORDERS)
    parser.add_argument("--token", default="shpat_test")
    args = parser.parse_args()
    shop = FakeShop(recent(load_orders(args.orders), datetime.now(UTC)), token=args.token)
    with FakeShopifyAdmin(shop, args.port) as fake:
        print(f"Shopify Admin API fake: {fake.url} (token {args.token}); Ctrl-C stops it")
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


def recent(orders: list[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
    """The orders moved in time so the last change was an hour before `now` (a first pull
    looks back a few days only)."""
    newest = max(datetime.fromisoformat(o["updatedAt"]) for o in orders)
    shift = now - timedelta(hours=1) - newest

    def move(value: Any, key: str = "") -> Any:
        if isinstance(value, dict):
            return {k: move(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [move(v) for v in value]
        if key.endswith("At") and isinstance(value, str):
            moved = datetime.fromisoformat(value) + shift
            return moved.strftime("%Y-%m-%dT%H:%M:%SZ")
        return value

    return [move(o) for o in orders]


if __name__ == "__main__":
    main()
