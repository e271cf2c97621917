"""Typed records that cross every stage boundary, and their JSON form (TRL's key vocabulary).

On disk a record is one JSON object per line:
- `Example` (SFT):        {"messages": [...], "id", "domain", "task", "source", "meta"}
- `PreferencePair` (DPO): {"prompt": [...], "chosen": [...], "rejected": [...], ...}
- `EvalItem`:             {"messages": [...prompt turns], "references": [...], ...}
- `Generation`:           {"id", "prompt": [...], "generation", "references", "model", ...}
so `datasets.load_dataset("json", data_files=...)` and TRL read them as they are.
Every record validates itself on construction; `from_dict` errors carry file, line and field.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from tuneforge.errors import DataError
from tuneforge.tool_use import ToolCall, check_conversation, parse_tool_calls, parse_tools, schema_problem

ROLES = ("system", "user", "assistant", "tool")


@dataclass(frozen=True)
class Message:
    """One chat turn. An assistant turn may carry `tool_calls` and a `reasoning` trace (on disk
    `reasoning_content`); a tool turn says which call it answers (`tool_call_id`) and the tool's `name`."""

    role: str
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    reasoning: str = ""
    tool_call_id: str = ""
    name: str = ""  # a tool turn: the tool's name; any other: the OpenAI API's participant name
    extra: dict = field(default_factory=dict, hash=False)  # other keys of the message (e.g. OpenAI's `weight`), kept

    def __post_init__(self):
        if self.role not in ROLES:
            raise DataError(f"unknown role '{self.role}'. Use one of {', '.join(ROLES)}", field="role")
        if not isinstance(self.content, str):
            raise DataError(f"message content must be a string, got {type(self.content).__name__}", field="content")
        if not isinstance(self.tool_calls, tuple):
            object.__setattr__(self, "tool_calls", parse_tool_calls(self.tool_calls, "tool_calls"))
        if self.tool_calls and self.role != "assistant":
            raise DataError(f"only assistant turns make tool calls, not a {self.role} turn", field="tool_calls")
        if self.reasoning and self.role != "assistant":
            raise DataError(f"only assistant turns carry a reasoning trace, not a {self.role} turn",
                            field="reasoning_content")  # fmt: skip
        for key, on_disk in (("reasoning", "reasoning_content"), ("tool_call_id", "tool_call_id"), ("name", "name")):
            if not isinstance(getattr(self, key), str):
                raise DataError(f"'{on_disk}' must be a string, got {getattr(self, key)!r:.40}", field=on_disk)
        if self.tool_call_id and self.role != "tool":
            raise DataError("tool_call_id belongs to tool turns", field="tool_call_id")

    def to_dict(self) -> dict:
        """The message in the chat-template vocabulary (keys beyond role/content only when set)."""
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.reasoning:
            out["reasoning_content"] = self.reasoning
        if self.tool_calls:
            out["tool_calls"] = [c.to_dict() for c in self.tool_calls]
        if self.tool_call_id:
            out["tool_call_id"] = self.tool_call_id
        if self.name:
            out["name"] = self.name
        return out | self.extra

    @property
    def text(self) -> str:
        """The turn's words and its calls (as <tool_call> blocks): what length, format, dedup and
        decontamination filters read — a turn that only calls is not an empty answer."""
        if not self.tool_calls:
            return self.content
        from tuneforge.tool_text import render_turn

        return render_turn(self.content, "", self.tool_calls)

    def to_openai(self) -> dict:
        """The message as the OpenAI chat API takes it: call arguments as JSON text."""
        out = self.to_dict()
        if self.tool_calls:
            out["tool_calls"] = [
                c.to_dict() | {"function": {"name": c.name, "arguments": json.dumps(c.arguments, ensure_ascii=False)}}
                for c in self.tool_calls
            ]
        return out

    @classmethod
    def from_dict(cls, m: dict) -> Message:
        calls = m.get("tool_calls") or []
        if not calls and isinstance(m.get("function_call"), dict):  # the OpenAI API's older single-call form
            calls = [{"function": m["function_call"]}]
        content = m.get("content")
        if content is None and calls:
            content = ""  # OpenAI writes content: null beside tool calls
        known = {"role", "content", "tool_calls", "function_call", "reasoning_content", "tool_call_id", "name"}
        return cls(
            m.get("role"),  # type: ignore[arg-type]  # checked in __post_init__
            content,  # type: ignore[arg-type]
            parse_tool_calls(calls, "tool_calls"),
            _absent_empty(m.get("reasoning_content")),
            _absent_empty(m.get("tool_call_id")),
            _absent_empty(m.get("name")),
            # null stands for absent: `datasets` fills every message with every key of the column
            {k: v for k, v in m.items() if k not in known and v is not None},
        )


def _absent_empty(value: Any) -> Any:
    return "" if value is None else value


def _messages(value: Any, name: str) -> list[Message]:
    """Coerce a list of {'role','content'} dicts (or Messages) into Messages."""
    if not isinstance(value, list) or not value:
        raise DataError(f"'{name}' must be a non-empty list of {{role, content}} objects", field=name)
    out = []
    for i, m in enumerate(value):
        if isinstance(m, Message):
            out.append(m)
            continue
        if not isinstance(m, dict) or "role" not in m or ("content" not in m and not m.get("tool_calls")):
            raise DataError(f"{name}[{i}] must be an object with 'role' and 'content'", field=name)
        try:
            out.append(Message.from_dict(m))
        except DataError as exc:
            raise DataError(f"{name}[{i}]: {exc.message}", field=f"{name}[{i}].{exc.field}" if exc.field else name
                            ) from None  # fmt: skip
    return out


def _dump_messages(messages: list[Message]) -> list[dict]:
    return [m.to_dict() for m in messages]


def _tools(value: Any, messages: list[Message], name: str = "messages") -> list[dict]:
    """The record's tool definitions, checked, and the conversation checked against them."""
    tools = parse_tools(value if value is not None else [])
    check_conversation(messages, tools, name)
    return tools


@dataclass
class Example:
    """A supervised fine-tuning example: a conversation whose assistant turns are the targets.

    Attributes:
        messages: the whole conversation; the last turn is normally the assistant's response.
        id: stable identifier (kept through conversions).
        domain: e.g. "healthcare"; used for per-domain mixing and evaluation.
        task: task name (SuperNI task, seed task…), free text.
        source: provenance, e.g. "manual", "distill/smollm2-135m-instruct", "superni".
        meta: anything else (ratings, kind, generator parameters…), kept as is.
        tools: the functions the assistant may call (JSON-schema definitions, `tuneforge.tool_use`).
    """

    messages: list[Message]
    id: str = ""
    domain: str = ""
    task: str = ""
    source: str = ""
    meta: dict = field(default_factory=dict)
    tools: list[dict] = field(default_factory=list)

    def __post_init__(self):
        self.messages = _messages(self.messages, "messages")
        if not any(m.role == "assistant" for m in self.messages):
            raise DataError("an SFT example needs at least one assistant turn to learn from", field="messages")
        self.tools = _tools(self.tools, self.messages)

    @property
    def response_calls(self) -> tuple[ToolCall, ...]:
        """The tool calls of the last assistant turn (empty when it answers in words)."""
        return next(m.tool_calls for m in reversed(self.messages) if m.role == "assistant")

    @property
    def prompt(self) -> list[Message]:
        """The turns before the last assistant turn."""
        last = max(i for i, m in enumerate(self.messages) if m.role == "assistant")
        return self.messages[:last]

    @property
    def response(self) -> str:
        """The content of the last assistant turn."""
        return next(m.content for m in reversed(self.messages) if m.role == "assistant")

    @property
    def response_text(self) -> str:
        """The last assistant turn's words and calls (`Message.text`)."""
        return next(m.text for m in reversed(self.messages) if m.role == "assistant")

    @property
    def instruction(self) -> str:
        """The content of the last user turn before the response ('' when there is none)."""
        return next((m.content for m in reversed(self.prompt) if m.role == "user"), "")

    def to_dict(self) -> dict:
        return _with_common({"messages": _dump_messages(self.messages)} | _tools_key(self.tools), self)

    @classmethod
    def from_dict(cls, d: dict) -> Example:
        if "messages" in d:
            messages = _messages(d["messages"], "messages")
        elif "prompt" in d and "completion" in d:  # TRL prompt/completion (standard or conversational)
            messages = _prompt_messages(d["prompt"]) + _completion_messages(d["completion"])
        else:
            raise DataError("an SFT record needs 'messages' or 'prompt' + 'completion'", field="messages")
        return cls(messages=messages, tools=d.get("tools") or [], **_common(_without(d, "tools")))


@dataclass
class PreferencePair:
    """A preference pair for DPO: one prompt, a chosen and a rejected response."""

    prompt: list[Message]
    chosen: str
    rejected: str
    id: str = ""
    domain: str = ""
    task: str = ""
    source: str = ""
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        self.prompt = _messages(self.prompt, "prompt")
        for name in ("chosen", "rejected"):
            if not isinstance(getattr(self, name), str):
                raise DataError(f"'{name}' must be a string", field=name)

    def to_dict(self) -> dict:
        d = {
            "prompt": _dump_messages(self.prompt),
            "chosen": [{"role": "assistant", "content": self.chosen}],
            "rejected": [{"role": "assistant", "content": self.rejected}],
        }
        return _with_common(d, self)

    @classmethod
    def from_dict(cls, d: dict) -> PreferencePair:
        for key in ("prompt", "chosen", "rejected"):
            if key not in d:
                raise DataError(f"a preference record needs '{key}'", field=key)
        return cls(
            prompt=_prompt_messages(d["prompt"]),
            chosen=_completion_text(d["chosen"], "chosen"),
            rejected=_completion_text(d["rejected"], "rejected"),
            **_common(d),
        )


@dataclass
class EvalItem:
    """A prompt to answer and the reference answer(s) to score against."""

    messages: list[Message]
    references: list[str]
    id: str = ""
    domain: str = ""
    task: str = ""
    source: str = ""
    meta: dict = field(default_factory=dict)
    tools: list[dict] = field(default_factory=list)
    # With tools: the calls the reference answer makes ([] = it answers without a call, so the right
    # move is to abstain); None for an item without tools.
    reference_tool_calls: list[ToolCall] | None = None

    def __post_init__(self):
        self.messages = _messages(self.messages, "messages")
        self.references = _strings(self.references, "references")
        self.tools = _tools(self.tools, self.messages)
        self.reference_tool_calls = _reference_calls(self.reference_tool_calls, self.tools)

    @property
    def instruction(self) -> str:
        return next((m.content for m in reversed(self.messages) if m.role == "user"), "")

    @classmethod
    def from_example(cls, ex: Example) -> EvalItem:
        """Turn an SFT example into an eval item: prompt = turns before the response."""
        return cls(
            messages=ex.prompt,
            references=[ex.response],
            id=ex.id,
            domain=ex.domain,
            task=ex.task,
            source=ex.source,
            meta=dict(ex.meta),
            tools=ex.tools,
            reference_tool_calls=list(ex.response_calls) if ex.tools else None,
        )

    def to_dict(self) -> dict:
        d = {"messages": _dump_messages(self.messages), "references": list(self.references)}
        return _with_common(d | _tools_key(self.tools, self.reference_tool_calls), self)

    @classmethod
    def from_dict(cls, d: dict) -> EvalItem:
        if "references" not in d:
            return cls.from_example(Example.from_dict(d))
        return cls(
            messages=_messages(d.get("messages"), "messages"),
            references=d["references"],
            tools=d.get("tools") or [],
            reference_tool_calls=d.get("reference_tool_calls"),
            **_common(_without(d, "tools", "reference_tool_calls")),
        )


@dataclass
class Generation:
    """A model's answer to an EvalItem, with everything needed to score it later."""

    id: str
    prompt: list[Message]
    generation: str
    references: list[str]
    model: str
    domain: str = ""
    task: str = ""
    settings: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)
    tools: list[dict] = field(default_factory=list)
    reference_tool_calls: list[ToolCall] | None = None

    def __post_init__(self):
        self.prompt = _messages(self.prompt, "prompt")
        self.tools = _tools(self.tools, self.prompt, "prompt")
        self.reference_tool_calls = _reference_calls(self.reference_tool_calls, self.tools)
        for name in ("id", "generation", "model", "domain", "task"):
            if not isinstance(getattr(self, name), str):
                raise DataError(f"'{name}' must be a string, got {getattr(self, name)!r:.60}", field=name)
        self.references = _strings(self.references, "references")
        for name in ("settings", "meta"):
            if not isinstance(getattr(self, name), dict):
                raise DataError(f"'{name}' must be an object, got {getattr(self, name)!r:.60}", field=name)

    @property
    def instruction(self) -> str:
        return next((m.content for m in reversed(self.prompt) if m.role == "user"), "")

    def to_dict(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if k not in ("tools", "reference_tool_calls")}
        d["prompt"] = _dump_messages(self.prompt)
        return d | _tools_key(self.tools, self.reference_tool_calls)

    @classmethod
    def from_dict(cls, d: dict) -> Generation:
        missing = [k for k in ("id", "prompt", "generation", "model") if k not in d]
        if missing:
            raise DataError(f"a generation record needs '{missing[0]}'", field=missing[0])
        return cls(
            id=_id(d["id"]),
            prompt=d["prompt"],
            generation=d["generation"],
            references=d.get("references", []),
            model=d["model"],
            domain=d.get("domain", ""),
            task=d.get("task", ""),
            settings=d.get("settings", {}),
            meta=d.get("meta", {}),
            tools=d.get("tools") or [],
            reference_tool_calls=d.get("reference_tool_calls"),
        )


_COMMON = ("id", "domain", "task", "source")


def _id(value: Any) -> Any:
    """A record id: a string, or an integer (as many datasets number their rows) read as one."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _strings(value: Any, name: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(r, str) for r in value):
        raise DataError(f"'{name}' must be a list of strings, got {value!r:.60}", field=name)
    return value


def _common(d: dict) -> dict:
    out = {k: _id(d[k]) if k == "id" else d[k] for k in _COMMON if d.get(k) is not None}
    for k, v in out.items():
        if not isinstance(v, str):
            kind = "a string or an integer" if k == "id" else "a string"
            raise DataError(f"'{k}' must be {kind}, got {type(v).__name__} {v!r:.60}", field=k)
    meta = d.get("meta", {})
    if not isinstance(meta, dict):
        raise DataError("'meta' must be an object", field="meta")
    # Unknown top-level keys are kept in meta so that nothing a user wrote is lost.
    known = set(_COMMON) | {"meta", "messages", "prompt", "completion", "chosen", "rejected", "references"}
    extra = {k: v for k, v in d.items() if k not in known}
    return {**out, "meta": {**extra, **meta}}


def _without(d: dict, *keys: str) -> dict:
    return {k: v for k, v in d.items() if k not in keys}


def _tools_key(tools: list[dict], reference: list[ToolCall] | None = None) -> dict:
    """The tool keys of a record on disk: present only when the record has tools."""
    out: dict[str, Any] = {"tools": tools} if tools else {}
    if reference is not None:
        out["reference_tool_calls"] = [c.to_dict() for c in reference]
    return out


def _reference_calls(value: Any, tools: list[dict]) -> list[ToolCall] | None:
    if value is None:
        return None
    calls = list(parse_tool_calls(value, "reference_tool_calls"))
    for k, call in enumerate(calls):
        problem = schema_problem(call, tools)
        if problem:
            raise DataError(problem[0], field=f"reference_tool_calls[{k}].{problem[1]}")
    return calls


def _with_common(d: dict, rec) -> dict:
    for k in _COMMON:
        if getattr(rec, k):
            d[k] = getattr(rec, k)
    if rec.meta:
        d["meta"] = dict(rec.meta)
    return d


def _prompt_messages(prompt: Any) -> list[Message]:
    if isinstance(prompt, str):
        return [Message("user", prompt)]
    return _messages(prompt, "prompt")


def _completion_messages(completion: Any) -> list[Message]:
    if isinstance(completion, str):
        return [Message("assistant", completion)]
    return _messages(completion, "completion")


def _completion_text(value: Any, name: str) -> str:
    if isinstance(value, str):
        return value
    msgs = _messages(value, name)
    if len(msgs) != 1 or msgs[0].role != "assistant":
        raise DataError(f"'{name}' must be a string or a single assistant message", field=name)
    return msgs[0].content
