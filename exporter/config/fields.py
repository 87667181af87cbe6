"""Typed readers for config nodes: each error names file, line, service and field.

YAML 1.1 spells booleans `yes/no/on/off` and octals `0755`; we never coerce them into
strings or numbers. Plain `true`/`false` are booleans, plain decimal integers are
integers, strings are strings. A string that came from `${VAR}` expansion may stand
for an integer or boolean too, since the environment has no other type. When a value
came from the environment, errors show the reference as written, never the value.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace

from .. import fields
from ..fields import FieldError
from ..units import UnitError, format_duration, format_size, parse_duration, parse_size
from .errors import ConfigError
from .expand import ExpandError, expand
from .yamlsafe import Node

_DECIMAL = re.compile(r"\+?(?:0|[1-9][0-9]*)")
_KIND_NAMES = {"bool": "boolean", "int": "number", "float": "number", "timestamp": "date",
               "map": "a mapping", "seq": "a list", "null": "null", "str": "string"}


@dataclass(frozen=True)
class Ctx:
    """Where we are in the file, for error messages, plus what expansion needs."""

    file: str | None
    environ: Mapping[str, str]
    base_dir: str
    service: str | None = None
    prefix: str = ""  # dotted path of the enclosing field

    def at(self, field: str) -> str:
        """The full dotted path of `field` under the current prefix."""
        if not self.prefix:
            return field
        return f"{self.prefix}{field}" if field.startswith("[") else f"{self.prefix}.{field}"

    def error(self, node: Node | None, field: str | None, message: str) -> ConfigError:
        """A ConfigError at `node`'s line naming `field` under the current prefix."""
        path = self.at(field) if field is not None else (self.prefix or None)
        return ConfigError(message, file=self.file, line=node.line if node else None,
                           service=self.service, field=path)

    def under(self, field: str) -> Ctx:
        """A context for the fields of the mapping at `field`."""
        return replace(self, prefix=self.at(field))


def describe(node: Node) -> str:
    """How a value reads in an error: `boolean no`, `number 0755`, `a list`."""
    name = _KIND_NAMES.get(node.kind, node.kind)
    if node.kind in ("map", "seq", "null"):
        return name
    shown = node.value if node.python else str(node.value)
    return f"{name} {shown!r}" if node.kind == "str" else f"{name} {shown}"


def _wrong(ctx: Ctx, node: Node, field: str, expected: str) -> ConfigError:
    hint = ""
    if expected.startswith("a string") and node.plain and node.kind not in ("map", "seq", "str", "null"):
        hint = "; quote it"
    elif node.kind == "str" and not node.python and expected in ("a whole number", "true or false"):
        hint = "; remove the quotes"
    return ctx.error(node, field, f"expected {expected}, got {describe(node)}{hint}")


def text(ctx: Ctx, node: Node, field: str, expected: str = "a string") -> tuple[str, str]:
    """The string at `node` after ${VAR} expansion, and how to show it in errors."""
    if node.kind != "str":
        raise _wrong(ctx, node, field, expected)
    if node.python:
        return node.value, repr(node.value)
    try:
        value, from_env = expand(node.value, ctx.environ)
    except ExpandError as exc:
        raise ctx.error(node, field, str(exc)) from None
    return value, repr(node.value if from_env else value)


def string(ctx: Ctx, node: Node, field: str, pattern: re.Pattern[str] | None = None,
           rule: str = "") -> str:
    """A string, optionally matching `pattern` (`rule` says what it must look like)."""
    value, shown = text(ctx, node, field)
    if pattern is not None and not pattern.fullmatch(value):
        raise ctx.error(node, field, f"invalid value {shown}: {rule}")
    return value


def _from_env(node: Node) -> bool:
    return node.kind == "str" and not node.python and "${" in node.value


def integer(ctx: Ctx, node: Node, field: str, low: int, high: int) -> int:
    """A decimal integer in [low, high]; octal, sexagesimal and `1_000` spellings refused."""
    if node.python and node.kind == "int":
        value = node.value
    elif node.kind == "int" or _from_env(node):
        raw, shown = (node.value, node.value) if node.kind == "int" else text(ctx, node, field, "a whole number")
        if not _DECIMAL.fullmatch(raw):
            raise ctx.error(node, field, f"expected a whole number, got {shown}")
        value = int(raw)
    else:
        raise _wrong(ctx, node, field, "a whole number")
    try:
        return fields.between(value, field, low, high)
    except FieldError as exc:
        raise ctx.error(node, field, exc.message) from None


def boolean(ctx: Ctx, node: Node, field: str) -> bool:
    """true or false; YAML 1.1's yes/no/on/off are refused as ambiguous."""
    if node.python and node.kind == "bool":
        return node.value
    if node.kind == "bool" or _from_env(node):
        raw, shown = (node.value, node.value) if node.kind == "bool" else text(ctx, node, field, "true or false")
        if raw.lower() in ("true", "false"):
            return raw.lower() == "true"
        raise ctx.error(node, field, f"expected true or false, got {shown}")
    raise _wrong(ctx, node, field, "true or false")


def _amount(ctx: Ctx, node: Node, field: str, kinds: tuple[str, ...], what: str,
            parse: Callable[[str], float]) -> tuple[float, str]:
    """A number given from code (a node of `kinds`) as it is, or a string `parse` reads;
    with how to show it in errors. `what` is `duration like 30s` or the like."""
    if node.python and node.kind in kinds:
        return node.value, repr(node.value)
    raw, shown = text(ctx, node, field, f"a {what}")
    try:
        return parse(raw), shown
    except UnitError as exc:
        raise ctx.error(node, field, f"invalid {what.split()[0]} {shown}: {exc.hint}") from None


def duration(ctx: Ctx, node: Node, field: str, maximum: float) -> float:
    """Seconds from a duration string; > 0 and at most `maximum`. Python numbers are seconds."""
    kinds = ("int", "float")
    seconds, shown = _amount(ctx, node, field, kinds, "duration like 30s", parse_duration)
    seconds = float(seconds)
    if not 0 < seconds <= maximum:
        hint = ""
        if node.python and node.kind in kinds and seconds > maximum:
            # A number from code is seconds; a caller used to milliseconds gets told.
            hint = (f": the unit is seconds ({shown} s is {format_duration(seconds)}); "
                    f"for milliseconds write '{shown}ms'")
        raise ctx.error(node, field, f"must be more than 0s and at most {format_duration(maximum)}, "
                                     f"got {shown}{hint}")
    return seconds


def size(ctx: Ctx, node: Node, field: str, maximum: int) -> int:
    """Bytes from a size string like 1MiB; > 0 and at most `maximum`. Python ints are bytes."""
    value, shown = _amount(ctx, node, field, ("int",), "size like 1MiB", parse_size)
    if not 0 < value <= maximum:
        raise ctx.error(node, field, f"must be more than 0B and at most {format_size(maximum)}, got {shown}")
    return int(value)


def sequence(ctx: Ctx, node: Node, field: str, example: str) -> list[Node]:
    """The items of a list."""
    if node.kind != "seq":
        raise _wrong(ctx, node, field, f"a list like {example}")
    return node.value


def mapping(ctx: Ctx, node: Node, field: str | None, allowed: Iterable[str] | None) -> dict[str, Node]:
    """The entries of a mapping; keys must be strings, unique, and in `allowed` (None: any)."""
    if node.kind != "map":
        raise _wrong(ctx, node, field or "", "a mapping")
    inner = ctx.under(field) if field else ctx
    allowed = None if allowed is None else tuple(allowed)
    out: dict[str, Node] = {}
    lines: dict[str, int | None] = {}
    for key, value in node.value:
        if key.kind != "str":
            raise inner.error(key, None, f"keys must be strings, got {describe(key)}")
        name = key.value
        if name in out:
            first = f" (first at line {lines[name]})" if lines[name] else ""
            raise inner.error(key, name, f"duplicate key{first}")
        if allowed is not None and name not in allowed:
            close = difflib.get_close_matches(name, allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise inner.error(key, name, f"unknown field{hint}")
        out[name] = value
        lines[name] = key.line
    return out


def readable_file(ctx: Ctx, node: Node, field: str) -> str:
    """An absolute path to an existing, readable file; relative paths start at the config's folder."""
    value, shown = text(ctx, node, field)
    return existing_file(ctx, node, field, value, shown)


def existing_file(ctx: Ctx, node: Node, field: str, value: str, shown: str) -> str:
    """`value` as an absolute path (relative to the config's folder) of a file we can read."""
    path = os.path.normpath(os.path.join(ctx.base_dir, value))
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise ctx.error(node, field, f"cannot read file {shown}: {exc.strerror or exc}") from None
    return path
