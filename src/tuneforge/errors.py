"""Errors a user can act on, and the one helper that turns a name into a thing.

Every message follows `<what is wrong>: <value>. <where>. <how to fix>`; the CLI prints it as one
line and exits with code 2 (`--debug` shows the traceback).
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Mapping
from typing import Any


class TuneforgeError(Exception):
    """Base class for every error caused by user input (files, configs, names)."""


class ConfigError(TuneforgeError):
    """A config file or `key=value` override is wrong."""


class DataError(TuneforgeError):
    """A data file is malformed. Carries the file, the 1-based line and the field."""

    def __init__(self, message: str, path: str | None = None, line: int | None = None, field: str | None = None):
        self.message, self.path, self.line, self.field = message, path, line, field
        where = ""
        if path is not None:
            where = f"{path}:{line}" if line is not None else str(path)
            if field:
                where += f" (field '{field}')"
            where = f" [{where}]"
        super().__init__(f"{message}{where}")


def read_text(path, what: str = "file") -> str:
    """A user's text file as str; bytes that are not UTF-8 are a DataError naming the file, the
    line and the byte, never a bare UnicodeDecodeError. Every reader of user input goes through here."""
    from pathlib import Path

    try:
        data = Path(path).read_bytes()
    except IsADirectoryError:
        raise DataError(f"{what} is a directory, not a file. Give the file's path", path=str(path)) from None
    except FileNotFoundError:
        raise DataError(f"{what} not found. Check the path", path=str(path)) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(
            f"{what} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}). Re-save it as UTF-8",
            path=str(path),
            line=line,
        ) from None


class UnknownNameError(TuneforgeError):
    """A name (metric, format, adapter method, model…) that tuneforge does not know."""


def suggest(name: str, choices) -> str:
    """Return ' Did you mean: x?' for the closest choice, or '' when nothing is close."""
    choices = [str(c) for c in choices]
    close = difflib.get_close_matches(str(name), choices, n=3, cutoff=0.5)
    # difflib scores one-letter names low ('rank' vs 'r'); a shared prefix is a good hint too.
    close = close or [c for c in choices if str(name).startswith(c) or c.startswith(str(name))][:3]
    return f" Did you mean: {', '.join(close)}?" if close else ""


def lookup(table: Mapping[str, Any], name: str, kind: str) -> Any:
    """Return `table[name]`, or import `pkg.module:attr` when `name` is a dotted path.

    Raises:
        UnknownNameError: naming the closest entries and every available one.
    """
    if name in table:
        return table[name]
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            return getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise UnknownNameError(
                f"cannot import {kind} '{name}': {exc}. Give 'package.module:attribute' of an "
                f"importable object, or one of: {', '.join(sorted(table))}"
            ) from exc
    raise UnknownNameError(f"unknown {kind} '{name}'.{suggest(name, table)} Available: {', '.join(sorted(table))}")


def check_choices(values, allowed, key: str, allow_empty: bool = True) -> None:
    """Raise ConfigError naming `key` when some of `values` are not in `allowed` (or it is empty
    and must not be)."""
    bad = [v for v in values if v not in allowed]
    if bad or (not values and not allow_empty):
        raise ConfigError(
            f"{key} {bad or '[]'}: use some of {', '.join(map(str, allowed))}"
            + (suggest(str(bad[0]), [str(a) for a in allowed]) if bad else "")
        )
