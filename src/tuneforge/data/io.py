"""Read and write instruction data in the formats the field uses.

Formats (`FORMATS`):
- `jsonl`     tuneforge/TRL JSONL: `messages` (SFT), `prompt`/`completion`, `prompt`/`chosen`/
              `rejected` (preference), plus `id`, `domain`, `task`, `source`, `meta`. Lossless.
- `openai`    OpenAI chat fine-tuning JSONL: `messages` (tool-call `arguments` as JSON text, as the
              API writes them) and `tools` per line (our extra keys dropped).
- `alpaca`    JSON array or JSONL of `instruction`/`input`/`output` (+ optional `system`, and
              LLaMA-Factory's `history` [[user, assistant], ...] for multi-turn).
- `sharegpt`  JSON array or JSONL of `conversations` [{"from": "human"|"gpt"|..., "value"}];
              LLaMA-Factory's tool convention: `function_call` turns holding {"name", "arguments"}
              (a list for parallel calls), `observation` turns for the results, `tools` as the JSON
              text of the function list, a trace as a leading <think>…</think> in a `gpt` value.
- `hermes`    JSONL `messages` whose assistant text holds the calls and trace as Hermes/Qwen blocks
              (<tool_call>{…}</tool_call>, <think>…</think>; tool results in <tool_response>), read
              into structure (`tuneforge.tool_text`), plus `tools`.
- `superni`   a Super-NaturalInstructions task file (`Definition`, `Instances`, ...). Each instance
              becomes an Example: system = Definition, user = input, assistant = first output;
              all outputs are kept in `meta.references`. Task-level keys other than Definition,
              Categories, Domains, Source and Reasoning (e.g. Positive Examples) are not carried
              per record.
- `self_instruct`  Self-Instruct seed tasks JSONL (`instruction`, `instances`, `is_classification`).

Reading validates every record first; writing goes to a temporary file renamed into place only
when everything converted, so a bad record never leaves a half-written output.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from tuneforge import strict_json
from tuneforge.data.hub import HUB_PREFIX, load_hub_rows
from tuneforge.errors import DataError, UnknownNameError, read_text, suggest
from tuneforge.files import check_output_file, write_text_atomic
from tuneforge.records import EvalItem, Example, Generation, Message, PreferencePair
from tuneforge.strict_json import DECODER
from tuneforge.tool_text import (
    CALL_OPEN,
    RESPONSE_CLOSE,
    RESPONSE_OPEN,
    parse_turn,
    render_tool_result,
    render_turn,
    renderable,
    split_reasoning,
    split_tool_results,
)
from tuneforge.tool_use import ToolCall

Record = Example | PreferencePair | EvalItem | Generation
R = TypeVar("R", Example, PreferencePair, EvalItem, Generation)
_KIND_NAMES = {
    Example: "SFT examples",
    PreferencePair: "preference pairs",
    EvalItem: "evaluation items",
    Generation: "generations",
}


def records_of(records: list[Record], kind: type[R], path: str | Path, fix: str) -> list[R]:
    """`records`, typed as `kind`; a record of another kind is a DataError that says what was found
    and `fix` (which file to give instead)."""
    bad = next((r for r in records if not isinstance(r, kind)), None)
    if bad is not None:
        raise DataError(f"expected {_KIND_NAMES[kind]}, found a {type(bad).__name__} record. {fix}", path=str(path))
    return [r for r in records if isinstance(r, kind)]


# --------------------------------------------------------------------------- raw JSON reading
# Stricter than json.loads (`strict_json.DECODER`), so that what is read can be written back as
# valid JSON; a lone UTF-16 surrogate ("\ud800", which no UTF-8 file can hold) is a DataError too.
_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _check_strings(obj: Any, text: str) -> None:
    """A DataError naming the top-level key whose strings hold a lone surrogate (looked for only when
    `text`, the JSON it was read from, escapes one)."""
    if not _SURROGATE_ESCAPE.search(text):
        return

    def has(x: Any) -> bool:
        if isinstance(x, str):
            return bool(_SURROGATE.search(x))
        items = [*x.keys(), *x.values()] if isinstance(x, dict) else x if isinstance(x, list) else []
        return any(has(i) for i in items)

    for key, value in obj.items() if isinstance(obj, dict) else [(None, obj)]:
        if has(key) or has(value):
            raise DataError(
                "a string holds a lone UTF-16 surrogate (an unpaired \\ud800-\\udfff escape), which is no "
                "character. Remove it or give the whole pair",
                field=key,
            )


def _iter_jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    # split on "\n" only: str.splitlines() would also split inside strings holding U+2028
    for lineno, line in enumerate(read_text(path, "data file").split("\n"), 1):
        if not line.strip():
            continue
        try:
            obj = DECODER.decode(line)
            _check_strings(obj, line)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"invalid JSON: {exc.msg} at column {exc.colno}. Fix or remove this line", path=str(path), line=lineno
            ) from None
        except RecursionError:
            raise DataError(
                "JSON nested too deeply to read. Flatten this record", path=str(path), line=lineno
            ) from None
        except DataError as exc:
            raise DataError(exc.message, path=str(path), line=lineno, field=exc.field) from None
        if not isinstance(obj, dict):
            raise DataError(f"expected a JSON object per line, got {type(obj).__name__}", path=str(path), line=lineno)
        yield lineno, obj


def _iter_json_array(path: Path) -> Iterator[tuple[int, dict]]:
    """Yield (line, element) of a top-level JSON array, so errors can name the element's line.

    Hand-written because `json.load` gives no positions for the elements it returns.
    """
    text = read_text(path, "data file")
    dec, pos = DECODER, 0

    def skip(p: int) -> int:
        while p < len(text) and text[p] in " \t\r\n":
            p += 1
        return p

    def fail(msg: str, p: int):
        raise DataError(msg, path=str(path), line=text.count("\n", 0, p) + 1)

    pos = skip(pos)
    if pos >= len(text) or text[pos] != "[":
        fail("expected a JSON array ('[' ...)", pos)
    pos = skip(pos + 1)
    if pos < len(text) and text[pos] == "]":
        return
    while True:
        try:
            obj, end = dec.raw_decode(text, pos)
            _check_strings(obj, text[pos:end])
        except json.JSONDecodeError as exc:
            fail(f"invalid JSON: {exc.msg}", exc.pos)
        except RecursionError:
            fail("JSON nested too deeply to read. Flatten this record", pos)
        except DataError as exc:
            raise DataError(exc.message, path=str(path), line=text.count("\n", 0, pos) + 1, field=exc.field) from None
        line = text.count("\n", 0, pos) + 1
        if not isinstance(obj, dict):
            fail(f"expected an object in the array, got {type(obj).__name__}", pos)
        yield line, obj
        pos = skip(end)
        if pos < len(text) and text[pos] == ",":
            pos = skip(pos + 1)
        elif pos < len(text) and text[pos] == "]":
            return
        else:
            fail("expected ',' or ']' after an array element", pos)


def _iter_objects(path: Path) -> Iterator[tuple[int, dict]]:
    """JSON array or JSONL, decided by the first non-blank character."""
    head = read_text(path, "data file")[:4096].lstrip()
    return _iter_json_array(path) if head.startswith("[") else _iter_jsonl(path)


def _records(path: Path, convert: Callable[[dict], Iterable[Record]], origin: bool = False) -> list[Record]:
    out: list[Record] = []
    for line, obj in _iter_objects(path):
        try:
            recs = list(convert(obj))
        except DataError as exc:
            msg = exc.message
            raise DataError(msg, path=str(path), line=line, field=exc.field) from None
        if origin:  # where each record came from: the file and the line its object starts on
            for r in recs:
                r.meta.setdefault("source_file", str(path))
                r.meta.setdefault("line", line)
        out.extend(recs)
    return out


# --------------------------------------------------------------------------- format: jsonl
def _from_ours(d: dict) -> list[Record]:
    if "chosen" in d or "rejected" in d:
        return [PreferencePair.from_dict(d)]
    if "generation" in d:
        return [Generation.from_dict(d)]
    if "references" in d:
        return [EvalItem.from_dict(d)]
    return [Example.from_dict(d)]


def _to_ours(rec: Record) -> dict:
    return rec.to_dict()


def _to_openai(rec: Record) -> dict:
    if not isinstance(rec, Example):
        raise DataError(
            f"the openai format holds chat examples only, not {type(rec).__name__}. Write it with --to jsonl"
        )
    messages = [m.to_openai() for m in rec.messages]  # the API's form: arguments as JSON text
    return {"messages": messages, **({"tools": rec.tools} if rec.tools else {})}


# --------------------------------------------------------------------------- format: hermes
def _answer_tool_turns(messages: list[dict]) -> list[dict]:
    """Give call ids (call_0, call_1, … in order) to calls without one, and each tool turn without
    a tool_call_id the id and name of the next unanswered call."""
    pending: list[tuple[str, str]] = []
    n = 0
    for m in messages:
        if m.get("role") == "assistant" and m.get("tool_calls"):
            calls: list[ToolCall | dict] = []
            for c in m["tool_calls"]:
                call = c if isinstance(c, ToolCall) else None
                cid = (call.id if call else c.get("id")) or f"call_{n}"
                n += 1
                if call:
                    call = ToolCall(call.name, call.arguments, cid)
                    pending.append((cid, call.name))
                    calls.append(call)
                else:
                    fn = c.get("function", c) if isinstance(c, dict) else {}
                    calls.append({**c, "id": cid} if isinstance(c, dict) else c)  # what is not a call: named later
                    pending.append((cid, fn.get("name", "") if isinstance(fn, dict) else ""))
            m["tool_calls"] = calls
        elif m.get("role") == "tool" and not m.get("tool_call_id") and pending:
            cid, name = pending.pop(0)
            m["tool_call_id"], m["name"] = cid, m.get("name") or name
        elif m.get("role") == "tool":
            pending = [p for p in pending if p[0] != m.get("tool_call_id")]
    return messages


def _from_hermes(d: dict) -> list[Record]:
    if not isinstance(d.get("messages"), list):
        raise DataError("a hermes record needs 'messages'", field="messages")
    messages: list[dict] = []
    for i, m in enumerate(d["messages"]):
        if not isinstance(m, dict) or not isinstance(m.get("content"), str):
            raise DataError(f"messages[{i}] must be an object with a string 'content'", field=f"messages[{i}]")
        if m.get("tool_calls") or m.get("reasoning_content") or m.get("tool_call_id"):
            messages.append(m)  # already structured: kept as it is, its text not read for blocks
        elif m.get("role") == "assistant":
            turn = parse_turn(m["content"], exact=True)
            if turn.malformed or CALL_OPEN in turn.content:  # a block elsewhere than the end, or not as written
                raise DataError(
                    "a <tool_call> block is not a JSON object with a name, or not written as the hermes format "
                    f"writes one: {m['content'][:160]!r}",
                    field=f"messages[{i}].content",
                )
            messages.append(
                m | {"content": turn.content, "reasoning_content": turn.reasoning, "tool_calls": turn.calls}
            )
        elif m.get("role") == "tool" and (results := split_tool_results(m["content"])) is not None:
            messages += [{k: v for k, v in m.items() if k != "content"} | {"content": r} for r in results]
        else:
            messages.append(m)
    return _from_ours({**d, "messages": _answer_tool_turns(messages)})


def _check_positional(rec: Example, fmt: str) -> None:
    """Formats without call ids pair each result with the oldest unanswered call: refuse a record
    whose results answer in another order (or answer a call twice) rather than re-pair them."""
    pending: list[str] = []
    for i, m in enumerate(rec.messages):
        pending += [c.id for c in m.tool_calls]
        if m.role == "tool" and pending:
            if m.tool_call_id and m.tool_call_id != pending[0]:
                raise DataError(
                    f"record '{rec.id}': this tool result answers call '{m.tool_call_id}' before call '{pending[0]}', "
                    f"and the {fmt} format carries no call ids to say so. Reorder the results or write --to jsonl",
                    field=f"messages[{i}].tool_call_id",
                )
            pending.pop(0)


def _to_hermes(rec: Record) -> dict:
    if not isinstance(rec, Example):
        raise DataError(f"the hermes format holds chat examples only, not {type(rec).__name__}")
    _check_positional(rec, "hermes")
    messages = []
    for i, m in enumerate(rec.messages):
        if m.role == "assistant":
            if CALL_OPEN in m.content or not renderable(m.content, m.reasoning, m.tool_calls):
                raise DataError(
                    f"record '{rec.id}': this turn's text holds <tool_call> or <think> markup (or its trace holds "
                    "</think>), which the hermes format would read back as structure. Write it with --to jsonl",
                    field=f"messages[{i}]",
                )
            messages.append(
                m.extra | {"role": "assistant", "content": render_turn(m.content, m.reasoning, m.tool_calls)}
            )
        elif m.role == "tool" and any(t in m.content for t in (RESPONSE_OPEN, RESPONSE_CLOSE)):
            raise DataError(
                f"record '{rec.id}': this tool result holds <tool_response> markup, which the hermes format would "
                "read back as several results. Write it with --to jsonl",
                field=f"messages[{i}].content",
            )
        elif m.role == "tool":
            messages.append(m.extra | {"role": "tool", "content": render_tool_result(m.content)})
        else:
            messages.append(m.to_dict())
    return {"messages": messages, **{k: v for k, v in rec.to_dict().items() if k != "messages"}}


# --------------------------------------------------------------------------- format: alpaca
def _from_alpaca(d: dict) -> list[Record]:
    for key in ("instruction", "output"):
        if key not in d:
            raise DataError(f"an Alpaca record needs '{key}'", field=key)
        if not isinstance(d[key], str):
            raise DataError(f"'{key}' must be a string", field=key)
    inp = d.get("input") or ""
    messages = [Message("system", d["system"])] if d.get("system") else []
    for i, turn in enumerate(d.get("history") or []):
        if not (isinstance(turn, list) and len(turn) == 2):
            raise DataError(f"history[{i}] must be a [user, assistant] pair", field="history")
        messages += [Message("user", turn[0]), Message("assistant", turn[1])]
    user = f"{d['instruction']}\n\n{inp}" if inp else d["instruction"]
    messages += [Message("user", user), Message("assistant", d["output"])]
    rest = {k: v for k, v in d.items() if k not in ("instruction", "input", "output", "system", "history")}
    ex = Example.from_dict({"messages": [m.to_dict() for m in messages], **rest})
    if inp:
        ex.meta["input"] = inp
    return [ex]


def _plain_only(rec: Example, fmt: str) -> None:
    """Formats of one string per turn cannot hold tools, calls, results or traces: refuse, never drop."""
    structured = [m for m in rec.messages if m.tool_calls or m.reasoning or m.tool_call_id or m.role == "tool"]
    if rec.tools or structured:
        raise DataError(
            f"record '{rec.id}' has tools, tool calls, tool results or reasoning traces, which the {fmt} format "
            "cannot hold. Write it with --to jsonl, openai, sharegpt or hermes",
            field="tools" if rec.tools else "messages",
        )


def _to_alpaca(rec: Record) -> dict:
    if not isinstance(rec, Example):
        raise DataError(f"the alpaca format holds SFT examples only, not {type(rec).__name__}")
    _plain_only(rec, "alpaca")
    msgs = list(rec.messages)
    out: dict = {}
    if msgs[0].role == "system":
        out["system"] = msgs.pop(0).content
    if len(msgs) % 2 or any(m.role != ("user", "assistant")[i % 2] for i, m in enumerate(msgs)):
        raise DataError(
            f"record '{rec.id}' does not alternate user/assistant turns, which Alpaca "
            "cannot hold. Write it with --to jsonl or --to sharegpt",
            field="messages",
        )
    *history, (user, answer) = [(msgs[i].content, msgs[i + 1].content) for i in range(0, len(msgs), 2)]
    meta = dict(rec.meta)
    inp = meta.pop("input", "")
    if inp and user.endswith(f"\n\n{inp}"):
        out.update(instruction=user[: -len(inp) - 2], input=inp)
    else:
        out.update(instruction=user, input="")
        if inp:
            meta["input"] = inp
    out["output"] = answer
    if history:
        out["history"] = [list(t) for t in history]
    out.update({k: getattr(rec, k) for k in ("id", "domain", "task", "source") if getattr(rec, k)})
    if meta:
        out["meta"] = meta
    return out


# --------------------------------------------------------------------------- format: sharegpt
_FROM_SHAREGPT = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "chatgpt": "assistant",
    "bard": "assistant",
    "system": "system",
    "function_call": "assistant",
    "observation": "tool",
    "tool": "tool",
}
_TO_SHAREGPT = {"user": "human", "assistant": "gpt", "system": "system", "tool": "observation"}


def _from_sharegpt(d: dict) -> list[Record]:
    conv = d.get("conversations")
    if not isinstance(conv, list) or not conv:
        raise DataError("a ShareGPT record needs a non-empty 'conversations' list", field="conversations")
    messages: list[dict] = [{"role": "system", "content": d["system"]}] if d.get("system") else []
    for i, turn in enumerate(conv):
        who = turn.get("from") if isinstance(turn, dict) else None
        if not isinstance(who, str) or who not in _FROM_SHAREGPT:
            raise DataError(
                f"conversations[{i}].from is {who!r}; expected one of {', '.join(_FROM_SHAREGPT)}",
                field="conversations",
            )
        value = turn.get("value")
        if who == "function_call":  # LLaMA-Factory: {"name", "arguments"}, or a list of them (parallel calls)
            at = f"conversations[{i}].value"
            calls = strict_json.loads(value, "a function_call value", at) if isinstance(value, str) else value
            calls = calls if isinstance(calls, list) else [calls]
            if not calls or not all(isinstance(c, dict) for c in calls):
                raise DataError("a function_call value must be a {name, arguments} object or a non-empty list "
                                "of them", field=at)  # fmt: skip
            if messages and messages[-1]["role"] == "assistant" and not messages[-1].get("tool_calls"):
                messages[-1]["tool_calls"] = calls  # words, then the call: one assistant turn
            else:
                messages.append({"role": "assistant", "content": "", "tool_calls": calls})
        elif _FROM_SHAREGPT[who] == "assistant" and isinstance(value, str):
            reasoning, words = split_reasoning(value)  # a leading <think> block; call markup stays words
            messages.append({"role": "assistant", "content": words, "reasoning_content": reasoning})
        else:
            messages.append({"role": _FROM_SHAREGPT[who], "content": value})
    rest = {k: v for k, v in d.items() if k not in ("conversations", "system")}
    return [Example.from_dict({"messages": _answer_tool_turns(messages), **rest})]


def _to_sharegpt(rec: Record) -> dict:
    if not isinstance(rec, Example):
        raise DataError(f"the sharegpt format holds chat examples only, not {type(rec).__name__}")
    _check_positional(rec, "sharegpt")
    conv = []
    for i, m in enumerate(rec.messages):
        if m.extra:
            raise DataError(f"record '{rec.id}': message keys {sorted(m.extra)} have no place in the sharegpt "
                            "format. Write it with --to jsonl", field=f"messages[{i}]")  # fmt: skip
        if m.role == "assistant" and split_reasoning(render_turn(m.content, m.reasoning)) != (m.reasoning, m.content):
            raise DataError(f"record '{rec.id}': this turn's words open with a <think> block (or its trace holds "
                            "</think>), which would be read back as a trace. Write it with --to jsonl",
                            field=f"messages[{i}]")  # fmt: skip
        if m.role == "assistant" and (m.content or m.reasoning or not m.tool_calls):
            conv.append({"from": "gpt", "value": render_turn(m.content, m.reasoning)})
        if m.tool_calls:
            calls = [{"name": c.name, "arguments": c.arguments} for c in m.tool_calls]
            value = json.dumps(calls[0] if len(calls) == 1 else calls, ensure_ascii=False)
            conv.append({"from": "function_call", "value": value})
        if m.role != "assistant":
            conv.append({"from": _TO_SHAREGPT[m.role], "value": m.content})
    rest = {k: v for k, v in rec.to_dict().items() if k != "messages"}
    if rec.tools:  # LLaMA-Factory's `tools`: the JSON text of the function definitions
        rest["tools"] = json.dumps([t["function"] for t in rec.tools], ensure_ascii=False)
    return {"conversations": conv, **rest}


# --------------------------------------------------------------------------- format: superni
_SUPERNI_KEEP = ("Categories", "Domains", "Source", "Reasoning")


def _read_superni(path: Path) -> list[Record]:
    text = read_text(path, "SuperNI task file")
    try:
        task = DECODER.decode(text)
        _check_strings(task, text)
    except json.JSONDecodeError as exc:
        raise DataError(f"invalid JSON: {exc.msg}", path=str(path), line=exc.lineno) from None
    except RecursionError:
        raise DataError("JSON nested too deeply to read", path=str(path)) from None
    except DataError as exc:
        raise DataError(exc.message, path=str(path), field=exc.field) from None
    if not isinstance(task, dict):
        raise DataError(
            f"a Super-NaturalInstructions task file holds one JSON object, got {type(task).__name__}", path=str(path)
        )
    for key in ("Definition", "Instances"):
        if key not in task:
            raise DataError(f"a Super-NaturalInstructions task file needs '{key}'", path=str(path), field=key)
    name = Path(path).stem
    common = {k.lower(): task[k] for k in _SUPERNI_KEEP if k in task}
    out: list[Record] = []
    d = task["Definition"]
    if not isinstance(task["Instances"], list) or not (
        isinstance(d, str) or (isinstance(d, list) and all(isinstance(x, str) for x in d))
    ):
        raise DataError(
            "'Instances' must be a list of objects and 'Definition' a string or list of strings",
            path=str(path),
            field="Instances",
        )
    definition = "\n".join(task["Definition"]) if isinstance(task["Definition"], list) else task["Definition"]
    for i, inst in enumerate(task["Instances"]):
        if not isinstance(inst, dict):
            raise DataError(
                f"Instances[{i}] must be an object with 'input' and 'output', got {inst!r:.60}",
                path=str(path),
                field="Instances",
            )
        outputs = inst.get("output")
        if isinstance(outputs, str):
            outputs = [outputs]
        if (
            not outputs
            or not isinstance(outputs, list)
            or not all(isinstance(o, str) for o in outputs)
            or not isinstance(inst.get("input"), str)
        ):
            raise DataError(
                f"Instances[{i}] needs a string 'input' and a non-empty 'output' (a string or a list of strings)",
                path=str(path),
                field="Instances",
            )
        out.append(
            Example(
                messages=[
                    Message("system", definition),
                    Message("user", inst["input"]),
                    Message("assistant", outputs[0]),
                ],
                id=inst.get("id", f"{name}-{i}"),
                task=name,
                source="superni",
                meta={"references": list(outputs), **common},
            )
        )
    return out


def _write_superni(records: list[Record]) -> dict:
    tasks = {r.task for r in records}
    if len(tasks) != 1:
        raise DataError(
            f"a SuperNI task file holds one task; these records have {len(tasks)} "
            f"({', '.join(sorted(tasks))[:200]}). Write one file per task"
        )
    first = records[0]
    task: dict = {k: first.meta[k.lower()] for k in _SUPERNI_KEEP if k.lower() in first.meta}
    definition, instances = None, []
    for r in records:
        if isinstance(r, Example):
            _plain_only(r, "superni")
        if not isinstance(r, Example) or [m.role for m in r.messages] != ["system", "user", "assistant"]:
            raise DataError(
                f"record '{getattr(r, 'id', '')}' is not system/user/assistant, which a SuperNI instance needs",
                field="messages",
            )
        definition = definition or r.messages[0].content
        refs = r.meta.get("references") or [r.messages[2].content]
        instances.append({"id": r.id, "input": r.messages[1].content, "output": list(refs)})
    return {"Definition": [definition], **task, "Instances": instances}


# --------------------------------------------------------------------------- format: self_instruct
def _from_self_instruct(d: dict) -> list[Record]:
    if not isinstance(d.get("instruction"), str) or not isinstance(d.get("instances"), list):
        raise DataError("a Self-Instruct task needs 'instruction' and a list 'instances'", field="instances")
    out: list[Record] = []
    for i, inst in enumerate(d["instances"]):
        if not isinstance(inst, dict):
            raise DataError(
                f"instances[{i}] must be an object with 'input' and 'output', got {inst!r:.60}", field="instances"
            )
        inp, answer = inst.get("input", ""), inst.get("output")
        if not isinstance(answer, str) or not isinstance(inp, str):
            raise DataError(f"instances[{i}].input and .output must be strings", field="instances")
        user = f"{d['instruction']}\n\n{inp}" if inp else d["instruction"]
        rid = d.get("id", "") if len(d["instances"]) == 1 else f"{d.get('id', '')}#{i}"
        meta: dict[str, Any] = {"is_classification": bool(d.get("is_classification", False))}
        if inp:
            meta["input"] = inp
        out.append(
            Example(
                messages=[Message("user", user), Message("assistant", answer)],
                id=rid,
                task=d.get("name", ""),
                source="self-instruct-seed",
                meta=meta,
            )
        )
    return out


def _to_self_instruct(rec: Record) -> dict:
    if not isinstance(rec, Example):
        raise DataError(f"the self_instruct format holds SFT examples only, not {type(rec).__name__}")
    _plain_only(rec, "self_instruct")
    inp = rec.meta.get("input", "")
    user = rec.instruction
    instruction = user[: -len(inp) - 2] if inp and user.endswith(f"\n\n{inp}") else user
    return {
        "id": rec.id,
        "name": rec.task,
        "instruction": instruction,
        "instances": [{"input": inp, "output": rec.response}],
        "is_classification": bool(rec.meta.get("is_classification", False)),
    }


# --------------------------------------------------------------------------- the table
FORMATS: dict[str, dict] = {
    "jsonl": {"read": _from_ours, "write": _to_ours},
    "openai": {"read": _from_ours, "write": _to_openai},
    "alpaca": {"read": _from_alpaca, "write": _to_alpaca},
    "sharegpt": {"read": _from_sharegpt, "write": _to_sharegpt},
    "hermes": {"read": _from_hermes, "write": _to_hermes},
    "superni": {"read_file": _read_superni, "write_file": _write_superni},
    "self_instruct": {"read": _from_self_instruct, "write": _to_self_instruct},
}


def detect_format(path: str | Path) -> str:
    """Guess a file's format from its first record's keys."""
    path = Path(path)
    if not path.exists():
        raise DataError("file not found. Check the path", path=str(path))
    if path.suffix == ".json":
        head = read_text(path, "data file")[:65536]
        if head.lstrip().startswith("{") and ('"Instances"' in head or '"Definition"' in head):
            return "superni"
    for _, obj in _iter_objects(path):
        return format_of_keys(set(obj))
    raise DataError("the file holds no records", path=str(path))


KNOWN_COLUMNS = (
    "messages, prompt+completion, prompt+chosen+rejected (TRL), instruction+output (Alpaca), conversations (ShareGPT)"
)


def format_of_keys(keys: set[str]) -> str:
    """The record format a record with these keys is in (TRL keys → jsonl)."""
    if "conversations" in keys:
        return "sharegpt"
    if "instances" in keys and "instruction" in keys:
        return "self_instruct"
    if "instruction" in keys and "output" in keys:
        return "alpaca"
    return "jsonl"


def _format(name: str) -> dict:
    if name not in FORMATS:
        raise UnknownNameError(f"unknown format '{name}'.{suggest(name, FORMATS)} Available: {', '.join(FORMATS)}")
    return FORMATS[name]


def read_records(path: str | Path, format: str | None = None, origin: bool = False) -> list[Record]:
    """Read every record of a data file (format detected when not given). With `origin`, each
    record's meta gets `source_file` and `line` (for whole-file formats such as SuperNI, `index`:
    the record's position in the file). `hf:NAME[:CONFIG][:SPLIT]` reads a Hugging Face dataset
    (`data.hub`)."""
    if str(path).startswith(HUB_PREFIX):
        return _read_hub(str(path), format, origin)
    path = Path(path)
    if not path.exists():
        raise DataError("file not found. Check the path", path=str(path))
    fmt = _format(format or detect_format(path))
    if "read_file" in fmt:
        recs = fmt["read_file"](path)
        if origin:
            for k, r in enumerate(recs):
                r.meta.setdefault("source_file", str(path))
                r.meta.setdefault("index", k)
        return recs
    return _records(path, fmt["read"], origin)


def _read_hub(spec: str, format: str | None = None, origin: bool = False) -> list[Record]:
    """The rows of an `hf:` dataset (`data.hub`), converted by the reader their columns call for."""
    rows = load_hub_rows(spec)
    if not rows:
        raise DataError(f"'{spec}' holds no rows")
    columns = set(rows[0])
    fmt = format or format_of_keys(columns)
    if fmt == "jsonl" and not columns & {"messages", "prompt", "chosen", "rejected", "generation", "references"}:
        raise DataError(f"'{spec}' has columns {sorted(columns)}; none that tuneforge reads. Expected {KNOWN_COLUMNS}")
    convert = FORMATS[fmt].get("read")
    if convert is None:
        raise DataError(f"'{spec}': format {fmt} is a whole-file format, not a table of rows")
    out: list[Record] = []
    for i, row in enumerate(rows):
        try:
            recs = list(convert(row))
        except DataError as exc:
            raise DataError(exc.message, path=spec, line=i + 1, field=exc.field) from None
        if origin:
            for r in recs:
                r.meta.setdefault("source_file", spec)
                r.meta.setdefault("index", i)
        out.extend(recs)
    return out


def write_records(records: Iterable[Record], path: str | Path, format: str = "jsonl") -> Path:
    """Write records atomically: everything is converted first, then renamed into place."""
    path, fmt, records = Path(path), _format(format), list(records)
    if "write_file" in fmt:
        text = _dumps(fmt["write_file"](records), "a record", indent=1) + "\n"
    elif format == "alpaca" and path.suffix == ".json":
        text = _dumps([fmt["write"](r) for r in records], "a record", indent=2) + "\n"
    else:
        text = "".join(_dumps(fmt["write"](r), f"record '{getattr(r, 'id', '')}'") + "\n" for r in records)
    write_text_atomic(path, text)
    return path


def _bad_value(x: Any, where: str = "") -> str | None:
    """The dotted path of the first value JSON cannot hold (NaN, ±Infinity, a lone surrogate)."""
    if isinstance(x, float) and not math.isfinite(x) or isinstance(x, str) and _SURROGATE.search(x):
        return where or "(the value)"
    items = x.items() if isinstance(x, dict) else enumerate(x) if isinstance(x, list) else []
    return next((w for k, v in items if (w := _bad_value(v, f"{where}.{k}" if where else str(k)))), None)


def _dumps(obj: Any, what: str, **kwargs) -> str:
    """JSON text of `obj`, refusing what is not JSON (NaN, Infinity) or not text (a lone surrogate)
    with a DataError naming the record and the field, instead of writing a file no reader takes."""
    try:
        text = json.dumps(obj, ensure_ascii=False, allow_nan=False, **kwargs)
    except ValueError:
        text = None
    if text is None or _SURROGATE.search(text):
        where = _bad_value(obj)
        raise DataError(
            f"{what} holds a value that JSON text cannot (NaN, Infinity or a lone surrogate) at {where}. "
            "Replace it with null or a number before writing",
            field=where,
        )
    return text


def convert_file(
    src: str | Path, dst: str | Path, to: str, from_format: str | None = None, overwrite: bool = False
) -> int:
    """`tuneforge data convert`: read `src` in any format, write `dst` as `to`. Returns the count."""
    _format(to)
    check_output_file(dst, [src], overwrite)
    records = read_records(src, from_format)
    write_records(records, dst, to)
    return len(records)
