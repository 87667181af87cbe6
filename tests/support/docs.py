"""Read the project's Markdown: tables under a heading, and fenced blocks that tests run.

A fenced block is run by the snippet tests when its info string is `console` (lines starting
with `$ ` are commands, the lines after one up to the next command are its expected output)
or `python`. An info string that also carries `no-run` (```console no-run) marks a block that
needs a live stack or changes the machine: it is shown but not executed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC_FILES = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))

_FENCE = re.compile(r"^(```+|~~~+)\s*(.*)$")


@dataclass(frozen=True)
class Block:
    """One fenced block: where it is, its language, whether it runs, and its text."""

    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    run: bool
    text: str

    @property
    def where(self) -> str:
        """path:line, relative to the repository."""
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def blocks(path: Path) -> list[Block]:
    """Every fenced block of a Markdown file."""
    out: list[Block] = []
    lines = path.read_text(encoding="utf-8").split("\n")
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        fence, info = match.group(1), match.group(2).split()
        start, body = i + 1, []
        i += 1
        while i < len(lines) and not lines[i].startswith(fence):
            body.append(lines[i])
            i += 1
        i += 1
        lang = info[0] if info else ""
        out.append(Block(path, start, lang, "no-run" not in info[1:], "\n".join(body) + "\n"))
    return out


def runnable(lang: str) -> list[Block]:
    """Every block of README.md and docs/*.md in `lang` that is not marked no-run."""
    return [b for path in DOC_FILES for b in blocks(path) if b.lang == lang and b.run]


@dataclass(frozen=True)
class Command:
    """One `$ command` of a console block and the output lines shown after it."""

    block: Block
    command: str
    output: tuple[str, ...]


def commands(block: Block) -> list[Command]:
    """The commands of a console block, each with its expected output lines."""
    out: list[Command] = []
    command, output = None, []
    for line in block.text.rstrip("\n").split("\n"):
        if line.startswith("$ "):
            if command is not None:
                out.append(Command(block, command, tuple(output)))
            command, output = line[2:].strip(), []
        elif command is not None:
            output.append(line)
    if command is not None:
        out.append(Command(block, command, tuple(output)))
    return out


def section(path: Path, heading: str) -> str:
    """The text under the `## heading` (or any level) of a Markdown file, up to the next one
    of the same or a higher level."""
    lines = path.read_text(encoding="utf-8").split("\n")
    for i, line in enumerate(lines):
        match = re.match(r"^(#+) (.*)$", line)
        if match and match.group(2).strip() == heading:
            level = len(match.group(1))
            body = []
            for rest in lines[i + 1:]:
                other = re.match(r"^(#+) ", rest)
                if other and len(other.group(1)) <= level:
                    break
                body.append(rest)
            return "\n".join(body)
    raise LookupError(f"{path.name}: no heading {heading!r}")


def table(text: str) -> list[dict[str, str]]:
    """The rows of the first Markdown table in `text`, as header → cell (`\\|` is a `|`)."""
    rows: list[list[str]] = []
    for line in text.split("\n"):
        if line.startswith("|"):
            cells = re.split(r"(?<!\\)\|", line.strip().strip("|"))
            rows.append([c.strip().replace("\\|", "|") for c in cells])
        elif rows:
            break
    if len(rows) < 2:
        raise LookupError("no table")
    header = rows[0]
    return [dict(zip(header, row, strict=True)) for row in rows[2:]]


def code_spans(cell: str) -> list[str]:
    """The `code` spans of a table cell."""
    return re.findall(r"`([^`]+)`", cell)
