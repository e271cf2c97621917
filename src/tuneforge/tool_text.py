"""Tool calls and reasoning traces written inside an assistant's text, the Hermes / Qwen way:

    <think>
    …the trace…
    </think>

    The answer, if any.
    <tool_call>
    {"name": "get_rate", "arguments": {"base": "EUR"}}
    </tool_call>

`render_turn` writes a turn in this form. `parse_turn(text)` reads what a model generated, leniently
(blocks anywhere, whitespace trimmed); a `<tool_call>` block that is not a JSON object with a name
— or is cut off by the token limit — is kept in `malformed`, never dropped, so metrics can count it.
`parse_turn(text, exact=True)` is the exact inverse of `render_turn` for the `hermes` and
`sharegpt` data formats: `parse_turn(render_turn(c, r, k), exact=True)` gives back c, r and k
character for character; text that is not in the rendered form stays words (`renderable` says
whether a turn can be written so and read back).

Hand-written: the block grammar is a few lines and no kept library parses it (transformers renders
templates but does not parse model output back; its `parse_response` schemas are per model).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
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


def _plain_call(name: str, arguments: dict) -> str:
    return json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)


def render_turn(
    content: str,
    reasoning: str = "",
    calls: tuple[ToolCall, ...] | list[ToolCall] = (),
    call_json: Callable[[str, dict], str] = _plain_call,
) -> str:
    """The turn as text. `call_json` writes each call's JSON: Python's form (data files) by default;
    the Hermes training layout passes `ollama_json.call_json`, the form Ollama renders."""
    parts = [f"{THINK_OPEN}\n{reasoning}\n{THINK_CLOSE}\n\n"] if reasoning else []
    if content:
        parts.append(content)
    blocks = [f"{CALL_OPEN}\n{call_json(c.name, c.arguments)}\n{CALL_CLOSE}" for c in calls]
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


_THINK_HEAD, _THINK_TAIL = f"{THINK_OPEN}\n", f"\n{THINK_CLOSE}\n\n"
_BLOCKS = re.compile(r"<tool_call>\n(.*?)\n</tool_call>(?:\n(?=<tool_call>\n)|$)", re.S)


def split_reasoning(text: str) -> tuple[str, str]:
    """(trace, rest) of a turn `render_turn` wrote; ("", text) when it opens with no rendered trace."""
    if text.startswith(_THINK_HEAD):
        end = text.find(_THINK_TAIL, len(_THINK_HEAD) - 1)
        if end >= 0:
            return text[len(_THINK_HEAD) : end], text[end + len(_THINK_TAIL) :]
    return "", text


def _exact_calls(rest: str) -> tuple[str, list[str]] | None:
    """(words, call bodies) when `rest` ends with the rendered call blocks, else None."""
    at = rest.find(CALL_OPEN)
    while at >= 0:
        if at == 0 or rest[at - 1] == "\n":
            tail, bodies, pos = rest[at:], [], 0
            for m in _BLOCKS.finditer(tail):
                if m.start() != pos:
                    break
                bodies.append(m.group(1))
                pos = m.end()
            if bodies and pos == len(tail):
                return rest[: max(at - 1, 0)], bodies
        at = rest.find(CALL_OPEN, at + 1)
    return None


def parse_turn(text: str, call_ids: list[str] | None = None, exact: bool = False) -> ParsedTurn:
    """Split an assistant's text into its trace, its words and its calls. `call_ids` names the
    calls in order (default: none). `exact`: read only what `render_turn` writes, keep all else."""
    if exact:
        reasoning, rest = split_reasoning(text)
        found = _exact_calls(rest)
        content, bodies = found if found else (rest, [])
        blocks = [f"{CALL_OPEN}\n{b}\n{CALL_CLOSE}" for b in bodies]
    else:
        reasoning, rest = reasoning_of(text), strip_reasoning(text)
        blocks = [m.group(0) for m in _CALL.finditer(rest)]
        content = _CALL.sub("", rest).strip()
        if not blocks and (json_calls := _json_calls(content)) is not None:
            return _read_blocks(json_calls[0], reasoning, json_calls[1], call_ids)
    return _read_blocks(blocks, reasoning, content, call_ids)


def _json_calls(text: str) -> tuple[list[str], str] | None:
    """Llama 3.1's JSON calls: a reply that opens with `{"name": …, "parameters": …}` objects (several
    joined by "; ", after an optional <|python_tag|>) → (one block each, the words after them); None
    for a reply that does not open so. A cut-off object is a block of its own (malformed)."""
    body = text.removeprefix("<|python_tag|>").strip()
    if not _JSON_CALL.match(body):
        return None
    blocks: list[str] = []
    pos = 0
    while True:
        try:
            _, end = _DECODER.raw_decode(body, pos)
        except ValueError:
            return [*blocks, body[pos:]], ""
        blocks.append(body[pos:end])
        sep = _JSON_SEP.match(body, end)
        if not sep:
            return blocks, body[end:].strip()
        pos = sep.end()


_JSON_CALL = re.compile(r'\{\s*"name"\s*:')
_JSON_SEP = re.compile(r'\s*;\s*(?=\{\s*"name"\s*:)')
_DECODER = json.JSONDecoder()


def _read_blocks(blocks: list[str], reasoning: str, content: str, call_ids: list[str] | None) -> ParsedTurn:
    calls: list[ToolCall] = []
    malformed: list[str] = []
    for block in blocks:
        tagged = block.startswith(CALL_OPEN)
        body = block[len(CALL_OPEN) :].removesuffix(CALL_CLOSE).strip() if tagged else block
        try:
            obj = json.loads(body)
            if (tagged and not block.endswith(CALL_CLOSE)) or not isinstance(obj, dict):
                raise ValueError
            if not isinstance(obj.get("name"), str) or not obj["name"]:
                raise ValueError
            args = parse_arguments(obj.get("arguments", obj.get("parameters", {})), "arguments")
        except (ValueError, RecursionError, DataError):
            malformed.append(block)
            continue
        cid = call_ids[len(calls)] if call_ids and len(calls) < len(call_ids) else ""
        calls.append(ToolCall(obj["name"], args, cid))
    return ParsedTurn(content, reasoning, calls, malformed)


def renderable(content: str, reasoning: str = "", calls: tuple[ToolCall, ...] | list[ToolCall] = ()) -> bool:
    """Whether the turn, written by `render_turn`, reads back exactly (words holding a <tool_call>
    block or opening with a <think> block, or a trace holding </think>, would not)."""
    back = parse_turn(render_turn(content, reasoning, calls), exact=True)
    same_calls = [(c.name, c.arguments) for c in back.calls] == [(c.name, c.arguments) for c in calls]
    return back.content == content and back.reasoning == reasoning and same_calls and not back.malformed


def render_tool_result(content: str) -> str:
    return f"{RESPONSE_OPEN}\n{content}\n{RESPONSE_CLOSE}"


def split_tool_results(text: str) -> list[str] | None:
    """The results of a tool turn `render_tool_result` wrote, one per block (several: parallel calls
    answered in one turn, as Qwen writes them); None when the text is not in that form."""
    head, tail, sep = f"{RESPONSE_OPEN}\n", f"\n{RESPONSE_CLOSE}", f"\n{RESPONSE_CLOSE}\n{RESPONSE_OPEN}\n"
    if not (text.startswith(head) and text.endswith(tail) and len(text) >= len(head) + len(tail)):
        return None
    return text[len(head) : len(text) - len(tail)].split(sep)
