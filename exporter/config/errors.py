"""Configuration errors that name where the problem is."""

from __future__ import annotations


class ConfigError(Exception):
    """A configuration problem: file, line, service and field, plus the message."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        service: str | None = None,
        field: str | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.service = service
        self.field = field
        super().__init__(str(self))

    def __str__(self) -> str:
        where = []
        if self.file:
            where.append(f"{self.file}:{self.line}" if self.line else self.file)
        if self.service:
            where.append(f"service {self.service!r}")
        if self.field:
            where.append(f"field {self.field!r}")
        return ": ".join([*where, self.message])
