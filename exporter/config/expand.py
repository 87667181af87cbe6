"""`${VAR}` and `${VAR:-default}` expansion in services.yaml strings; `$$` is a literal `$`."""

from __future__ import annotations

import re
from collections.abc import Mapping

_TOKEN = re.compile(r"\$\$|\$\{")
_REFERENCE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?", re.DOTALL)


class ExpandError(ValueError):
    """A malformed reference, or a variable that is unset and has no default."""


def expand(text: str, environ: Mapping[str, str]) -> tuple[str, bool]:
    """`text` with references replaced, and whether any variable was substituted."""
    if "$" not in text:
        return text, False
    out: list[str] = []
    pos = 0
    used = False
    for match in _TOKEN.finditer(text):
        if match.start() < pos:
            continue  # inside a reference already consumed
        out.append(text[pos:match.start()])
        if match.group() == "$$":
            out.append("$")
            pos = match.end()
            continue
        close = text.find("}", match.end())
        if close < 0:
            raise ExpandError("unclosed '${': write ${NAME} or ${NAME:-default}")
        body = text[match.end():close]
        ref = _REFERENCE.fullmatch(body)
        if not ref:
            # The body is the name as written, never a value: safe to show.
            raise ExpandError(f"malformed reference '${{{body[:40]}}}': write ${{NAME}} or ${{NAME:-default}}")
        name, default = ref.groups()
        value = environ.get(name)
        if default is not None and not value:
            value = default
        elif value is None:
            raise ExpandError(f"environment variable {name} is not set (write ${{{name}:-default}} for a default)")
        else:
            used = True
        out.append(value)
        pos = close + 1
    out.append(text[pos:])
    return "".join(out), used
