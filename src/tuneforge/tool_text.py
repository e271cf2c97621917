"""Tool calls and reasoning traces written inside an assistant's text, the Hermes / Qwen way:

    <think>
    …the trace…
    </think>

    The answer, if any.
    <tool_call>
    {"name": "get_rate", "arguments": {"base": "EUR"}}
    </tool_call>

`render_turn` writes a turn in this form and `parse_turn` reads it back (`parse_turn(render_turn(…))`
gives the same turn); a `<tool_call>` block that is not a JSON object with a name — or is cut off
by the token limit — is kept in `malformed`, never dropped, so metrics can count it. This is how
generated text becomes calls again, and how the `hermes` data format stores structure in text.

Hand-written: the block grammar is a few lines and no kept library parses it (transformers renders
templates but does not parse model output back; its `parse_response` schemas are per model).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from tuneforge.errors import DataError
from tuneforge.tool_use import ToolCall, parse_arguments

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
CALL_OPEN, CALL_CLOSE = "<tool_call>", "</tool_call>"
RESPONSE_OPEN, RESPONSE_CLOSE = "<tool_response>", "</tool_response>"
_THINK = re.compile(r"^\s*<think>(.*?)</think>\s*", re.S)
_CALL = re.compile(r"<tool_call>(.*?)(?:</tool_call>|$)", re.S)


@dataclass
class ParsedTurn:
    content: str
    reasoning: str = ""
    calls: list[ToolCall] = field(default_factory=list)
    malformed: list[str] = field(default_factory=list)  # the text of each block that is no call


def render_turn(content: str, reasoning: str = "", calls: tuple[ToolCall, ...] | list[ToolCall] = ()) -> str:
    parts = [f"{THINK_OPEN}\n{reasoning}\n{THINK_CLOSE}\n\n"] if reasoning else []
    if content:
        parts.append(content)
    blocks = [
        f"{CALL_OPEN}\n{json.dumps({'name': c.name, 'arguments': c.arguments}, ensure_ascii=False)}\n{CALL_CLOSE}"
        for c in calls
    ]
    if blocks:
        parts.append(("\n" if content else "") + "\n".join(blocks))
    return "".join(parts)


def strip_reasoning(text: str) -> str:
    """`text` without a leading <think> block (and without an unclosed one: a trace cut off by the
    token limit has no answer after it)."""
    m = _THINK.match(text)
    if m:
        return text[m.end() :]
    return "" if text.lstrip().startswith(THINK_OPEN) else text


def reasoning_of(text: str) -> str:
    m = _THINK.match(text)
    if m:
        return m.group(1).strip()
    return text.lstrip()[len(THINK_OPEN) :].strip() if text.lstrip().startswith(THINK_OPEN) else ""


def parse_turn(text: str, call_ids: list[str] | None = None) -> ParsedTurn:
    """Split an assistant's text into its trace, its words and its calls. `call_ids` names the
    calls in order (default: none)."""
    reasoning = reasoning_of(text)
    rest = strip_reasoning(text)
    calls: list[ToolCall] = []
    malformed: list[str] = []
    for m in _CALL.finditer(rest):
        body = m.group(1).strip()
        complete = m.group(0).endswith(CALL_CLOSE)
        try:
            obj = json.loads(body)
            if not complete or not isinstance(obj, dict) or not isinstance(obj.get("name"), str) or not obj["name"]:
                raise ValueError
            args = parse_arguments(obj.get("arguments", obj.get("parameters", {})), "arguments")
        except (ValueError, DataError):
            malformed.append(m.group(0))
            continue
        cid = call_ids[len(calls)] if call_ids and len(calls) < len(call_ids) else ""
        calls.append(ToolCall(obj["name"], args, cid))
    content = _CALL.sub("", rest).strip()
    return ParsedTurn(content, reasoning, calls, malformed)


def render_tool_result(content: str) -> str:
    return f"{RESPONSE_OPEN}\n{content}\n{RESPONSE_CLOSE}"


def parse_tool_result(text: str) -> str:
    s = text.strip()
    if s.startswith(RESPONSE_OPEN) and s.endswith(RESPONSE_CLOSE):
        return s[len(RESPONSE_OPEN) : -len(RESPONSE_CLOSE)].strip("\n")
    return text
