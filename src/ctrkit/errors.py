"""Exceptions that say where the problem is.

Every error about user input names the file and, where it is known, the line and the column
(or the config key), so a user can go straight to the offending place.
"""

from __future__ import annotations

from pathlib import Path


class CtrkitError(Exception):
    """Base class of every error ctrkit raises on purpose."""


class ConfigError(CtrkitError, ValueError):
    """A config or schema file is invalid: names the file and the key."""

    def __init__(self, message: str, *, file: str | Path | None = None, key: str | None = None):
        self.file = str(file) if file is not None else None
        self.key = key
        where = []
        if self.file:
            where.append(self.file)
        if key:
            where.append(f"key '{key}'")
        prefix = (": ".join(where) + ": ") if where else ""
        super().__init__(prefix + message)


class DataError(CtrkitError, ValueError):
    """A data file is invalid: names the file, the line (1-based, header included) and the column."""

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        line: int | None = None,
        column: str | None = None,
    ):
        self.file = str(file) if file is not None else None
        self.line = line
        self.column = column
        where = []
        if self.file:
            where.append(self.file)
        if line is not None:
            where.append(f"line {line}")
        if column is not None:
            where.append(f"column '{column}'")
        prefix = (", ".join(where) + ": ") if where else ""
        super().__init__(prefix + message)
