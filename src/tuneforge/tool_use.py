"""Tool calls in chat records: the typed call, tool definitions, and the checks a conversation
with tools must pass.

On disk (the OpenAI / TRL / transformers vocabulary):

    "tools": [{"type": "function", "function": {"name", "description", "parameters": <JSON schema>}}]
    assistant: {"role": "assistant", "content": "", "reasoning_content": "…",
                "tool_calls": [{"id": "call_1", "type": "function",
                                "function": {"name": "get_rate", "arguments": {"base": "EUR"}}}]}
    tool:      {"role": "tool", "tool_call_id": "call_1", "name": "get_rate", "content": "{\"rate\": 1.08}"}

`arguments` is read as a JSON object or as the JSON string of one (the OpenAI API's form) and kept
as an object. A tool given without the `{"type": "function", "function": …}` wrapper (LLaMA-Factory's
form) is read as the same tool. `check_conversation` is what every record with calls passes:
arguments satisfy the tool's schema (`jsonschema`), every call names a declared tool, every tool
result answers an earlier call — each failure a DataError naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tuneforge import strict_json
from tuneforge.errors import DataError


@dataclass(frozen=True)
class ToolCall:
    """One function call an assistant turn makes."""

    name: str
    arguments: dict
    id: str = ""

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"id": self.id} if self.id else {}
        return out | {"type": "function", "function": {"name": self.name, "arguments": self.arguments}}


def parse_arguments(value: Any, where: str) -> dict:
    """A call's arguments as a JSON object (given as one, or as the JSON text of one)."""
    if isinstance(value, str):  # read as strictly as the file around it: no duplicate keys, no NaN
        value = strict_json.loads(value, "arguments", where) if value.strip() else {}
    if not isinstance(value, dict):
        raise DataError(f"arguments must be a JSON object, got {type(value).__name__}", field=where)
    return value


def parse_tool_calls(value: Any, where: str) -> tuple[ToolCall, ...]:
    """`tool_calls` of a message: a list of {"id"?, "type"?: "function", "function": {"name", "arguments"}}
    (also accepted: {"name", "arguments"} without the wrapper)."""
    if isinstance(value, ToolCall):
        return (value,)
    if not isinstance(value, (list, tuple)):
        raise DataError(f"tool_calls must be a list of calls, got {type(value).__name__}", field=where)
    calls = []
    for i, c in enumerate(value):
        at = f"{where}[{i}]"
        if isinstance(c, ToolCall):
            calls.append(c)
            continue
        if not isinstance(c, dict):
            raise DataError(f"a tool call must be an object, got {type(c).__name__}", field=at)
        if c.get("type", "function") != "function":
            raise DataError(f"tool call type {c.get('type')!r} is not supported; use 'function'", field=f"{at}.type")
        fn = c.get("function", c)
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
            raise DataError("a tool call needs function.name (a non-empty string)", field=f"{at}.function.name")
        extra = sorted(set(c) - {"id", "type", "function", "name", "arguments", "index"}) + sorted(
            f"function.{k}" for k in set(fn) - {"name", "arguments"} if fn is not c
        )
        if extra:  # `index` is a streaming position: it says nothing the order does not
            raise DataError(f"a tool call holds {extra}, which tuneforge does not keep. Remove them", field=at)
        call_id = c.get("id", "")
        if not isinstance(call_id, str):
            raise DataError(f"a tool call id must be a string, got {call_id!r:.40}", field=f"{at}.id")
        args = parse_arguments(fn.get("arguments", {}), f"{at}.function.arguments")
        calls.append(ToolCall(fn["name"], args, call_id))
    return tuple(calls)


def parse_tools(value: Any, where: str = "tools") -> list[dict]:
    """Tool definitions, each as {"type": "function", "function": {"name", "description"?, "parameters"?}};
    a JSON string of the list (LLaMA-Factory's ShareGPT `tools`) and unwrapped functions are read too.
    Every `parameters` must be a valid JSON schema."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    if isinstance(value, str):
        value = strict_json.loads(value, "tools", where) if value.strip() else []
    if not isinstance(value, list):
        raise DataError(f"tools must be a list of function definitions, got {type(value).__name__}", field=where)
    out, names = [], set()
    for i, t in enumerate(value):
        at = f"{where}[{i}]"
        if isinstance(t, dict) and t.get("type", "function") != "function":
            raise DataError(f"tool type {t.get('type')!r} is not supported; use 'function'", field=f"{at}.type")
        fn = t.get("function", t) if isinstance(t, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
            raise DataError("a tool needs function.name (a non-empty string)", field=f"{at}.function.name")
        if isinstance(t, dict) and "function" in t and set(t) - {"type", "function"}:
            raise DataError(f"a tool holds {sorted(set(t) - {'type', 'function'})} beside its function, which "
                            "tuneforge does not keep. Remove them", field=at)  # fmt: skip
        if fn["name"] in names:
            raise DataError(f"tool '{fn['name']}' is declared twice. Keep one", field=f"{at}.function.name")
        names.add(fn["name"])
        params = fn.get("parameters", {"type": "object", "properties": {}})
        try:
            Draft202012Validator.check_schema(params)
        except SchemaError as exc:
            raise DataError(f"tool '{fn['name']}' parameters are not a JSON schema: {exc.message}",
                            field=f"{at}.function.parameters") from None  # fmt: skip
        if not isinstance(params, dict) or params.get("type", "object") != "object":
            raise DataError(f"tool '{fn['name']}' parameters must describe an object ({{\"type\": \"object\", …}})",
                            field=f"{at}.function.parameters")  # fmt: skip
        out.append({"type": "function", "function": fn})
    return out


def tool_names(tools: list[dict]) -> list[str]:
    return [t["function"]["name"] for t in tools]


def schema_problem(call: ToolCall, tools: list[dict]) -> tuple[str, str] | None:
    """(message, field suffix) when `call` names no tool in `tools` or its arguments break the tool's
    schema; None for a valid call."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import best_match

    by_name = {t["function"]["name"]: t["function"] for t in tools}
    if call.name not in by_name:
        declared = ", ".join(by_name) or "none"
        return f"a call to undeclared tool '{call.name}' (declared: {declared})", "function.name"
    schema = by_name[call.name].get("parameters", {"type": "object"})
    try:
        err = best_match(Draft202012Validator(schema).iter_errors(call.arguments))
    except Exception as exc:  # noqa: BLE001 — an unresolvable $ref and the like: the schema's fault, named
        return f"the schema of '{call.name}' cannot be applied ({type(exc).__name__}: {str(exc)[:120]})", "function"
    if err is None:
        return None
    where = "function.arguments" + "".join(f".{p}" if isinstance(p, str) else f"[{p}]" for p in err.absolute_path)
    return f"arguments of '{call.name}' break its schema: {err.message}", where


def check_conversation(messages: list, tools: list[dict], where: str = "messages") -> None:
    """Every call names a declared tool with arguments its schema accepts and a unique id; every tool
    result answers an earlier call — by id, or, without one, the one call still unanswered — and by
    name when it gives one. A tool turn in a conversation that makes no call at all (tool output
    kept as text before tool calls existed) is read as it is."""
    calls: dict[str, ToolCall] = {}
    pending: list[ToolCall] = []  # calls not answered yet, in order
    any_call = any(m.tool_calls for m in messages)
    for i, m in enumerate(messages):
        for k, call in enumerate(m.tool_calls):
            at = f"{where}[{i}].tool_calls[{k}]"
            problem = schema_problem(call, tools)
            if problem:
                raise DataError(problem[0], field=f"{at}.{problem[1]}")
            if call.id and call.id in calls:
                raise DataError(f"tool call id '{call.id}' is used twice", field=f"{at}.id")
            if call.id:
                calls[call.id] = call
            pending.append(call)
        if m.role != "tool" or not any_call:
            continue
        at = f"{where}[{i}]"
        if m.tool_call_id:
            if m.tool_call_id not in calls:
                raise DataError(f"tool result answers call id '{m.tool_call_id}', which no earlier call has",
                                field=f"{at}.tool_call_id")  # fmt: skip
            answered = calls[m.tool_call_id]
            if answered not in pending:
                raise DataError(f"call '{m.tool_call_id}' is answered twice", field=f"{at}.tool_call_id")
        elif len(pending) == 1:
            answered = pending[0]
        else:
            raise DataError(
                "a tool result without tool_call_id must follow exactly one unanswered call; "
                f"{len(pending)} are unanswered here. Give tool_call_id",
                field=f"{at}.tool_call_id",
            )
        if m.name and m.name != answered.name:
            raise DataError(f"tool result name '{m.name}' is not the name of the call it answers "
                            f"('{answered.name}')", field=f"{at}.name")  # fmt: skip
        pending.remove(answered)
