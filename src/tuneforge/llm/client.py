"""The one small protocol every LLM client speaks, and the sampling settings it takes.

A client turns a batch of chat conversations into `n` completions each:

    llm.chat([[{"role": "user", "content": "..."}], ...], Sampling(n=5, temperature=0.7))
    -> [["answer 1", ..., "answer 5"], ...]

Implementations: `LocalLLM` (a transformers model in this process; the embedded SmolLM2 by
default) and `OpenAIChatLLM` (any OpenAI-compatible HTTP server). `CachedLLM` wraps either with a
persistent SQLite cache so that a rerun or a crashed run never repeats a call.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Protocol

from tuneforge.config import SEED
from tuneforge.errors import ConfigError

Conversation = list[dict]


@dataclass
class Sampling:
    max_new_tokens: int = field(default=256, metadata={"help": "new tokens per completion", "ge": 1})
    temperature: float = field(default=0.0, metadata={"help": "0 = greedy decoding", "ge": 0})
    top_p: float = field(default=1.0, metadata={"help": "nucleus sampling mass", "gt": 0, "le": 1})
    n: int = field(default=1, metadata={"help": "completions per prompt", "ge": 1})
    stop: list[str] = field(default_factory=list, metadata={"help": "strings that end a completion"})
    seed: int = field(default=0, metadata={"help": "sampling seed", **SEED})
    repetition_penalty: float = field(
        default=1.0,
        metadata={"help": "> 1 discourages repeating tokens (small local models loop under greedy decoding)", "gt": 0},
    )
    # Function definitions sent with the request (`tools=`, tuneforge.tool_use); an answer that calls
    # comes back as text with Hermes <tool_call> blocks, which `tool_text.parse_turn` reads.
    tools: list[dict] = field(default_factory=list, metadata={"help": "tools the model may call (JSON schemas)"})
    tool_choice: str = field(
        default="",
        metadata={"help": "with tools: '' (the server's default, auto) | none | auto | required | a tool's name"},
    )

    def __post_init__(self):
        if self.max_new_tokens < 1 or self.n < 1:
            raise ConfigError(f"max_new_tokens and n must be ≥ 1, got {self.max_new_tokens} and {self.n}")
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise ConfigError(f"temperature must be ≥ 0 and top_p in (0, 1], got {self.temperature}, {self.top_p}")
        if self.n > 1 and self.temperature == 0:
            raise ConfigError("n > 1 samples need temperature > 0 (greedy decoding gives n identical answers)")

    def key(self) -> dict:
        key = asdict(self)
        if not self.tools:  # requests without tools keep the keys they had before tools existed
            del key["tools"]
        if not self.tool_choice:
            del key["tool_choice"]
        return key


class LLM(Protocol):
    name: str

    def chat(self, conversations: list[Conversation], sampling: Sampling) -> list[list[str]]:
        """`sampling.n` completions for each conversation, in order."""
        ...


def chat_with_tools(
    llm: LLM, conversations: list[Conversation], tools: list[list[dict]], sampling: Sampling
) -> list[list[str]]:
    """`llm.chat` for conversations that each bring their own tool list: one request set per
    distinct list, the tools sent with it (`Sampling.tools`); the replies in the input order."""
    import json

    replies: list[list[str]] = [[] for _ in conversations]
    groups: dict[str, list[int]] = {}
    for i, t in enumerate(tools):
        groups.setdefault(json.dumps(t, sort_keys=True), []).append(i)
    for idx in groups.values():
        given = tools[idx[0]]
        asked = replace(sampling, tools=given) if given else sampling
        for i, reply in zip(idx, llm.chat([conversations[i] for i in idx], asked)):
            replies[i] = reply
    return replies


def cut_at_stop(text: str, stop: list[str]) -> str:
    """The text before the first stop string (servers and generate() may overshoot)."""
    cut = min((text.find(s) for s in stop if s and s in text), default=-1)
    return text[:cut] if cut >= 0 else text
