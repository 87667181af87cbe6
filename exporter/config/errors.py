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


class CheckImportError(ConfigError):
    """A python service's `check` cannot be imported or is not callable: the file is valid,
    the code it names is not there (`serve` exits 1 for it, as `check-config` does)."""


class ConfigErrors(ConfigError):
    """Several problems of one file, in file order; reads as the first of them.

    Its file, line, service, field and message are the first error's, so a caller that
    shows one error shows that one; `errors` holds them all (at most MAX_ERRORS, and
    `more` counts the ones left out).
    """

    MAX_ERRORS = 20

    def __init__(self, errors: list[ConfigError]) -> None:
        ordered = sorted(errors, key=lambda e: (e.line is None, e.line or 0))
        self.errors = ordered[: self.MAX_ERRORS]
        self.more = len(ordered) - len(self.errors)
        first = self.errors[0]
        super().__init__(first.message, file=first.file, line=first.line,
                         service=first.service, field=first.field)
