"""`aftersale simulate`: replay a scenario file (orders + timed carrier scans) through the rules.

Prints what would be sent when (in UTC and the recipient's local time) and, for every
event that sends nothing, why not. Nothing is sent and no store is touched.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError

from aftersale.decide.conditions import parse_duration
from aftersale.decide.replay import (
    Parcel,
    SimLine,
    SimOrder,
    SimReturn,
    customer_from,
    items_from,
    replay,
)
from aftersale.decide.ruleset import RuleSet
from aftersale.decide.schema import (
    CaseCustomerModel,
    CaseItemModel,
    CaseRefundModel,
    CaseReturnModel,
    CaseShopModel,
    ScanModel,
)
from aftersale.errors import AftersaleError
from aftersale.models import DeliveryType, Order, ShipmentRef
from aftersale.store.records import RefundRecord
from aftersale.tracking.detect import DelayThresholds
from aftersale.tracking.shop_events import ShopPromises

__all__ = ["ScenarioError", "SimLine", "format_simulation", "load_scenario", "simulate"]


class ScenarioError(AftersaleError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ScenarioCustomer(CaseCustomerModel):
    customer_id: str


class ScenarioShipment(_Model):
    shipment_id: str
    carrier: str
    tracking_number: str
    delivery: DeliveryType | None = None  # locker, pickup_point, access_point, home
    items: list[str] = []  # the SKUs this parcel carries (a split shipment)
    scans: list[ScanModel] = []


class ScenarioOrder(_Model):
    order_id: str
    placed_at: datetime
    promised_delivery: date | None = None
    shipping_country: str | None = None
    customer: ScenarioCustomer
    items: list[CaseItemModel]
    shipments: list[ScenarioShipment] = []
    refunds: list[CaseRefundModel] = []
    returns: list[CaseReturnModel] = []  # each with the scans of the parcel sent back


class Scenario(_Model):
    description: str | None = None
    start: datetime
    end: datetime
    step: str = "1h"
    #: the shop's promises (shop.yaml's time_zone, dispatch_days, return_days)
    shop: CaseShopModel = CaseShopModel()
    orders: list[ScenarioOrder]


def load_scenario(
    path: Path,
) -> tuple[list[SimOrder], datetime, datetime, timedelta, CaseShopModel]:
    """Orders, start, end, cycle step and the shop's promises of a scenario file;
    `ScenarioError` names file:line."""
    try:
        data = YAML().load(path.read_text(encoding="utf-8"))
    except (OSError, MarkedYAMLError) as exc:
        raise ScenarioError([f"{path}: cannot read scenario: {exc}"]) from exc
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError([_problem(path, data, e) for e in exc.errors()]) from exc
    step = parse_duration(scenario.step)
    if step is None or step.unit == "bd":
        raise ScenarioError([f"{path}: step: bad duration '{scenario.step}' (e.g. 15m, 1h)"])
    orders = [_order(o) for o in scenario.orders]
    start = scenario.start.astimezone(UTC)
    end = scenario.end.astimezone(UTC)
    return orders, start, end, step.add(start, "UTC") - start, scenario.shop


def _problem(path: Path, data: Any, error: Any) -> str:
    node, line, col = data, 0, 0
    for part in error["loc"]:
        lc = getattr(node, "lc", None)
        try:
            if lc is not None:
                line, col = lc.item(part) if isinstance(part, int) else lc.value(part)
            node = node[part]
        except (KeyError, IndexError, TypeError):
            break
    field = ".".join(str(p) for p in error["loc"])
    return f"{path}:{line + 1}:{col + 1} {field}: {error['msg']}"


def _order(o: ScenarioOrder) -> SimOrder:
    customer = customer_from(o.customer, o.customer.customer_id)
    items = items_from(o.items)
    parcels = tuple(
        Parcel(
            s.shipment_id,
            s.carrier,
            s.tracking_number,
            tuple(s.scans),
            s.delivery,
            tuple(s.items),
        )
        for s in o.shipments
    )
    order = Order(
        o.order_id,
        o.placed_at.astimezone(UTC),
        customer,
        items,
        tuple(ShipmentRef(p.tracking_number, p.carrier, p.items) for p in parcels),
        promised_delivery=o.promised_delivery,
        shipping_country=o.shipping_country,
    )
    refunds = tuple(
        RefundRecord(
            o.order_id,
            f"{o.order_id}/R{n}",
            Decimal(str(r.amount)),
            r.currency or items[0].currency,
            r.at.astimezone(UTC),
        )
        for n, r in enumerate(o.refunds, start=1)
    )
    returns = tuple(
        SimReturn(
            f"{o.order_id}/RET{n}",
            r.at.astimezone(UTC),
            Parcel(f"{o.order_id}/RET{n}/1", r.carrier, f"{o.order_id}-RET{n}", tuple(r.scans))
            if r.scans
            else None,
            r.declined_at.astimezone(UTC) if r.declined_at else None,
        )
        for n, r in enumerate(o.returns, start=1)
    )
    return SimOrder(order, parcels, refunds, returns)


def simulate(
    scenario_path: Path,
    ruleset: RuleSet,
    *,
    thresholds: DelayThresholds,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[SimLine]:
    """Every send, cancellation and non-send of the scenario, in time order."""
    orders, s, e, step, shop = load_scenario(scenario_path)
    promises = ShopPromises(
        shop.time_zone, shop.dispatch_days, shop.return_days, thresholds.return_window_days
    )
    result = replay(orders, ruleset, start or s, end or e, step, thresholds, promises)
    return result.lines + sorted(result.pending.values(), key=lambda x: x.at)


def format_simulation(lines: Sequence[SimLine]) -> str:
    """One line per send / cancel / skip, grouped by order, times in UTC and local."""
    out: list[str] = []
    for order_id in sorted({x.order_id for x in lines}, key=lambda o: min(
            x.at for x in lines if x.order_id == o)):  # fmt: skip
        out.append(f"order {order_id}")
        for x in (line for line in lines if line.order_id == order_id):
            when = f"{x.at:%Y-%m-%d %H:%M} UTC ({x.local} local)"
            rule = x.rule_id or "-"
            via = f"{x.channel}" if x.channel else "-"
            subject = x.item_sku or x.shipment_id or ""
            if x.kind == "send":
                out.append(f"  {when}  SEND    {rule:<20} {via:<5} {x.event} {subject}".rstrip())
            elif x.kind == "cancel":
                out.append(f"  {when}  CANCEL  {rule:<20} {via:<5} {x.reason}")
            else:
                out.append(f"  {when}  NO SEND {rule:<20} {via:<5} {x.event} {subject}: {x.reason}")
    sends = sum(1 for x in lines if x.kind == "send")
    skips = sum(1 for x in lines if x.kind == "skip")
    out.append(f"{sends} messages would be sent; {skips} events or rules send nothing.")
    return "\n".join(out)
