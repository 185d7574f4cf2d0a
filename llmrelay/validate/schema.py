"""Checkers compiled from the `openai` package's request TypedDicts.

`Compiler().compile(T)` turns an annotation from `openai.types.responses` (TypedDicts, unions,
literals, lists, dicts, scalars) into a function that returns None for a valid JSON value or
a `Problem` naming where and why it is not. Compiling once at import keeps a check to plain
isinstance tests and dict lookups; a newer `openai` release teaches it new item and tool
types with no change here.

Deliberately more lenient than the TypedDicts in four ways, so nothing a client sends today
is refused: keys the type does not declare are let through (they reach an OpenAI-shaped
upstream unchanged); null is accepted for every key that is not required; a key the spec
marks required but nullable (`Required[Optional[X]]`, e.g. a function tool's `strict`) may be
left out, as the API itself allows; and so may the keys in FILLED_IN, which the API assigns
to output items and fills in when an item sent back as input lacks them (Codex sends
reasoning and local_shell_call items without their `id`), unless the object is nothing
else (an item_reference is only its `id`).
"""

from __future__ import annotations

import contextlib
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, get_args, get_origin

from typing_extensions import get_type_hints, is_typeddict

Check = Callable[[Any], "Problem | None"]
_NONE = type(None)
_LISTS = (list, tuple)
_SEQUENCES = {list, tuple, Iterable, Sequence, typing.List, typing.Iterable, typing.Sequence}  # noqa: UP006
_MAPPINGS = {dict, Mapping, typing.Dict, typing.Mapping}  # noqa: UP006
FILLED_IN = frozenset({"id", "status", "annotations"})


class Problem:
    """The first thing wrong with a value. `path` is filled in as the problem travels up
    through the containers that hold the value, so a valid request builds no strings."""

    __slots__ = ("allowed", "expected", "kind", "path", "value")

    def __init__(self, kind: str, value: Any = None, *, expected: Sequence[str] = (), allowed: Sequence[Any] = ()):
        self.kind = kind  # "type", "value" or "missing"
        self.value = value
        self.expected = tuple(expected)  # "type": JSON type names the value could have had
        self.allowed = tuple(allowed)  # "value": the values the field takes
        self.path: list[str | int] = []  # innermost first

    def at(self, segment: str | int) -> Problem:
        self.path.append(segment)
        return self

    def param(self, root: str = "") -> str:
        out = root
        for seg in reversed(self.path):
            out += f"[{seg}]" if isinstance(seg, int) else (f".{seg}" if out else seg)
        return out


def json_type(value: Any) -> str:
    """A value's JSON type as OpenAI's error messages name it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, _LISTS):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _any(value: Any) -> Problem | None:
    return None


def _check_str(value: Any) -> Problem | None:
    return None if isinstance(value, str) else Problem("type", value, expected=("a string",))


def _check_bool(value: Any) -> Problem | None:
    return None if value is True or value is False else Problem("type", value, expected=("a boolean",))


def _check_int(value: Any) -> Problem | None:
    if isinstance(value, int) and value is not True and value is not False:
        return None
    if isinstance(value, float) and value.is_integer():
        return None  # JSON has one number type: 2.0 is the integer 2, as JSON Schema and pydantic read it
    return Problem("type", value, expected=("an integer",))


def _check_number(value: Any) -> Problem | None:
    if isinstance(value, (int, float)) and value is not True and value is not False:
        return None
    return Problem("type", value, expected=("a number",))


def _check_none(value: Any) -> Problem | None:
    return None if value is None else Problem("type", value, expected=("null",))


_SCALARS: dict[Any, Check] = {str: _check_str, bool: _check_bool, int: _check_int, float: _check_number,
                               _NONE: _check_none}  # fmt: skip


def _strip(t: Any) -> Any:
    while get_origin(t) in (typing.Required, typing.NotRequired, typing.Annotated):
        t = get_args(t)[0]
    return t


def union_members(t: Any) -> tuple[Any, ...]:
    t = _strip(t)
    if get_origin(t) in (typing.Union, types.UnionType):
        return tuple(m for a in get_args(t) for m in union_members(a))
    return (t,)


def _nullable(t: Any) -> bool:
    return any(m is _NONE or m is Any or m is object for m in union_members(t))


def _kind(t: Any) -> str:
    """The JSON type a compiled member accepts, to pick union members without trying each."""
    t = _strip(t)
    origin = get_origin(t)
    if t is str or (origin is typing.Literal and all(isinstance(v, str) for v in get_args(t))):
        return "string"
    if t in (int, float) or origin is typing.Literal:
        return "number"
    if t is bool:
        return "boolean"
    if t is _NONE:
        return "null"
    if t in _SEQUENCES or origin in _SEQUENCES:
        return "array"
    if is_typeddict(t) or t in _MAPPINGS or origin in _MAPPINGS:
        return "object"
    return "any"


_NAMES = {"string": "a string", "number": "a number", "boolean": "a boolean", "null": "null",
          "array": "an array", "object": "an object"}  # fmt: skip


# The JSON type of a value by its exact Python type: one dict lookup on the hot path.
_KIND_OF = {str: "string", bool: "boolean", int: "number", float: "number", _NONE: "null", list: "array",
            tuple: "array", dict: "object"}  # fmt: skip


def _value_kind(value: Any) -> str:
    if isinstance(value, str):
        return "string"
    if value is True or value is False:
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if value is None:
        return "null"
    if isinstance(value, _LISTS):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "other"


class Compiler:
    """Compiles annotations to checks; one cache per compiler so shared types compile once."""

    def __init__(self) -> None:
        self._cache: dict[Any, Check] = {}
        self._hints: dict[type, dict[str, Any]] = {}

    def hints(self, td: type) -> dict[str, Any]:
        if td not in self._hints:
            self._hints[td] = get_type_hints(td, include_extras=True)
        return self._hints[td]

    def compile(self, t: Any) -> Check:
        t = _strip(t)
        try:
            cached = self._cache.get(t)
        except TypeError:  # an unhashable annotation: compile it afresh
            cached = None
        if cached is not None:
            return cached
        check = self._build(t)
        with contextlib.suppress(TypeError):
            self._cache[t] = check
        return check

    def _build(self, t: Any) -> Check:
        if t is Any or t is object:
            return _any
        if t in _SCALARS:
            return _SCALARS[t]
        origin = get_origin(t)
        if origin is typing.Literal:
            return _literal(get_args(t))
        if origin in (typing.Union, types.UnionType):
            return self._union(union_members(t))
        if t in _SEQUENCES or origin in _SEQUENCES:
            args = get_args(t)
            return _array(self.compile(args[0]) if args else _any)
        if t in _MAPPINGS or origin in _MAPPINGS:
            args = get_args(t)
            return _mapping(self.compile(args[1]) if len(args) == 2 else _any)
        if is_typeddict(t):
            return self.object((t,))
        return _any  # a form the openai types do not use today: let it through

    def object(self, classes: tuple[type, ...]) -> Check:
        """One or more TypedDicts read as one object: a key any of them declares is checked
        against the union of their annotations; required means required by all of them."""
        key = ("object", classes)
        if key in self._cache:
            return self._cache[key]
        target: list[Check] = []
        self._cache[key] = lambda value: target[0](value)  # a recursive type reaches itself here
        hints = [self.hints(c) for c in classes]
        names = list(dict.fromkeys(k for h in hints for k in h))
        required = tuple(
            k
            for k in names
            if all(k in h and get_origin(h[k]) is typing.Required and not _nullable(h[k]) for h in hints)
        )
        if any(k not in FILLED_IN and k != "type" for k in required):
            required = tuple(k for k in required if k not in FILLED_IN)
        fields: dict[str, Check] = {}
        for k in names:
            # null never reaches a field's check (`_object` lets it through unless the key
            # is required, and then the type is not nullable), so the check leaves it out.
            found = (m for h in hints if k in h for m in union_members(h[k]) if m is not _NONE)
            annotations = tuple(dict.fromkeys(found))
            if not annotations:
                continue
            check = self.compile(annotations[0] if len(annotations) == 1 else typing.Union[annotations])  # noqa: UP007
            if check is not _any:
                fields[k] = check
        target.append(_object(required, fields))
        self._cache[key] = target[0]
        return target[0]

    def _union(self, members: tuple[Any, ...]) -> Check:
        members = tuple(dict.fromkeys(members))
        if any(m is Any or m is object for m in members):
            return _any
        by_kind: dict[str, list[Any]] = {}
        for m in members:
            by_kind.setdefault(_kind(m), []).append(m)
        if "any" in by_kind:
            return _any
        checks: dict[str, Check] = {}
        for kind, ms in by_kind.items():
            if kind == "array":  # read as one array of any member's elements
                elements = [get_args(m)[0] if get_args(m) else Any for m in ms]
                checks[kind] = _array(self.compile(typing.Union[tuple(elements)]))  # noqa: UP007
            elif kind == "object":
                checks[kind] = self._objects(ms)
            elif kind == "string" and str in ms:
                checks[kind] = _check_str
            elif kind == "string":
                checks[kind] = _literal(tuple(v for m in ms for v in get_args(m)))
            elif kind == "number":
                checks[kind] = self._first_of([self.compile(m) for m in ms])
            else:
                checks[kind] = self.compile(ms[0])
        if len(checks) == 1:  # each check refuses values of other JSON types itself
            return next(iter(checks.values()))
        expected = tuple(_NAMES[k] for k in by_kind)
        by_type = {t: checks[k] for t, k in _KIND_OF.items() if k in checks}

        def check(value: Any) -> Problem | None:
            c = by_type.get(type(value)) or checks.get(_value_kind(value))
            if c is None:
                return Problem("type", value, expected=expected)
            return c(value)

        return check

    def _first_of(self, checks: list[Check]) -> Check:
        if len(checks) == 1:
            return checks[0]

        def check(value: Any) -> Problem | None:
            problems = []
            for c in checks:
                p = c(value)
                if p is None:
                    return None
                problems.append(p)
            return _best(problems)

        return check

    def _objects(self, members: list[Any]) -> Check:
        """Objects of a union: dispatched on their `type` literal where every member has one."""
        tds = [m for m in members if is_typeddict(m)]
        others = [m for m in members if not is_typeddict(m)]
        if len(members) == 1 and tds:
            return self.object((tds[0],))
        if others:  # a free-form mapping among them: any object passes its test
            return self._first_of([self.compile(m) for m in others + tds])
        tagged: dict[str, list[type]] = {}
        untyped: list[type] = []  # members whose `type` may be left out
        for td in tds:
            hints = self.hints(td)
            tag = hints.get("type")
            values = [v for m in union_members(tag) if get_origin(m) is typing.Literal for v in get_args(m)]
            if tag is None or not values:
                return self._first_of([self.compile(m) for m in tds])
            for v in values:
                tagged.setdefault(v, []).append(td)
            if get_origin(tag) is not typing.Required or _nullable(tag):
                untyped.append(td)
        by_tag = {v: self.object(tuple(cs)) for v, cs in tagged.items()}
        defaults = list(dict.fromkeys(self.object(tuple(tagged[_tag_of(self.hints(td))])) for td in untyped))
        default_required = [frozenset(_REQUIRED.get(c, ())) for c in defaults]
        allowed = tuple(tagged)

        def check(value: Any) -> Problem | None:
            if not isinstance(value, dict):
                return Problem("type", value, expected=("an object",))
            tag = value.get("type")
            if tag is None:
                if not defaults:
                    return Problem("missing").at("type")
                for c, req in zip(defaults, default_required, strict=True):
                    if req <= value.keys():
                        return c(value)
                return defaults[0](value)
            if not isinstance(tag, str):
                return Problem("type", tag, expected=("a string",)).at("type")
            c = by_tag.get(tag)
            if c is None:
                return Problem("value", tag, allowed=allowed).at("type")
            return c(value)

        return check


def _tag_of(hints: dict[str, Any]) -> str:
    tag = hints["type"]
    return next(v for m in union_members(tag) if get_origin(m) is typing.Literal for v in get_args(m))


def _best(problems: list[Problem]) -> Problem:
    """Of several members' problems, the one that got deepest: likely the member meant."""
    return max(problems, key=lambda p: len(p.path))


def _literal(values: tuple[Any, ...]) -> Check:
    values = tuple(dict.fromkeys(values))
    allowed = frozenset(values)
    kind = _kind(typing.Literal[values])
    accepts: tuple[type, ...] = (str,) if kind == "string" else (int, float)
    expected = (_NAMES[kind],)

    def check(value: Any) -> Problem | None:
        if isinstance(value, accepts) and not isinstance(value, bool):
            return None if value in allowed else Problem("value", value, allowed=values)
        return Problem("type", value, expected=expected)

    return check


def _array(element: Check) -> Check:
    def check(value: Any) -> Problem | None:
        if not isinstance(value, _LISTS):
            return Problem("type", value, expected=("an array",))
        if element is not _any:
            for i, item in enumerate(value):
                if (p := element(item)) is not None:
                    return p.at(i)
        return None

    return check


def _mapping(inner: Check) -> Check:
    def check(value: Any) -> Problem | None:
        if not isinstance(value, dict):
            return Problem("type", value, expected=("an object",))
        if inner is not _any:
            for k, v in value.items():
                if (p := inner(v)) is not None:
                    return p.at(k)
        return None

    return check


# Required keys of each compiled object check, for choosing among items that omit `type`.
_REQUIRED: dict[Check, tuple[str, ...]] = {}


def _object(required: tuple[str, ...], fields: dict[str, Check]) -> Check:
    must = frozenset(required)

    def check(value: Any) -> Problem | None:
        if not isinstance(value, dict):
            return Problem("type", value, expected=("an object",))
        for k in required:
            if k not in value:
                return Problem("missing").at(k)
        for k, v in value.items():
            c = fields.get(k)
            if c is not None and (v is not None or k in must) and (p := c(v)) is not None:
                return p.at(k)
        return None

    _REQUIRED[check] = required
    return check
