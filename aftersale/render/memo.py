"""Shared parts of templates rendered once per set of the values they read.

A shared part (a file or folder named `_…`: the email layout, the plain-text footer, the
SMS layout) prints the same contact block, links and legal line for every message of one
market, language and message type. Its own code, outside the blocks a message fills in, is
a pure function of the names it reads, the name of the template being rendered (which
`|utm` reads) and nothing else, as long as it only prints, tests, sets names and calls
blocks: no loops, calls, macros or includes, and no filter that reads the render context.
For such a part `plan` returns the names it reads, and `Memoized` renders it once per
distinct set of those values: it keeps the part's text between the block calls, and
replays it around the message's own blocks (which still render per message) with the names
the part set at each point.

Values are compared by type and exact text, so only values that print the same share a
rendering; a value that cannot be compared that way (a lazily signed record, a function)
renders the part as usual. Strict mode (`check`) compiles its templates apart and renders
shared parts as usual, so every expression is checked. The budget is unchanged: a part
that qualifies takes no budget steps, and the joined message is still measured.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, NamedTuple

from jinja2 import Template, nodes, pass_context
from jinja2.runtime import Context
from jinja2.utils import missing
from markupsafe import Markup

from aftersale.render.context import Fields

#: Rendered texts kept per shared part: every message type x language x market is a few
#: hundred; a part that reads something per customer stops adding past this.
MAX_ENTRIES = 4096

#: How Jinja marks a filter or test that is given the render context.
_READS_CONTEXT = pass_context(lambda context: context).jinja_pass_arg  # type: ignore[attr-defined]

_STATEMENTS = (nodes.Output, nodes.If, nodes.Assign, nodes.AssignBlock, nodes.With)
_EXPRESSIONS = (
    nodes.Name,
    nodes.Const,
    nodes.TemplateData,
    nodes.Tuple,
    nodes.List,
    nodes.Dict,
    nodes.CondExpr,
    nodes.Getattr,
    nodes.Getitem,
    nodes.Slice,
    nodes.Concat,
    nodes.Compare,
    nodes.BinExpr,
    nodes.UnaryExpr,
    nodes.Filter,
    nodes.Test,
    nodes.MarkSafe,
    nodes.MarkSafeIfAutoescape,
    nodes.Pair,
    nodes.Keyword,
    nodes.Operand,
)


def is_shared_part(name: str | None) -> bool:
    """templates/README.md: files and folders starting with `_` are shared parts."""
    return bool(name) and any(p.startswith("_") for p in str(name).split("/"))


def plan(
    source: nodes.Template,
    filters: Mapping[str, Any],
    tests: Mapping[str, Any],
    name_only_filters: frozenset[str],
) -> tuple[str, ...] | None:
    """The names a template's own code (outside its blocks) reads, or None when that code
    could print differently for the same values: it loops, calls, includes, extends, or
    uses a filter or test that reads the render context (beyond the template's name)."""
    reads: set[str] = set()
    for node in _own_nodes(source):
        if isinstance(node, nodes.Block):
            if node.scoped:
                return None  # called with a context of the part's own names
            continue
        if not isinstance(node, _STATEMENTS + _EXPRESSIONS):
            return None
        if isinstance(node, nodes.Name) and node.ctx == "load":
            reads.add(node.name)
        elif isinstance(node, nodes.Filter | nodes.Test):
            known = filters if isinstance(node, nodes.Filter) else tests
            function = known.get(node.name)
            if function is None:
                return None
            reads_context = getattr(function, "jinja_pass_arg", None) is _READS_CONTEXT
            if reads_context and node.name not in name_only_filters:
                return None
    return tuple(sorted(reads))


def _own_nodes(node: nodes.Node) -> Iterator[nodes.Node]:
    """Every node of the template's own code; a block is one node (its body is the
    block's default, rendered as a block)."""
    for child in node.iter_child_nodes():
        yield child
        if not isinstance(child, nodes.Block):
            yield from _own_nodes(child)


class _BlockCall(NamedTuple):
    """In a recorded part: set these names (name, value, exported), then render this block
    (None: the end of the part)."""

    block: str | None
    sets: tuple[tuple[str, Any, bool], ...]


_Render = Callable[[Context], Iterator[str]]


class Memoized:
    """A shared part's compiled root function (`root`), rendered once per key."""

    __slots__ = ("recorded", "reads", "root", "texts")

    def __init__(self, root: _Render, reads: tuple[str, ...]) -> None:
        self.root, self.reads = root, reads
        self.recorded: dict[tuple[Any, ...], tuple[str | _BlockCall, ...]] = {}
        self.texts: dict[tuple[Any, ...], str] = {}  # the recorded parts that call no block

    def __call__(self, context: Context) -> Iterator[str]:
        key = _key(context.name, context.resolve_or_missing, self.reads)
        if key is None:
            yield from self.root(context)
            return
        parts = self.recorded.get(key)
        if parts is None:
            parts = _record(self.root, context)
            if len(self.recorded) < MAX_ENTRIES:
                self.recorded[key] = parts
                if all(type(p) is str or p.block is None for p in parts):  # type: ignore[union-attr]
                    self.texts[key] = "".join(p for p in parts if type(p) is str)  # type: ignore[misc]
        for part in parts:
            if type(part) is str:
                yield part
                continue
            for name, value, exported in part.sets:  # type: ignore[union-attr]
                context.vars[name] = value
                if exported:
                    context.exported_vars.add(name)
            if part.block is not None:  # type: ignore[union-attr]
                # joined here: its pieces need not climb through this and the message's
                # root generator one by one (the whole text is measured when it is joined)
                yield "".join(context.blocks[part.block][0](context))  # type: ignore[union-attr]

    def known(self, name: str | None, values: Mapping[str, Any]) -> str | None:
        """What the part printed before, rendered on its own (in a context of `values`
        alone), when it calls no block; else None."""
        key = _key(name, lambda n: values.get(n, missing), self.reads)
        return self.texts.get(key) if key is not None else None


def known_text(template: Template, values: Mapping[str, Any]) -> str | None:
    """The text of `template` rendered in a new context of `values`, when it is a shared
    part that printed it before for the same values: no context, no generators; None when
    it must be rendered."""
    root = template.root_render_func
    return root.known(template.name, values) if isinstance(root, Memoized) else None


class _Stubs:
    """Stands in for a context's blocks while a part is recorded: each block call yields
    its name instead of its text. A block the context lacks fails as it would."""

    __slots__ = ("_blocks",)

    def __init__(self, blocks: Mapping[str, Any]) -> None:
        self._blocks = blocks

    def __getitem__(self, name: str) -> list[Callable[[Context], Iterator[Any]]]:
        self._blocks[name]  # noqa: B018 - the same KeyError as the real call
        return [lambda context: iter((_BlockCall(name, ()),))]


def _record(root: _Render, context: Context) -> tuple[str | _BlockCall, ...]:
    """The part's texts and block calls, run once with the blocks stubbed out, and the
    names it set before each call."""
    names, exported = context.vars, context.exported_vars
    written = _Writes(names)
    context.vars, context.exported_vars = written, set(exported)
    blocks, context.blocks = context.blocks, _Stubs(context.blocks)  # type: ignore[assignment]

    def set_so_far() -> tuple[tuple[str, Any, bool], ...]:
        return tuple(
            (name, value, name in context.exported_vars) for name, value in written.seen.items()
        )

    parts: list[str | _BlockCall] = []
    text: list[str] = []
    try:
        for chunk in root(context):
            if type(chunk) is _BlockCall:
                parts.append("".join(text))
                parts.append(_BlockCall(chunk.block, set_so_far()))
                text = []
            else:
                text.append(chunk)
        parts.append("".join(text))
        parts.append(_BlockCall(None, set_so_far()))
    finally:  # the replay sets the names, in the real context
        context.vars, context.exported_vars, context.blocks = names, exported, blocks
    return tuple(p for p in parts if p != "")


class _Writes(dict[str, Any]):
    """A context's names while a part is recorded, noting each name the part sets."""

    __slots__ = ("seen",)

    def __init__(self, names: Mapping[str, Any]) -> None:
        super().__init__(names)
        self.seen: dict[str, Any] = {}

    def __setitem__(self, name: str, value: Any) -> None:
        self.seen[name] = value
        super().__setitem__(name, value)


# --- keys -----------------------------------------------------------------------------

#: Values equal only when they print the same: compared by type and repr.
_SCALARS = frozenset({int, bool, float, Decimal, date, datetime, time, timedelta})
_TEXT_OR_NONE = frozenset({str, type(None)})
_UNFIT = object()  # a value that cannot be compared by what it prints


def _key(
    template: str | None, lookup: Callable[[str], Any], reads: tuple[str, ...]
) -> tuple[Any, ...] | None:
    """What a part's text depends on: the name of the template rendered (|utm reads it)
    and the value of each name it reads."""
    key: list[Any] = [template]
    for name in reads:
        value = _frozen(lookup(name))
        if value is _UNFIT:
            return None
        key.append(value)
    return tuple(key)


def _frozen(value: Any) -> Any:
    kind = type(value)
    if kind is str or value is None or value is missing:
        return value
    if kind in _SCALARS:
        return (kind, repr(value))
    if kind is Fields or kind is dict:
        if kind is dict and not all(type(k) is str for k in value):
            return _UNFIT
        if _TEXT_OR_NONE.issuperset(map(type, value.values())):
            return (kind, tuple(value.items()))
        items = tuple((k, _frozen(v)) for k, v in value.items())
        return _UNFIT if any(v is _UNFIT for _, v in items) else (kind, items)
    if kind is list or kind is tuple:
        frozen = tuple(_frozen(v) for v in value)
        return _UNFIT if any(v is _UNFIT for v in frozen) else (kind, frozen)
    if kind is Markup:
        return (kind, str(value))
    return _UNFIT  # LazyFields (reading it would sign its links), functions, objects
