"""Hostile-input-safe YAML: a small node tree with line numbers, no tags, anchors or aliases.

PyYAML's parser (libyaml when available) turns the text into events; we build the tree
from them ourselves, iteratively, so nothing is ever constructed from a tag, an alias
cannot multiply a node, and nesting depth is bounded without touching recursion limits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.resolver import Resolver

from .errors import ConfigError

MAX_BYTES = 1 << 20
MAX_DEPTH = 32

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_RESOLVER = Resolver()
_TAG_PREFIX = "tag:yaml.org,2002:"
# Characters YAML forbids in a stream; found before the parser does, to name them clearly.
_UNPRINTABLE = re.compile("[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass(frozen=True, eq=False)
class Node:
    """One YAML value: kind (map, seq, str, int, float, bool, null, ...), value and line.

    Scalars keep their text as written; maps hold (key node, value node) pairs in order,
    sequences a list of nodes. `python` nodes wrap values given from Python instead of
    YAML (the library's register()), so the same validation serves both.
    """

    kind: str
    value: Any
    line: int | None
    plain: bool = False  # an unquoted scalar: YAML chose its type from its spelling
    python: bool = False


def from_python(value: Any) -> Node:
    """A node tree for a plain Python value (dicts, lists, scalars)."""
    if isinstance(value, Node):
        return value
    if isinstance(value, dict):
        pairs = [(Node("str" if isinstance(k, str) else "other", k, None, python=True), from_python(v))
                 for k, v in value.items()]
        return Node("map", pairs, None, python=True)
    if isinstance(value, list | tuple):
        return Node("seq", [from_python(v) for v in value], None, python=True)
    if value is None:
        kind = "null"
    elif isinstance(value, bool):
        kind = "bool"
    elif isinstance(value, int):
        kind = "int"
    elif isinstance(value, float):
        kind = "float"
    elif isinstance(value, str):
        kind = "str"
    else:
        kind = type(value).__name__
    return Node(kind, value, None, python=True)


def _line_of(text: str | bytes, index: int) -> int:
    newline = "\n" if isinstance(text, str) else b"\n"
    return text.count(newline, 0, index) + 1  # type: ignore[arg-type]


def decode(data: bytes, source: str | None) -> str:
    """The file's text, refusing oversize files, NUL bytes, bad UTF-8 and control characters."""
    if len(data) > MAX_BYTES:
        raise ConfigError(f"file is larger than 1MiB ({len(data)} bytes)", file=source)
    nul = data.find(b"\x00")
    if nul >= 0:
        raise ConfigError("NUL byte in the file; is it a binary file?", file=source, line=_line_of(data, nul))
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = _line_of(data, exc.start)
        raise ConfigError(f"not valid UTF-8 (byte 0x{data[exc.start]:02x})", file=source, line=line) from None
    bad = _UNPRINTABLE.search(text)
    if bad:
        line = _line_of(text, bad.start())
        raise ConfigError(f"unacceptable character U+{ord(bad.group()):04X}", file=source, line=line)
    return text


def _tag_name(tag: str) -> str:
    return "!!" + tag[len(_TAG_PREFIX):] if tag.startswith(_TAG_PREFIX) else tag


def _scalar(event: yaml.ScalarEvent, line: int) -> Node:
    tag = _RESOLVER.resolve(yaml.ScalarNode, event.value, event.implicit)
    kind = tag[len(_TAG_PREFIX):] if tag.startswith(_TAG_PREFIX) else tag
    return Node(kind, event.value, line, plain=not event.style)


def compose(text: str, source: str | None) -> Node | None:
    """The single document in `text` as a Node tree; None when the file holds no value."""
    loader = _Loader(text)
    stack: list[tuple[str, list[Any], int]] = []
    root: Node | None = None
    documents = 0
    try:
        while loader.check_event():
            event = loader.get_event()
            line = event.start_mark.line + 1 if event.start_mark else None
            if isinstance(event, yaml.DocumentStartEvent):
                documents += 1
                if documents > 1:
                    raise ConfigError("more than one YAML document (---) in the file", file=source, line=line)
                continue
            if isinstance(event, yaml.AliasEvent):
                raise ConfigError(f"aliases are not allowed (*{event.anchor})", file=source, line=line)
            if getattr(event, "anchor", None) is not None:
                raise ConfigError(f"anchors are not allowed (&{event.anchor})", file=source, line=line)
            if getattr(event, "tag", None) is not None:
                raise ConfigError(f"tags are not allowed ({_tag_name(event.tag)})", file=source, line=line)
            node: Node | None = None
            if isinstance(event, yaml.ScalarEvent):
                node = _scalar(event, line)
            elif isinstance(event, yaml.SequenceStartEvent | yaml.MappingStartEvent):
                if len(stack) >= MAX_DEPTH:
                    raise ConfigError(f"nested deeper than {MAX_DEPTH} levels", file=source, line=line)
                stack.append(("seq" if isinstance(event, yaml.SequenceStartEvent) else "map", [], line))
            elif isinstance(event, yaml.SequenceEndEvent | yaml.MappingEndEvent):
                kind, items, start = stack.pop()
                value = list(zip(items[::2], items[1::2], strict=True)) if kind == "map" else items
                node = Node(kind, value, start)
            if node is not None:
                if stack:
                    stack[-1][1].append(node)
                else:
                    root = node
    except yaml.MarkedYAMLError as exc:
        # problem/context only: the snippet PyYAML would print may hold a secret.
        mark = exc.problem_mark or exc.context_mark
        if "nesting depth" in (exc.problem or ""):  # libyaml's own limit; same answer as ours
            raise ConfigError(f"nested deeper than {MAX_DEPTH} levels", file=source,
                              line=mark.line + 1 if mark else None) from None
        detail = "; ".join(part for part in (exc.context, exc.problem) if part)
        raise ConfigError(f"invalid YAML: {detail}", file=source, line=mark.line + 1 if mark else None) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {type(exc).__name__}", file=source) from None
    finally:
        loader.dispose()
    if root is not None and root.kind == "null":
        return None
    return root
