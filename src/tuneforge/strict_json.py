"""JSON read more strictly than `json.loads`, so that what is read can be written back as valid JSON
and nothing is silently changed: a duplicate key (json keeps the last silently), NaN / Infinity /
1e400 (not JSON numbers), an integer too long to read and nesting too deep to parse are DataErrors
naming what to fix. Data files (`data.io`) and JSON held inside a record (a tool call's arguments,
LLaMA-Factory's `tools` text — `tool_use`) are read through the same decoder."""

from __future__ import annotations

import json
import math
from typing import Any

from tuneforge.errors import DataError


def _object(pairs: list[tuple[str, Any]]) -> dict:
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise DataError(f"duplicate key '{key}' in a JSON object. Keep one", field=key)
        out[key] = value
    return out


def _not_a_number(text: str) -> float:
    raise DataError(f"{text} is not a JSON number. Write null or a number")


def _float(text: str) -> float:
    if not math.isfinite(x := float(text)):
        raise DataError(f"{text[:40]} is too large for a number. Write a smaller one")
    return x


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise DataError(f"an integer of {len(text)} digits is too long to read. Write a shorter one") from None


DECODER = json.JSONDecoder(object_pairs_hook=_object, parse_constant=_not_a_number, parse_float=_float, parse_int=_int)


def loads(text: str, what: str, field: str | None = None) -> Any:
    """`text` parsed by DECODER; any problem is a DataError saying that `what` is not valid JSON."""
    try:
        return DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{what} is not valid JSON ({exc.msg}): {text[:80]!r}", field=field) from None
    except RecursionError:
        raise DataError(f"{what} is JSON nested too deeply to read. Flatten it", field=field) from None
    except DataError as exc:
        raise DataError(f"{what}: {exc.message}", field=field) from None
