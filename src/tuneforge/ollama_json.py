"""Tool definitions and call arguments written as Ollama writes them into a prompt.

Ollama (the Go server) renders a chat template with Go's `text/template`; `{{ json $tool }}` and
`{{ json .Function.Arguments }}` write what Go's `encoding/json` makes of Ollama's own types
(`template/template.go`, `api/types.go`, 2026): no spaces, `<`, `>` and `&` escaped as `\\u003c`…,
U+2028/9 escaped, map keys sorted (arguments arrive as a Go map, so their order is lost), numbers
through float64 (`3.0` → `3`, `1e-7` → `1e-7`), and a tool cut to the fields Ollama's structs hold:
`type`, `items`, `function.{name, description, parameters.{type, $defs, items, required,
properties}}` and, per property, `anyOf, type, items, description, enum, properties, required`.
Every other schema keyword (`pattern`, `minimum`, `format`, `additionalProperties`, …) never
reaches the model through Ollama.

tuneforge's Hermes layout (`chat_template`) writes tools and calls in this form, so a model trained
in that layout and exported with its Ollama Modelfile (`train/gguf_export.py`) is prompted at
serving time with the very text it was trained on. `ollama_tool` also returns what it left out, for
`train inspect` to show.

Hand-written: Python's `json` cannot be told to write Go's escapes and number forms, and no kept
library reproduces Ollama's struct projection. Checked against Go itself (`go run`, in the tests).
"""

from __future__ import annotations

import math
from typing import Any

# Ollama's struct fields, in their declaration order (the order encoding/json writes them)
_TOOL = ("type", "items", "function")
_FUNCTION = ("name", "description", "parameters")
_PARAMETERS = ("type", "$defs", "items", "required", "properties")
_PROPERTY = ("anyOf", "type", "items", "description", "enum", "properties", "required")


def _string(s: str) -> str:
    """encoding/json's string form (HTMLEscape on, Go >= 1.22's \\b and \\f)."""
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch in "\n\r\t\b\f":
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}[ch])
        elif o < 0x20 or ch in "<>&" or o in (0x2028, 0x2029):
            out.append(f"\\u{o:04x}")
        elif 0xD800 <= o <= 0xDFFF:  # a lone surrogate is invalid UTF-8 to Go: the replacement character
            out.append("\ufffd")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _number(x: float) -> str:
    """A float64 as encoding/json writes it (strconv 'f' in [1e-6, 1e21), else 'e' with e-07 → e-7)."""
    import numpy as np

    f = float(x)
    if not math.isfinite(f):
        raise ValueError(f"{x!r} is not a JSON number")
    if f == 0 or 1e-6 <= abs(f) < 1e21:
        return np.format_float_positional(f, unique=True, trim="-")
    s = np.format_float_scientific(f, unique=True, trim="-", exp_digits=2)
    mantissa, exp = s.split("e")
    if exp.startswith("-0"):
        exp = "-" + exp[2:]
    return f"{mantissa}e{exp}"


def go_json(value: Any, ordered: bool = False) -> str:
    """`value` (decoded JSON) as Go's json.Marshal writes it once decoded into `any`: object keys
    sorted (`ordered=True` keeps the dict's order: a Go struct or ordered map)."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, (int, float)):
        return _number(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(go_json(v) for v in value) + "]"
    if isinstance(value, dict):
        keys = list(value) if ordered else sorted(value)
        return "{" + ",".join(f"{_string(str(k))}:{go_json(value[k])}" for k in keys) + "}"
    raise TypeError(f"{type(value).__name__} is not JSON")


class _Struct(dict):
    """A dict written in its own key order (a Go struct), its values as they are."""


def _write(value: Any) -> str:
    if isinstance(value, _Struct):
        return "{" + ",".join(f"{_string(k)}:{_write(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list) and any(isinstance(v, _Struct) for v in value):
        return "[" + ",".join(_write(v) for v in value) + "]"
    return go_json(value)


def _property(p: dict, at: str, dropped: list[str]) -> _Struct:
    """api.ToolProperty: omitempty fields; nested `properties` keep their order (an ordered map)."""
    dropped += [f"{at}.{k}" for k in p if k not in _PROPERTY]
    out = _Struct()
    for k in _PROPERTY:
        v = p.get(k)
        if k == "anyOf" and v:
            out[k] = [_property(x, f"{at}.anyOf[{i}]", dropped) for i, x in enumerate(v)]
        elif k == "type" and v:
            out[k] = v[0] if isinstance(v, list) and len(v) == 1 else v
        elif k == "properties" and v is not None:
            out[k] = _Struct({n: _property(x, f"{at}.properties.{n}", dropped) for n, x in v.items()})
        elif k in ("items",) and v is not None:
            out[k] = v
        elif v:  # description, enum, required: omitted when empty
            out[k] = v
    return out


def ollama_tool(tool: dict) -> tuple[str, list[str]]:
    """(the text `{{ json $tool }}` writes in an Ollama template, the schema keys Ollama drops).
    `tool` is {"type": "function", "function": {...}} as `tool_use.parse_tools` returns it."""
    dropped = [k for k in tool if k not in _TOOL]
    fn = tool.get("function") or {}
    dropped += [f"function.{k}" for k in fn if k not in _FUNCTION]
    params = fn.get("parameters") or {}
    dropped += [f"parameters.{k}" for k in params if k not in _PARAMETERS]
    props = params.get("properties")
    p = _Struct(type=params.get("type", ""))
    for k in ("$defs", "items"):
        if params.get(k) is not None:
            p[k] = params[k]
    if params.get("required"):
        p["required"] = params["required"]
    # the top level's properties reach the template as a Go map: sorted by name
    p["properties"] = None if props is None else _Struct({n: _property(props[n], n, dropped) for n in sorted(props)})
    out = _Struct(type=tool.get("type", ""))
    if tool.get("items") is not None:
        out["items"] = tool["items"]
    out["function"] = _Struct(name=fn.get("name", ""), description=fn.get("description", ""), parameters=p)
    return _write(out), dropped


def call_json(name: str, arguments: dict) -> str:
    """A call as the Hermes layout writes it, and the Ollama template renders it:
    `{"name": <name>, "arguments": <arguments, keys sorted>}`."""
    return f'{{"name": {go_json(name)}, "arguments": {go_json(arguments)}}}'
