"""Load `rules/*.yaml` into a compiled `RuleSet`, reporting every problem of every file at once.

Each problem reads `rules/FILE.yaml:LINE:COL rule 'ID': what is wrong (did you mean '…'?)`.
YAML keeps its line and column (ruamel.yaml); structure is checked by the pydantic
models in `rulemodels`, meaning (fields, templates, durations, rule references) here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.nodes import MappingNode, Node, SequenceNode

from aftersale.carriers_meta import Carriers
from aftersale.decide.conditions import (
    EVENTS_WITHOUT_SHIPMENT,
    OPERATORS,
    FieldSpec,
    check_condition,
    compile_condition,
    fields_for,
    invert,
    parse_duration,
    parse_window,
    suggest,
    window_problem,
)
from aftersale.decide.schema import (
    Cap,
    CapModel,
    Case,
    CaseCustomerModel,
    CaseItemModel,
    CaseModel,
    CaseOrderModel,
    CaseRefundModel,
    CaseReturnModel,
    CaseShopModel,
    ConditionModel,
    DefaultsModel,
    FileModel,
    MessageKind,
    OnceScope,
    Rule,
    RuleModel,
    ScanModel,
)
from aftersale.errors import RuleSetError
from aftersale.models import ChannelKind, DelayReason, DomainEvent, EventKind, Status
from aftersale.tracking.detect import DelayThresholds

TemplateExists = Callable[[str, ChannelKind], bool]

#: The template names the shipped rule set uses; suggestions for misspelt ones.
KNOWN_TEMPLATES = (
    "thank_you",
    "shipped",
    "arriving_tomorrow",
    "out_for_delivery",
    "delivery_attempted",
    "delayed",
    "available_for_pickup",
    "pickup_reminder",
    "undeliverable",
    "returned_to_sender",
    "delivered",
    "setup_tip",
    "review_request",
    "warranty_expiry",
    "fulfilment_delayed",
    "return_requested",
    "return_in_transit",
    "return_received",
    "refund_issued",
    "return_window_ending",
    "return_declined",
)

#: Events a rule selects by `days` (their facts carry it).
_DAYS_EVENTS = frozenset(
    {EventKind.DELIVERED_AGO, EventKind.WARRANTY_ENDING, EventKind.RETURN_WINDOW_ENDING}
)
#: Events whose `reason` names their subject: a delay's reason, a refund's or a return's id.
_REASON_EVENTS = frozenset(
    {
        EventKind.DELAYED,
        EventKind.REFUND_ISSUED,
        EventKind.RETURN_REQUESTED,
        EventKind.RETURN_DECLINED,
    }
)
_DEFAULT_ONCE = {
    EventKind.ORDER_PLACED: OnceScope.ORDER,
    EventKind.WARRANTY_ENDING: OnceScope.ITEM,
    EventKind.REFUND_ISSUED: OnceScope.REASON,  # once per refund
    EventKind.RETURN_REQUESTED: OnceScope.REASON,  # once per return
    EventKind.RETURN_DECLINED: OnceScope.REASON,
    EventKind.FULFILMENT_DELAYED: OnceScope.ORDER,
    EventKind.RETURN_WINDOW_ENDING: OnceScope.ORDER,
}
_ONCE_ALLOWED = {
    OnceScope.ORDER: frozenset(EventKind),
    OnceScope.SHIPMENT: frozenset(EventKind) - EVENTS_WITHOUT_SHIPMENT,
    OnceScope.ITEM: frozenset({EventKind.WARRANTY_ENDING}),
    OnceScope.REASON: _REASON_EVENTS,
    OnceScope.INCIDENT: frozenset({EventKind.DELAYED}),
    OnceScope.DELIVERY_DAY: frozenset({EventKind.DELIVERED_AGO}),
}
_ENUM_NOUNS = {
    "on": ("event", EventKind),
    "status": ("status", Status),
    "reason": ("delay reason", DelayReason),
    "channels": ("channel", ChannelKind),
    "channel": ("channel", ChannelKind),
    "fallback": ("channel", ChannelKind),
    "send_window": ("channel", ChannelKind),
    "quiet_hours": ("channel", ChannelKind),
    "kind": ("message kind", MessageKind),
    "once": ("once scope", OnceScope),
}
_SECTION_MODELS: dict[str, type[BaseModel]] = {
    "rules": RuleModel,
    "when": ConditionModel,
    "caps": CapModel,
    "defaults": DefaultsModel,
    "cases": CaseModel,
    "customer": CaseCustomerModel,
    "order": CaseOrderModel,
    "items": CaseItemModel,
    "scans": ScanModel,
    "shop": CaseShopModel,
    "refunds": CaseRefundModel,
    "returns": CaseReturnModel,
    "": FileModel,
}
_RULE_ID = re.compile(r"^\s*-\s*id:\s*['\"]?([\w.-]+)", re.MULTILINE)
DURATION_HELP = "use a whole number and m, h, d or bd: 10m, 2h, 3d, 2bd"
WINDOW_HELP = "use HH:MM-HH:MM, e.g. 21:00-08:00"


@dataclass(frozen=True, slots=True)
class RuleSet:
    rules: tuple[Rule, ...]
    caps: tuple[Cap, ...] = ()
    cases: tuple[Case, ...] = ()
    by_event: Mapping[EventKind, tuple[Rule, ...]] = field(default_factory=dict)
    by_id: Mapping[str, Rule] = field(default_factory=dict)
    superseded_by: Mapping[str, tuple[Rule, ...]] = field(default_factory=dict)
    _listening: dict[tuple[EventKind, Any], tuple[Rule, ...]] = field(
        default_factory=dict, repr=False, compare=False
    )

    def listening(self, event: DomainEvent) -> tuple[Rule, ...]:
        """The rules whose event and selector (status, reason, days) match, in file order."""
        kind = event.kind
        if kind is EventKind.STATUS_CHANGED:
            selector: Any = event.status
        elif kind is EventKind.DELAYED:
            selector = event.reason
        elif kind in _DAYS_EVENTS:
            selector = event.facts.get("days")
        else:
            selector = None
        cache_key = (kind, selector)
        found = self._listening.get(cache_key)
        if found is None:
            days = event.facts.get("days")
            found = tuple(
                r
                for r in self.by_event.get(kind, ())
                if r.listens(event.status, event.reason, days)
            )
            self._listening[cache_key] = found
        return found

    @classmethod
    def build(
        cls, rules: Sequence[Rule], caps: Sequence[Cap] = (), cases: Sequence[Case] = ()
    ) -> RuleSet:
        by_event: dict[EventKind, list[Rule]] = {}
        superseded_by: dict[str, list[Rule]] = {}
        for rule in rules:
            by_event.setdefault(rule.on, []).append(rule)
            for victim in rule.supersedes:
                superseded_by.setdefault(victim, []).append(rule)
        return cls(
            rules=tuple(rules),
            caps=tuple(caps),
            cases=tuple(cases),
            by_event={k: tuple(v) for k, v in by_event.items()},
            by_id={r.id: r for r in rules},
            superseded_by={k: tuple(v) for k, v in superseded_by.items()},
        )

    def due_thresholds(self, base: DelayThresholds) -> DelayThresholds:
        """`base` asking detection for exactly the delivered/warranty days these rules use."""
        delivered = sorted(
            {r.days for r in self.rules if r.on is EventKind.DELIVERED_AGO and r.days}
        )
        warranty = sorted(
            {r.days for r in self.rules if r.on is EventKind.WARRANTY_ENDING and r.days}
        )
        returns = sorted(
            {r.days for r in self.rules if r.on is EventKind.RETURN_WINDOW_ENDING and r.days}
        )
        return replace(
            base,
            delivered_ago_days=tuple(delivered),
            warranty_ending_days=tuple(warranty),
            return_window_days=tuple(returns),
        )


def rule_files(rules_dir: Path) -> list[Path]:
    return sorted(p for p in rules_dir.glob("*.yaml") if p.is_file())


def load_ruleset(
    paths: Sequence[Path],
    *,
    carriers: Carriers,
    template_exists: TemplateExists | None = None,
    categories: Sequence[str] | None = None,
) -> RuleSet:
    """Validate and compile the rules files; raise `RuleSetError` listing every problem.
    `carriers` is the directory conditions and cases may name carriers from; `categories`
    (the product catalogue's) the categories they may name, when known."""
    ruleset, problems = read_ruleset(
        paths, carriers=carriers, template_exists=template_exists, categories=categories
    )
    if problems:
        raise RuleSetError(problems)
    return ruleset


def read_ruleset(
    paths: Sequence[Path],
    *,
    carriers: Carriers,
    template_exists: TemplateExists | None = None,
    categories: Sequence[str] | None = None,
) -> tuple[RuleSet, list[str]]:
    """(the rules that are fine, every problem in file order): `check` goes on with the
    rules that compiled. A reference to a rule that is defined but broken is not a second
    problem, and every reference to one unknown rule id is one problem."""
    problems: list[str] = []
    rules: list[Rule] = []
    caps: list[Cap] = []
    cases: list[tuple[Case, _Where]] = []
    first_seen: dict[str, str] = {}
    defaults: tuple[DefaultsModel, str] | None = None
    windows_default: dict[ChannelKind, Any] = {}
    refs: list[tuple[_Where, str, str, str]] = []  # (where, subject, rule id, what refers)
    parsed = []
    defined: set[str] = set()  # every rule id written, even of rules with problems
    for path in paths:
        loaded = _FileLoader(path, problems, carriers, categories)
        defined.update(loaded.defined)  # a file that is not YAML still names its rules
        if loaded.data is None:
            continue
        parsed.append(loaded)
        d = loaded.defaults()
        if d is not None:
            if defaults is not None:
                problems.append(
                    f"{loaded.where(loaded.data, 'defaults')} defaults: defined again "
                    f"(first in {defaults[1]}); keep one defaults section"
                )
            else:
                defaults = (d, loaded.where(loaded.data, "defaults"))
                windows_default = loaded.windows(d, loaded.data["defaults"], "defaults")
    for loaded in parsed:
        for rule, where in loaded.rules(windows_default, template_exists):
            refs.extend((where, f"rule '{rule.id}'", v, "supersedes") for v in rule.supersedes)
            if rule.id in first_seen:
                problems.append(
                    f"{where.at('id')} rule '{rule.id}': duplicate rule id "
                    f"(first defined at {first_seen[rule.id]})"
                )
                continue
            first_seen[rule.id] = rule.source
            rules.append(rule)
        defined.update(loaded.defined)
        caps.extend(loaded.caps(refs))
        cases.extend(loaded.cases())
    for case, where in cases:
        for key in ("should_send", "should_not_send"):
            for ref in getattr(case.model, key):
                rule_id, _, channel = ref.partition(":")
                refs.append((where, f"case '{case.name}'", rule_id, key))
                if channel and channel not in tuple(ChannelKind):
                    problems.append(
                        f"{where.at(key)} case '{case.name}': unknown channel '{channel}'"
                        + suggest(channel, tuple(ChannelKind))
                    )
    problems.extend(_unknown_references(refs, defined))
    order = {str(p.relative_to(p.parent.parent).as_posix()): i for i, p in enumerate(paths)}
    problems.sort(key=lambda text: _sort_key(text, order))
    # a case names rules by id: with a rule missing, the cases would only echo that
    runnable = [c for c, _ in cases] if not problems else []
    return RuleSet.build(rules, caps, runnable), problems


def _unknown_references(refs: list[tuple[_Where, str, str, str]], defined: set[str]) -> list[str]:
    """One problem per unknown rule id, at its first reference, naming the others."""
    by_id: dict[str, list[tuple[str, str]]] = {}
    for where, subject, rule_id, key in refs:
        rule_id = rule_id.split(":")[0]
        if rule_id not in defined:
            by_id.setdefault(rule_id, []).append((where.at(key), subject))
    problems = []
    for rule_id, places in by_id.items():
        (first, subject), others = places[0], list(dict.fromkeys(p for p, _ in places[1:]))
        others = [p for p in others if p != first]
        shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
        also = f"; also named at {shown}" if others else ""
        problems.append(
            f"{first} {subject}: unknown rule '{rule_id}'{suggest(rule_id, defined)}{also}"
        )
    return problems


def check_rules(
    rules_dir: Path,
    *,
    carriers: Carriers,
    template_exists: TemplateExists | None = None,
    categories: Sequence[str] | None = None,
) -> list[str]:
    """Every problem of the rules directory, or []."""
    return read_ruleset(
        rule_files(rules_dir),
        carriers=carriers,
        template_exists=template_exists,
        categories=categories,
    )[1]


# --- one file -------------------------------------------------------------------------


class _Where:
    """Positions inside one YAML mapping of one file, formatted `file:line:col`."""

    def __init__(self, display: str, node: Any) -> None:
        self.display = display
        self.node = node

    def at(self, key: Any = None, *, as_key: bool = False) -> str:
        line, col = _position(self.node, key, as_key)
        return f"{self.display}:{line}:{col}"


def _position(node: Any, key: Any, as_key: bool) -> tuple[int, int]:
    lc = getattr(node, "lc", None)
    if lc is None:
        return 1, 1
    try:
        if key is None:
            line, col = lc.line, lc.col
        elif isinstance(key, int):
            line, col = lc.item(key)
        elif as_key:
            line, col = lc.key(key)
        else:
            line, col = lc.value(key)
    except (KeyError, IndexError, TypeError):
        line, col = lc.line, lc.col
    return line + 1, col + 1


class _FileLoader:
    def __init__(
        self,
        path: Path,
        problems: list[str],
        carriers: Carriers,
        categories: Sequence[str] | None = None,
    ) -> None:
        self.path = path
        self.carriers = carriers
        self.fields: Mapping[str, FieldSpec] = fields_for(carriers, categories)
        self.defined: list[str] = []
        self.display = path.relative_to(path.parent.parent).as_posix()
        self.problems = problems
        self.data: Any = None
        self._load()

    def where(self, node: Any, key: Any = None, as_key: bool = False) -> str:
        return _Where(self.display, node).at(key, as_key=as_key)

    def _load(self) -> None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            self.problems.append(f"{self.display}:1:1 file: cannot read: {exc}")
            return
        yaml = YAML()
        yaml.allow_duplicate_keys = True  # reported below, with their positions
        try:
            root = yaml.compose(text)
        except MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
            self.problems.append(f"{self.display}:{line}:{col} file: invalid YAML: {exc.problem}")
            # the rules it defines are still known by id: references to them are no problem
            self.defined = _RULE_ID.findall(text)
            return
        dupes = _duplicate_keys(root)
        for line, col, subject, key in dupes:
            self.problems.append(f"{self.display}:{line}:{col} {subject}: duplicate key '{key}'")
        # built from the tree just composed: parsing the text again costs as much again
        data = yaml.constructor.construct_document(root) if root is not None else None
        if data is None:
            return
        if not hasattr(data, "items"):
            self.problems.append(
                f"{self.display}:1:1 file: expected a mapping with 'rules', 'caps', "
                f"'defaults' or 'cases'"
            )
            return
        try:
            FileModel.model_validate(dict(data))
        except ValidationError as exc:
            self._report(exc, data, "file", ())
            data = {k: v for k, v in data.items() if k in FileModel.model_fields}
        self.data = data

    def _report(
        self, exc: ValidationError, node: Any, subject: str, prefix: tuple[Any, ...]
    ) -> None:
        for error in exc.errors():
            self.problems.append(
                f"{self._locate(node, error)} {subject}: {_explain(error, prefix)}"
            )

    def _locate(self, node: Any, error: Any) -> str:
        """Walk the error's path into the YAML data: at a key for unknown keys, else the value."""
        loc = tuple(error["loc"])
        as_key = error["type"] == "extra_forbidden" or (bool(loc) and loc[-1] == "[key]")
        parts = [p for p in loc if p != "[key]"]
        cursor = node
        for i, part in enumerate(parts):
            try:
                child = cursor[part]
            except (KeyError, IndexError, TypeError):
                return self.where(cursor)
            if i == len(parts) - 1:
                return self.where(cursor, part, as_key=as_key and not isinstance(part, int))
            cursor = child
        return self.where(cursor)

    def _validate(self, model: type[BaseModel], raw: Any, subject: str, prefix: tuple) -> Any:
        if not hasattr(raw, "items"):
            self.problems.append(f"{self.where(raw)} {subject}: expected a mapping")
            return None
        try:
            return model.model_validate(dict(raw))
        except ValidationError as exc:
            self._report(exc, raw, subject, prefix)
            return None

    def defaults(self) -> DefaultsModel | None:
        raw = self.data.get("defaults")
        if raw is None:
            return None
        return self._validate(DefaultsModel, raw, "defaults", ("defaults",))

    def windows(self, model: Any, raw: Any, subject: str) -> dict[ChannelKind, Any]:
        """Per channel send windows from `send_window` and (inverted) `quiet_hours`."""
        out: dict[ChannelKind, Any] = {}
        for key, invert_it in (("quiet_hours", True), ("send_window", False)):
            for channel, text in getattr(model, key).items():
                window = parse_window(text)
                where = self.where(raw[key], str(channel))
                if window is None:
                    self.problems.append(
                        f"{where} {subject}: bad time window '{text}' ({WINDOW_HELP})"
                    )
                    continue
                wrong = window_problem(window, quiet=invert_it)
                if wrong:
                    self.problems.append(f"{where} {subject}: {channel}: {wrong}")
                    continue
                out[channel] = invert(window) if invert_it else window
        return out

    def rules(
        self, windows_default: Mapping[ChannelKind, Any], template_exists: TemplateExists | None
    ) -> list[tuple[Rule, _Where]]:
        raw_rules = self.data.get("rules")
        if raw_rules is None:
            return []
        if not isinstance(raw_rules, list):
            self.problems.append(f"{self.where(self.data, 'rules')} file: 'rules' must be a list")
            return []
        out = []
        for index, raw in enumerate(raw_rules):
            rule_id = raw.get("id") if hasattr(raw, "get") else None
            subject = f"rule '{rule_id}'" if isinstance(rule_id, str) else f"rule #{index + 1}"
            if isinstance(rule_id, str):
                self.defined.append(rule_id)
            model = self._validate(RuleModel, raw, subject, ("rules",))
            if model is None:
                continue
            rule = self._compile_rule(model, raw, subject, windows_default, template_exists)
            if rule is not None:
                out.append((rule, _Where(self.display, raw)))
        return out

    def _compile_rule(
        self,
        m: RuleModel,
        raw: Any,
        subject: str,
        windows_default: Mapping[ChannelKind, Any],
        template_exists: TemplateExists | None,
    ) -> Rule | None:
        before = len(self.problems)

        def problem(key: Any, text: str, node: Any = raw, as_key: bool = False) -> None:
            self.problems.append(f"{self.where(node, key, as_key)} {subject}: {text}")

        if m.status is not None and m.on is not EventKind.STATUS_CHANGED:
            problem("status", f"'status' only applies to 'status_changed', not '{m.on}'")
        if m.reason is not None and m.on is not EventKind.DELAYED:
            problem("reason", f"'reason' only applies to 'delayed', not '{m.on}'")
        needs_days = m.on in _DAYS_EVENTS
        if needs_days and m.days is None:
            problem("on", f"'{m.on}' needs 'days' (e.g. days: 3)")
        if m.days is not None and not needs_days:
            problem(
                "days",
                "'days' only applies to 'delivered_ago', 'warranty_ending' and "
                "'return_window_ending'",
            )
        once = m.once or _DEFAULT_ONCE.get(m.on, OnceScope.SHIPMENT)
        if m.on not in _ONCE_ALLOWED[once]:
            problem("once", f"once: {once} does not fit event '{m.on}'")
        for src, dst in m.fallback.items():
            if src not in m.channels:
                problem("fallback", f"fallback from '{src}', which is not among the channels")
            if src == dst:
                problem("fallback", f"'{src}' cannot fall back to itself")
        after = before_d = None
        for key in ("after", "before"):
            value = getattr(m, key)
            if value is not None:
                duration = parse_duration(value)
                if duration is None:
                    problem(key, f"bad duration '{value}' ({DURATION_HELP})")
                elif key == "after":
                    after = duration
                else:
                    before_d = duration
        windows = dict(windows_default)
        windows.update(self.windows(m, raw, subject))
        templates_ok = self._check_template(m, raw, subject, template_exists)
        conditions = []
        for raw_cond in raw.get("when") or ():
            cond = self._validate(ConditionModel, raw_cond, subject, ("when",))
            compiled = self._condition(cond, raw_cond, subject, m.on) if cond else None
            if compiled is not None:
                conditions.append(compiled)
        if len(self.problems) > before or not templates_ok:
            return None
        return Rule(
            id=m.id,
            on=m.on,
            status=m.status,
            reason=str(m.reason) if m.reason else None,
            days=m.days,
            template=m.template,
            channels=tuple(dict.fromkeys(m.channels)),
            fallback=dict(m.fallback),
            marketing=m.kind is MessageKind.MARKETING,
            once=once,
            after=after,
            before=before_d,
            windows=windows,
            priority=m.priority,
            supersedes=tuple(m.supersedes),
            collapse=m.collapse,
            conditions=tuple(conditions),
            source=self.where(raw).rsplit(":", 1)[0],
        )

    def _check_template(
        self, m: RuleModel, raw: Any, subject: str, template_exists: TemplateExists | None
    ) -> bool:
        if template_exists is None:
            return True
        ok = True
        for channel in dict.fromkeys([*m.channels, *m.fallback.values()]):
            if template_exists(m.template, channel):
                continue
            ok = False
            known = [t for t in KNOWN_TEMPLATES if template_exists(t, channel)]
            if any(template_exists(m.template, c) for c in ChannelKind):
                text = f"template '{m.template}' has no {channel} version"
            else:
                text = f"unknown template '{m.template}'" + suggest(m.template, known)
            self.problems.append(f"{self.where(raw, 'template')} {subject}: {text}")
            break
        return ok

    def _condition(self, cond: ConditionModel, raw: Any, subject: str, on: EventKind) -> Any:
        def problem(key: Any, text: str) -> None:
            self.problems.append(f"{self.where(raw, key)} {subject}: {text}")

        spec = self.fields.get(cond.field)
        if spec is None:
            problem(
                "field", f"unknown field '{cond.field}'" + suggest(cond.field, list(self.fields))
            )
            return None
        ops = [op for op in OPERATORS if op in raw]
        if len(ops) != 1:
            what = "no operator" if not ops else f"{len(ops)} operators"
            problem(
                "field", f"{what} for '{cond.field}': give exactly one of {', '.join(OPERATORS)}"
            )
            return None
        op = ops[0]
        if spec.needs_shipment and on in EVENTS_WITHOUT_SHIPMENT:
            problem("field", f"field '{cond.field}' is not available for event '{on}'")
            return None
        value = getattr(cond, "in_" if op == "in" else op)
        wrong = check_condition(cond.field, spec, op, value)
        if wrong:
            problem(op, wrong)
            return None
        return compile_condition(cond.field, op, value)

    def caps(self, refs: list[tuple[_Where, str, str, str]]) -> list[Cap]:
        raw_caps = self.data.get("caps")
        if raw_caps is None:
            return []
        if not isinstance(raw_caps, list):
            self.problems.append(f"{self.where(self.data, 'caps')} caps: must be a list")
            return []
        out = []
        for index, raw in enumerate(raw_caps):
            subject = f"cap #{index + 1}"
            model = self._validate(CapModel, raw, subject, ("caps",))
            if model is None:
                continue
            per = parse_duration(model.per)
            if per is None or per.unit == "bd":
                self.problems.append(
                    f"{self.where(raw, 'per')} {subject}: bad duration '{model.per}' "
                    f"(use a whole number and m, h or d: 24h, 1d)"
                )
                continue
            where = _Where(self.display, raw)
            refs.extend((where, subject, rule_id, "except") for rule_id in model.except_)
            out.append(
                Cap(model.channel, model.max, per, frozenset(model.except_), model.marketing_only,
                    self.where(raw).rsplit(":", 1)[0])
            )  # fmt: skip
        return out

    def cases(self) -> list[tuple[Case, _Where]]:
        raw_cases = self.data.get("cases")
        if raw_cases is None:
            return []
        if not isinstance(raw_cases, list):
            self.problems.append(f"{self.where(self.data, 'cases')} cases: must be a list")
            return []
        out = []
        for index, raw in enumerate(raw_cases):
            name = raw.get("name") if hasattr(raw, "get") else None
            subject = f"case '{name}'" if isinstance(name, str) else f"case #{index + 1}"
            model = self._validate(CaseModel, raw, subject, ("cases",))
            if model is None:
                continue
            if model.now.tzinfo is None or any(s.at.tzinfo is None for s in model.scans):
                self.problems.append(
                    f"{self.where(raw)} {subject}: times need a zone, e.g. 2026-03-02T09:00:00Z"
                )
                continue
            if model.carrier is not None and model.carrier not in self.carriers:
                self.problems.append(
                    f"{self.where(raw, 'carrier')} {subject}: unknown carrier '{model.carrier}'"
                    + (
                        suggest(model.carrier, self.carriers.slugs)
                        or f" (one of: {', '.join(self.carriers.slugs)})"
                    )
                )
                continue
            if self._case_values(raw, subject):
                continue
            source = self.where(raw).rsplit(":", 1)[0]
            out.append((Case(model.name, source, model), _Where(self.display, raw)))
        return out

    def _case_values(self, raw: Any, subject: str) -> bool:
        """A case's customer and items are checked like conditions' values: a case with a
        misspelt locale or category would test something no customer has."""
        written: list[tuple[Any, str, str]] = []  # (node, key, field)
        customer = raw.get("customer")
        if hasattr(customer, "get"):
            written.extend(
                (customer, key, f"customer.{key}")
                for key in ("locale", "country", "time_zone")
                if isinstance(customer.get(key), str)
            )
        order = raw.get("order")
        items = order.get("items") if hasattr(order, "get") else None
        for item in items if isinstance(items, list) else ():
            if hasattr(item, "get") and isinstance(item.get("category"), str):
                written.append((item, "category", "items.category"))
        before = len(self.problems)
        for node, key, field_name in written:
            wrong = check_condition(field_name, self.fields[field_name], "eq", node[key])
            if wrong:
                self.problems.append(f"{self.where(node, key)} {subject}: {wrong}")
        return len(self.problems) > before


def _sort_key(problem: str, order: Mapping[str, int]) -> tuple[int, int, int]:
    match = re.match(r"^(.*?):(\d+):(\d+) ", problem)
    if not match:
        return (len(order), 0, 0)
    return (order.get(match.group(1), len(order)), int(match.group(2)), int(match.group(3)))


#: Words marketers reach for, and the operator they mean.
OPERATOR_SYNONYMS = {"equals": "eq", "is": "eq", "not": "ne", "one_of": "in", "min": "gte",
                     "max": "lte", "above": "gt", "below": "lt", "contains": "in"}  # fmt: skip


def _explain(error: Any, prefix: tuple[Any, ...]) -> str:
    """One pydantic error in a marketer's words."""
    loc = [p for p in error["loc"] if p != "[key]"]
    names = [p for p in loc if isinstance(p, str)]
    name = names[-1] if names else ""
    kind = error["type"]
    if kind == "missing":
        return f"missing required field '{name}'"
    if kind == "extra_forbidden":
        section = [p for p in (*prefix, *loc[:-1]) if isinstance(p, str)]
        model = _SECTION_MODELS.get(section[-1] if section else "", FileModel)
        keys = {f.alias or n for n, f in model.model_fields.items()}
        if model is ConditionModel and name in OPERATOR_SYNONYMS:
            return f"unknown field '{name}' (did you mean '{OPERATOR_SYNONYMS[name]}'?)"
        return f"unknown field '{name}'" + suggest(str(name), keys)
    if kind == "enum" and name in _ENUM_NOUNS:
        noun, enum = _ENUM_NOUNS[name]
        value = str(error["input"])
        choices = [str(v) for v in enum]
        hint = suggest(value, choices) or f" (one of: {', '.join(choices)})"
        return f"unknown {noun} '{value}'{hint}"
    message = error["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    return f"{name}: {message[0].lower()}{message[1:]}" if name else message


def _duplicate_keys(root: Node | None) -> list[tuple[int, int, str, str]]:
    """(line, col, subject, key) for every key given twice in one mapping."""
    found: list[tuple[int, int, str, str]] = []

    def walk(node: Node, subject: str) -> None:
        if isinstance(node, MappingNode):
            seen: set[str] = set()
            for key_node, _ in node.value:
                key = str(key_node.value)
                if key in seen:
                    mark = key_node.start_mark
                    found.append((mark.line + 1, mark.column + 1, subject, key))
                seen.add(key)
            for key_node, value_node in node.value:
                if subject == "file" and key_node.value in ("rules", "cases", "caps"):
                    _walk_section(value_node, str(key_node.value))
                else:
                    walk(value_node, subject)
        elif isinstance(node, SequenceNode):
            for child in node.value:
                walk(child, subject)

    def _walk_section(node: Node, section: str) -> None:
        if not isinstance(node, SequenceNode):
            walk(node, "file")
            return
        for index, child in enumerate(node.value):
            walk(child, _section_subject(section, index, child))

    if root is not None:
        walk(root, "file")
    return found


def _section_subject(section: str, index: int, node: Node) -> str:
    noun = {"rules": "rule", "cases": "case", "caps": "cap"}[section]
    key = {"rules": "id", "cases": "name"}.get(section)
    if key and isinstance(node, MappingNode):
        for key_node, value_node in node.value:
            if key_node.value == key and isinstance(value_node.value, str):
                return f"{noun} '{value_node.value}'"
    return f"{noun} #{index + 1}"
