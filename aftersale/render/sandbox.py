"""The Jinja environment marketers' templates run in: Jinja's immutable sandbox, plus a
time and output budget per render, argument checks on filters, and (for `check`) a strict
mode in which printing an empty or raw value is an error.

A budget is cooperative: every loop step and call of a template asks `tick()`, so a
runaway template (nested loops over `range(99999)`) stops at its line within the budget
instead of hanging a send or the whole cycle; the output's size is checked when it is joined.
"""

from __future__ import annotations

import operator
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from difflib import get_close_matches
from functools import wraps
from typing import Any

from jinja2 import Environment, StrictUndefined, Template, Undefined, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from jinja2.utils import missing
from markupsafe import _escape_inner as _escape_text  # what escape() runs on text
from markupsafe import escape

from aftersale.locales import currencies, is_locale
from aftersale.render.context import Fields, LazyFields
from aftersale.render.filters import NAME_ONLY
from aftersale.render.memo import Memoized, is_shared_part, plan

MAX_SEQUENCE = 100_000  # "a" * 10**9 would exhaust memory: refuse big repeats and widths


@dataclass(frozen=True, slots=True)
class RenderBudget:
    """What one render of one template may use."""

    seconds: float = 1.0  # of CPU time
    steps: int = 100_000  # loop steps and calls: a 20-item order takes a few hundred
    output_chars: int = 262_144  # Gmail clips emails above ~100 KB; far beyond any message


class TemplateMisuse(Exception):
    """A template did something its budget or its data does not allow; the message is in a
    marketer's words and becomes a TemplateError at the template's line."""


class BudgetExceeded(TemplateMisuse):
    """A template used more time or output than its budget."""


class FilterInputError(TemplateMisuse):
    """A filter was given something it cannot work with (nothing, text for an amount...)."""


class PrintedNonsense(TemplateMisuse):
    """Strict mode: a `{{ … }}` printed None, a record, a list or a raw date and time."""


class _Meter:
    __slots__ = ("budget", "deadline", "steps")

    def __init__(self, budget: RenderBudget) -> None:
        self.budget = budget
        # CPU time of this thread: a busy machine does not make a template "run away"
        self.deadline = time.thread_time() + budget.seconds
        self.steps = 0


_METER: ContextVar[_Meter | None] = ContextVar("aftersale_render_meter", default=None)


class Metered:
    """`with Metered(budget):` runs one render under `budget`. A class, not a generator
    context manager: it wraps every message."""

    __slots__ = ("budget", "_token")

    def __init__(self, budget: RenderBudget) -> None:
        self.budget = budget

    def __enter__(self) -> _Meter:
        meter = _Meter(self.budget)
        self._token = _METER.set(meter)
        return meter

    def __exit__(self, *exc: object) -> None:
        _METER.reset(self._token)


def tick() -> None:
    """Called at every loop step and call of a template: stops it, at its own line, once it
    has taken more steps or time than its budget."""
    meter = _METER.get()
    if meter is None:
        return
    meter.steps += 1
    if meter.steps > meter.budget.steps:
        raise BudgetExceeded(
            f"more than {meter.budget.steps:,} loop steps and calls (the budget per message): "
            f"a loop or macro repeats too often"
        )
    if not meter.steps & 255 and time.thread_time() > meter.deadline:
        raise BudgetExceeded(
            f"rendering takes longer than {meter.budget.seconds:g} s (the budget per "
            f"message): a loop or macro repeats too often"
        )


def collect(chunks: Iterable[str]) -> str:
    """Join a template's output and hold it to the budget's size."""
    text = "".join(chunks)
    meter = _METER.get()
    if meter is not None and len(text) > meter.budget.output_chars:
        raise BudgetExceeded(
            f"the message is {len(text):,} characters long, beyond the budget of "
            f"{meter.budget.output_chars:,} per message"
        )
    return text


class _MeteredIterable:
    """A loop's iterable that ticks the budget at every step and keeps `loop.length`."""

    __slots__ = ("_iterable",)

    def __init__(self, iterable: Any) -> None:
        self._iterable = iterable

    def __iter__(self) -> Iterator[Any]:
        for value in self._iterable:
            tick()
            yield value

    def __len__(self) -> int:
        return len(self._iterable)


#: The environment's attribute every {% for %} gets its iterable through.
METERED = "metered_loop"


def _metered_loop(iterable: Any) -> Any:
    tick()  # starting a loop is a step, as a call is
    if isinstance(iterable, Undefined):
        return iterable  # let the undefined name fail under its own name
    return _MeteredIterable(iterable)


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    close = get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _describe(value: Any) -> str:
    """A value in a marketer's words, for error messages."""
    if value is None:
        return "nothing (an empty value)"
    if isinstance(value, Fields):
        return f"the '{value._path}' record"
    if isinstance(value, bool):
        return f"{'true' if value else 'false'}"
    if isinstance(value, datetime):
        return f"a date and time ({value.isoformat(timespec='minutes')})"
    if isinstance(value, date):
        return f"a date ({value.isoformat()})"
    if isinstance(value, int | float | Decimal):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the text {value[:40]!r}"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Mapping):
        return "a record"
    return f"a {type(value).__name__}"


def _strict_finalize(value: Any) -> Any:
    """What `{{ … }}` prints in strict mode (check): a value no customer should read is an
    error at its line: None, a record or list printed as Python text, a raw date and time."""
    if value is None:
        raise PrintedNonsense(
            "prints 'None': this value is empty here; put it inside {% if … %}…{% endif %} "
            "or give a fallback with `or`"
        )
    if isinstance(value, Mapping | list | tuple):
        raise PrintedNonsense(
            f"prints {_describe(value)} as Python text: loop over it with {{% for %}}, "
            f"use |join(', ') or pick a field"
        )
    if isinstance(value, datetime):
        raise PrintedNonsense(
            "prints a raw date and time (2025-03-12 09:30:00+00:00): use |date, |time or |datetime"
        )
    return value


def strict_mode(env: Environment) -> Environment:
    """`env` in strict mode, for `check`. Jinja compiles `finalize` into every printed
    expression, so strict templates compile apart and the ones customers get carry no
    check at all. Make it before `env` compiles anything (an overlay copies the cache)."""
    return env.overlay(finalize=_strict_finalize)


# --- filters ----------------------------------------------------------------------------

NUMBER = (int, float, Decimal)
#: What each of our filters reads, and how to say so: (accepted types, noun, hint).
FILTER_INPUTS: dict[str, tuple[tuple[type, ...], str, str]] = {
    "money": (NUMBER, "an amount", ""),
    "number": (NUMBER, "a number", ""),
    "date": ((date,), "a date", ""),
    "weekday": ((date,), "a date", ""),
    "time": ((datetime,), "a date and time", " (for a day alone use |date)"),
    "datetime": ((datetime,), "a date and time", " (for a day alone use |date)"),
    "plural": ((int,), "a whole number", ""),
    "utm": ((str,), "a link", ""),
    "tracking_url": ((Mapping,), "the shipment", " (write shipment|tracking_url)"),
}


def _currency(code: Any) -> bool:
    return str(code) in currencies()


def _check_input(name: str, value: Any, args: tuple[Any, ...] = ()) -> None:
    accepted, noun, hint = FILTER_INPUTS[name]
    if name == "money" and args and args[0] is not None and not _currency(args[0]):
        raise FilterInputError(
            f"|money({args[0]!r}): not a currency code; use an ISO 4217 code such as PLN or "
            f"EUR, or leave it out for the order's currency"
        )
    if isinstance(value, accepted) and not isinstance(value, bool):
        return
    if value is None:
        raise FilterInputError(
            f"|{name} got nothing: the value before it is empty here; put it inside "
            f"{{% if … %}}…{{% endif %}}"
        )
    raise FilterInputError(f"|{name} needs {noun}, got {_describe(value)}{hint}")


def _check_sizes(name: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    for arg in (*args, *kwargs.values()):
        if isinstance(arg, int) and not isinstance(arg, bool) and abs(arg) > MAX_SEQUENCE:
            raise SecurityError(f"|{name} with a number above {MAX_SEQUENCE:,} is not allowed")
    if name == "replace" and len(args) >= 3:
        text, old, new = (str(a) for a in args[:3])
        if old and len(text) + text.count(old) * (len(new) - len(old)) > MAX_SEQUENCE:
            raise SecurityError(f"|replace would make text beyond {MAX_SEQUENCE:,} characters")


#: Built-in filters whose arguments can blow text up (widths, repeats).
SIZED_FILTERS = frozenset({"center", "indent", "format", "replace", "wordwrap"})


def guard_filters(filters: Mapping[str, Callable[..., Any]]) -> dict[str, Callable[..., Any]]:
    """Filters as templates get them: ours check what they are given (a plain-language
    error instead of `'NoneType' object has no attribute 'astimezone'`), and those that can
    blow text up refuse huge sizes."""
    return {
        name: _guarded(name, f) if name in FILTER_INPUTS or name in SIZED_FILTERS else f
        for name, f in filters.items()
    }


def _guarded(name: str, f: Callable[..., Any]) -> Callable[..., Any]:
    pass_arg = getattr(f, "jinja_pass_arg", None)
    sized = name in SIZED_FILTERS
    # What the value must be, checked here at once; anything else (a wrong value, or
    # arguments to check: a currency) goes through _check_input for its words.
    accepted = FILTER_INPUTS[name][0] if name in FILTER_INPUTS else None
    checks_args = name == "money"

    def check(value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
        if accepted is not None:
            unknown = checks_args and args and args[0] is not None and not _currency(args[0])
            if unknown or type(value) is bool or not isinstance(value, accepted):
                _check_input(name, value, args)
        if sized:
            _check_sizes(name, (value, *args), kwargs)

    if pass_arg is not None:

        @wraps(f)
        def with_context(ctx: Any, value: Any, *args: Any, **kwargs: Any) -> Any:
            check(value, args, kwargs)
            return f(ctx, value, *args, **kwargs)

        with_context.jinja_pass_arg = pass_arg  # type: ignore[attr-defined]
        return with_context

    @wraps(f)
    def plain(value: Any, *args: Any, **kwargs: Any) -> Any:
        check(value, args, kwargs)
        return f(value, *args, **kwargs)

    return plain


# --- the environment ----------------------------------------------------------------------


class StrictFieldsUndefined(StrictUndefined):
    """StrictUndefined that names the record and suggests the closest field."""

    __slots__ = ()

    @property
    def _undefined_message(self) -> str:
        if self._undefined_hint:
            return self._undefined_hint
        name, obj = self._undefined_name, self._undefined_obj
        if obj is missing:
            return f"'{name}' is undefined"
        if isinstance(obj, Fields):
            return f"'{obj._path}' has no field '{name}'{did_you_mean(str(name), list(obj))}"
        if obj is None:
            return (
                f"cannot read '{name}' of something that is empty (None) in this message: "
                f"guard it with {{% if … %}}"
            )
        if isinstance(obj, Mapping) and obj and all(is_locale(str(k)) for k in obj):
            return (
                f"no entry for the language '{name}' here: this shared part has words for "
                f"{', '.join(map(str, obj))}; add a '{name}' entry"
            )
        if isinstance(obj, Mapping):
            return f"no entry '{name}'{did_you_mean(str(name), [str(k) for k in obj])}"
        return f"{type(obj).__name__} has no attribute '{name}'"


def _escape_output(value: Any) -> Any:
    """What an email template's `{{ … }}` prints: markupsafe's escape, minus its cost for
    plain text. Jinja only joins what this returns into the page, so text goes out as
    text, with no Markup made for it: escaped by the function markupsafe's escape itself
    runs on text (its C speedup, which returns the very string when nothing needs it)."""
    if type(value) is str:
        return _escape_text(value)
    return escape(value)


class _Template(Template):
    @classmethod
    def _from_namespace(
        cls,
        environment: Environment,
        namespace: MutableMapping[str, Any],
        globals: MutableMapping[str, Any],
    ) -> Template:
        # The compiled module's `escape` wraps output expressions only (jinja2.compiler's
        # _output_child_pre), so the faster equivalent can stand in for it there. Should a
        # Jinja release rename either, templates keep markupsafe's escape: slower, not wrong.
        if namespace.get("escape") is escape:
            namespace["escape"] = _escape_output
        template = super()._from_namespace(environment, namespace, globals)
        reads = namespace.get(_MEMO_READS)
        if reads is not None:
            template.root_render_func = Memoized(template.root_render_func, reads)
        return template


#: The name under which a compiled shared part carries the names it reads, when memo.py
#: may render it once per set of their values (see Sandbox._generate).
_MEMO_READS = "aftersale_memo_reads"


#: Attributes a context record has as a dict (items, get, ...) and as Fields (_path): the
#: names Jinja's getattr finds on the object before it looks up a key.
_RECORD_ATTRIBUTES = frozenset(dir(LazyFields))  # a Fields' and more
_RECORDS = frozenset({Fields, LazyFields})


class _CodeGenerator(CodeGenerator):
    def visit_Call(self, node: nodes.Call, frame: Frame, forward_caller: bool = False) -> None:  # noqa: N802
        # The meter around a loop's iterable (Sandbox._generate) is called as it is, not
        # through the sandbox's `call`, which checks what templates call (the meter is
        # ours) at the cost of four calls more for every loop. Templates cannot name
        # environment attributes: only that rewrite makes this node.
        if isinstance(node.node, nodes.EnvironmentAttribute) and node.node.name == METERED:
            self.write(f"environment.{METERED}(")
            self.visit(node.args[0], frame)
            self.write(")")
            return
        super().visit_Call(node, frame, forward_caller=forward_caller)


class Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, plus caps on repeats, powers and big arguments, a budget
    tick at every loop step and call; `strict_mode(sandbox)` for check."""

    intercepted_binops = frozenset(["*", "**"])
    template_class = _Template
    code_generator_class = _CodeGenerator

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        setattr(self, METERED, _metered_loop)

    def _generate(
        self,
        source: nodes.Template,
        name: str | None,
        filename: str | None,
        defer_init: bool = False,
    ) -> str:
        # Shared parts render once per set of the values they read (memo.py), except in
        # strict mode, where every printed value is checked every time.
        shared = self.finalize is None and is_shared_part(name)
        reads = plan(source, self.filters, self.tests, NAME_ONLY) if shared else None
        # Every {% for %} iterates through the meter (a documented override point).
        for loop in source.find_all(nodes.For):
            loop.iter = nodes.Call(
                nodes.EnvironmentAttribute(METERED), [loop.iter], [], None, None, lineno=loop.lineno
            )
        code: str = super()._generate(source, name, filename, defer_init)
        if reads is not None:  # carried by the compiled module to _Template._from_namespace
            code += f"\n{_MEMO_READS} = {reads!r}\n"
        return code

    def _load_template(self, name: str, globals: MutableMapping[str, Any] | None) -> Template:
        """A compiled template by its name alone: Jinja keys its cache by a new weak
        reference to the loader at every look-up, four per email (message, layout,
        include, footer). Only without reloading, where a compiled template stays valid;
        in the environment's own cache, which an overlay (strict mode) does not share."""
        cache = self.cache
        if type(cache) is not dict or self.auto_reload or globals:
            return super()._load_template(name, globals)  # type: ignore[no-any-return]
        template = cache.get(name)
        if template is None:
            template = cache[name] = super()._load_template(name, globals)
        return template  # type: ignore[no-any-return]

    def make_globals(self, d: MutableMapping[str, Any] | None) -> MutableMapping[str, Any]:
        """A template's globals as one plain dict, not Jinja's ChainMap over the
        environment's: every context made copies their names, which a ChainMap makes slow.
        Jinja's own advice holds here: globals are never changed once templates load."""
        return {**self.globals, **(d or {})}

    def getattr(self, obj: Any, attribute: str) -> Any:
        """`order.total` on a context record reads its key at once: Jinja's way tries the
        attribute first and pays for an AttributeError on every field read. Same answer,
        because a record has no attribute but its dict methods and private ones (`_path`;
        a lazy record's `_make`, which its key read runs when its fields are pending)."""
        if type(obj) in _RECORDS and attribute not in _RECORD_ATTRIBUTES:
            try:
                return obj[attribute]
            except KeyError:
                return self.undefined(obj=obj, name=attribute)
        return super().getattr(obj, attribute)

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        """Stop at the first unsafe attribute, rather than returning an undefined value that
        fails later under another name."""
        if isinstance(obj, Undefined):
            obj._fail_with_undefined_error()  # the name itself is unknown: say that first
        raise SecurityError(
            f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe."
        )

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        tick()
        for arg in (*args, *kwargs.values()):
            if isinstance(arg, int) and not isinstance(arg, bool) and abs(arg) > MAX_SEQUENCE:
                raise SecurityError(f"numbers above {MAX_SEQUENCE:,} are not allowed as arguments")
        return super().call(__context, __obj, *args, **kwargs)

    def call_binop(self, context: Any, operator_: str, left: Any, right: Any) -> Any:
        if operator_ == "**":
            if isinstance(right, int) and abs(right) > 64:
                raise SecurityError("exponents above 64 are not allowed in templates")
            return operator.pow(left, right)
        for seq, count in ((left, right), (right, left)):
            if (
                isinstance(seq, str | list | tuple)
                and isinstance(count, int)
                and len(seq) * count > MAX_SEQUENCE
            ):
                raise SecurityError(f"repeating text beyond {MAX_SEQUENCE} characters")
        return operator.mul(left, right)
