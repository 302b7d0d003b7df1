"""What `check` can tell from a template's source alone, before rendering anything.

- an unclosed tag, reported at the line of the tag that is never closed;
- text outside `{% block %}` in a template that extends a layout (never shown);
- Babel date patterns that mean something else (`DD` day of year, `YYYY` week year,
  `mm` minutes in a date), with the likely intent;
- `|safe` or `{% autoescape false %}` around what customers, orders or carriers provide;
- links that are not https.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from babel.dates import PATTERN_CHARS, tokenize_pattern
from jinja2 import Environment, TemplateSyntaxError, nodes

from aftersale.render.filters import DATE_FORMATS, date_format_problem

#: Names whose values come from customers, orders or carriers: never marked safe.
UNTRUSTED_ROOTS = frozenset({"customer", "order", "items", "item", "shipment", "tracking_events"})
#: Tags that need an end tag (`set` only in its block form, `{% set x %}…{% endset %}`).
PAIRED_TAGS = frozenset(
    {"for", "if", "block", "macro", "call", "filter", "with", "autoescape", "trans", "set"}
)
NAMED_FORMATS = frozenset({"short", "medium", "long", "full", *DATE_FORMATS})
DATE_FILTERS = {"date": "date", "weekday": "date", "time": "time", "datetime": "datetime"}
#: Babel pattern letters that are valid but rarely what a marketer means, and the fix.
_MISREAD = {
    "D": ("the day of the year (329)", "d"),
    "Y": ("the week-based year (wrong around New Year)", "y"),
    "u": ("the extended year", "y"),
    "F": ("the day of the week in the month", "d"),
    "w": ("the week of the year", "d"),
    "W": ("the week of the month", "d"),
}
_TIME_LETTERS = frozenset("hHkKmsSaAzZvVOxX")
_DATE_LETTERS = frozenset("GyYuQqMLwWdDFgEec")
_HTTP_LINK = re.compile(r"http://[^\s\"'<>]*")


@dataclass(frozen=True, slots=True)
class Finding:
    line: int | None
    message: str


def lint_source(env: Environment, source: str, *, html: bool) -> list[Finding]:
    """Every problem visible in one template's source; a syntax error stops the rest.
    `html`: the template makes HTML (email), where escaping matters."""
    try:
        tree = env.parse(source)
    except TemplateSyntaxError as exc:
        return [syntax_finding(env, source, exc)]
    findings = [*_outside_blocks(tree), *_date_patterns(tree), *_http_links(source)]
    if html:
        findings.extend(_unescaped(tree))
    return findings


def syntax_finding(env: Environment, source: str, exc: TemplateSyntaxError) -> Finding:
    """A syntax error in a marketer's words; an unclosed tag at the line that opened it."""
    message = exc.message or "syntax error"
    if (
        "innermost block that needs to be closed" in message
        or "Unexpected end of template" in message
    ):
        unclosed = _unclosed(env, source)
        if unclosed is not None:
            tag, line, closed_by = unclosed
            where = (
                f"before the {{% {closed_by[0]} %}} on line {closed_by[1]}"
                if closed_by
                else "where it should end"
            )
            return Finding(
                line,
                f"syntax error: this {{% {tag} %}} is never closed: add {{% end{tag} %}} {where}",
            )
    return Finding(exc.lineno, f"syntax error: {message}")


def _unclosed(env: Environment, source: str) -> tuple[str, int, tuple[str, int] | None] | None:
    """(tag, its line, the end tag met instead and its line) of the innermost open tag."""
    stack: list[tuple[str, int]] = []
    try:
        tokens = [t for t in env.lex(source) if t[1] != "whitespace"]
    except TemplateSyntaxError:
        return None
    for i, (line, kind, value) in enumerate(tokens):
        if kind != "name" or i == 0 or tokens[i - 1][1] != "block_begin":
            continue
        if value in PAIRED_TAGS and not (value == "set" and _is_assignment(tokens, i)):
            stack.append((value, line))
        elif value.startswith("end") and value[3:] in PAIRED_TAGS:
            if stack and stack[-1][0] == value[3:]:
                stack.pop()
            elif stack:
                return stack[-1][0], stack[-1][1], (value, line)
    return (stack[-1][0], stack[-1][1], None) if stack else None


def _is_assignment(tokens: list[tuple[int, str, str]], start: int) -> bool:
    for _, kind, value in tokens[start + 1 :]:
        if kind == "block_end":
            return False
        if kind == "operator" and value == "=":
            return True
    return False


def _outside_blocks(tree: nodes.Template) -> Iterator[Finding]:
    """Jinja drops everything outside blocks of a template that extends another."""
    if not any(isinstance(n, nodes.Extends) for n in tree.body):
        return
    for node in tree.body:
        if not isinstance(node, nodes.Output):
            continue
        for part in node.nodes:
            if isinstance(part, nodes.TemplateData) and not part.data.strip():
                continue
            text = part.data.strip() if isinstance(part, nodes.TemplateData) else "{{ … }}"
            yield Finding(
                part.lineno,
                f"'{_clip(text)}' is outside every {{% block %}}: a template that extends a "
                f"layout shows only its blocks, so no customer would see it; move it into a "
                f"block",
            )
            break


def _clip(text: str) -> str:
    first = text.splitlines()[0] if text else text
    return first if len(first) <= 40 else first[:37] + "..."


def _date_patterns(tree: nodes.Template) -> Iterator[Finding]:
    for flt in tree.find_all(nodes.Filter):
        kind = DATE_FILTERS.get(flt.name)
        if kind is None or not flt.args or not isinstance(flt.args[0], nodes.Const):
            continue
        pattern = flt.args[0].value
        problem = date_format_problem(pattern) if flt.name == "date" else None
        if isinstance(pattern, str) and problem:
            # a date is written one way per locale: by name, never a pattern of one's own
            yield Finding(flt.lineno, problem)
            continue
        if isinstance(pattern, str) and pattern not in NAMED_FORMATS:
            problem = pattern_problem(pattern, kind)
            if problem:
                yield Finding(flt.lineno, f"|{flt.name}({pattern!r}): {problem}")


def pattern_problem(pattern: str, kind: str) -> str | None:
    """What is wrong with a Babel date/time pattern for a `kind` (date, time, datetime)."""
    try:
        tokens = tokenize_pattern(pattern)
    except (ValueError, KeyError) as exc:
        return f"not a date pattern ({exc})"
    unquoted = re.sub(r"'[^']*'", "", pattern)
    strays = sorted({c for c in unquoted if c.isascii() and c.isalpha()} - set(PATTERN_CHARS))
    if strays:
        return (
            f"'{strays[0]}' is not a pattern letter and would be printed as it is; put words in "
            f"single quotes (\"d 'of' MMMM\")"
        )
    misread: list[str] = []
    fixes: dict[str, str] = {}
    for token, value in tokens:
        if token != "field":
            continue
        assert isinstance(value, tuple)  # a field token is (letter, count)
        letter, count = str(value[0]), int(value[1])
        field = letter * count
        allowed = PATTERN_CHARS[letter]
        if allowed is not None and count not in allowed:
            return (
                f"'{field}' is not a valid field (use {' or '.join(letter * n for n in allowed)})"
            )
        if letter in _MISREAD:
            meaning, fixes[letter] = _MISREAD[letter]
            misread.append(f"'{field}' is {meaning}")
        elif kind == "date" and letter in _TIME_LETTERS:
            misread.append(f"'{field}' is a time field, but |date shows a day")
            if letter == "m":
                fixes["m"] = "M"
        elif kind == "time" and letter in _DATE_LETTERS:
            misread.append(f"'{field}' is a date field, but |time shows a time of day")
            if letter == "M":
                fixes["M"] = "m"
    if not misread:
        return None
    fixed = _outside_quotes(pattern, lambda part: "".join(fixes.get(c, c) for c in part))
    hint = f"; did you mean '{fixed}'?" if fixes else ""
    return "; ".join(misread) + hint + " (Babel patterns: d day, M month, y year, H hour, m minute)"


def _outside_quotes(pattern: str, change: Callable[[str], str]) -> str:
    parts = re.split(r"('[^']*')", pattern)
    return "".join(p if p.startswith("'") else change(p) for p in parts)


def _http_links(source: str) -> Iterator[Finding]:
    for number, text in enumerate(source.splitlines(), start=1):
        for match in _HTTP_LINK.finditer(text):
            link = match.group(0)
            yield Finding(
                number,
                f"link '{_clip(link)}' is not https: customers' mail programs warn about "
                f"plain http; use '{link.replace('http://', 'https://', 1)}'",
            )


def _unescaped(tree: nodes.Template) -> Iterator[Finding]:
    """`|safe` or autoescape off around data customers, orders or carriers provide: a name
    such as `<script>…` would become part of the email's HTML."""
    tainted = set(UNTRUSTED_ROOTS)
    for node in tree.find_all((nodes.For, nodes.Assign)):  # loop and set aliases
        assert isinstance(node, nodes.For | nodes.Assign)
        source = node.iter if isinstance(node, nodes.For) else node.node
        if _uses(source, tainted):
            tainted.update(n.name for n in _names(node.target))
    for flt in tree.find_all(nodes.Filter):
        if flt.name == "safe" and flt.node is not None and _uses(flt.node, tainted):
            yield Finding(
                flt.lineno,
                f"|safe on {_name_of(flt.node, tainted)}, which customers, orders or carriers "
                f"provide: a name like '<script>' would become part of the email; remove |safe",
            )
    for scope in tree.find_all(nodes.ScopedEvalContextModifier):
        off = any(
            kw.key == "autoescape" and isinstance(kw.value, nodes.Const) and not kw.value.value
            for kw in scope.options
        )
        if not off:
            continue
        for output in scope.find_all(nodes.Output):
            for part in output.nodes:
                if not isinstance(part, nodes.TemplateData) and _uses(part, tainted):
                    yield Finding(
                        part.lineno,
                        f"{_name_of(part, tainted)} is printed with autoescape off: customers, "
                        f"orders and carriers provide it, so it must stay escaped; remove "
                        f"{{% autoescape false %}}",
                    )


def _uses(node: nodes.Node, names: set[str]) -> bool:
    return any(n.name in names for n in _names(node))


def _names(node: nodes.Node) -> Iterator[nodes.Name]:
    if isinstance(node, nodes.Name):
        yield node
    yield from node.find_all(nodes.Name)


def _name_of(node: nodes.Node, names: set[str]) -> str:
    """The dotted name printed (`customer.name`), for messages."""
    for sub in (node, *node.find_all(nodes.Getattr)):
        parts: list[str] = []
        cursor = sub
        while isinstance(cursor, nodes.Getattr):
            parts.append(cursor.attr)
            cursor = cursor.node
        if isinstance(cursor, nodes.Name) and cursor.name in names:
            return "'" + ".".join([cursor.name, *reversed(parts)]) + "'"
    return "a value"
