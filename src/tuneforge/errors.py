"""Errors a user can act on, and the one helper that turns a name into a thing.

Every message follows `<what is wrong>: <value>. <where>. <how to fix>`; the CLI prints it as one
line and exits with code 2 (`--debug` shows the traceback).
"""

from __future__ import annotations

import difflib
import errno
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


MAX_TEXT_BYTES = 2 * 1024**3  # far above any real data or config file; more is a disk image or a device


def read_text(path, what: str = "file") -> str:
    """A user's text file as str; bytes that are not UTF-8 are a DataError naming the file, the
    line and the byte, never a bare UnicodeDecodeError. Every reader of user input goes through here.

    Only a regular file of at most MAX_TEXT_BYTES is read: /dev/zero would fill the memory, and
    opening a FIFO blocks until something writes to it, so the path is stat-ed before it is opened."""
    import os
    import stat

    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise DataError(f"{what} not found. Check the path", path=str(path)) from None
    except OSError as exc:  # permission denied on a parent, a name too long, a symlink loop
        raise DataError(f"{what} cannot be read ({exc.strerror}). Check the path", path=str(path)) from None
    if stat.S_ISDIR(st.st_mode):
        raise DataError(f"{what} is a directory, not a file. Give the file's path", path=str(path))
    if not stat.S_ISREG(st.st_mode):
        raise DataError(
            f"{what} is not a regular file but a {_file_kind(st.st_mode)}. Give the path of a file on disk",
            path=str(path),
        )
    if st.st_size > MAX_TEXT_BYTES:
        raise DataError(
            f"{what} is too large: {st.st_size / 1024**3:.1f} GiB, over the {MAX_TEXT_BYTES // 1024**3} GiB limit "
            "for a text file. Split it into smaller files",
            path=str(path),
        )
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_TEXT_BYTES + 1)  # the file may grow after the stat
    except OSError as exc:
        raise DataError(f"{what} cannot be read ({exc.strerror}). Check its permissions", path=str(path)) from None
    if len(data) > MAX_TEXT_BYTES:
        raise DataError(f"{what} grew past the {MAX_TEXT_BYTES // 1024**3} GiB limit while being read", path=str(path))
    try:
        return data.decode("utf-8").removeprefix("\ufeff")  # a BOM (Windows editors) is no content
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(
            f"{what} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}). Re-save it as UTF-8",
            path=str(path),
            line=line,
        ) from None


def _file_kind(mode: int) -> str:
    import stat

    kinds = [(stat.S_ISFIFO, "FIFO (named pipe)"), (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device")]
    return next((name for test, name in kinds if test(mode)), "socket or other special file")


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


# What the file system says about a path the user chose, with the fix: the CLI turns these into one
# line (a bug's OSError — a missing file tuneforge itself wrote, say — keeps its traceback).
_OS_FIXES = {
    errno.ENOSPC: "the disk is full: free space or write elsewhere",
    errno.EDQUOT: "the disk quota is used up: free space or write elsewhere",
    errno.EROFS: "the file system is read-only: write elsewhere",
    errno.EACCES: "permission denied: fix the permissions or write elsewhere",
    errno.EPERM: "operation not permitted: fix the permissions or write elsewhere",
    errno.EISDIR: "it is a folder where a file was expected: give a file path",
    errno.ENOTDIR: "a part of the path is a file, not a folder: give another path",
    errno.ENAMETOOLONG: "the path is too long: give a shorter one",
    errno.EEXIST: "something already exists there: give another path",
    errno.ENOENT: "no such file or folder, or none can be created there (/proc, /sys): check the path",
}


def os_error_message(exc: OSError) -> str | None:
    """One line for an OSError caused by the user's paths or disk, or None for any other."""
    fix = _OS_FIXES.get(exc.errno) if exc.errno is not None else None
    if fix is None:
        return None
    where = exc.filename if exc.filename is not None else "a file"
    return f"cannot use {where}: {fix} ({exc.strerror or type(exc).__name__})"
